"""GC storms, threads, closed objects, wrong types: raise, never crash."""

import gc
import threading

import pytest

import net_mesh as nm
from conftest import PSK, ev
from daemons import U64, Counter, count_of


def test_daemons_referenced_only_by_the_runtime_survive_gc_storms(node):
    base = nm._daemon.live_objects()
    with nm.DaemonRuntime(node) as r:
        def make_factory():
            class Local(nm.MeshDaemon):  # a class only the factory closure holds
                def __init__(self):
                    self.n = 0
                    self.junk = [object() for _ in range(10)]

                def process(self, event):
                    self.n += 1
                    return [U64.pack(self.n)]

                def snapshot(self):
                    return U64.pack(self.n)

                def restore(self, state):
                    (self.n,) = U64.unpack(state)

            return lambda: Local()

        r.register_factory("local", make_factory())
        r.start()
        origins = [r.spawn("local", nm.Identity.generate()).origin_hash for _ in range(20)]
        # add instances built here and then dropped
        for _ in range(5):
            origins.append(r.spawn_with_daemon(nm.Identity.generate(), make_factory()()).origin_hash)
        stop = threading.Event()

        def storm():
            while not stop.is_set():
                gc.collect()

        errors = []

        def feeder(my):
            try:
                for i in range(1, 51):
                    for o in my:
                        assert count_of(r.deliver(o, ev(seq=i))) == i
                        if i % 10 == 0:
                            r.snapshot(o)
            except Exception as e:
                errors.append(e)

        gcs = [threading.Thread(target=storm) for _ in range(2)]
        feeders = [threading.Thread(target=feeder, args=(origins[k::4],)) for k in range(4)]
        for t in gcs + feeders:
            t.start()
        for t in feeders:
            t.join()
        stop.set()
        for t in gcs:
            t.join()
        assert errors == []
        assert r.daemon_count() == 25
    gc.collect()
    assert nm._daemon.live_objects() == base


def test_threads_delivering_to_one_daemon_are_serialized(rt):
    h = rt.spawn("counter", nm.Identity.generate())
    seen, errors = [], []

    def work():
        try:
            for _ in range(300):
                seen.append(count_of(rt.deliver(h.origin_hash, ev())))
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert sorted(seen) == list(range(1, 1801))
    assert h.stats().events_processed == 1800


def test_threads_mixing_every_call(rt):
    errors = []

    def work(k):
        try:
            for _ in range(30):
                ident = nm.Identity.generate()
                h = rt.spawn("counter", ident)
                for i in range(1, 4):
                    assert count_of(rt.deliver(h.origin_hash, ev(seq=i))) == i
                snap = rt.snapshot(h.origin_hash)
                rt.stop(h.origin_hash)
                h2 = rt.spawn_from_snapshot("counter", ident, snap)
                assert count_of(rt.deliver(h2.origin_hash, ev(seq=4))) == 4
                rt.stop(h2.origin_hash)
                rt.daemon_count()
                rt.is_ready()
        except Exception as e:
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert rt.daemon_count() == 0


def test_closed_objects_raise(node):
    r = nm.DaemonRuntime(node)
    r.register_factory("counter", Counter)
    r.start()
    h = r.spawn("counter", nm.Identity.generate())
    r.close()
    r.close()
    assert r.closed
    for call in (lambda: r.deliver(h.origin_hash, ev()), lambda: r.start(), lambda: r.snapshot(1),
                 lambda: r.spawn("counter", nm.Identity.generate()), lambda: r.daemon_count(),
                 lambda: r.register_factory("x", Counter)):
        with pytest.raises(nm.BadHandleError):
            call()
    with pytest.raises(nm.NetMeshError):
        h.stats()  # its runtime is gone
    h.close()
    with pytest.raises(nm.BadHandleError):
        h.stats()
    ident = nm.Identity.generate()
    ident.close()
    with nm.DaemonRuntime(node) as r2:
        r2.register_factory("counter", Counter)
        r2.start()
        with pytest.raises(nm.BadHandleError):
            r2.spawn("counter", ident)
    n2 = nm.Node(psk=PSK)
    n2.close()
    n2.close()
    with pytest.raises(nm.BadHandleError):
        nm.DaemonRuntime(n2)
    with pytest.raises(nm.BadHandleError):
        n2.accept(1)


def test_context_managers_close():
    with nm.Node(psk=PSK) as n:
        with nm.DaemonRuntime(n) as r:
            r.start()
        assert r.closed
    assert n.closed


@pytest.mark.parametrize("bad_origin", ["1", 1.5, None, -1, 2**64, True])
def test_wrong_origin_types_and_values(rt, bad_origin):
    with pytest.raises((TypeError, ValueError)):
        rt.deliver(bad_origin, ev())
    with pytest.raises((TypeError, ValueError)):
        rt.stop(bad_origin)
    with pytest.raises((TypeError, ValueError)):
        rt.snapshot(bad_origin)


def test_wrong_argument_types(rt, node):
    h = rt.spawn("echo", nm.Identity.generate())
    for bad_event in (None, b"x", {"payload": b"x"}):
        with pytest.raises(TypeError):
            rt.deliver(h.origin_hash, bad_event)
    for bad_payload in ("text", 5, None):
        with pytest.raises(TypeError):
            rt.deliver(h.origin_hash, nm.CausalEvent(payload=bad_payload))
    with pytest.raises((TypeError, ValueError)):
        rt.deliver(h.origin_hash, nm.CausalEvent(sequence=-1, payload=b""))
    with pytest.raises((TypeError, ValueError)):
        rt.deliver(h.origin_hash, nm.CausalEvent(origin_hash="x", payload=b""))
    with pytest.raises(TypeError):
        rt.spawn("echo", "not an identity")
    with pytest.raises(TypeError):
        rt.spawn("echo", node)
    with pytest.raises(TypeError):
        rt.spawn(5, nm.Identity.generate())
    with pytest.raises(ValueError):
        rt.spawn("", nm.Identity.generate())
    with pytest.raises(ValueError):
        rt.spawn("a\x00b", nm.Identity.generate())
    with pytest.raises(TypeError):
        rt.spawn("echo", nm.Identity.generate(), config=5)
    with pytest.raises(ValueError):
        rt.spawn("echo", nm.Identity.generate(), config={"bogus": 1})
    with pytest.raises(ValueError):
        rt.spawn("echo", nm.Identity.generate(), config={"auto_snapshot_interval": -1})
    with pytest.raises(TypeError):
        rt.register_factory("x", "not callable")
    with pytest.raises(TypeError):
        rt.spawn_from_snapshot("echo", nm.Identity.generate(), "str snapshot")
    with pytest.raises(TypeError):
        rt.spawn_with_daemon(nm.Identity.generate(), object())
    with pytest.raises(TypeError):
        nm.DaemonRuntime("not a node")
    with pytest.raises(TypeError):
        nm.DaemonRuntime(None)
    assert rt.daemon_count() == 1


def test_public_only_identity_cannot_spawn(rt):
    p = nm.Identity.from_entity_id(nm.Identity.generate().entity_id)
    with pytest.raises(nm.InvalidArgumentError):
        rt.spawn("echo", p)


def test_gc_of_unclosed_runtime_and_node_is_safe():
    for _ in range(20):
        n = nm.Node(psk=PSK)
        r = nm.DaemonRuntime(n)
        r.register_factory("counter", Counter)
        r.start()
        r.spawn("counter", nm.Identity.generate())
        del r, n
        gc.collect()
