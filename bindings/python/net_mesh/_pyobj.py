"""deliver's fast path: the library reads the CausalEvent and the outputs
list itself (CPython only).

``net_mesh_pyobj_deliver_begin`` / ``_commit`` (include/net_mesh.h, "Support
for the Python binding: CPython objects by address") take a delivery block
holding ``id(event)`` and, after ``process``, ``id(outputs)``, and read those
objects in place: exact type checks first (the types and the int layout of
this interpreter are handed over once, by :func:`available`), then the five
ints, the payload and the one output. Anything else (a bool or an int
subclass, a value out of range, a bytearray payload, two outputs, a tuple, a
generator...) is "not decodable": nothing changes and deliver does the same
work in Python, with the same results and errors as before.

Before any runtime uses it, :func:`available` configures the library and
decodes sample objects through it, comparing every field with Python's own
values; any difference, another interpreter (PyPy, a free-threaded build), an
older library, or ``NET_MESH_PYOBJ=0`` in the environment turns it off for
the process (per runtime for the variable, read when a runtime is made).

On top of that, deliver itself can be a builtin function made by the library
(``net_mesh_pyobj_native_deliver``): it decodes the arguments, begins the
lease with the GIL released, calls the daemon's ``process``, commits and
builds the output ``CausalEvent`` without running the binding's Python; it
calls the interpreter only through addresses from ``ctypes.pythonapi``
(:func:`api`), so nothing is compiled and libpython is never linked. Every
case it does not decode (and every error) goes to the binding's Python
deliver, so results and errors are the same. :func:`native_available`
probes it once per process (outputs built by the library compared with
Python's, reference counts checked); ``NET_MESH_PYOBJ=read`` keeps the fast
path without the builtin.
"""

from __future__ import annotations

import ctypes
import os
import sys
import sysconfig
import threading
from ctypes import c_uint32, c_uint64
from typing import Any, Optional

from . import _daemon, _ffi
from ._daemon import CausalEvent

#: Environment variable, read when a runtime is made: "0" makes it deliver
#: without the fast path (Python packs the event and the outputs); "read"
#: keeps the library reading the objects but not its builtin deliver (the
#: binding's Python calls begin, process and commit).
ENV = "NET_MESH_PYOBJ"
READ = "read"

UNDECODABLE = 1  # NET_MESH_PYOBJ_UNDECODABLE
LONG_SIZE, LONG_TAG = 1, 2  # NET_MESH_PYLONG_SIZE / _TAG

# net_mesh_pydelivery: net_mesh_delivery (22 words) + event + outputs
BLOCK_SIZE = 192
W_EVENT, W_OUTPUTS = 22, 23


class Config(ctypes.Structure):
    """net_mesh_pyobj_config."""

    _fields_ = [(name, c_uint64) for name in (
        "size", "event_type", "int_type", "bytes_type", "list_type", "none", "type_offset",
        "size_offset", "tuple_items", "list_items", "bytes_data", "long_tag", "long_digits")] + [
        ("long_layout", c_uint32), ("digit_bits", c_uint32), ("digit_size", c_uint32),
        ("reserved_", c_uint32)]


def config() -> Optional[Config]:
    """This interpreter's layout, or None where the fast path cannot apply
    (not CPython, a free-threaded build, bytes data not found)."""
    if sys.implementation.name != "cpython" or _daemon.BYTES_OFFSET is None:
        return None
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None  # lists may change under a commit made without a GIL
    head = object.__basicsize__  # PyObject: ..., ob_type last
    c = Config()
    c.size = ctypes.sizeof(Config)
    c.event_type, c.int_type, c.bytes_type = id(CausalEvent), id(int), id(bytes)
    c.list_type, c.none = id(list), id(None)
    c.type_offset = head - 8
    c.size_offset = head  # ob_size follows the PyObject head
    c.tuple_items = tuple.__basicsize__
    c.list_items = head + 8  # PyListObject: head, ob_size, ob_item
    c.bytes_data = _daemon.BYTES_OFFSET
    c.long_tag = head  # ob_size (3.11) or lv_tag (3.12+)
    c.long_digits = int.__basicsize__
    c.long_layout = LONG_TAG if sys.version_info >= (3, 12) else LONG_SIZE
    c.digit_bits, c.digit_size = sys.int_info.bits_per_digit, sys.int_info.sizeof_digit
    return c


class _IntSub(int):
    pass


class _BytesSub(bytes):
    pass


class _ListSub(list):  # type: ignore[type-arg]
    pass


class _EventSub(CausalEvent):
    pass


_NULL = object()  # stands for address 0 among the samples


# ints across the digit boundaries of both layouts, small cached ones, the
# largest u64; and values that must be refused
_U64S = (0, 1, 2, 5, 255, 256, 2**15 - 1, 2**15, 2**30 - 1, 2**30, 2**31, 2**32 + 7, 2**45 + 3,
         2**60 - 1, 2**60 + 5, 2**63, 2**64 - 2**30, 2**64 - 1)
_PAYLOADS = (b"", b"x", bytes(range(64)), b"\x00" * 1000)


def _refused_events() -> "list[Any]":
    ok = CausalEvent(1, 2, b"p", 3, 4, 5)
    bad: "list[Any]" = [_NULL, None, 0, (1, 2, b"p", 3, 4, 5), _EventSub(*ok), ok[:5],
                        tuple.__new__(CausalEvent, (1, 2, b"p")),
                        ok._replace(payload=bytearray(b"p")), ok._replace(payload=memoryview(b"p")),
                        ok._replace(payload=_BytesSub(b"p")), ok._replace(payload="p"),
                        ok._replace(payload=None)]
    for field in ("origin_hash", "sequence", "parent_hash", "horizon", "received_at"):
        for v in (True, False, _IntSub(7), -1, -(2**40), 2**64, 2**90, 2**200, 1.0, None):
            bad.append(ok._replace(**{field: v}))
    return bad


def _refused_outputs() -> "list[Any]":
    return [[b"a", b"b"], (b"a",), (), [bytearray(b"a")], [memoryview(b"a")], ["a"], [None],
            [_BytesSub(b"a")], _ListSub([b"a"]), _ListSub(), b"a", 0, _NULL, iter([b"a"]), {b"a"}]


def _check(decode_event: Any, decode_outputs: Any) -> bool:
    """Decode sample objects through the library; True when every field is
    Python's own value and every refused object changed nothing."""
    buf = bytearray(BLOCK_SIZE)
    w = memoryview(buf).cast("Q")
    w[0] = BLOCK_SIZE
    arg = ctypes.byref((ctypes.c_char * BLOCK_SIZE).from_buffer(buf))
    off = _daemon.BYTES_OFFSET
    assert off is not None
    me = threading.get_ident()
    n = len(_U64S)
    for i, v in enumerate(_U64S):
        p = _PAYLOADS[i % len(_PAYLOADS)]
        ev = CausalEvent(v, _U64S[(i + 3) % n], p, _U64S[(i + 7) % n], _U64S[(i + 11) % n],
                         _U64S[(i + 13) % n])
        w[W_EVENT] = id(ev)
        if decode_event(arg) != 0:
            return False
        # net_mesh_event: origin_hash, horizon, sequence, parent_hash, payload, len, received_at
        got = tuple(w[3:11])
        want = (ev.origin_hash, ev.horizon, ev.sequence, ev.parent_hash, id(p) + off if p else 0,
                len(p), ev.received_at, me)
        if got != want:
            return False
    for bad in _refused_events():
        w[W_EVENT] = 0 if bad is _NULL else id(bad)
        before = bytes(buf)
        if decode_event(arg) != UNDECODABLE or bytes(buf) != before:
            return False
    for outs, want_n in (([b"abc"], 1), ([b""], 1), ([bytes(range(64))], 1), ([], 0), (None, 0)):
        w[W_OUTPUTS] = id(outs)
        if decode_outputs(arg) != 0:
            return False
        o = outs[0] if want_n else b""
        if tuple(w[13:16]) != (want_n, id(o) + off if o else 0, len(o)):
            return False
    for bad in _refused_outputs():
        w[W_OUTPUTS] = 0 if bad is _NULL else id(bad)
        before = bytes(buf)
        if decode_outputs(arg) != UNDECODABLE or bytes(buf) != before:
            return False
    return True


_lock = threading.Lock()
_state: Optional[bool] = None


def _probe() -> bool:
    c = config()
    if c is None:
        return False
    try:
        configure = _ffi.raw_function("net_mesh_pyobj_configure")
        decode_event = _ffi.raw_function("net_mesh_pyobj_decode_event")
        decode_outputs = _ffi.raw_function("net_mesh_pyobj_decode_outputs", hold_gil=True)
        _ffi.raw_function("net_mesh_pyobj_deliver_begin")
        _ffi.raw_function("net_mesh_pyobj_deliver_commit")
    except AttributeError:  # an older library
        return False
    if configure(ctypes.byref(c)) != 0:
        return False
    try:
        return _check(decode_event, decode_outputs)
    except Exception:
        return False


def available() -> bool:
    """Whether new runtimes deliver through the fast path: probed once per
    process (configures the library on first use), and not switched off by
    NET_MESH_PYOBJ=0."""
    global _state
    if os.environ.get(ENV, "") == "0":
        return False
    if _state is None:
        with _lock:
            if _state is None:
                _state = _probe()
    return _state


# ---- deliver as a builtin made by the library (net_mesh_pyobj_native_deliver)

class Api(ctypes.Structure):
    """net_mesh_pyapi: addresses of CPython functions."""

    _fields_ = [(name, c_uint64) for name in (
        "size", "save_thread", "restore_thread", "vectorcall_method", "get_item", "long_from_u64",
        "list_new", "event_alloc", "incref", "decref", "err_fetch", "err_normalize", "set_traceback",
        "capsule_new", "capsule_get_pointer", "cfunction_new")]


_API_NAMES = {
    "save_thread": "PyEval_SaveThread", "restore_thread": "PyEval_RestoreThread",
    "vectorcall_method": "PyObject_VectorcallMethod", "get_item": "PyObject_GetItem",
    "long_from_u64": "PyLong_FromUnsignedLongLong", "list_new": "PyList_New", "incref": "Py_IncRef",
    "decref": "Py_DecRef", "err_fetch": "PyErr_Fetch", "err_normalize": "PyErr_NormalizeException",
    "set_traceback": "PyException_SetTraceback", "capsule_new": "PyCapsule_New",
    "capsule_get_pointer": "PyCapsule_GetPointer", "cfunction_new": "PyCFunction_NewEx",
}
_PY_TP_ALLOC = 47  # typeslots.h


def api() -> Optional[Api]:
    """This interpreter's functions for the builtin deliver, or None."""
    papi = ctypes.pythonapi
    a = Api()
    a.size = ctypes.sizeof(Api)
    try:
        for field, name in _API_NAMES.items():
            setattr(a, field, ctypes.cast(getattr(papi, name), ctypes.c_void_p).value or 0)
        get_slot = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_int)(
            ("PyType_GetSlot", papi))
        a.event_alloc = get_slot(CausalEvent, _PY_TP_ALLOC) or 0
    except (AttributeError, OSError, SystemError):
        return None
    return a


def _check_native(native_event: Any) -> bool:
    """Outputs built by the library equal Python's own, hold references right."""
    n = len(_U64S)
    meta = (c_uint64 * 4)()
    for i, v in enumerate(_U64S):
        p = _PAYLOADS[i % len(_PAYLOADS)] + bytes([i, 255])  # a new object (never a cached one)
        m = (_U64S[(i + 3) % n], _U64S[(i + 7) % n], _U64S[(i + 11) % n], _U64S[(i + 13) % n])
        meta[:] = m
        before = sys.getrefcount(p)
        ev = native_event(c_uint64(id(v)), meta, c_uint64(id(p)))
        if ev is None or sys.getrefcount(p) != before + 1:
            return False
        want = CausalEvent(v, m[0], p, m[1], m[2], m[3])
        if ev.__class__ is not CausalEvent or ev != want or ev.payload is not p or ev.origin_hash is not v:
            return False
        del ev, want
        if sys.getrefcount(p) != before:
            return False
    return True


def _returns_object(fn: Any) -> Any:
    """fn returns the address of a new reference, or 0: a function returning
    that object (the reference taken over), or None for 0. (Not restype
    py_object: ctypes crashes on a NULL py_object result.)"""
    to_object, decref = ctypes.py_object, ctypes.pythonapi.Py_DecRef
    decref.argtypes, decref.restype = [ctypes.py_object], None

    def call(*args: Any) -> Any:
        addr = fn(*args)
        if not addr:
            return None
        obj = ctypes.cast(addr, to_object).value  # a reference of ours...
        decref(obj)  # ...so the library's is dropped
        return obj

    return call


_native_state: Optional[bool] = None
_native_fn: Any = None


def _probe_native() -> bool:
    global _native_fn
    a = api()
    if a is None:
        return False
    try:
        configure_api = _ffi.raw_function("net_mesh_pyobj_configure_api", hold_gil=True)
        native_event = _returns_object(_ffi.raw_function("net_mesh_pyobj_native_event", c_uint64,
                                                         hold_gil=True))
        fn = _returns_object(_ffi.raw_function("net_mesh_pyobj_native_deliver", c_uint64, hold_gil=True))
    except AttributeError:  # an older library
        return False
    if configure_api(ctypes.byref(a)) != 0:
        return False
    try:
        ok = _check_native(native_event)
    except Exception:
        return False
    if ok:
        _native_fn = fn
    return ok


def native_available() -> bool:
    """Whether new runtimes get the library's builtin deliver (needs
    :func:`available`; probed once per process)."""
    global _native_state
    if not available() or os.environ.get(ENV, "") == READ:
        return False
    if _native_state is None:
        with _lock:
            if _native_state is None:
                _native_state = _probe_native()
    return _native_state


def native_deliver(rt_ptr: int, objects: Any, helper: Any) -> Any:
    """The library's builtin deliver for runtime rt_ptr (see
    net_mesh_pyobj_native_deliver), or None."""
    names = ("process", "slow", "failed", "commit_other", "commit_failed")
    return _native_fn(ctypes.c_void_p(rt_ptr), c_uint64(id(objects)), c_uint64(id(helper)),
                      c_uint64(id(names)))
