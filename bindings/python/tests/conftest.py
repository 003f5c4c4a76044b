import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)

# Children must never be forked from a process running the Go runtime.
try:
    multiprocessing.set_start_method("spawn")
except RuntimeError:
    pass


def run_python(code: str, timeout: float = 60.0, env: "dict[str, str] | None" = None) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with this package importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = PKG_ROOT + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=e)


def echo_after(py, patch):
    """In a fresh interpreter (the probes run once per process): run patch
    (Python source, with net_mesh as nm and its _pyobj imported), then
    deliver one event to an echo daemon; the line printed is "paths
    <rt.pyobj> <rt.native> <payload> <sequence>"."""
    patch = textwrap.indent(textwrap.dedent(patch), " " * 8)
    r = py(f"""
        import net_mesh as nm
        from net_mesh import _pyobj
{patch}
        with nm.Node(psk=b"\\x42" * 32) as node, nm.DaemonRuntime(node) as rt:
            class Echo(nm.MeshDaemon):
                def process(self, event):
                    return [event.payload]
            rt.start()
            h = rt.spawn_with_daemon(nm.Identity.generate(), Echo())
            (o,) = rt.deliver(h.origin_hash, nm.CausalEvent(1, 1, b"hi"))
            print("paths", rt.pyobj, rt.native, o.payload, o.sequence)
    """)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def py():
    return run_python


sys.path.insert(0, HERE)

PSK = b"\x42" * 32


@pytest.fixture
def node():
    import net_mesh as nm

    n = nm.Node(psk=PSK)
    yield n
    n.close()


def make_rt(node, pyobj=True, native=None):
    """A started runtime with echo, counter, silent and faulty kinds;
    pyobj=False: deliver without the fast path (NET_MESH_PYOBJ=0); native
    (default: pyobj): deliver is the library's builtin, else the binding's
    Python deliver with the library reading the objects (NET_MESH_PYOBJ=read)."""
    import net_mesh as nm
    from daemons import Counter, Echo, Faulty, Silent

    if native is None:
        native = pyobj
    old = os.environ.get("NET_MESH_PYOBJ")
    os.environ["NET_MESH_PYOBJ"] = ("1" if native else "read") if pyobj else "0"
    try:
        r = nm.DaemonRuntime(node)
    finally:
        if old is None:
            del os.environ["NET_MESH_PYOBJ"]
        else:
            os.environ["NET_MESH_PYOBJ"] = old
    assert r.pyobj == pyobj
    assert r.native == native
    for cls in (Echo, Counter, Silent, Faulty):
        r.register_factory(cls.name, cls)
    r.start()
    return r


@pytest.fixture
def rt(node):
    """A started runtime with echo, counter, silent and faulty kinds."""
    r = make_rt(node)
    yield r
    r.close()


@pytest.fixture(params=["native", "pyobj", "blocks"])
def rt_both(request, node):
    """rt three times: deliver as the library's builtin; the binding's Python
    deliver with the library reading the objects; and without either (the
    event and outputs packed in Python)."""
    r = make_rt(node, request.param != "blocks", request.param == "native")
    yield r
    r.close()


def ev(payload=b"x", seq=1, origin=1):
    import net_mesh as nm

    return nm.CausalEvent(origin_hash=origin, sequence=seq, payload=payload)


class Pair:
    """Nodes A and B with a session, a started runtime on each registering
    kinds (daemon classes), and an output sink on each recording (origin,
    count) pairs."""

    def __init__(self, kinds, start_b=True):
        import net_mesh as nm

        self.a = nm.Node(psk=PSK)
        self.b = nm.Node(psk=PSK)
        self.b.accept(self.a.node_id)
        self.a.connect(self.b.addr, self.b.public_key, self.b.node_id, timeout=5)
        self.ra = nm.DaemonRuntime(self.a)
        self.rb = nm.DaemonRuntime(self.b)
        self.sunk = {"a": [], "b": []}
        self.sink_threads = set()
        for side, r in (("a", self.ra), ("b", self.rb)):
            for cls in kinds:
                r.register_factory(cls.name, cls)
            r.set_output_sink(self._sink(side))
        self.ra.start()
        if start_b:
            self.rb.start()

    def _sink(self, side):
        from daemons import U64

        def sink(origin, outs):
            self.sink_threads.add(threading.get_ident())
            self.sunk[side].extend((origin, U64.unpack(o.payload)[0]) for o in outs)
        return sink

    def close(self):
        for x in (self.ra, self.rb, self.a, self.b):
            x.close()


def wait_until(cond, timeout=10.0):
    """Poll cond every 10 ms until it holds or timeout (s) passed: its last value."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def slow_restore_pair():
    """A Pair whose one kind, "slow", is a Counter taking 0.3 s to restore (events
    delivered meanwhile queue up on the source): (pair, an Event set when a
    restore ended)."""
    import time

    from daemons import Counter

    restored = threading.Event()

    class Slow(Counter):
        name = "slow"

        def restore(self, state):
            super().restore(state)
            time.sleep(0.3)
            restored.set()

    p = Pair(kinds=(Slow,))
    yield p, restored
    p.close()
