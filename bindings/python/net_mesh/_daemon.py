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
"""

from __future__ import annotations

import ctypes
import itertools
import struct
import threading
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Any, Callable, Iterable, Optional

from . import _ffi

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
    _fields_ = [("events", POINTER(Event)), ("len", c_size_t), ("reserved_", c_void_p)]


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


FACTORY_CREATE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(DaemonVTable), POINTER(c_void_p))


class Factory(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("create", FACTORY_CREATE_FN), ("finalize", _ffi.FINALIZE_FN)]


_ffi.extend_signatures({
    "net_mesh_outputs_push": (c_int, [c_void_p, c_char_p, c_size_t]),
    "net_mesh_state_write": (c_int, [c_void_p, c_char_p, c_size_t]),
    "net_mesh_callback_set_error": (None, [c_char_p]),
    "net_mesh_event_list_free": (None, [POINTER(EventList)]),
    "net_mesh_daemon_vtable_init": (None, [POINTER(DaemonVTable)]),
    "net_mesh_factory_init": (None, [POINTER(Factory)]),
})

# --- the Python side --------------------------------------------------------


class CausalEvent:
    """One event of a causal chain: what you deliver, and what a daemon emits.

    ``origin_hash`` and ``sequence`` say whose event it is and where it sits
    in that origin's chain; ``parent_hash`` and ``horizon`` are filled by the
    runtime on outputs; ``received_at`` is unix nanoseconds (0 = unknown).
    """

    __slots__ = ("origin_hash", "sequence", "payload", "parent_hash", "horizon", "received_at")

    def __init__(self, origin_hash: int = 0, sequence: int = 0, payload: bytes = b"",
                 parent_hash: int = 0, horizon: int = 0, received_at: int = 0) -> None:
        self.origin_hash = origin_hash
        self.sequence = sequence
        self.payload = payload
        self.parent_hash = parent_hash
        self.horizon = horizon
        self.received_at = received_at

    def __repr__(self) -> str:
        return (f"CausalEvent(origin_hash={self.origin_hash:#x}, sequence={self.sequence}, "
                f"payload={self.payload!r}, parent_hash={self.parent_hash:#x}, "
                f"horizon={self.horizon:#x}, received_at={self.received_at})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalEvent):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


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


_EV = struct.Struct("@QQQQPNQ")  # net_mesh_event: link(4×u64), payload, len, received_at
_EV_SIZE = _EV.size
_string_at = ctypes.string_at
_objects_get = _objects.__getitem__


def _event_from(addr: int) -> CausalEvent:
    origin, horizon, seq, parent, pay, plen, recv = _EV.unpack(_string_at(addr, _EV_SIZE))
    ev = CausalEvent.__new__(CausalEvent)
    ev.origin_hash = origin
    ev.sequence = seq
    ev.payload = _string_at(pay, plen) if plen else b""
    ev.parent_hash = parent
    ev.horizon = horizon
    ev.received_at = recv
    return ev


def _process(ud: int, ev: int, out: int) -> int:
    try:
        outs = _objects_get(ud).process(_event_from(ev))
        if outs:
            push = _push
            for o in outs:
                if o.__class__ is not bytes:
                    o = _as_payload(o)
                rc = push(out, o, len(o))
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
        if ud is not None:
            _objects.pop(ud, None)
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
_push: Callable[..., int] = _ffi._Missing("net_mesh_outputs_push")


def _bind_push() -> None:
    global _push
    _push = _ffi.lib().net_mesh_outputs_push
