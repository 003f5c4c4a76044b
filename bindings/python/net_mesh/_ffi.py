"""Finding, loading and describing ``libnetmesh.so`` (ctypes, nothing compiled).

The library is looked up, in order, at: the path given to :func:`load_library`,
the ``NET_MESH_LIBRARY`` environment variable, ``libnetmesh.so`` next to this
package (where ``make python`` copies it), and the system linker path.

It is loaded with :class:`ctypes.CDLL`, never ``PyDLL``: every call releases
the GIL, so a Go goroutine that calls back into Python can take it. A library
whose major version differs from :data:`SUPPORTED_MAJOR` is refused.

Fork hazard: the Go runtime does not survive ``fork()``. A child forked after
the library was loaded would hang on its first call, so every entry point
checks :func:`check_usable` and raises :class:`~net_mesh.NetMeshError` (kind
``"forked"``) instead. Use ``multiprocessing`` with the ``"spawn"`` start method.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_char_p,
    c_int,
    c_size_t,
    c_uint8,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Optional

#: The major version of the C ABI this package is written against.
SUPPORTED_MAJOR = 0
LIBRARY_ENV = "NET_MESH_LIBRARY"
LIBRARY_NAME = "libnetmesh.so"


class LibraryError(ImportError):
    """The library cannot be found, loaded or has an unsupported version."""


# --- C types --------------------------------------------------------------


class Bytes(ctypes.Structure):
    """``net_mesh_bytes``: library-owned bytes, freed with net_mesh_bytes_free."""

    _fields_ = [("data", POINTER(c_uint8)), ("len", c_size_t)]


class LogField(ctypes.Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


FINALIZE_FN = CFUNCTYPE(None, c_void_p)
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p, POINTER(LogField), c_size_t)

_u8p = POINTER(c_uint8)
_vpp = POINTER(c_void_p)

# name -> (restype, argtypes). Only what include/net_mesh.h declares; symbols
# missing from an older library stay unbound and raise a clear error if used.
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "net_mesh_version": (c_char_p, [POINTER(c_int), POINTER(c_int), POINTER(c_int)]),
    "net_mesh_status_kind": (c_char_p, [c_int]),
    "net_mesh_last_error": (c_char_p, []),
    "net_mesh_last_error_code": (c_int, []),
    "net_mesh_last_error_detail": (c_char_p, []),
    "net_mesh_last_error_moved_to": (c_int, [POINTER(c_uint64)]),
    "net_mesh_log_set": (c_int, [c_int, LOG_FN, c_void_p, FINALIZE_FN]),
    "net_mesh_bytes_free": (None, [POINTER(Bytes)]),
    "net_mesh_identity_generate": (c_int, [_vpp]),
    "net_mesh_identity_from_seed": (c_int, [c_char_p, c_size_t, _vpp]),
    "net_mesh_identity_from_entity_id": (c_int, [c_char_p, _vpp]),
    "net_mesh_identity_entity_id": (c_int, [c_void_p, c_char_p]),
    "net_mesh_identity_seed": (c_int, [c_void_p, c_char_p]),
    "net_mesh_identity_origin_hash": (c_int, [c_void_p, POINTER(c_uint64)]),
    "net_mesh_identity_node_id": (c_int, [c_void_p, POINTER(c_uint64)]),
    "net_mesh_identity_free": (None, [c_void_p]),
}


def extend_signatures(table: dict[str, tuple[Any, list[Any]]]) -> None:
    """Add signatures declared by other modules (runtime, node, migration)."""
    _SIGNATURES.update(table)
    if _lib is not None:
        _bind(_lib, table)


class _Missing:
    """Stands in for a symbol the loaded library does not export."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Any:
        raise LibraryError(
            f"net_mesh: the loaded library ({_path}) does not export {self.name}; "
            "rebuild it with `make lib`"
        )


def _bind(lib: ctypes.CDLL, table: dict[str, tuple[Any, list[Any]]]) -> None:
    for name, (restype, argtypes) in table.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            setattr(lib, name, _Missing(name))
            continue
        fn.restype = restype
        fn.argtypes = argtypes


# --- loading --------------------------------------------------------------

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_path: Optional[str] = None
_loaded_pid: Optional[int] = None
#: Set in a child forked after the library was loaded; see check_usable.
forked = False


def _after_fork_in_child() -> None:
    global forked
    if _lib is not None:
        forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def _candidates(explicit: Optional[str]) -> list[str]:
    if explicit is not None:
        return [os.fspath(explicit)]
    env = os.environ.get(LIBRARY_ENV)
    if env:
        return [env]
    out = [str(Path(__file__).resolve().parent / LIBRARY_NAME)]
    found = ctypes.util.find_library("netmesh")
    if found:
        out.append(found)
    return out


def check_version(major: int, minor: int, patch: int, path: str) -> None:
    """Raise LibraryError unless the library's major matches SUPPORTED_MAJOR."""
    if major != SUPPORTED_MAJOR:
        raise LibraryError(
            f"net_mesh: {path} is libnetmesh {major}.{minor}.{patch}, but this "
            f"package supports major version {SUPPORTED_MAJOR} only; install the "
            "matching library or package"
        )


def load_library(path: "Optional[str | os.PathLike[str]]" = None) -> ctypes.CDLL:
    """Load the library (once per process) and return it.

    ``path`` overrides the search; it may only be given before the first load
    (a second, different path raises LibraryError: one Go runtime per process).
    """
    global _lib, _path, _loaded_pid
    with _lock:
        if _lib is not None:
            if path is not None and os.path.realpath(os.fspath(path)) != os.path.realpath(str(_path)):
                raise LibraryError(
                    f"net_mesh: library already loaded from {_path}; cannot load {os.fspath(path)} too"
                )
            return _lib
        tried: list[str] = []
        lib = None
        chosen = ""
        for cand in _candidates(None if path is None else os.fspath(path)):
            if os.sep in cand and not os.path.exists(cand):
                tried.append(f"{cand} (missing)")
                continue
            try:
                lib = ctypes.CDLL(cand)  # CDLL: releases the GIL around calls
                chosen = cand
                break
            except OSError as e:
                tried.append(f"{cand} ({e})")
        if lib is None:
            raise LibraryError(
                "net_mesh: cannot find libnetmesh.so; run `make python` (copies it next to "
                f"the package), set {LIBRARY_ENV}, or call net_mesh.load_library(path). "
                "Tried: " + "; ".join(tried)
            )
        try:
            ver = lib.net_mesh_version
        except AttributeError:
            raise LibraryError(f"net_mesh: {chosen} is not libnetmesh (no net_mesh_version)") from None
        ver.restype = c_char_p
        ver.argtypes = [POINTER(c_int), POINTER(c_int), POINTER(c_int)]
        ma, mi, pa = c_int(), c_int(), c_int()
        ver(ctypes.byref(ma), ctypes.byref(mi), ctypes.byref(pa))
        check_version(ma.value, mi.value, pa.value, chosen)
        _bind(lib, _SIGNATURES)
        _lib, _path, _loaded_pid = lib, chosen, os.getpid()
        return lib


def lib() -> ctypes.CDLL:
    """The loaded library (loading it on first use); refuses a forked child."""
    if forked:
        check_usable()
    if _lib is None:
        return load_library()
    return _lib


def raw_function(name: str, restype: Any = c_int, *, hold_gil: bool = False) -> Any:
    """A separate function object for a hot path: no argtypes (callers pass
    prebuilt ctypes instances, which ctypes forwards without any from_param
    call) and, with hold_gil, called WITHOUT releasing the GIL (PyDLL). Only
    for functions that never block and never call back into Python: the
    pure-C writers net_mesh_outputs_push / net_mesh_state_write."""
    lib()
    dll = ctypes.PyDLL(_path) if hold_gil else ctypes.CDLL(_path)  # same dlopen handle
    fn = getattr(dll, name)
    fn.restype = restype
    return fn


def library_path() -> Optional[str]:
    """Where the library was loaded from, or None before the first load."""
    return _path


def check_usable() -> None:
    """Raise if this process is a child forked after the library was loaded."""
    if forked or (_loaded_pid is not None and _loaded_pid != os.getpid()):
        from ._errors import NetMeshError

        raise NetMeshError(
            "net_mesh: this process was forked after libnetmesh was loaded; the Go "
            "runtime does not survive fork(), so the library cannot be used here. "
            "Use multiprocessing with the 'spawn' start method (or subprocess).",
            kind="forked",
        )


def version() -> str:
    """The loaded library's version string, "MAJOR.MINOR.PATCH"."""
    v = lib().net_mesh_version(None, None, None)
    return v.decode()


def take_bytes(b: Bytes) -> bytes:
    """Copy library-owned bytes into Python and free them."""
    try:
        if b.len == 0 or not b.data:
            return b""
        return ctypes.string_at(b.data, b.len)
    finally:
        lib().net_mesh_bytes_free(ctypes.byref(b))
