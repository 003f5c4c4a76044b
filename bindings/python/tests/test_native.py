"""deliver as the library's builtin (net_mesh_pyobj_native_deliver): the
library decodes the arguments, leases the daemon, calls process, commits and
builds the output itself, calling the interpreter only through addresses
taken from ctypes.pythonapi. It must give exactly what the binding's Python
deliver gives on every path, hand everything else to it, keep reference
counts balanced, and be switchable off."""

import gc
import sys
import threading
import traceback

import pytest

import net_mesh as nm
from conftest import echo_after, ev, make_rt
from daemons import Boom
from net_mesh import _pyobj

FIXED = b"fixed output, one object"


class Paths(nm.MeshDaemon):
    """A daemon whose payload picks the path through the builtin."""

    name = "paths"

    def __init__(self):
        self.seen = 0
        self.error = Boom("from process")

    def process(self, event):
        self.seen += 1
        p = event.payload
        if p == b"fixed":
            return [FIXED]
        if p == b"none":
            return None
        if p == b"empty":
            return []
        if p == b"two":
            return [FIXED, FIXED]
        if p == b"tuple":
            return (FIXED,)
        if p == b"raise":
            raise self.error
        if p == b"badtype":
            return [1]
        return [p]


def test_runtimes_get_the_builtin_unless_switched_off(node, monkeypatch):
    with make_rt(node) as r:
        assert r.pyobj and r.native
        assert type(r.deliver).__name__ == "builtin_function_or_method"
    monkeypatch.setenv(_pyobj.ENV, _pyobj.READ)
    with nm.DaemonRuntime(node) as r:
        assert r.pyobj and not r.native
        assert r.deliver.__name__ == "deliver"  # the binding's closure
    monkeypatch.setenv(_pyobj.ENV, "0")
    with nm.DaemonRuntime(node) as r:
        assert not r.pyobj and not r.native


def _twins(node):
    """One identity in a builtin, a read-path and a Python-path runtime."""
    rts = [make_rt(node, True, True), make_rt(node, True, False), make_rt(node, False)]
    ident = nm.Identity.generate()
    hs = []
    for r in rts:
        r.register_factory("paths", Paths)
        hs.append(r.spawn("paths", ident))
    return rts, ident.origin_hash, hs


def _outcome(r, origin, event):
    try:
        return [(o.origin_hash, o.sequence, o.parent_hash, o.horizon, o.payload, type(o))
                for o in r.deliver(origin, event)]
    except Exception as e:
        return (type(e), getattr(e, "kind", None), type(e.__cause__))


def test_every_path_equals_the_binding_paths(node):
    rts, o, hs = _twins(node)
    try:
        seq = 0
        payloads = (b"fixed", b"none", b"empty", b"two", b"tuple", b"raise", b"badtype", b"x", b"",
                    bytearray(b"ba"), bytes(300))
        for origin in (1, 2**64 - 1, 0, 2**31):
            for p in payloads:
                seq += 1
                e = nm.CausalEvent(origin, seq, p, seq * 7, 2**63 + seq, 10**18 + seq)
                got = [_outcome(r, o, e) for r in rts]
                assert got[0] == got[1] == got[2], (origin, p)
        s = [h.stats() for h in hs]
        assert [(x.events_processed, x.events_emitted, x.errors) for x in s[1:]] == \
            [(s[0].events_processed, s[0].events_emitted, s[0].errors)] * 2
        assert s[0].errors == 2 * 4  # raise and badtype, per origin
    finally:
        for r in rts:
            r.close()


def test_arguments_the_builtin_does_not_take_go_to_the_binding(rt):
    h = rt.spawn("echo", nm.Identity.generate())
    o = h.origin_hash
    assert [x.payload for x in rt.deliver(origin_hash=o, event=ev(b"kw"))] == [b"kw"]
    assert [x.payload for x in rt.deliver(o, event=ev(b"kw2"))] == [b"kw2"]
    with pytest.raises(TypeError):
        rt.deliver(o)
    with pytest.raises(TypeError):
        rt.deliver()
    with pytest.raises(TypeError):
        rt.deliver(o, ev(), 3)
    with pytest.raises(TypeError):
        rt.deliver(*range(12))
    with pytest.raises(TypeError):
        rt.deliver(o, ev(), **{f"k{i}": i for i in range(12)})
    with pytest.raises(TypeError):
        rt.deliver(o, ev(), extra=1)
    assert h.stats().events_processed == 2


def test_the_process_exception_is_the_cause_with_its_traceback(rt):
    d = Paths()
    h = rt.spawn_with_daemon(nm.Identity.generate(), d)
    with pytest.raises(nm.ProcessFailedError) as ei:
        rt.deliver(h.origin_hash, ev(b"raise"))
    assert ei.value.kind == "process-failed"
    assert ei.value.__cause__ is d.error
    frames = [f.name for f in traceback.extract_tb(d.error.__traceback__)]
    assert "process" in frames
    assert "Boom: from process" in str(ei.value)
    # the lease ended: the daemon takes the next event, on this thread and another
    assert [x.payload for x in rt.deliver(h.origin_hash, ev(b"after"))] == [b"after"]
    out = []
    t = threading.Thread(target=lambda: out.extend(rt.deliver(h.origin_hash, ev(b"other"))))
    t.start()
    t.join(10)
    assert [x.payload for x in out] == [b"other"]


def test_base_exceptions_from_process_are_process_failures_too(rt):
    class Interrupted(nm.MeshDaemon):
        def process(self, event):
            if event.payload == b"kb":
                raise KeyboardInterrupt
            if event.payload == b"exit":
                raise SystemExit(3)
            return [event.payload]

    h = rt.spawn_with_daemon(nm.Identity.generate(), Interrupted())
    for p, cause in ((b"kb", KeyboardInterrupt), (b"exit", SystemExit)):
        with pytest.raises(nm.ProcessFailedError) as ei:
            rt.deliver(h.origin_hash, ev(p))
        assert type(ei.value.__cause__) is cause
    assert [x.payload for x in rt.deliver(h.origin_hash, ev(b"ok"))] == [b"ok"]


def test_reference_counts_balance_on_every_path(rt):
    d = Paths()
    h = rt.spawn_with_daemon(nm.Identity.generate(), d)
    o = h.origin_hash
    origin = int(str(o))  # an int object of our own
    events = {p: ev(p) for p in (b"fixed", b"none", b"empty", b"two", b"tuple", b"raise", b"badtype")}
    slow_event = ev(bytearray(b"ba"))  # not decoded: the binding's path

    def round_():
        for _ in range(200):
            for p, e in events.items():
                try:
                    rt.deliver(origin, e)
                except nm.ProcessFailedError:
                    assert p in (b"raise", b"badtype")
            rt.deliver(origin, slow_event)
            try:
                rt.deliver(-1, events[b"fixed"])
            except nm.InvalidArgumentError:
                pass

    watched = [FIXED, origin, d, *events.values(), slow_event]
    round_()  # warm: pools, caches
    d.error.__traceback__ = None  # the raises' traceback holds frames (and d)
    gc.collect()
    before = [sys.getrefcount(x) for x in watched]
    round_()
    d.error.__traceback__ = None
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before
    # the outputs hold the very payload object and origin object
    (out,) = rt.deliver(origin, events[b"fixed"])
    assert out.payload is FIXED and out.origin_hash is origin
    del out
    gc.collect()
    assert [sys.getrefcount(x) for x in watched] == before


def test_builtin_frees_what_it_holds_when_released():
    # (that the builtin outlives its runtime without a cycle:
    # test_pyobj.test_runtime_is_released_without_close, which runs on it)
    class Helpers:  # stands in for the objects the builtin holds
        pass

    # a builtin made for an object is released with it (capsule destructor)
    assert _pyobj.native_available()
    objs = {}
    holder = Helpers()
    holder.slow = holder.failed = holder.commit_other = holder.commit_failed = print
    before = sys.getrefcount(objs), sys.getrefcount(holder)
    fn = _pyobj.native_deliver(0, objs, holder)
    assert fn is not None
    assert (sys.getrefcount(objs), sys.getrefcount(holder)) == (before[0] + 1, before[1] + 1)
    del fn
    assert (sys.getrefcount(objs), sys.getrefcount(holder)) == before


def test_threads_and_nested_delivers(rt):
    """Threads share the builtin; process may deliver to another daemon."""
    inner = rt.spawn("echo", nm.Identity.generate())

    class Relay(nm.MeshDaemon):
        def process(self, event):
            (x,) = rt.deliver(inner.origin_hash, ev(event.payload + b"!"))
            return [x.payload]

    relay = rt.spawn_with_daemon(nm.Identity.generate(), Relay())
    errors, got = [], []

    def run(k):
        try:
            for i in range(300):
                (x,) = rt.deliver(relay.origin_hash, ev(b"%d" % k, seq=i + 1))
                got.append(x.sequence)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in ts)
    assert sorted(got) == list(range(1, 1201))  # relay's outputs chained once each, no gap
    assert inner.stats().events_processed == 1200


def test_probe_failures_turn_the_builtin_off(py):
    for patch in ("_pyobj.api = lambda: None",
                  "_pyobj._check_native = lambda f: False"):
        assert "paths True False b'hi' 1" in echo_after(py, patch), patch


def test_probe_checks_outputs_built_by_the_library():
    assert _pyobj.native_available()
    from net_mesh import _ffi
    import ctypes

    native_event = _pyobj._returns_object(
        _ffi.raw_function("net_mesh_pyobj_native_event", ctypes.c_uint64, hold_gil=True))
    assert _pyobj._check_native(native_event)

    def lying(origin, meta, payload):  # an output with one value off
        e = native_event(origin, meta, payload)
        return e._replace(horizon=e.horizon ^ 1)

    assert not _pyobj._check_native(lying)
    # 0 (not made) for a NULL argument
    assert native_event(ctypes.c_uint64(0), (ctypes.c_uint64 * 4)(), ctypes.c_uint64(id(b"x"))) is None


def test_random_arguments_raise_and_never_crash(rt):
    """Arguments of every shape through the builtin: Python exceptions (or
    outputs), never a crash, and the daemon stays usable."""
    import random

    h = rt.spawn("echo", nm.Identity.generate())
    o = h.origin_hash
    rnd = random.Random(6)

    class IntSub(int):
        pass

    class EvSub(nm.CausalEvent):
        pass

    values = [0, 1, -1, 2**63, 2**64 - 1, 2**64, 2**200, -(2**70), True, IntSub(3), 1.5, None, "s", b"b",
              bytearray(b"ba"), memoryview(b"mv"), (), [], {}, object(), o, IntSub(o)]

    def field():
        return rnd.choice(values)

    def event():
        k = rnd.randrange(6)
        if k == 0:
            return nm.CausalEvent(field(), field(), field(), field(), field(), field())
        if k == 1:
            return tuple.__new__(nm.CausalEvent, tuple(field() for _ in range(rnd.randrange(9))))
        if k == 2:
            return EvSub(1, 1, b"x")
        if k == 3:
            return (1, 1, b"x", 0, 0, 0)
        return nm.CausalEvent(rnd.randrange(2**64), rnd.randrange(2**64), bytes(rnd.randrange(100)))

    ok = 0
    for _ in range(3000):
        args = [rnd.choice([o, o, field()]), event()][: rnd.choice([2, 2, 2, 1, 0])]
        if rnd.random() < 0.05:
            args.append(field())
        try:
            res = rt.deliver(*args)
        except (TypeError, nm.NetMeshError):
            continue
        assert isinstance(res, list)
        ok += 1
    assert ok > 500
    assert [x.payload for x in rt.deliver(o, ev(b"still here"))] == [b"still here"]


def test_malformed_causal_events_are_type_errors_on_every_path(rt_both):
    r = rt_both
    h = r.spawn("echo", nm.Identity.generate())
    for n in (0, 1, 2, 3, 5, 7, 9):
        bad = tuple.__new__(nm.CausalEvent, tuple(range(1, n + 1)))
        with pytest.raises(TypeError, match="6 fields"):
            r.deliver(h.origin_hash, bad)
        with pytest.raises(TypeError, match="6 fields"):
            r.deliver_many(h.origin_hash, [ev(b"a"), bad])
    assert h.stats().events_processed == 0
    assert [x.payload for x in r.deliver(h.origin_hash, ev(b"ok"))] == [b"ok"]
