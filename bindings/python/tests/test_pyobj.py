"""deliver's fast path: the library reads the CausalEvent and the outputs
list itself (net_mesh_pyobj_*). It must give exactly what the Python path
gives, fall back for everything it does not decode (same results, same
errors), be probed before use, and be switchable off."""

import ctypes
import gc
import inspect
import threading
import weakref

import pytest

import net_mesh as nm
from conftest import echo_after, ev, make_rt
from daemons import U64
from net_mesh import _ffi, _pyobj, _runtime


class Varied(nm.MeshDaemon):
    """Outputs chosen by the payload: none, one, several, other types."""

    name = "varied"

    def __init__(self):
        self.n = 0

    def process(self, event):
        self.n += 1
        p = event.payload
        if p == b"none":
            return None
        if p == b"empty":
            return []
        if p == b"two":
            return [U64.pack(self.n), b"second"]
        if p == b"tuple":
            return (U64.pack(self.n),)
        if p == b"gen":
            return (x for x in (b"g1", U64.pack(self.n)))
        if p == b"bytearray":
            return [bytearray(U64.pack(self.n))]
        if p == b"str":
            return ["text"]
        if p == b"empty-bytes":
            return [b""]
        return [U64.pack(self.n) + p]


class IntSub(int):
    pass


class BytesSub(bytes):
    pass


def _pair(node):
    """The same daemon (one identity) in a fast-path and a Python-path
    runtime: (fast, slow, origin, [their handles])."""
    fast, slow = make_rt(node, True), make_rt(node, False)
    ident = nm.Identity.generate()
    hs = []
    for r in (fast, slow):
        r.register_factory("varied", Varied)
        hs.append(r.spawn("varied", ident))
    return fast, slow, ident.origin_hash, hs


def _stats(h):
    s = h.stats()
    return s.events_processed, s.events_emitted, s.errors


def _same(fast, slow, origin, event):
    """Deliver event to both; the outputs (all but received_at) and the
    error, if any, must be the same."""
    got = []
    for r in (fast, slow):
        try:
            got.append([(o.origin_hash, o.sequence, o.parent_hash, o.horizon, o.payload, type(o.payload))
                        for o in r.deliver(origin, event)])
        except Exception as e:  # compared below
            got.append((type(e), type(e.__cause__)))
    assert got[0] == got[1], event
    return got[0]


def test_probe_passes_and_runtimes_use_the_fast_path(rt):
    assert _pyobj.available()
    assert rt.pyobj
    assert rt.native
    assert rt.deliver.__name__ == "deliver"
    assert inspect.getdoc(rt.deliver) == inspect.getdoc(nm.DaemonRuntime.deliver)


def test_switch_forces_the_python_path(node, monkeypatch):
    monkeypatch.setenv(_pyobj.ENV, "0")
    with nm.DaemonRuntime(node) as r:
        assert not r.pyobj
        assert r.deliver == r._deliver_blocks


def test_fast_path_equals_python_path(node):
    fast, slow, o, hs = _pair(node)
    try:
        seq = 0
        for origin in (1, 7, 2**64 - 1, 7, 0, 2**30, 2**60 + 5):
            for payload in (b"x", b"none", b"empty", b"two", b"empty-bytes", b"", bytes(range(200))):
                seq += 1
                _same(fast, slow, o, nm.CausalEvent(origin, seq, payload, seq * 3, 2**63 + seq, 10**18 + seq))
        # per origin: 7 events, 6 outputs (none and empty give none, two gives 2)
        assert _stats(hs[0]) == _stats(hs[1]) == (seq, 6 * seq // 7, 0)
    finally:
        fast.close()
        slow.close()


def test_every_fallback_gives_the_python_paths_result(node, monkeypatch):
    fast, slow, o, hs = _pair(node)
    blocks, others = [], []
    real_blocks, real_other = fast._deliver_blocks, _runtime._commit_other

    def counting_blocks(*a):
        blocks.append(1)
        return real_blocks(*a)

    def counting_other(commit_block, *a):
        if commit_block is fast._commit_block:  # the fast runtime's fallback
            others.append(1)
        return real_other(commit_block, *a)

    monkeypatch.setattr(fast, "_deliver_blocks", counting_blocks)
    monkeypatch.setattr(_runtime, "_commit_other", counting_other)
    try:
        base = nm.CausalEvent(5, 1, b"x", 2, 3, 4)
        events = []
        for field in ("origin_hash", "sequence", "parent_hash", "horizon", "received_at"):
            for v in (True, IntSub(9), -1, 2**64, 2**100):
                events.append(base._replace(**{field: v}))
        for p in (bytearray(b"ba"), memoryview(b"mv"), BytesSub(b"sub"), "str", None, 5):
            events.append(base._replace(payload=p))
        for e in events:
            before = len(blocks)
            _same(fast, slow, o, e)
            assert len(blocks) == before + 1, e  # the library refused it; Python took it
        # a plain tuple is not a CausalEvent: TypeError on both paths
        with pytest.raises(TypeError):
            fast.deliver(o, (1, 1, b"x", 0, 0, 0))
        assert not others
        for payload in (b"two", b"tuple", b"gen", b"bytearray", b"str"):
            before = len(others)
            res = _same(fast, slow, o, ev(payload))
            assert len(others) == before + 1, payload
            if payload == b"str":
                assert res == (nm.ProcessFailedError, TypeError)
        # nothing stays locked, and both daemons stayed in step
        _same(fast, slow, o, ev(b"x"))
        assert _stats(hs[0]) == _stats(hs[1])
    finally:
        fast.close()
        slow.close()


def test_threads_deliver_through_both_paths_at_once(rt):
    rt.register_factory("varied", Varied)
    hs = [rt.spawn("varied", nm.Identity.generate()) for _ in range(2)]
    per, nthreads = 300, 4
    payloads = [b"x", b"none", b"two", b"bytearray", b"x", b"gen"]
    got = [[] for _ in range(nthreads)]
    errors = []

    def run(k):
        try:
            o = hs[k % 2].origin_hash
            for i in range(per):
                p = payloads[(i + k) % len(payloads)]
                e = ev(p, seq=i + 1, origin=k) if i % 3 else ev(p, seq=IntSub(i + 1), origin=k)
                for out in rt.deliver(o, e):
                    got[k].append((o, out.sequence))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts)
    assert not errors
    for h in hs:
        seqs = sorted(s for g in got for (o, s) in g if o == h.origin_hash)
        st = h.stats()
        # every output chained exactly once, without a gap
        assert seqs == list(range(1, st.events_emitted + 1))
        assert st.events_processed == per * nthreads // 2 and st.errors == 0


def test_probe_refuses_a_wrong_layout(py):
    # the configuration is once per process: a fresh interpreter
    out = echo_after(py, """
        real = _pyobj.config
        def wrong():
            c = real()
            c.long_layout = 3 - c.long_layout  # the other int layout
            return c
        _pyobj.config = wrong
    """)
    assert "paths False False b'hi' 1" in out


def test_probe_is_off_without_exports_or_cpython(monkeypatch, node):
    monkeypatch.setattr(_pyobj, "config", lambda: None)  # e.g. PyPy, a free-threaded build
    monkeypatch.setattr(_pyobj, "_state", None)
    assert not _pyobj.available()
    monkeypatch.undo()
    real = _ffi.raw_function

    def older_library(name, *a, **kw):
        if name.startswith("net_mesh_pyobj_"):
            raise AttributeError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(_ffi, "raw_function", older_library)
    monkeypatch.setattr(_pyobj, "_state", None)
    assert not _pyobj.available()
    with nm.DaemonRuntime(node) as r:
        assert not r.pyobj and r.deliver == r._deliver_blocks
    monkeypatch.undo()
    assert _pyobj.available()


def test_configure_is_once_per_process(monkeypatch):
    monkeypatch.setattr(_pyobj, "_state", None)
    assert _pyobj.available()  # probed again: configuring with the same values is a no-op
    configure = _ffi.raw_function("net_mesh_pyobj_configure")
    c = _pyobj.config()
    assert configure(ctypes.byref(c)) == 0
    c.list_type = id(tuple)
    assert configure(ctypes.byref(c)) == -11  # NET_MESH_ERR_INVALID_ARGUMENT
    assert b"already configured" in ctypes.string_at(_ffi.lib().net_mesh_last_error())
    assert configure(None) == -11


def test_runtime_is_released_without_close(node):
    # the fast deliver holds its runtime weakly: no cycle, so dropping the
    # last reference frees it at once (no gc run needed)
    r = make_rt(node)
    d = r.deliver
    h = r.spawn("echo", nm.Identity.generate())
    assert [o.payload for o in d(h.origin_hash, ev(b"a"))] == [b"a"]
    ref = weakref.ref(r)
    gc.disable()
    try:
        del r, h
        assert ref() is None
    finally:
        gc.enable()
    with pytest.raises(nm.BadHandleError):
        d(1, ev())


def test_closed_runtime_and_bad_origin_keep_their_errors(rt):
    h = rt.spawn("echo", nm.Identity.generate())
    d = rt.deliver
    with pytest.raises(TypeError):
        d(True, ev())
    with pytest.raises(TypeError):
        d("1", ev())
    with pytest.raises(nm.InvalidArgumentError):
        d(-1, ev())
    with pytest.raises(nm.InvalidArgumentError):
        d(2**64, ev())
    with pytest.raises(TypeError):
        d(h.origin_hash, "not an event")
    assert [o.payload for o in d(h.origin_hash, ev(b"ok"))] == [b"ok"]
    rt.close()
    with pytest.raises(nm.BadHandleError, match="closed"):
        d(h.origin_hash, ev())


def test_forked_child_refuses_deliver(py):
    r = py("""
        import os
        import net_mesh as nm
        node = nm.Node(psk=b"\\x42" * 32)
        rt = nm.DaemonRuntime(node)
        class Echo(nm.MeshDaemon):
            def process(self, event):
                return [event.payload]
        rt.start()
        h = rt.spawn_with_daemon(nm.Identity.generate(), Echo())
        d = rt.deliver
        assert rt.pyobj and d(h.origin_hash, nm.CausalEvent(1, 1, b"x"))
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                d(h.origin_hash, nm.CausalEvent(1, 2, b"x"))
            except nm.NetMeshError as e:
                code = 0 if e.kind == "forked" else 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", d(h.origin_hash, nm.CausalEvent(1, 3, b"y"))[0].payload)
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "child 0" in r.stdout and "parent b'y'" in r.stdout
