"""BEHAVIOUR §5 runtime behaviours, through Python, with Python daemons."""

import gc
import threading

import pytest

import net_mesh as nm
from conftest import PSK, ev
from daemons import U64, Counter, CountingFactory, Echo, count_of, through_seq


def test_spawn_before_start_is_not_ready(node):
    with nm.DaemonRuntime(node) as r:
        r.register_factory("echo", Echo)
        assert not r.is_ready()
        with pytest.raises(nm.NotReadyError) as ei:
            r.spawn("echo", nm.Identity.generate())
        assert ei.value.kind == "not-ready"
        with pytest.raises(nm.NotReadyError):
            r.stop(1)


def test_start_is_idempotent(node):
    with nm.DaemonRuntime(node) as r:
        r.start()
        r.start()
        assert r.is_ready()


def test_after_shutdown_spawn_and_register_are_shutting_down(rt):
    rt.shutdown()
    rt.shutdown()  # idempotent
    assert not rt.is_ready()
    with pytest.raises(nm.ShuttingDownError) as ei:
        rt.spawn("echo", nm.Identity.generate())
    assert ei.value.kind == "shutting-down"
    with pytest.raises(nm.ShuttingDownError):
        rt.register_factory("late", Echo)
    with pytest.raises(nm.ShuttingDownError):
        rt.start()


def test_shutdown_never_closes_the_node(node, rt):
    rt.shutdown()
    with nm.DaemonRuntime(node) as r2:
        r2.register_factory("echo", Echo)
        r2.start()
        h = r2.spawn("echo", nm.Identity.generate())
        assert r2.deliver(h.origin_hash, ev(b"still")) [0].payload == b"still"


def test_duplicate_kind_rejected(rt):
    with pytest.raises(nm.FactoryAlreadyRegisteredError) as ei:
        rt.register_factory("echo", Echo)
    assert ei.value.kind == "factory-already-registered"


def test_new_kind_after_start_works(rt):
    rt.register_factory("echo2", Echo)
    h = rt.spawn("echo2", nm.Identity.generate())
    assert rt.deliver(h.origin_hash, ev(b"hi"))[0].payload == b"hi"


def test_echo_round_trip(rt):
    ident = nm.Identity.generate()
    h = rt.spawn("echo", ident)
    assert h.origin_hash == ident.origin_hash and h.entity_id == ident.entity_id
    outs = rt.deliver(h.origin_hash, nm.CausalEvent(origin_hash=7, sequence=1, payload=b"ping"))
    assert len(outs) == 1
    o = outs[0]
    assert isinstance(o, nm.CausalEvent)
    assert o.payload == b"ping"
    assert o.origin_hash == ident.origin_hash
    assert o.sequence == 1
    assert o.horizon != 0  # the horizon saw (7, 1)
    s = h.stats()
    assert (s.events_processed, s.events_emitted, s.errors) == (1, 1, 0)
    outs2 = rt.deliver(h.origin_hash, nm.CausalEvent(origin_hash=7, sequence=2, payload=b""))
    assert outs2[0].sequence == 2 and outs2[0].payload == b""
    assert outs2[0].parent_hash != 0


def test_no_outputs_leaves_chain_untouched(rt):
    h = rt.spawn("silent", nm.Identity.generate())
    assert rt.deliver(h.origin_hash, ev()) == []
    s = h.stats()
    assert (s.events_processed, s.events_emitted) == (1, 0)
    assert rt.snapshot(h.origin_hash) is None  # stateless


def test_counter_snapshot_stop_restore_continues(rt):
    ident = nm.Identity.generate()
    h = rt.spawn("counter", ident)
    for i in range(1, 6):
        assert count_of(rt.deliver(h.origin_hash, ev(seq=i))) == i
    snap = rt.snapshot(h.origin_hash)
    assert through_seq(snap) == 5
    assert h.snapshot() == snap or through_seq(h.snapshot()) == 5
    assert h.stats().snapshots_taken >= 1
    rt.stop(h.origin_hash)
    assert rt.daemon_count() == 0
    h2 = rt.spawn_from_snapshot("counter", ident, snap)
    outs = rt.deliver(h2.origin_hash, ev(seq=6))
    assert count_of(outs) == 6
    assert outs[0].sequence == 6
    assert h2.stats().events_processed == 1  # reset on restore


def test_identity_mismatch_rejected(rt):
    a, b = nm.Identity.generate(), nm.Identity.generate()
    h = rt.spawn("counter", a)
    snap = rt.snapshot(h.origin_hash)
    with pytest.raises(nm.SnapshotIdentityMismatchError) as ei:
        rt.spawn_from_snapshot("counter", b, snap)
    assert ei.value.kind == "snapshot-identity-mismatch"
    assert rt.daemon_count() == 1


def test_low_32_bit_origin_collision_told_apart(rt):
    # seeds 13515 and 23655 give origin hashes equal in their low 32 bits
    a = nm.Identity.from_seed((13515).to_bytes(32, "little"))
    b = nm.Identity.from_seed((23655).to_bytes(32, "little"))
    assert a.origin_hash & 0xFFFFFFFF == b.origin_hash & 0xFFFFFFFF
    assert a.origin_hash != b.origin_hash
    ha, hb = rt.spawn("counter", a), rt.spawn("counter", b)
    assert rt.daemon_count() == 2
    for _ in range(3):
        rt.deliver(ha.origin_hash, ev())
    assert count_of(rt.deliver(hb.origin_hash, ev())) == 1
    assert count_of(rt.deliver(ha.origin_hash, ev())) == 4
    snap_a = rt.snapshot(ha.origin_hash)
    with pytest.raises(nm.SnapshotIdentityMismatchError):
        rt.spawn_from_snapshot("counter", b, snap_a)


def test_32_concurrent_registrations_exactly_one_wins(rt):
    barrier = threading.Barrier(32)
    wins, losses, other = [], [], []

    def reg():
        barrier.wait()
        try:
            rt.register_factory("contended", Echo)
            wins.append(1)
        except nm.FactoryAlreadyRegisteredError:
            losses.append(1)
        except Exception as e:
            other.append(e)

    ts = [threading.Thread(target=reg) for _ in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert (len(wins), len(losses), other) == (1, 31, [])


def test_start_after_shutdown_is_refused(node):
    r = nm.DaemonRuntime(node)
    r.shutdown()
    with pytest.raises(nm.ShuttingDownError):
        r.start()
    assert not r.is_ready()
    r.close()


def test_spawn_racing_shutdown_leaves_nothing(node):
    for _ in range(5):
        base = nm._daemon.live_objects()
        r = nm.DaemonRuntime(node)
        r.register_factory("echo", Echo)
        r.start()
        stop = threading.Event()
        errs = []

        def spawner():
            while not stop.is_set():
                try:
                    r.spawn("echo", nm.Identity.generate())
                except nm.ShuttingDownError:
                    return
                except Exception as e:
                    errs.append(e)
                    return

        ts = [threading.Thread(target=spawner) for _ in range(3)]
        for t in ts:
            t.start()
        r.shutdown()
        stop.set()
        for t in ts:
            t.join()
        assert errs == []
        assert r.daemon_count() == 0
        r.close()
        gc.collect()
        assert nm._daemon.live_objects() == base  # every daemon and factory finalized


def test_unknown_kind(rt):
    with pytest.raises(nm.FactoryNotFoundError) as ei:
        rt.spawn("nope", nm.Identity.generate())
    assert ei.value.kind == "factory-not-found"
    ident = nm.Identity.generate()
    snap = rt.snapshot(rt.spawn("counter", ident).origin_hash)
    with pytest.raises(nm.FactoryNotFoundError):
        rt.spawn_from_snapshot("nope", ident, snap)
    with pytest.raises(nm.FactoryNotFoundError):
        rt.expect_migration("nope", 1)


def test_same_identity_twice_rejected(rt):
    ident = nm.Identity.generate()
    h = rt.spawn("counter", ident)
    rt.deliver(h.origin_hash, ev())
    with pytest.raises(nm.NetMeshError) as ei:
        rt.spawn("counter", ident)
    assert ei.value.kind in ("already-registered", "process-failed")
    assert rt.daemon_count() == 1
    assert count_of(rt.deliver(h.origin_hash, ev())) == 2


def test_duplicate_restore_does_not_disturb_incumbent(rt):
    ident = nm.Identity.generate()
    h = rt.spawn("counter", ident)
    for _ in range(3):
        rt.deliver(h.origin_hash, ev())
    snap = rt.snapshot(h.origin_hash)
    rt.deliver(h.origin_hash, ev())
    with pytest.raises(nm.NetMeshError):
        rt.spawn_from_snapshot("counter", ident, snap)
    assert rt.daemon_count() == 1
    assert count_of(rt.deliver(h.origin_hash, ev())) == 5


def test_duplicate_expect_migration_rejected(rt):
    origin = nm.Identity.generate().origin_hash
    rt.expect_migration("counter", origin)
    with pytest.raises(nm.AlreadyRegisteredError) as ei:
        rt.expect_migration("counter", origin)
    assert ei.value.kind == "already-registered"
    ident = nm.Identity.generate()
    rt.register_migration_target_identity("counter", ident)
    with pytest.raises(nm.AlreadyRegisteredError):
        rt.register_migration_target_identity("counter", ident)
    with pytest.raises(nm.NetMeshError):  # a placeholder blocks a spawn of that identity
        rt.spawn("counter", ident)


def test_stop_removes_then_not_found(rt):
    h = rt.spawn("echo", nm.Identity.generate())
    rt.stop(h.origin_hash)
    with pytest.raises(nm.DaemonNotFoundError) as ei:
        rt.deliver(h.origin_hash, ev())
    assert ei.value.kind == "daemon-not-found"
    with pytest.raises(nm.DaemonNotFoundError):
        rt.stop(h.origin_hash)
    with pytest.raises(nm.DaemonNotFoundError):
        rt.snapshot(h.origin_hash)
    with pytest.raises(nm.DaemonNotFoundError):
        h.stats()


def test_shutdown_stops_all_and_releases_daemons(node):
    base = nm._daemon.live_objects()
    r = nm.DaemonRuntime(node)
    r.register_factory("counter", Counter)
    r.start()
    for _ in range(10):
        r.spawn("counter", nm.Identity.generate())
    assert r.daemon_count() == 10
    assert nm._daemon.live_objects() == base + 11
    r.shutdown()
    assert r.daemon_count() == 0
    assert nm._daemon.live_objects() == base + 1  # the factory stays until free
    with pytest.raises(nm.NotReadyError if False else nm.NetMeshError):
        r.deliver(1, ev())
    r.stop(12345)  # a no-op success during shutdown
    r.close()
    assert nm._daemon.live_objects() == base


def test_factory_runs_exactly_once_per_spawn(node):
    f = CountingFactory(Counter)
    with nm.DaemonRuntime(node) as r:
        r.register_factory("counter", f)
        r.start()
        assert f.calls == 0
        hs = [r.spawn("counter", nm.Identity.generate()) for _ in range(7)]
        assert f.calls == 7
        for h in hs:
            r.deliver(h.origin_hash, ev())
        r.snapshot(hs[0].origin_hash)
        assert f.calls == 7
        assert [d.n for d in f.instances] == [1] * 7


def test_auto_snapshot_interval(rt):
    h = rt.spawn("counter", nm.Identity.generate(), config={"auto_snapshot_interval": 2})
    for _ in range(6):
        rt.deliver(h.origin_hash, ev())
    assert h.stats().snapshots_taken >= 3
    h2 = rt.spawn("counter", nm.Identity.generate(), config=nm.DaemonConfig(auto_snapshot_interval=0))
    rt.deliver(h2.origin_hash, ev())
    assert h2.stats().snapshots_taken == 0


def test_spawn_with_daemon_instance(rt):
    d = Counter()
    d.n = 40
    ident = nm.Identity.generate()
    h = rt.spawn_with_daemon(ident, d)
    assert count_of(rt.deliver(h.origin_hash, ev())) == 41
    assert d.n == 41  # the very instance runs
    rt.stop(h.origin_hash)


def test_a_daemon_may_deliver_to_another(rt):
    target = rt.spawn("counter", nm.Identity.generate())

    class Relay(nm.MeshDaemon):
        name = "relay"

        def process(self, event):
            outs = rt.deliver(target.origin_hash, event)
            return [o.payload for o in outs]

    h = rt.spawn_with_daemon(nm.Identity.generate(), Relay())
    assert count_of(rt.deliver(h.origin_hash, ev())) == 1
    assert count_of(rt.deliver(h.origin_hash, ev())) == 2


def test_payload_types(rt):
    h = rt.spawn("echo", nm.Identity.generate())
    assert rt.deliver(h.origin_hash, ev(bytearray(b"ab")))[0].payload == b"ab"
    assert rt.deliver(h.origin_hash, ev(memoryview(b"cd")))[0].payload == b"cd"
    big = bytes(range(256)) * 4096
    assert rt.deliver(h.origin_hash, ev(big))[0].payload == big
    assert rt.deliver(h.origin_hash, ev(b"\x00\x00"))[0].payload == b"\x00\x00"


def test_submit_runs_on_a_library_thread_and_can_deliver(rt):
    h = rt.spawn("counter", nm.Identity.generate())
    done = threading.Event()
    result = {}

    def task():
        result["thread"] = threading.get_ident()
        result["count"] = count_of(rt.deliver(h.origin_hash, ev()))
        done.set()

    # scheduled from a plain OS thread
    t = threading.Thread(target=lambda: rt.submit(task))
    t.start()
    t.join()
    assert done.wait(10)
    assert result["count"] == 1
    assert result["thread"] != threading.get_ident()
    with pytest.raises(TypeError):
        rt.submit(5)


def test_callback_probe_calls_back_on_this_thread():
    from net_mesh import _daemon, _ffi

    seen = []
    key = _daemon.keep(lambda: seen.append(threading.get_ident()))
    try:
        assert _ffi.lib().net_mesh_callback_probe(_daemon._TASK, key) == 0
    finally:
        _daemon._finalize(key)
    assert seen == [threading.get_ident()]
