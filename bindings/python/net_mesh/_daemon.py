"""Daemons written in Python: the base class, events, and the C trampolines.

Every callback the library makes into Python goes through one of the
module-level ``CFUNCTYPE`` objects below; they live as long as the module, so
Go can never call a collected function pointer. The Python object a callback
is for (a daemon instance or a factory) is kept in :data:`_objects`, keyed by
the integer handed to the library as ``user_data``; the library's finalizer
removes it. Nothing depends on the caller keeping references.

Each trampoline catches every exception (a Python exception must not unwind
into Go), reports it as a non-zero return plus a message, and parks it in a
thread-local so the call that triggered the callback (deliver, spawn, ...),
which runs on the same thread, can re-raise it as the ``__cause__``.

Library threads keep their Python thread state. A ctypes callback on a
thread Python did not create makes a thread state for the call and destroys
it afterwards (about 9 us each time, measured); the first callback on each
such thread therefore takes one extra PyGILState_Ensure that is never
released, so later callbacks there find the state ready (about 1-2 us):
migration replay, submitted tasks, output sinks, channel messages and
progress callbacks all run on library threads. The cost is one thread state
per library OS thread for the life of the process (the Go runtime keeps few
and rarely ends them), and ``threading.local`` data set in a callback on a
library thread is still there in the next callback on that thread.
"""

from __future__ import annotations

import ctypes
import itertools
import struct
import sys
import threading
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Any, Callable, Iterable, NamedTuple, Optional

from . import _ffi

# --- library threads keep their Python thread state (see the module doc) ---

_get_ident = threading.get_ident
#: idents of the threads whose thread state is kept (a set: add and "in" are
#: atomic under the GIL; an ident reused by a new thread only skips the keep)
KEPT_THREADS: "set[int]" = set()
try:  # CPython; elsewhere callbacks just pay for a fresh state each time
    _gil_ensure: Optional[Any] = ctypes.pythonapi.PyGILState_Ensure
    _gil_ensure.argtypes, _gil_ensure.restype = [], c_int
except (AttributeError, OSError):
    _gil_ensure = None


def keep_thread_state() -> None:
    """Keep this thread's Python thread state after the current callback
    returns (once per thread). Callers check ``_get_ident() not in
    KEPT_THREADS`` first, inline: that is the whole per-callback cost."""
    t = _get_ident()
    if t in KEPT_THREADS:
        return
    if _gil_ensure is not None:
        # we hold the GIL (inside a callback): this only counts one more
        # user of this thread's state, so the callback's own release keeps it
        _gil_ensure()
    KEPT_THREADS.add(t)


# --- C structures (include/net_mesh.h) -------------------------------------


class Link(ctypes.Structure):
    _fields_ = [
        ("origin_hash", c_uint64),
        ("horizon", c_uint64),
        ("sequence", c_uint64),
        ("parent_hash", c_uint64),
    ]


class EventIn(ctypes.Structure):
    """``net_mesh_event`` as we fill it: payload typed c_char_p, so assigning
    a bytes object stores a pointer to its buffer without copying."""

    _fields_ = [
        ("link", Link),
        ("payload", c_char_p),
        ("payload_len", c_size_t),
        ("received_at", c_uint64),
    ]


class Event(ctypes.Structure):
    """``net_mesh_event`` as the library hands it out."""

    _fields_ = [
        ("link", Link),
        ("payload", c_void_p),
        ("payload_len", c_size_t),
        ("received_at", c_uint64),
    ]


class EventList(ctypes.Structure):
    # events is read as an address (int): the hot path reads it through MEM
    _fields_ = [("events", c_void_p), ("len", c_size_t), ("reserved_", c_void_p)]


# process(user_data, event, outputs) etc. Pointers arrive as ints (or None).
PROCESS_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)
SNAPSHOT_FN = CFUNCTYPE(c_int, c_void_p, c_void_p)
RESTORE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t)


class DaemonVTable(ctypes.Structure):
    _fields_ = [
        ("size", c_uint32),
        ("name", c_char_p),
        ("process", PROCESS_FN),
        ("snapshot", SNAPSHOT_FN),
        ("restore", RESTORE_FN),
        ("finalize", _ffi.FINALIZE_FN),
    ]


TASK_FN = CFUNCTYPE(None, c_void_p)
FACTORY_CREATE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(DaemonVTable), POINTER(c_void_p))


class Factory(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("create", FACTORY_CREATE_FN), ("finalize", _ffi.FINALIZE_FN)]


_ffi.extend_signatures({
    "net_mesh_outputs_push": (c_int, [c_void_p, c_char_p, c_size_t]),
    "net_mesh_state_write": (c_int, [c_void_p, c_char_p, c_size_t]),
    "net_mesh_callback_set_error": (None, [c_char_p]),
    "net_mesh_event_list_free": (None, [c_void_p]),
    "net_mesh_daemon_vtable_init": (None, [POINTER(DaemonVTable)]),
    "net_mesh_factory_init": (None, [POINTER(Factory)]),
    "net_mesh_callback_probe": (c_int, [TASK_FN, c_void_p]),
})

# --- the Python side --------------------------------------------------------


class CausalEvent(NamedTuple):
    """One event of a causal chain: what you deliver, and what a daemon emits.

    ``origin_hash`` and ``sequence`` say whose event it is and where it sits
    in that origin's chain; ``parent_hash`` and ``horizon`` are filled by the
    runtime on outputs; ``received_at`` is unix nanoseconds (0 = unknown).
    An immutable value (a named tuple): use ``ev._replace(...)`` to vary one.
    """

    origin_hash: int = 0
    sequence: int = 0
    payload: bytes = b""
    parent_hash: int = 0
    horizon: int = 0
    received_at: int = 0


class MeshDaemon:
    """Base class for daemons written in Python.

    Subclasses set ``name`` and implement :meth:`process`. A daemon that keeps
    state overrides :meth:`snapshot` and :meth:`restore`; one that does not is
    stateless (it still migrates, with empty state). The runtime never calls
    one daemon concurrently. Any exception raised here reaches the caller of
    ``deliver`` / ``snapshot`` / ``spawn_from_snapshot`` as the ``__cause__``
    of a :class:`~net_mesh.NetMeshError`; the runtime stays usable.
    """

    name: str = ""
    #: Capability filter (empty: runs anywhere). Informational for now.
    requirements: tuple = ()

    def process(self, event: CausalEvent) -> "Iterable[bytes] | None":
        """Handle one event; return the output payloads (or None for none)."""
        raise NotImplementedError

    def snapshot(self) -> Optional[bytes]:
        """The daemon's state, or None if it is stateless."""
        return None

    def restore(self, state: bytes) -> None:
        """Rebuild state from what :meth:`snapshot` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} does not implement restore()")


# key -> object. Keys are handed to the library as user_data; the library's
# finalizer for a key removes its entry (exactly once).
_objects: dict[int, Any] = {}
_keys = itertools.count(1)


def keep(obj: Any) -> int:
    """Keep obj alive until the library finalizes the returned key."""
    k = next(_keys)
    _objects[k] = obj
    return k


def live_objects() -> int:
    """How many Python objects the library currently references (for tests)."""
    return len(_objects)


_tls = threading.local()


def _park(exc: BaseException) -> int:
    """Record exc for the caller on this thread and tell Go about it."""
    _tls.exc = exc
    try:
        msg = f"{type(exc).__name__}: {exc}"
        _ffi.lib().net_mesh_callback_set_error(msg.encode("utf-8", "replace")[:1000])
    except BaseException:
        pass
    return 1


def take_exception() -> Optional[BaseException]:
    """The exception a callback on this thread parked, cleared as it is read."""
    exc = getattr(_tls, "exc", None)
    if exc is not None:
        _tls.exc = None
    return exc


def clear_exception() -> None:
    _tls.exc = None


class _DaemonSlot:
    """What the library's daemon user_data points at."""

    __slots__ = ("daemon", "process", "snapshot", "restore", "name")

    def __init__(self, daemon: Any) -> None:
        proc = getattr(daemon, "process", None)
        if not callable(proc):
            raise TypeError(f"net_mesh: daemon {type(daemon).__name__} has no process() method")
        self.daemon = daemon
        self.process = proc
        self.snapshot = _overridden(daemon, "snapshot")
        self.restore = _overridden(daemon, "restore")
        name = getattr(daemon, "name", "") or ""
        if not isinstance(name, str):
            raise TypeError("net_mesh: daemon name must be a str")
        self.name = name.encode("utf-8")


def _overridden(daemon: Any, attr: str) -> Optional[Callable[..., Any]]:
    """The bound method if the daemon really implements attr, else None."""
    fn = getattr(daemon, attr, None)
    if fn is None or not callable(fn):
        return None
    if isinstance(daemon, MeshDaemon) and getattr(type(daemon), attr, None) is getattr(MeshDaemon, attr):
        return None
    return fn


#: True where a pointer and a uint64_t/size_t argument are passed alike
#: (64-bit SysV, Win64, AAPCS64): word_arg() then builds argument objects
#: that ctypes forwards without any conversion or allocation.
WORD_ARGS = ctypes.sizeof(c_void_p) == 8
# An lvalue at address 0 that is never read: byref(_NUL, v) is a ready-made
# foreign-call argument (a 'P' cparam) whose 64-bit value is v.
_NUL = ctypes.c_char.from_address(0)
_byref = ctypes.byref


def word_arg(v: int) -> Any:
    """A prebuilt argument passing the 64-bit value v (pointer, uint64_t or
    size_t) to a function called without argtypes. With WORD_ARGS it is a
    byref cparam, which ctypes copies as is (a c_void_p/c_uint64 instance
    costs a conversion object per call); elsewhere a c_uint64."""
    if WORD_ARGS:
        return _byref(_NUL, v - (1 << 64) if v >= 1 << 63 else v)
    return c_uint64(v)


_EV = struct.Struct("@QQQQPNQ")  # net_mesh_event: link(4×u64), payload, len, received_at
_EV_SIZE = _EV.size
_string_at = ctypes.string_at
_objects_get = _objects.__getitem__
_tnew = tuple.__new__

# A read-only view of the process's address space, used only to read memory
# the library just handed us (an event, its payload, an output list) at the
# address it gave. Far cheaper than ctypes.string_at (a foreign call each) —
# this is the per-event hot path.
MEM = memoryview((ctypes.c_char * (sys.maxsize // 2)).from_address(0)).cast("B").toreadonly()
_unpack_ev = _EV.unpack_from


def _find_bytes_offset() -> Optional[int]:
    """Offset of a bytes object's data from id(obj) on this CPython, verified
    on sample objects; None elsewhere (callers then take a slower path)."""
    if sys.implementation.name != "cpython":
        return None
    off = sys.getsizeof(b"") - 1
    for sample in (bytes(range(1, 200)), b"net_mesh" * 3, bytes(7)):
        if len(sample) and bytes(MEM[id(sample) + off:id(sample) + off + len(sample)]) != sample:
            return None
    return off


#: id(b) + BYTES_OFFSET is the address of b's data (CPython; None if unknown).
BYTES_OFFSET = _find_bytes_offset()


def bytes_address(b: bytes) -> int:
    """Address of the data of bytes object b, valid while b is alive."""
    if not b:
        return 0
    if BYTES_OFFSET is not None:
        return id(b) + BYTES_OFFSET
    return ctypes.cast(ctypes.c_char_p(b), c_void_p).value or 0


def _event_from(addr: int) -> CausalEvent:
    origin, horizon, seq, parent, pay, plen, recv = _unpack_ev(MEM, addr)
    return _tnew(CausalEvent, (origin, seq, MEM[pay:pay + plen].tobytes() if plen else b"",
                               parent, horizon, recv))


#: [(fields, event)] of the latest Python deliver in flight, or [None].
#: fields are the event's net_mesh_event fields in struct order, payload by
#: address. When the library hands process() exactly those fields, the
#: daemon gets the caller's own CausalEvent instead of a copy: an immutable
#: value equal to what it would have built. Sound across threads and nested
#: deliveries without knowing whose entry this is: the caller's payload is
#: alive (its frame and this entry hold it), so a matching payload address
#: means the very same bytes object; any mismatch builds the event as usual.
CURRENT: "list[Any]" = [None]


def _process(ud: int, ev: int, out: int) -> int:
    # The per-event hot path: everything inlined, module globals bound as
    # defaults would not help (a CFUNCTYPE calls with positional args only).
    try:
        if _get_ident() not in KEPT_THREADS:
            keep_thread_state()
        f = _unpack_ev(MEM, ev)
        cur = CURRENT[0]
        if cur is not None and cur[0] == f:
            event = cur[1]
        else:
            origin, horizon, seq, parent, pay, plen, recv = f
            event = _tnew(CausalEvent, (origin, seq, MEM[pay:pay + plen].tobytes() if plen else b"",
                                        parent, horizon, recv))
        outs = _objects_get(ud).process(event)
        if outs:
            # one argument object for the writer, reused for every output; a
            # bytes payload and an int length need no conversion object
            oref = _byref(_NUL, out) if WORD_ARGS else c_void_p(out)
            push = _push
            for o in outs:
                if o.__class__ is not bytes:
                    o = _as_payload(o)
                n = len(o)
                rc = push(oref, o, n if n < 0x80000000 else c_size_t(n))
                if rc:
                    from ._errors import last_error

                    raise last_error(rc)
        return 0
    except BaseException as e:  # never let anything unwind into Go
        return _park(e)


def _as_payload(o: Any) -> bytes:
    if isinstance(o, (bytearray, memoryview)):
        return bytes(o)
    if isinstance(o, bytes):
        return o
    raise TypeError(f"process() must return bytes payloads, got {type(o).__name__}")


def _snapshot(ud: int, out: int) -> int:
    try:
        if _get_ident() not in KEPT_THREADS:
            keep_thread_state()
        slot = _objects_get(ud)
        state = slot.snapshot() if slot.snapshot is not None else None
        if state is None:
            return 0  # nothing written: stateless
        b = _as_payload(state)
        rc = _ffi.lib().net_mesh_state_write(out, b, len(b))
        if rc:
            from ._errors import last_error

            raise last_error(rc)
        return 0
    except BaseException as e:
        return _park(e)


def _restore(ud: int, data: Optional[int], n: int) -> int:
    try:
        if _get_ident() not in KEPT_THREADS:
            keep_thread_state()
        slot = _objects_get(ud)
        state = _string_at(data, n) if n else b""
        if slot.restore is None:
            if state:
                raise ValueError(f"{type(slot.daemon).__name__} does not implement restore()")
            return 0
        slot.restore(state)
        return 0
    except BaseException as e:
        return _park(e)


def _finalize(ud: Optional[int]) -> None:
    try:
        if _get_ident() not in KEPT_THREADS:
            keep_thread_state()
        if ud is not None:
            _objects.pop(ud, None)
    except BaseException:
        pass


def _task(ud: Optional[int]) -> None:
    try:
        if _get_ident() not in KEPT_THREADS:
            keep_thread_state()
        _objects_get(ud)()  # type: ignore[index]
    except BaseException as e:  # a task has no caller; log through the library's user
        try:
            import sys

            print(f"net_mesh: submitted task raised {type(e).__name__}: {e}", file=sys.stderr)
        except BaseException:
            pass


def fill_vtable(vt: DaemonVTable, slot: _DaemonSlot) -> None:
    """Point vt at the trampolines for slot (size is set by the caller/library)."""
    vt.name = slot.name
    vt.process = _PROCESS
    vt.snapshot = _SNAPSHOT if slot.snapshot is not None else SNAPSHOT_FN()
    vt.restore = _RESTORE if slot.restore is not None else RESTORE_FN()
    vt.finalize = _FINALIZE


def new_vtable(slot: _DaemonSlot) -> DaemonVTable:
    vt = DaemonVTable()
    vt.size = ctypes.sizeof(DaemonVTable)
    fill_vtable(vt, slot)
    return vt


class _FactorySlot:
    __slots__ = ("factory", "kind")

    def __init__(self, factory: Callable[[], Any], kind: str) -> None:
        self.factory = factory
        self.kind = kind


def _factory_create(fud: int, vt_out: Any, ud_out: Any) -> int:
    try:
        if _get_ident() not in KEPT_THREADS:
            keep_thread_state()
        fslot = _objects_get(fud)
        daemon = fslot.factory()
        slot = _DaemonSlot(daemon)
        if not slot.name and fslot.kind:
            slot.name = fslot.kind.encode("utf-8")
        fill_vtable(vt_out.contents, slot)
        ud_out[0] = keep(slot)
        return 0
    except BaseException as e:
        return _park(e)


def new_factory() -> Factory:
    f = Factory()
    f.size = ctypes.sizeof(Factory)
    f.create = _FACTORY_CREATE
    f.finalize = _FINALIZE
    return f


# The trampolines: alive for the life of the module (and so of the library).
_PROCESS = PROCESS_FN(_process)
_SNAPSHOT = SNAPSHOT_FN(_snapshot)
_RESTORE = RESTORE_FN(_restore)
_FINALIZE = _ffi.FINALIZE_FN(_finalize)
_FACTORY_CREATE = FACTORY_CREATE_FN(_factory_create)
_TASK = TASK_FN(_task)
_push: Callable[..., int] = _ffi._Missing("net_mesh_outputs_push")


def _bind_push() -> None:
    """Bind the output writer used by _process: net_mesh_outputs_push is
    pure C (appends to a per-call buffer; no lock, no Go, no callback), so it
    is called without releasing the GIL, which the trampoline holds anyway.
    No argtypes: _process passes (writer cparam, bytes, int), which ctypes
    forwards without from_param conversions (an int is passed as a C int,
    so lengths of 2**31 and more go as c_size_t)."""
    global _push
    if isinstance(_push, _ffi._Missing):
        _push = _ffi.raw_function("net_mesh_outputs_push", c_int, hold_gil=True)
