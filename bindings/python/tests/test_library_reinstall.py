"""Re-installing libnetmesh.so (`make python`) must not kill a process that has
the old copy loaded.

A copy made in place (`cp` opens the existing file with O_TRUNC) drops the
page cache of the inode every running process maps: their next fault on the
library's code -- Go's own signal trampoline included -- raises SIGBUS, and
the process dies with exit 135 and nothing printed. This is the SIGBUS seen in
the migration stress (one process delivering to a migrating daemon while the
library next to the package was rebuilt). The install step must put a new
file in place (copy aside, then rename), so mapped copies stay intact.
"""

import os
import subprocess
import sys
import textwrap
import time

from conftest import PKG_ROOT

REPO = os.path.dirname(os.path.dirname(PKG_ROOT))
BUILT = os.path.join(REPO, "build", "libnetmesh.so")

CHILD = textwrap.dedent("""
    import struct, sys, time
    import net_mesh as nm

    class Counter(nm.MeshDaemon):
        name = "counter"
        def __init__(self): self.n = 0
        def process(self, event):
            self.n += 1
            return [struct.pack("<Q", self.n)]

    with nm.Node(psk=b"\\x42" * 32) as node, nm.DaemonRuntime(node) as rt:
        rt.register_factory("counter", Counter)
        rt.start()
        h = rt.spawn("counter", nm.Identity.generate())
        ev = nm.CausalEvent(origin_hash=1, sequence=1, payload=b"x")
        print("ready", flush=True)
        n = 0
        go = sys.stdin.readline  # the parent says when the install is done
        import threading
        done = threading.Event()
        threading.Thread(target=lambda: (go(), done.set()), daemon=True).start()
        while not done.is_set() or n < 1000:
            n = struct.unpack("<Q", rt.deliver(h.origin_hash, ev)[0].payload)[0]
        print("alive", n, flush=True)
""")


def test_make_python_replaces_the_library_without_touching_a_loaded_copy(tmp_path):
    assert os.path.exists(BUILT), "run make lib first"
    dest = tmp_path / "net_mesh" / "libnetmesh.so"
    dest.parent.mkdir()
    subprocess.run(["cp", BUILT, str(dest)], check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["NET_MESH_LIBRARY"] = str(dest)
    child = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", CHILD], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        inode = dest.stat().st_ino
        # the Makefile's own install rule, aimed at the copy the child runs
        # (-o: never rebuild build/libnetmesh.so; -B: install even if current)
        for _ in range(3):
            subprocess.run(["make", "-s", "-C", REPO, "-B", "-o", "build/libnetmesh.so",
                            f"PY_LIB={dest}", str(dest)], check=True, capture_output=True)
            time.sleep(0.2)
        try:
            child.stdin.write("go\n")
            child.stdin.flush()
        except BrokenPipeError:  # already dead: the returncode says how
            pass
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, f"child died (rc {child.returncode}): {err[-2000:]}"
    assert out.startswith("alive")
    # a new file took the name; the loaded one was never written
    assert dest.stat().st_ino != inode
    with open(BUILT, "rb") as a, open(dest, "rb") as b:
        assert a.read() == b.read()
