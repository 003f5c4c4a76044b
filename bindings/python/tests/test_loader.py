import os
import shutil
import subprocess

import pytest

import net_mesh as nm
from net_mesh import _ffi


def test_loads_next_to_package_by_default(py):
    r = py("""
        import net_mesh as nm, os
        print(nm.version())
        print(nm.library_path())
    """, env={"NET_MESH_LIBRARY": ""})
    assert r.returncode == 0, r.stderr
    ver, path = r.stdout.split()
    assert ver.split(".")[0] == str(_ffi.SUPPORTED_MAJOR)
    assert os.path.dirname(path) == os.path.dirname(nm.__file__)


def test_explicit_path_and_env(py, tmp_path):
    lib = tmp_path / "copy.so"
    shutil.copy(nm.library_path(), lib)
    r = py(f"""
        import net_mesh as nm
        nm.load_library({str(lib)!r})
        print(nm.library_path())
        nm.Identity.generate()
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(lib)
    r = py("import net_mesh as nm; nm.Identity.generate(); print(nm.library_path())",
           env={"NET_MESH_LIBRARY": str(lib)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(lib)


def test_missing_library_is_a_clear_error(py, tmp_path):
    r = py("""
        import net_mesh as nm
        try:
            nm.Identity.generate()
        except nm.LibraryError as e:
            print("refused:", e)
    """, env={"NET_MESH_LIBRARY": str(tmp_path / "nope.so")})
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "cannot find libnetmesh.so" in r.stdout


def test_second_library_path_refused(tmp_path):
    nm.Identity.generate()  # loaded
    other = tmp_path / "other.so"
    shutil.copy(nm.library_path(), other)
    with pytest.raises(nm.LibraryError, match="already loaded"):
        nm.load_library(str(other))
    assert nm.load_library(nm.library_path()) is _ffi.lib()


def test_other_major_version_refused(py, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the fake library"
    src = tmp_path / "fake.c"
    src.write_text(
        "const char *net_mesh_version(int *a, int *b, int *c) {\n"
        "  if (a) *a = 7; if (b) *b = 3; if (c) *c = 1; return \"7.3.1\"; }\n"
    )
    so = tmp_path / "libfake.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    r = py(f"""
        import net_mesh as nm
        try:
            nm.load_library({str(so)!r})
        except nm.LibraryError as e:
            print("refused:", e)
    """)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout
    assert "7.3.1" in r.stdout and "major version 0" in r.stdout


def test_not_libnetmesh_refused(py, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc
    src = tmp_path / "x.c"
    src.write_text("int something_else(void) { return 1; }\n")
    so = tmp_path / "libx.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    r = py(f"""
        import net_mesh as nm
        try:
            nm.load_library({str(so)!r})
        except nm.LibraryError as e:
            print("refused:", e)
    """)
    assert "refused:" in r.stdout and "not libnetmesh" in r.stdout, r.stderr


def test_check_version_unit():
    _ffi.check_version(_ffi.SUPPORTED_MAJOR, 9, 9, "x")
    with pytest.raises(nm.LibraryError):
        _ffi.check_version(_ffi.SUPPORTED_MAJOR + 1, 0, 0, "x")


def test_forked_child_refuses_instead_of_hanging(py):
    r = py("""
        import os, sys
        import net_mesh as nm
        ident = nm.Identity.generate()          # the Go runtime is up
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                nm.Identity.generate()
            except nm.NetMeshError as e:
                code = 0 if e.kind == "forked" and "spawn" in str(e) else 4
            try:
                ident.seed
                code = 5
            except nm.NetMeshError as e:
                pass
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent ok", nm.Identity.generate().origin_hash != 0)
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "child 0" in r.stdout
    assert "parent ok True" in r.stdout
