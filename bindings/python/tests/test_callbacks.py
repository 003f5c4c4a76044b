"""Exceptions raised in daemon methods and factories, and what follows them."""

import pytest

import net_mesh as nm
from conftest import ev
from daemons import U64, Boom, Counter, Faulty, count_of


def test_exception_in_process_is_process_failed_with_cause(rt):
    h = rt.spawn("faulty", nm.Identity.generate())
    rt.deliver(h.origin_hash, ev(b"ok"))
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.deliver(h.origin_hash, ev(b"raise"))
    e = ei.value
    assert e.kind == "process-failed"
    assert isinstance(e.__cause__, Boom) and str(e.__cause__) == "process exploded"
    assert "process exploded" in str(e)
    s = h.stats()
    assert (s.events_processed, s.errors) == (1, 1)
    # the runtime and the daemon stay usable
    assert count_of(rt.deliver(h.origin_hash, ev(b"ok"))) == 2


def test_wrong_output_type_is_process_failed(rt):
    h = rt.spawn("faulty", nm.Identity.generate())
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.deliver(h.origin_hash, ev(b"badtype"))
    assert isinstance(ei.value.__cause__, TypeError)


def test_base_exceptions_do_not_escape_into_go(rt):
    h = rt.spawn("faulty", nm.Identity.generate())
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.deliver(h.origin_hash, ev(b"keyboard"))
    assert isinstance(ei.value.__cause__, KeyboardInterrupt)
    assert count_of(rt.deliver(h.origin_hash, ev(b"ok"))) == 1


def test_process_returning_none_or_generator(rt):
    class Gen(nm.MeshDaemon):
        def process(self, event):
            if event.payload == b"none":
                return None
            return (bytes([i]) for i in range(3))

    h = rt.spawn_with_daemon(nm.Identity.generate(), Gen())
    assert rt.deliver(h.origin_hash, ev(b"none")) == []
    assert [o.payload for o in rt.deliver(h.origin_hash, ev(b"g"))] == [b"\x00", b"\x01", b"\x02"]


def test_exception_in_snapshot(rt):
    h = rt.spawn("faulty", nm.Identity.generate())
    d_origin = h.origin_hash
    for _ in range(100):
        rt.deliver(d_origin, ev(b"ok"))
    with pytest.raises(nm.NetMeshError) as ei:
        rt.snapshot(d_origin)
    assert ei.value.kind == "callback-failed"
    assert isinstance(ei.value.__cause__, Boom)
    assert count_of(rt.deliver(d_origin, ev(b"ok"))) == 101


def test_exception_in_restore_rolls_back(rt):
    ident = nm.Identity.generate()
    h = rt.spawn("faulty", ident)
    # drive the counter to 42 and snapshot: restore raises for 42
    for _ in range(42):
        rt.deliver(h.origin_hash, ev(b"ok"))
    snap = rt.snapshot(h.origin_hash)
    rt.stop(h.origin_hash)
    with pytest.raises(nm.RestoreFailedError) as ei:
        rt.spawn_from_snapshot("faulty", ident, snap)
    assert ei.value.kind == "restore-failed"
    assert isinstance(ei.value.__cause__, Boom)
    assert rt.daemon_count() == 0
    # the identity is free again
    h2 = rt.spawn("faulty", ident)
    assert count_of(rt.deliver(h2.origin_hash, ev(b"ok"))) == 1


def test_restore_of_stateful_snapshot_into_daemon_without_restore(rt):
    class NoRestore(nm.MeshDaemon):
        def process(self, event):
            return []

    rt.register_factory("norestore", NoRestore)
    ident = nm.Identity.generate()
    h = rt.spawn("counter", ident)
    rt.deliver(h.origin_hash, ev())
    snap = rt.snapshot(h.origin_hash)
    rt.stop(h.origin_hash)
    with pytest.raises(nm.RestoreFailedError):
        rt.spawn_from_snapshot("norestore", ident, snap)


def test_malformed_snapshot_bytes(rt):
    ident = nm.Identity.generate()
    with pytest.raises(nm.InvalidArgumentError):
        rt.spawn_from_snapshot("counter", ident, b"CDS1 not really")
    assert rt.daemon_count() == 0


def test_exception_in_factory(rt):
    def bad_factory():
        raise Boom("factory exploded")

    rt.register_factory("badfactory", bad_factory)
    ident = nm.Identity.generate()
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.spawn("badfactory", ident)
    assert isinstance(ei.value.__cause__, Boom)
    assert rt.daemon_count() == 0
    # nothing was left registered for that identity
    rt.spawn("counter", ident)
    assert rt.daemon_count() == 1


def test_factory_returning_a_non_daemon(rt):
    rt.register_factory("notadaemon", lambda: object())
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.spawn("notadaemon", nm.Identity.generate())
    assert isinstance(ei.value.__cause__, TypeError)


def test_duck_typed_daemon_without_base_class(rt):
    class Duck:
        name = "duck"

        def __init__(self):
            self.seen = []

        def process(self, event):
            self.seen.append(event.sequence)
            return [U64.pack(len(self.seen))]

    rt.register_factory("duck", Duck)
    h = rt.spawn("duck", nm.Identity.generate())
    assert count_of(rt.deliver(h.origin_hash, ev(seq=9))) == 1
    assert rt.snapshot(h.origin_hash) is None  # no snapshot(): stateless
