"""DaemonRuntime.deliver_many: one lease per chunk of events, with results
identical to single delivers, failures at event k, fallback while migrating,
and no lease ever left locked."""

import threading

import pytest

import net_mesh as nm
from net_mesh import _batch
from conftest import PSK, ev, wait_until
from daemons import U64, Boom, Counter, count_of


class Vary(Counter):
    """Counts events; emits sequence % 4 outputs (0 to 3) naming the count
    and the output index; payload b"raise" raises Boom."""

    name = "vary"

    def process(self, event):
        if event.payload == b"raise":
            raise Boom("vary exploded")
        self.n += 1
        return [U64.pack(self.n) + bytes([k]) + event.payload for k in range(event.sequence % 4)]


@pytest.fixture
def twins():
    """Two runtimes on two nodes, each running a Vary daemon of the same
    identity (auto snapshot every 50 events): (single side, batch side,
    handles, origin)."""
    nodes = [nm.Node(psk=PSK), nm.Node(psk=PSK)]
    rts = [nm.DaemonRuntime(n) for n in nodes]
    ident = nm.Identity.generate()
    hs = []
    for r in rts:
        r.register_factory("vary", Vary)
        r.start()
        hs.append(r.spawn("vary", ident, config={"auto_snapshot_interval": 50}))
    yield rts[0], rts[1], hs, ident.origin_hash
    for x in rts + nodes:
        x.close()


def _events(start, n, payload=b"p"):
    return [nm.CausalEvent(origin_hash=100 + (start + i) % 5, sequence=start + i,
                           payload=payload + (start + i).to_bytes(2, "little")) for i in range(n)]


def _key(o):
    return (o.origin_hash, o.sequence, o.parent_hash, o.horizon, o.payload)


def _stats(h):
    s = h.stats()
    return (s.events_processed, s.events_emitted, s.errors, s.snapshots_taken)


@pytest.mark.parametrize("decoded", [True, False], ids=["library-decodes", "python-packs"])
def test_equal_to_single_delivers_on_a_twin(twins, decoded):
    single, batch, hs, o = twins
    # the library reads the events itself (pyobj) when it can; either way
    # the results are the same
    if not decoded or not batch.pyobj:
        batch.pyobj = False
    else:
        evs = _events(1, 3)
        assert _batch._decode(evs) is not None
        assert _batch._decode(evs + [nm.CausalEvent(origin_hash=True, sequence=1, payload=b"")]) is None
        assert _batch._decode(evs + [nm.CausalEvent(origin_hash=1, sequence=1, payload=bytearray())]) is None
    seq = 1
    for n in (1, 7, 30, 2, 45, 1):
        evs = _events(seq, n)
        seq += n
        got = batch.deliver_many(o, evs)
        want = [single.deliver(o, e) for e in evs]
        assert len(got) == n
        assert [[_key(x) for x in g] for g in got] == [[_key(x) for x in w] for w in want]
        assert all(x.received_at > 0 for g in got for x in g)
        assert _stats(hs[0]) == _stats(hs[1])  # each batch crosses at most one multiple of 50
    # the chain heads and horizons agree: the next output is the same
    nxt = nm.CausalEvent(origin_hash=999, sequence=3, payload=b"z")
    assert [_key(x) for x in single.deliver(o, nxt)] == [_key(x) for x in batch.deliver(o, nxt)]


def test_failure_at_event_k(twins):
    single, batch, hs, o = twins
    evs = _events(1, 12)
    evs[5] = nm.CausalEvent(origin_hash=7, sequence=6, payload=b"raise")
    with pytest.raises(nm.ProcessFailedError) as ei:
        batch.deliver_many(o, evs)
    assert isinstance(ei.value.__cause__, Boom)
    assert ei.value.kind == "process-failed"
    outs = ei.value.outputs
    assert len(outs) == 5
    want = [single.deliver(o, e) for e in evs[:5]]
    assert [[_key(x) for x in g] for g in outs] == [[_key(x) for x in w] for w in want]
    with pytest.raises(nm.ProcessFailedError):
        single.deliver(o, evs[5])
    assert _stats(hs[0]) == _stats(hs[1]) == (5, sum(e.sequence % 4 for e in evs[:5]), 1, 0)
    # the daemon is usable and both sides continue alike
    rest = batch.deliver_many(o, evs[6:])
    assert [[_key(x) for x in g] for g in rest] == [[_key(x) for x in single.deliver(o, e)] for e in evs[6:]]
    assert _stats(hs[0]) == _stats(hs[1])


def test_empty_one_and_bad_events(rt):
    h = rt.spawn("counter", nm.Identity.generate())
    o = h.origin_hash
    assert rt.deliver_many(o, []) == []
    assert rt.deliver_many(o, iter(())) == []
    (outs,) = rt.deliver_many(o, [ev()])
    assert count_of(outs) == 1 and outs[0].sequence == 1
    # every event is checked before any is delivered
    good = [ev(seq=i) for i in range(1, 5)]
    for bad, exc in ((b"not an event", TypeError),
                     (nm.CausalEvent(origin_hash=-1, sequence=1, payload=b""), nm.InvalidArgumentError),
                     (nm.CausalEvent(origin_hash=1, sequence=2**64, payload=b""), nm.InvalidArgumentError),
                     (nm.CausalEvent(origin_hash=1, sequence=1, payload="str"), TypeError)):
        with pytest.raises(exc):
            rt.deliver_many(o, good + [bad])
    with pytest.raises(TypeError):
        rt.deliver_many(o, ev())  # one event, not a list of them
    with pytest.raises(TypeError):
        rt.deliver_many("x", good)
    with pytest.raises(nm.InvalidArgumentError):
        rt.deliver_many(-1, good)
    assert h.stats().events_processed == 1
    # bytearray / memoryview payloads are delivered as bytes
    seen = []

    class Keep(nm.MeshDaemon):
        def process(self, event):
            seen.append(event.payload)
            return [event.payload]

    k = rt.spawn_with_daemon(nm.Identity.generate(), Keep())
    got = rt.deliver_many(k.origin_hash, [ev(bytearray(b"ab")), ev(memoryview(b"cd"), seq=2)])
    assert seen == [b"ab", b"cd"] and all(type(p) is bytes for p in seen)
    assert [g[0].payload for g in got] == [b"ab", b"cd"]
    with pytest.raises(nm.DaemonNotFoundError) as ei:
        rt.deliver_many(12345, good)
    assert ei.value.outputs == []


def test_outputs_of_every_shape(rt):
    class Shapes(nm.MeshDaemon):
        def process(self, event):
            k = event.sequence % 5
            return [None, [], [b"one"], (b"a", bytearray(b"b")), [memoryview(b"m")] * 3][k]

    h = rt.spawn_with_daemon(nm.Identity.generate(), Shapes())
    got = rt.deliver_many(h.origin_hash, [ev(seq=i) for i in range(10)])
    assert [[x.payload for x in g] for g in got] == [[], [], [b"one"], [b"a", b"b"], [b"m"] * 3] * 2
    seqs = [x.sequence for g in got for x in g]
    assert seqs == list(range(1, len(seqs) + 1))
    # a bad output type fails that event, as in deliver
    bad = rt.spawn("faulty", nm.Identity.generate())
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.deliver_many(bad.origin_hash, [ev(b"ok"), ev(b"badtype"), ev(b"ok")])
    assert isinstance(ei.value.__cause__, TypeError)
    assert [count_of(g) for g in ei.value.outputs] == [1]


def test_big_batches_span_chunks(rt):
    h = rt.spawn("counter", nm.Identity.generate(), config={"auto_snapshot_interval": 3000})
    n = 10_000
    got = rt.deliver_many(h.origin_hash, [ev(seq=i + 1) for i in range(n)])
    assert len(got) == n
    assert [count_of(g) for g in got] == list(range(1, n + 1))
    assert [g[0].sequence for g in got] == list(range(1, n + 1))
    s = h.stats()
    assert (s.events_processed, s.events_emitted, s.errors) == (n, n, 0)
    # one snapshot per chunk that crossed a multiple of 3000 (3072, 6144, 9216)
    assert s.snapshots_taken == 3
    assert n > 3 * _batch.CHUNK


def test_threads_share_a_daemon(rt):
    h = rt.spawn("counter", nm.Identity.generate())
    o = h.origin_hash
    errors, counts = [], []
    lock = threading.Lock()

    def worker(w):
        try:
            for r in range(20):
                if (w + r) % 4 == 0:
                    got = [rt.deliver(o, ev(seq=r))]
                else:
                    got = rt.deliver_many(o, [ev(seq=r * 50 + i) for i in range(50)])
                    vals = [count_of(g) for g in got]
                    assert vals == list(range(vals[0], vals[0] + 50))  # one chunk: contiguous
                with lock:
                    counts.extend(count_of(g) for g in got)
        except BaseException as e:
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in ts)
    assert sorted(counts) == list(range(1, len(counts) + 1))
    assert h.stats().events_processed == len(counts)


def test_interrupts_never_leave_the_lease_open(rt_both, monkeypatch):
    rt = rt_both
    h = rt.spawn("faulty", nm.Identity.generate())
    o = h.origin_hash
    # KeyboardInterrupt inside process: that event failed, as in deliver
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.deliver_many(o, [ev(b"a"), ev(b"keyboard"), ev(b"b")])
    assert isinstance(ei.value.__cause__, KeyboardInterrupt)
    assert len(ei.value.outputs) == 1
    # an interrupt outside process, after the events ran (while building the
    # commit's records the first time): they are still committed
    def boom(*a):
        raise KeyboardInterrupt

    real_records, calls = _batch._records, []

    def records_once(outs):
        calls.append(len(outs))
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_records(outs)

    monkeypatch.setattr(_batch, "_records", records_once)
    if rt.native:
        # here the library builds the records (every output one bytes): the
        # interrupt comes at its commit instead, before the lease ended
        commit, results = _batch._native()

        def commit_once(*a):
            calls.append(a[4])  # n_done
            if len(calls) == 1:
                raise KeyboardInterrupt
            return commit(*a)

        monkeypatch.setattr(_batch, "_native", lambda: (commit_once, results))
    with pytest.raises(KeyboardInterrupt):
        rt.deliver_many(o, [ev(b"c"), ev(b"d")])
    monkeypatch.undo()
    assert calls == [2, 2]
    s = h.stats()
    assert (s.events_processed, s.errors) == (3, 1)
    assert count_of(rt.deliver(o, ev(b"e"))) == 4  # not locked
    # an interrupt right after begin: nothing ran, the lease still ends
    real = _batch._objects_get
    monkeypatch.setattr(_batch, "_objects_get", boom)
    with pytest.raises(KeyboardInterrupt):
        rt.deliver_many(o, [ev(b"f")])
    monkeypatch.setattr(_batch, "_objects_get", real)
    assert count_of(rt.deliver(o, ev(b"g"))) == 5
    assert h.stats().errors == 2


def test_self_deliver_many_inside_process_is_refused(rt):
    seen = []

    class Selfish(nm.MeshDaemon):
        def process(self, event):
            if event.payload == b"self":
                try:
                    rt.deliver_many(self.origin, [ev()])
                except nm.InvalidArgumentError as e:
                    seen.append(e)
            if event.payload == b"self1":
                for call in (lambda: rt.deliver(self.origin, ev()), lambda: rt.snapshot(self.origin)):
                    try:
                        call()
                    except nm.InvalidArgumentError as e:
                        seen.append(e)
            return [b"ok"]

    d = Selfish()
    h = rt.spawn_with_daemon(nm.Identity.generate(), d)
    d.origin = h.origin_hash
    got = rt.deliver_many(h.origin_hash, [ev(b"x"), ev(b"self"), ev(b"y")])
    assert [[x.payload for x in g] for g in got] == [[b"ok"]] * 3
    assert len(seen) == 1
    # single deliver and snapshot from inside a batch's process: refused too
    rt.deliver_many(h.origin_hash, [ev(b"self1")])
    assert len(seen) == 3
    # and deliver_many from inside single deliver's process
    rt.deliver(h.origin_hash, ev(b"self"))
    assert len(seen) == 4
    # deliver_many to another daemon from inside process is fine
    other = rt.spawn("counter", nm.Identity.generate())

    class Relay(nm.MeshDaemon):
        def process(self, event):
            return [g[0].payload for g in rt.deliver_many(other.origin_hash, [event, event])]

    r = rt.spawn_with_daemon(nm.Identity.generate(), Relay())
    got = rt.deliver_many(r.origin_hash, [ev(), ev()])
    assert [[count_of([x]) for x in g] for g in got] == [[1, 2], [3, 4]]


def test_closed_runtime_and_stopped_daemon(node):
    r = nm.DaemonRuntime(node)
    r.register_factory("counter", Counter)
    r.start()
    h = r.spawn("counter", nm.Identity.generate())
    r.stop(h.origin_hash)
    with pytest.raises(nm.DaemonNotFoundError):
        r.deliver_many(h.origin_hash, [ev()])
    r.close()
    with pytest.raises(nm.BadHandleError):
        r.deliver_many(h.origin_hash, [ev()])


def test_batch_while_migrating_falls_back_and_loses_nothing(slow_restore_pair):
    p, restored = slow_restore_pair
    ra, rb = p.ra, p.rb
    ident = nm.Identity.generate()
    o = ident.origin_hash
    rb.expect_migration("slow", o)
    ra.spawn("slow", ident)
    assert [count_of(g) for g in ra.deliver_many(o, [ev(seq=i) for i in range(1, 6)])] == [1, 2, 3, 4, 5]
    m = ra.start_migration(o, p.a.node_id, p.b.node_id)
    # buffering on the source: the batch is refused, the events queue one by one
    queued = ra.deliver_many(o, [ev(seq=i) for i in range(6, 26)])
    assert queued == [[]] * 20
    m.wait(30)
    assert restored.is_set()
    wait_until(lambda: len(p.sunk["b"]) >= 20)
    assert [c for _, c in p.sunk["b"]] == list(range(6, 26))  # replayed on B in order, none lost
    with pytest.raises(nm.DaemonMovedError):
        ra.deliver_many(o, [ev()])
    got = rb.deliver_many(o, [ev(seq=i) for i in range(26, 31)])
    assert [count_of(g) for g in got] == [26, 27, 28, 29, 30]
    m.close()


def test_without_batches_in_the_library_one_by_one(rt, monkeypatch):
    """A library or interpreter without host-driven delivery: deliver_many
    delivers one by one, with the same checks first."""
    h = rt.spawn("counter", nm.Identity.generate())
    monkeypatch.setattr(rt, "_begin_block", None)
    with pytest.raises(nm.InvalidArgumentError):
        rt.deliver_many(h.origin_hash, [ev(), ev(), nm.CausalEvent(origin_hash=2**64, sequence=1, payload=b"")])
    assert h.stats().events_processed == 0
    got = rt.deliver_many(h.origin_hash, [ev(bytearray(b"a")), ev()])
    assert [count_of(g) for g in got] == [1, 2]


# ---- the common case in the library (rt.native): every event of a chunk
# returned exactly one exact bytes; the library builds the commit's records
# (net_mesh_pyobj_deliver_batch_commit) and the output events
# (net_mesh_pyobj_native_results)

class Mixed(Counter):
    """One bytes output per event, except: payload b"many" emits Vary-like
    shapes by sequence, b"ba" a bytearray output, b"raise" raises Boom."""

    name = "mixed"

    def process(self, event):
        if event.payload.startswith(b"raise"):
            raise Boom("mixed exploded")
        self.n += 1
        out = U64.pack(self.n) + event.payload
        if event.payload.startswith(b"many"):
            return [None, [], [out], (out, out + b"2")][event.sequence % 4]
        if event.payload.startswith(b"ba"):
            return [bytearray(out)]
        return [out]


@pytest.fixture
def native_and_read():
    """A Mixed daemon of one identity on a native runtime and on a read
    runtime (NET_MESH_PYOBJ=read): (native, read, handles, origin)."""
    from conftest import make_rt

    nodes = [nm.Node(psk=PSK), nm.Node(psk=PSK)]
    rts = [make_rt(nodes[0], True, True), make_rt(nodes[1], True, False)]
    ident = nm.Identity.generate()
    hs = []
    for r in rts:
        r.register_factory("mixed", Mixed)
        hs.append(r.spawn("mixed", ident, config={"auto_snapshot_interval": 40}))
    yield rts[0], rts[1], hs, ident.origin_hash
    for x in rts + nodes:
        x.close()


def _chunk(seq, n, kind):
    """n events from sequence seq: kind "bytes" all one-output events,
    "mixed" every third one of another shape."""
    out = []
    for i in range(n):
        p = b"p%d" % (seq + i)
        if kind == "mixed" and i % 3 == 1:
            p = (b"many", b"ba")[(seq + i) % 2] + p
        out.append(nm.CausalEvent(origin_hash=7 + i % 3, sequence=seq + i, payload=p))
    return out


def _spy(monkeypatch):
    """Count the Python records/results builders' calls (the general path)."""
    calls = {"records": 0, "results": 0}
    real_records, real_results = _batch._records, _batch._results

    def records(outs):
        calls["records"] += 1
        return real_records(outs)

    def results(*a):
        calls["results"] += 1
        return real_results(*a)

    monkeypatch.setattr(_batch, "_records", records)
    monkeypatch.setattr(_batch, "_results", results)
    return calls


def test_native_results_equal_the_read_runtime(native_and_read, monkeypatch):
    nat, read, hs, o = native_and_read
    assert _batch._native() is not None
    calls = _spy(monkeypatch)
    seq = 1
    for kind, n in (("bytes", 1), ("bytes", 100), ("mixed", 30), ("bytes", 7), ("mixed", 2), ("bytes", 1500)):
        evs = _chunk(seq, n, kind)
        seq += n
        before = dict(calls)
        a = nat.deliver_many(o, evs)
        used = {k: calls[k] - before[k] for k in calls}
        b = read.deliver_many(o, evs)
        assert [[_key(x) for x in g] for g in a] == [[_key(x) for x in g] for g in b]
        assert all(type(g) is list for g in a) and all(type(x) is nm.CausalEvent for g in a for x in g)
        assert all(type(x.payload) is bytes and x.received_at > 0 for g in a for x in g)
        assert _stats(hs[0]) == _stats(hs[1])
        if kind == "bytes":  # the library built both (one chunk or two)
            assert used == {"records": 0, "results": 0}
        else:
            assert used["records"] >= 1 and used["results"] >= 1
    # a failure at event k, in an all-bytes chunk and in a mixed one: the same
    # outputs before it, the same errors, the same chains after
    for kind in ("bytes", "mixed"):
        evs = _chunk(seq, 9, kind)
        evs[6] = evs[6]._replace(payload=b"raise")
        seq += 9
        errs = []
        for r in (nat, read):
            with pytest.raises(nm.ProcessFailedError) as ei:
                r.deliver_many(o, evs)
            assert isinstance(ei.value.__cause__, Boom)
            errs.append([[_key(x) for x in g] for g in ei.value.outputs])
        assert errs[0] == errs[1] and len(errs[0]) == 6
        assert _stats(hs[0]) == _stats(hs[1])
    nxt = nm.CausalEvent(origin_hash=3, sequence=seq, payload=b"z")
    assert [_key(x) for x in nat.deliver(o, nxt)] == [_key(x) for x in read.deliver(o, nxt)]


def test_native_results_fall_back_when_the_library_declines(native_and_read, monkeypatch):
    """A results call returning nothing (e.g. out of memory in the library:
    0, no exception) gives the same outputs through the Python builder."""
    nat, read, hs, o = native_and_read
    commit, _ = _batch._native()
    monkeypatch.setattr(_batch, "_native", lambda: (commit, lambda *a: None))
    calls = _spy(monkeypatch)
    evs = _chunk(1, 20, "bytes")
    a, b = nat.deliver_many(o, evs), read.deliver_many(o, evs)
    assert [[_key(x) for x in g] for g in a] == [[_key(x) for x in g] for g in b]
    # records: the read runtime's only; results: the fallback's and the read runtime's
    assert calls == {"records": 1, "results": 2}
    assert _stats(hs[0]) == _stats(hs[1])


FIXED_MANY = b"fixed-many-output"


def test_native_many_reference_counts_balance(rt):
    """The library's records and results take and drop references right: the
    payload, origin and event objects end where they started."""
    import gc
    import sys

    assert rt.native

    class Fixed(nm.MeshDaemon):
        def process(self, event):
            if event.payload == b"raise":
                raise Boom("x")
            if event.payload == b"two":
                return [FIXED_MANY, FIXED_MANY]
            return [FIXED_MANY]

    h = rt.spawn_with_daemon(nm.Identity.generate(), Fixed())
    origin = int(str(h.origin_hash))  # an int object of our own
    plain = [ev(b"p", seq=i + 1) for i in range(50)]
    mixed = plain[:10] + [ev(b"two")] + plain[10:20]
    failing = plain[:5] + [ev(b"raise")] + plain[5:]

    def round_():
        for _ in range(20):
            got = rt.deliver_many(origin, plain)
            assert len(got) == 50
            rt.deliver_many(origin, mixed)
            try:
                rt.deliver_many(origin, failing)
            except nm.ProcessFailedError as e:
                assert len(e.outputs) == 5
                e.__traceback__ = None
            del got

    watched = [FIXED_MANY, origin, *plain, *mixed]
    round_()  # warm
    gc.collect()
    before = [sys.getrefcount(x) for x in watched]
    round_()
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before
    # the outputs hold the very payload and origin objects
    base = sys.getrefcount(FIXED_MANY), sys.getrefcount(origin)
    got = rt.deliver_many(origin, plain[:3])
    assert all(g[0].payload is FIXED_MANY and g[0].origin_hash is origin for g in got)
    assert (sys.getrefcount(FIXED_MANY), sys.getrefcount(origin)) == (base[0] + 3, base[1] + 3)
    del got
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before
