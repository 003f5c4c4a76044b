"""DaemonRuntime and DaemonHandle: run, feed, snapshot and stop daemons."""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import os
import threading
import types
import weakref
import struct
from ctypes import POINTER, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Any, Callable, Iterable, Mapping, Optional, Union

from . import _batch, _daemon, _ffi, _migration, _pyobj
from ._daemon import CausalEvent, Event, EventIn, EventList, Factory
from ._errors import (BadHandleError, InvalidArgumentError, NetMeshError, ProcessFailedError, closed, last_error,
                      process_failed)
from ._handle import Handle
from ._identity import Identity
from ._migration import SINK_FN, _SINK, MigrationHandle, _SinkSlot, options, phase_name


class DaemonConfigC(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("auto_snapshot_interval", c_uint64)]


class RuntimeOptions(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("workers", c_uint32), ("queue_size", c_uint32)]


class DaemonStatsC(ctypes.Structure):
    _fields_ = [
        ("size", c_uint32),
        ("events_processed", c_uint64),
        ("events_emitted", c_uint64),
        ("errors", c_uint64),
        ("snapshots_taken", c_uint64),
    ]


class SubscriptionC(ctypes.Structure):
    _fields_ = [("publisher", c_uint64), ("channel", c_char_p), ("token", c_void_p),
                ("token_len", c_size_t)]


class SubscriptionListC(ctypes.Structure):
    _fields_ = [("items", POINTER(SubscriptionC)), ("len", c_size_t), ("reserved_", c_void_p)]


_vp = c_void_p
_vpp = POINTER(c_void_p)
_u64p = POINTER(c_uint64)
_cfg = POINTER(DaemonConfigC)
_vt = POINTER(_daemon.DaemonVTable)
_fac = POINTER(Factory)

_ffi.extend_signatures({
    "net_mesh_daemon_config_init": (None, [_cfg]),
    "net_mesh_runtime_options_init": (None, [POINTER(RuntimeOptions)]),
    "net_mesh_runtime_new": (c_int, [_vp, POINTER(RuntimeOptions), _vpp]),
    "net_mesh_runtime_register_factory": (c_int, [_vp, c_char_p, _fac, _vp]),
    "net_mesh_runtime_start": (c_int, [_vp]),
    "net_mesh_runtime_shutdown": (c_int, [_vp, c_uint32]),
    "net_mesh_runtime_is_ready": (c_int, [_vp, POINTER(c_int)]),
    "net_mesh_runtime_daemon_count": (c_int, [_vp, _u64p]),
    "net_mesh_runtime_spawn": (c_int, [_vp, c_char_p, _vp, _cfg, _vpp]),
    "net_mesh_runtime_spawn_with_daemon": (c_int, [_vp, _vp, _cfg, _vt, _vp, _fac, _vp, _vpp]),
    "net_mesh_runtime_spawn_from_snapshot": (c_int, [_vp, c_char_p, _vp, c_char_p, c_size_t, _cfg, _vpp]),
    "net_mesh_runtime_spawn_from_snapshot_with_daemon": (
        c_int, [_vp, _vp, c_char_p, c_size_t, _cfg, _vt, _vp, _fac, _vp, _vpp]),
    "net_mesh_runtime_stop": (c_int, [_vp, c_uint64]),
    "net_mesh_runtime_snapshot": (c_int, [_vp, c_uint64, POINTER(_ffi.Bytes)]),
    "net_mesh_runtime_deliver": (c_int, [_vp, c_uint64, _vp, _vp]),
    "net_mesh_runtime_deliver_into": (c_int, [_vp, c_uint64, _vp, _vp]),
    "net_mesh_runtime_deliver_begin": (c_int, [_vp, c_uint64, _vp, _u64p, _vpp]),
    "net_mesh_runtime_deliver_commit": (
        c_int, [_vp, c_uint64, c_uint64, c_char_p, c_size_t, _u64p, c_size_t, POINTER(c_size_t)]),
    "net_mesh_runtime_deliver_abort": (c_int, [_vp, c_uint64, c_uint64, c_char_p]),
    "net_mesh_runtime_deliver_held_by": (c_int, [_vp, c_uint64, c_uint64, POINTER(c_int)]),
    "net_mesh_subscription_list_free": (None, [POINTER(SubscriptionListC)]),
    "net_mesh_runtime_subscriptions": (c_int, [_vp, c_uint64, POINTER(SubscriptionListC)]),
    "net_mesh_runtime_subscribe": (c_int, [_vp, c_uint64, c_uint64, c_char_p, c_char_p, c_size_t, c_uint32]),
    "net_mesh_runtime_unsubscribe": (c_int, [_vp, c_uint64, c_uint64, c_char_p, c_uint32]),
    "net_mesh_runtime_expect_migration": (c_int, [_vp, c_char_p, c_uint64, _cfg]),
    "net_mesh_runtime_register_migration_target_identity": (c_int, [_vp, c_char_p, _vp, _cfg]),
    "net_mesh_runtime_submit": (c_int, [_vp, _daemon.TASK_FN, _vp, _ffi.FINALIZE_FN]),
    "net_mesh_runtime_free": (None, [_vp]),
    "net_mesh_daemon_origin_hash": (c_int, [_vp, _u64p]),
    "net_mesh_daemon_entity_id": (c_int, [_vp, c_char_p]),
    "net_mesh_daemon_stats_get": (c_int, [_vp, POINTER(DaemonStatsC)]),
    "net_mesh_daemon_free": (None, [_vp]),
})


@dataclasses.dataclass(frozen=True)
class DaemonConfig:
    """Per-daemon settings. ``auto_snapshot_interval``: snapshot every N
    processed events (kept as the daemon's latest snapshot); 0 = off."""

    auto_snapshot_interval: int = 0


@dataclasses.dataclass(frozen=True)
class DaemonStats:
    """A daemon's counters (reset on restore)."""

    events_processed: int
    events_emitted: int
    errors: int
    snapshots_taken: int


@dataclasses.dataclass(frozen=True)
class Subscription:
    """One entry of a daemon's subscription ledger."""

    publisher: int
    channel: str
    token: Optional[bytes]


ConfigLike = Union[DaemonConfig, Mapping[str, int], None]


def _config(config: ConfigLike) -> Optional[Any]:
    if config is None:
        return None
    if isinstance(config, Mapping):
        unknown = set(config) - {"auto_snapshot_interval"}
        if unknown:
            raise InvalidArgumentError(f"net_mesh: unknown config keys {sorted(unknown)}")
        config = DaemonConfig(**config)
    if not isinstance(config, DaemonConfig):
        raise TypeError(f"net_mesh: config must be a DaemonConfig or dict, not {type(config).__name__}")
    n = config.auto_snapshot_interval
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 2**64:
        raise InvalidArgumentError("net_mesh: auto_snapshot_interval must be an int in [0, 2**64)")
    c = DaemonConfigC()
    c.size = ctypes.sizeof(DaemonConfigC)
    c.auto_snapshot_interval = n
    return ctypes.byref(c)


def _kind(kind: object) -> bytes:
    if not isinstance(kind, str):
        raise TypeError(f"net_mesh: kind must be a str, not {type(kind).__name__}")
    if not kind or "\x00" in kind:
        raise InvalidArgumentError("net_mesh: kind must be a non-empty string without NUL")
    return kind.encode("utf-8")


def _u64(v: object, name: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"net_mesh: {name} must be an int, not {type(v).__name__}")
    if not 0 <= v < 2**64:
        raise InvalidArgumentError(f"net_mesh: {name} must be in [0, 2**64)")
    return v


def _identity(ident: object) -> int:
    if not isinstance(ident, Identity):
        raise TypeError(f"net_mesh: identity must be a net_mesh.Identity, not {type(ident).__name__}")
    return ident._handle()


def _bytes_arg(v: object, name: str) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"net_mesh: {name} must be bytes, not {type(v).__name__}")


def _timeout_ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return 0
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        raise TypeError("net_mesh: timeout must be a number of seconds or None")
    if timeout <= 0:
        raise InvalidArgumentError("net_mesh: timeout must be positive")
    return max(1, min(int(timeout * 1000), 2**32 - 1))


def _raise(rc: int, callback_is_process: bool = False) -> None:
    """Raise the mapped error for rc, chained to a parked callback exception.

    callback_is_process: the only callbacks the call makes are factory and
    process, whose failure the contract names process-failed; a library that
    reports callback-failed for them is mapped back to ProcessFailedError.
    """
    if callback_is_process and rc == _CALLBACK_FAILED:
        rc = _PROCESS_FAILED
    err = last_error(rc)
    cause = _daemon.take_exception()
    if cause is not None:
        raise err from cause
    raise err


class _Scratch:
    """Deliver buffers: a net_mesh_event filled with struct, and a reusable
    net_mesh_event_list (net_mesh_runtime_deliver_into refills the library's
    storage in place, so a stream of deliveries allocates nothing). The call
    arguments are prebuilt ctypes instances (no per-call conversion).

    Scratches live in a pool: a call pops one (list.pop/append are atomic
    under the GIL) and returns it afterwards, so concurrent threads and a
    daemon that delivers to another daemon from inside ``process`` each get
    their own — a list is never passed to two calls at once."""

    __slots__ = ("ev", "ev_arg", "lst", "lst_arg", "lst_view", "origin", "origin_arg",
                 "lease", "lease_view", "ticket_arg", "ud_arg", "meta", "meta_view", "meta_arg",
                 "n", "n_arg", "__weakref__")

    def __init__(self) -> None:
        self.ev = EventIn()
        self.ev_arg = ctypes.byref(self.ev)  # a cparam: passed without conversion
        # host-driven delivery: [ticket, daemon user_data] filled by
        # deliver_begin, and the per-output meta deliver_commit writes
        self.lease = (c_uint64 * 2)()
        self.lease_view = memoryview(self.lease).cast("B").cast("Q")
        self.ticket_arg = ctypes.byref(self.lease)
        self.ud_arg = ctypes.byref(self.lease, 8)
        self.meta = (c_uint64 * _META_CAP)()
        self.meta_view = memoryview(self.meta).cast("B").cast("Q")
        self.meta_arg = ctypes.byref(self.meta)
        self.n = c_size_t()
        self.n_arg = ctypes.byref(self.n)
        self.lst = EventList()
        self.lst_arg = ctypes.byref(self.lst)
        # events, len, reserved_ as three machine words, read without ctypes
        self.lst_view = memoryview(self.lst).cast("B").cast("N")
        self.origin = -1
        self.origin_arg: Any = None  # _daemon.word_arg(self.origin)

    def __del__(self) -> None:
        try:
            if self.lst.reserved_ and not _ffi.forked:
                _ffi.lib().net_mesh_event_list_free(ctypes.byref(self.lst))
        except BaseException:
            pass


_CALLBACK_FAILED = -16
_PROCESS_FAILED = -9
_META_CAP = 64  # u64 values: meta for 16 outputs without a per-call buffer
_pack_len = struct.Struct("<Q").pack
_unpack_meta = struct.Struct("=4Q").unpack_from
_get_ident = threading.get_ident
_objects_get = _daemon._objects.__getitem__
_as_payload = _daemon._as_payload
_pool: "list[_Scratch]" = []
_pool_pop, _pool_push = _pool.pop, _pool.append
_EVSZ = ctypes.sizeof(Event)
_U64_MAX = 2**64 - 1
# struct.pack_into checks every u64 (ctypes would silently wrap -1) and fills
# the whole event in one call; the payload goes in by address (no copy).
_pack_ev = _daemon._EV.pack_into
_pack_evb = _daemon._EV.pack  # bytes: far cheaper than pack_into a ctypes object
_unpack_ev = _daemon._EV.unpack_from
assert ctypes.sizeof(EventIn) == _daemon._EV.size and ctypes.sizeof(EventList) == 24
_addr = _daemon.bytes_address
_OFF = _daemon.BYTES_OFFSET
_tnew = tuple.__new__
_word_arg = _daemon.word_arg
_cur = _daemon.CURRENT
_MEM = _daemon.MEM

# net_mesh_pydelivery (include/net_mesh.h), one block per delivery in flight:
# a net_mesh_delivery (the block calls' argument) followed by the addresses
# of the event and of the outputs (the pyobj calls'). A bytearray seen as
# 64-bit words: single words are read and written by index and struct packs
# into it, both far cheaper than through ctypes; the library gets its
# address through one prebuilt argument. Word indexes of its fields:
_D_SIZE = _pyobj.BLOCK_SIZE
_D_ORIGIN = 16      # byte offset of origin, event (7 words), thread: what begin reads
_W_TICKET = 11      # ticket, then daemon_user_data: what begin writes
_W_N = 13           # n_outputs, data, data_len, meta, meta_cap: what commit reads
_W_META1 = 18       # meta1[4]: what commit writes for one output
_pack_begin = struct.Struct("=9Q").pack_into


def _new_block(rt_ptr: int) -> "tuple[memoryview, Any]":
    """A fresh net_mesh_pydelivery for runtime rt_ptr: (words, call argument).
    The argument (a cparam) keeps the ctypes view alive, which pins the
    bytearray (it can no longer be resized, so its address stays valid)."""
    buf = bytearray(_D_SIZE)
    w = memoryview(buf).cast("Q")
    w[0], w[1] = _D_SIZE, rt_ptr
    return w, ctypes.byref((ctypes.c_char * _D_SIZE).from_buffer(buf))


def _lease_end(abort: Any, ptr_arg: Any, w: memoryview, origin_hash: int) -> None:
    """Abort the lease block w still names, if any: a deliver interrupted
    between begin and the end of the lease never leaves the daemon locked (a
    stale ticket is refused harmlessly)."""
    t = w[_W_TICKET]
    if t:
        w[_W_TICKET] = 0
        abort(ptr_arg, _word_arg(origin_hash), _word_arg(t), b"interrupted")


def _lease_failed(abort: Any, ptr_arg: Any, w: memoryview, origin_hash: int,
                  e: BaseException) -> ProcessFailedError:
    """End block w's lease as a failed process (process raised e, or its
    outputs are not bytes) and return the error deliver raises."""
    err = process_failed(e)
    t = w[_W_TICKET]
    w[_W_TICKET] = 0
    abort(ptr_arg, _word_arg(origin_hash), _word_arg(t), str(err).encode("utf-8", "replace")[:1000])
    return err


def _other_outputs(w: memoryview, outs: Any) -> "tuple[Optional[bytes], list[bytes], Any]":
    """Outputs other than None, [] or a list of one bytes object: the
    normalised payloads, described in block w for commit. Returns (the only
    payload or None, payloads, what must stay alive until commit returned)."""
    if not outs:
        w[_W_N] = 0
        return None, [], ()
    pays = [o if o.__class__ is bytes else _as_payload(o) for o in outs]
    n = len(pays)
    w[_W_N] = n
    if n == 1:
        o = pays[0]
        w[14], w[15] = (id(o) + _OFF if o else 0), len(o)
        return o, pays, ()
    if not n:
        return None, pays, ()
    recs = b"".join([x for o in pays for x in (_pack_len(len(o)), o)])
    meta = (c_uint64 * (4 * n))()
    w[14], w[15], w[16], w[17] = id(recs) + _OFF, len(recs), ctypes.addressof(meta), 4 * n
    return None, pays, (meta, recs)


def _commit_other(commit_block: Any, abort: Any, ptr_arg: Any, w: memoryview, arg: Any,
                  origin_hash: int, outs: Any) -> "list[CausalEvent]":
    """Commit block w's open lease with outputs normalised in Python (any
    iterable of bytes-like items) through deliver_commit_block. Outputs that
    are not bytes end the lease as a failed process (ProcessFailedError)."""
    try:
        o, pays, meta = _other_outputs(w, outs)
    except BaseException as e:
        raise _lease_failed(abort, ptr_arg, w, origin_hash, e) from e
    rc = commit_block(arg)
    if rc:
        raise last_error(rc)
    if not pays:
        return []
    if len(pays) == 1:
        return [_tnew(CausalEvent, (origin_hash, w[18], o, w[19], w[20], w[21]))]
    mv = memoryview(meta[0]).cast("B").cast("Q")
    return [_tnew(CausalEvent, (origin_hash, mv[4 * i], o, mv[4 * i + 1], mv[4 * i + 2], mv[4 * i + 3]))
            for i, o in enumerate(pays)]


def _fast_deliver(rt: "DaemonRuntime") -> Callable[[int, CausalEvent], "list[CausalEvent]"]:
    """rt.deliver when the library reads the event and the outputs itself
    (_pyobj): a closure over everything a call needs (cells, not attribute
    lookups). It holds rt only weakly — rt keeps it, so a strong reference
    would be a cycle and delay the runtime's release to the cyclic GC — and
    reads rt's pointer through the cell rt._live shares with it."""
    live, bpop, bpush, begin, commit = rt._live, rt._bpop, rt._bpush, rt._begin, rt._commit
    commit_block, abort, ptr_arg, rt_word = rt._commit_block, rt._abort, rt._ptr_arg, rt._rt_word
    ref = weakref.ref(rt)
    new_block, objects_get, tnew, event_class, error = _new_block, _objects_get, _tnew, CausalEvent, last_error

    def runtime() -> "DaemonRuntime":
        r = ref()
        if r is None:
            raise closed("runtime")
        return r

    def deliver(origin_hash: int, event: CausalEvent) -> "list[CausalEvent]":
        # Host-driven, and the library reads the Python objects itself: the
        # block gets only origin_hash and id(event); net_mesh_pyobj_deliver_begin
        # checks the event is exactly a CausalEvent of u64 ints and bytes,
        # fills the block's event and thread, and leases the daemon (host
        # locked, phase gate passed; a begin by the thread already holding
        # the lease is refused); process runs here as a plain Python call;
        # net_mesh_pyobj_deliver_commit (GIL held) takes None, [] or [bytes]
        # from id(outs), appends it to the chain and writes the output's
        # sequence/parent/horizon/received_at into the block. What the
        # library does not decode (status 1, nothing changed) goes through
        # Python: _deliver_blocks for the event, _commit_other for the
        # outputs. A non-int origin, a closed runtime or a forked child (no
        # pointer) take _deliver_slow, which raises or normalises and comes
        # back.
        # Block ownership: the block is pushed back only after the try below
        # (whatever interrupts the frame inside it, the except ends a lease
        # still open; an interrupt after it at worst drops the block), and
        # the output is read from it before it is pushed.
        if origin_hash.__class__ is not int or live[0] is None:
            return runtime()._deliver_slow(origin_hash, event)
        try:
            blk = bpop()
        except IndexError:
            blk = new_block(rt_word)
        w, arg = blk
        try:
            w[2] = origin_hash
        except ValueError:  # outside [0, 2**64): _deliver_slow raises the error
            bpush(blk)
            return runtime()._deliver_slow(origin_hash, event)
        w[22] = id(event)  # the caller's reference keeps it alive
        try:
            rc = begin(arg)
            if rc:
                if rc != 1:  # 1: not decodable, nothing changed
                    raise error(rc)
                res = runtime()._deliver_blocks(origin_hash, event)
            else:
                k = w[12]  # the daemon's key; 0 with ticket 0: queued behind a migration
                if not k:
                    res = []
                else:
                    try:
                        outs = objects_get(k).process(event)
                    except BaseException as e:
                        raise _lease_failed(abort, ptr_arg, w, origin_hash, e) from e
                    w[23] = id(outs)  # outs (a local) keeps it alive
                    rc = commit(arg)
                    if rc:
                        if rc != 1:
                            raise error(rc)
                        res = _commit_other(commit_block, abort, ptr_arg, w, arg, origin_hash, outs)
                    elif outs:  # None, [] or [bytes] when decoded
                        res = [tnew(event_class, (origin_hash, w[18], outs[0], w[19], w[20], w[21]))]
                    else:
                        res = []
        except BaseException:
            _lease_end(abort, ptr_arg, w, origin_hash)
            bpush(blk)
            raise
        bpush(blk)
        return res

    deliver.__doc__ = DaemonRuntime.deliver.__doc__
    return deliver


def _native_helper(rt: "DaemonRuntime", fast: Callable[..., "list[CausalEvent]"]) -> Any:
    """The continuations the library's builtin deliver hands cases to (see
    net_mesh_pyobj_native_deliver): ``slow`` is the Python deliver (``fast``,
    which decodes again and raises what is wrong); the others finish a lease
    the builtin began, with a pool block naming it, exactly as ``fast`` does.
    Holds rt only through what ``fast`` holds (no cycle through rt)."""
    bpop, bpush, commit_block, abort = rt._bpop, rt._bpush, rt._commit_block, rt._abort
    ptr_arg, rt_word, new_block, error = rt._ptr_arg, rt._rt_word, _new_block, last_error

    def block(origin_hash: int, ticket: int) -> "tuple[memoryview, Any]":
        try:
            blk = bpop()
        except IndexError:
            blk = new_block(rt_word)
        w = blk[0]
        w[2] = origin_hash
        w[_W_TICKET] = ticket
        return blk

    def failed(origin_hash: int, ticket: int, e: BaseException) -> None:
        blk = block(origin_hash, ticket)
        try:
            raise _lease_failed(abort, ptr_arg, blk[0], origin_hash, e) from e
        finally:
            bpush(blk)

    def commit_other(origin_hash: int, ticket: int, outs: Any) -> "list[CausalEvent]":
        blk = block(origin_hash, ticket)
        w, arg = blk
        try:
            return _commit_other(commit_block, abort, ptr_arg, w, arg, origin_hash, outs)
        except BaseException:
            _lease_end(abort, ptr_arg, w, origin_hash)
            raise
        finally:
            bpush(blk)

    def commit_failed(origin_hash: int, ticket: int, rc: int) -> None:
        # the status comes as its u64 bits; the error is made before the abort (a
        # library call) replaces this thread's last error
        err = error(rc - (1 << 64) if rc >> 63 else rc)
        blk = block(origin_hash, ticket)
        try:
            _lease_end(abort, ptr_arg, blk[0], origin_hash)
        finally:
            bpush(blk)
        raise err

    ns = types.SimpleNamespace(slow=fast, failed=failed, commit_other=commit_other,
                               commit_failed=commit_failed)
    return ns


# Runtimes whose library threads may still call Python; stopped at exit.
_live_runtimes: "weakref.WeakSet[DaemonRuntime]" = weakref.WeakSet()


def _at_exit() -> None:
    """Before the interpreter finalizes, stop every library callback into
    Python (a library thread entering a finalized interpreter would hang or
    crash): free live migration handles, remove output sinks, shut runtimes
    down (bounded)."""
    if _ffi.forked or _ffi._lib is None:
        return
    for m in list(_migration._live_migrations):
        try:
            m.close()
        except BaseException:
            pass
    for rt in list(_live_runtimes):
        try:
            if rt.closed:
                continue
            if rt._has_sink:
                rt.set_output_sink(None)
            rt.shutdown(timeout=2.0)
        except BaseException:
            pass


atexit.register(_at_exit)


def _forked_child() -> None:
    """In a child forked after the library was loaded, drop every runtime's
    pointer (never freed: the child has no Go runtime). deliver's hot path
    then catches the fork with the `_ptr is None` test it makes anyway, and
    _handle raises the "forked" error."""
    for rt in list(_live_runtimes):
        rt._ptr = None


os.register_at_fork(after_in_child=_forked_child)


class DaemonHandle(Handle):
    """A spawned daemon. Closing the handle does not stop the daemon."""

    _what = "daemon handle"

    def __init__(self, runtime: "DaemonRuntime", ptr: int) -> None:
        lib = _ffi.lib()
        super().__init__(ptr, lib.net_mesh_daemon_free)
        self._runtime = runtime
        oh = c_uint64()
        eid = ctypes.create_string_buffer(32)
        rc = lib.net_mesh_daemon_origin_hash(ptr, ctypes.byref(oh))
        if rc:
            raise last_error(rc)
        rc = lib.net_mesh_daemon_entity_id(ptr, eid)
        if rc:
            raise last_error(rc)
        self.origin_hash: int = oh.value
        self.entity_id: bytes = eid.raw

    def stats(self) -> DaemonStats:
        """The daemon's counters; DaemonNotFoundError once it is stopped."""
        s = DaemonStatsC()
        s.size = ctypes.sizeof(DaemonStatsC)
        rc = _ffi.lib().net_mesh_daemon_stats_get(self._handle(), ctypes.byref(s))
        if rc:
            raise last_error(rc)
        return DaemonStats(s.events_processed, s.events_emitted, s.errors, s.snapshots_taken)

    def snapshot(self) -> Optional[bytes]:
        """Same as ``runtime.snapshot(handle.origin_hash)``."""
        return self._runtime.snapshot(self.origin_hash)

    def __repr__(self) -> str:
        return f"<net_mesh.DaemonHandle origin_hash={self.origin_hash:#018x}>"


class DaemonRuntime(Handle):
    """A compute runtime on a :class:`~net_mesh.Node`.

    Lifecycle: Registering (after construction) → ``start()`` → Ready →
    ``shutdown()`` → ShuttingDown. ``close()`` shuts down and releases the
    runtime; it never closes the node. Every method may be called from any
    Python thread. Daemon callbacks for calls made here (deliver, snapshot,
    spawn, stop) run on the calling thread; callbacks the network starts
    (a migration arriving) run on library threads and take the GIL.
    """

    _what = "runtime"

    def __init__(self, node: Any, *, workers: int = 0, queue_size: int = 0) -> None:
        from ._mesh import Node

        self._live: "list[Optional[int]]" = [None]  # holds _ptr (see the property)
        if not isinstance(node, Node):
            raise TypeError(f"net_mesh: DaemonRuntime needs a net_mesh.Node, not {type(node).__name__}")
        lib = _ffi.lib()
        _daemon._bind_push()
        opts = RuntimeOptions()
        lib.net_mesh_runtime_options_init(ctypes.byref(opts))
        opts.workers = _u64(workers, "workers")
        opts.queue_size = _u64(queue_size, "queue_size")
        out = c_void_p()
        rc = lib.net_mesh_runtime_new(node._handle(), ctypes.byref(opts), ctypes.byref(out))
        if rc:
            raise last_error(rc)
        super().__init__(out.value, lib.net_mesh_runtime_free)  # type: ignore[arg-type]
        self._lib = lib
        self._deliver = _ffi.raw_function("net_mesh_runtime_deliver_into")
        # Host-driven delivery through net_mesh_delivery blocks: begin may
        # wait for the daemon (another thread's lease), so it releases the
        # GIL; commit and abort never wait for another thread (they end this
        # thread's own lease; an automatic snapshot calls back on this
        # thread) and keep it. (A begin keeping the GIL when the daemon is
        # free measured at most ~30-80 ns better, but a thread delivering in
        # a loop then never lets go of the GIL inside deliver, and library
        # threads' Python callbacks, e.g. a migration's restore and replay,
        # wait up to the 5 ms switch interval for each: measured as a
        # migration test timing out. So begin always releases it.)
        # The pyobj begin and commit (deliver's fast path) follow the same
        # rule: begin releases the GIL (it only reads immutable objects),
        # commit keeps it (it reads the outputs list).
        try:
            self._begin_block = _ffi.raw_function("net_mesh_runtime_deliver_begin_block")
            self._commit_block = _ffi.raw_function("net_mesh_runtime_deliver_commit_block", hold_gil=True)
            self._abort = _ffi.raw_function("net_mesh_runtime_deliver_abort", hold_gil=True)
            self._held_by = _ffi.raw_function("net_mesh_runtime_deliver_held_by")
        except AttributeError:  # an older library: deliver through the callback
            self._begin_block = None
        if _OFF is None:  # not CPython: the block paths need bytes addresses
            self._begin_block = None
        #: whether deliver takes the fast path (the library reads the objects)
        self.pyobj = self._begin_block is not None and _pyobj.available()
        if self.pyobj:
            self._begin = _ffi.raw_function("net_mesh_pyobj_deliver_begin")
            self._commit = _ffi.raw_function("net_mesh_pyobj_deliver_commit", hold_gil=True)
        # blocks not in use (a delivery pops one and pushes it back when its
        # lease has ended: threads and nested deliveries each get their own)
        self._blocks: "list[tuple[bytearray, Any]]" = []
        self._bpop, self._bpush = self._blocks.pop, self._blocks.append
        self._ptr_arg = _daemon.word_arg(self._ptr)  # used only while _ptr is set
        # the handle's value for new blocks: kept after close (a block made
        # while another thread closes the runtime then gets _BAD_HANDLE)
        self._rt_word = self._ptr
        self.node = node
        self._has_sink = False
        # deliver: the class's (the Python path) unless one of these applies
        #: whether deliver is the library's builtin (net_mesh_pyobj_native_deliver)
        self.native = False
        if self.pyobj:
            self.deliver = _fast_deliver(self)  # type: ignore[method-assign]
            if _pyobj.native_available():
                nat = _pyobj.native_deliver(self._rt_word, _daemon._objects,
                                            _native_helper(self, self.deliver))
                if nat is not None:
                    self.deliver = nat  # type: ignore[method-assign]
                    self.native = True
        elif self._begin_block is None:
            self.deliver = self._deliver_callback  # type: ignore[method-assign]
        _live_runtimes.add(self)

    # The pointer lives in the cell _live[0], which the fast deliver closure
    # reads without holding the runtime; closing, a fork and Handle's own
    # bookkeeping all go through here.
    @property  # type: ignore[override]
    def _ptr(self) -> Optional[int]:
        return self._live[0]

    @_ptr.setter
    def _ptr(self, v: Optional[int]) -> None:
        self._live[0] = v

    def _call(self, fn: Callable[..., int], *args: Any, process: bool = False) -> None:
        _daemon.clear_exception()
        rc = fn(self._handle(), *args)
        if rc:
            _raise(rc, process)

    # --- lifecycle -----------------------------------------------------

    def register_factory(self, kind: str, factory: Callable[[], Any]) -> None:
        """Register a daemon kind; ``factory`` is any zero-argument callable
        returning a daemon (e.g. a :class:`MeshDaemon` subclass). It is kept
        alive by the runtime and may be called again on a migration target."""
        k = _kind(kind)
        if not callable(factory):
            raise TypeError("net_mesh: factory must be callable")
        h = self._handle()
        key = _daemon.keep(_daemon._FactorySlot(factory, kind))
        # factory user_data is consumed also on error (finalizer already ran)
        rc = self._lib.net_mesh_runtime_register_factory(h, k, ctypes.byref(_daemon.new_factory()), key)
        if rc:
            _raise(rc)

    def start(self) -> None:
        """Registering → Ready. Idempotent."""
        self._call(self._lib.net_mesh_runtime_start)

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stop every daemon and drain the worker pool (for up to ``timeout``
        seconds; None waits as long as needed). Idempotent; never closes the node."""
        self._call(self._lib.net_mesh_runtime_shutdown, _timeout_ms(timeout))

    def is_ready(self) -> bool:
        v = c_int()
        self._call(self._lib.net_mesh_runtime_is_ready, ctypes.byref(v))
        return bool(v.value)

    def daemon_count(self) -> int:
        v = c_uint64()
        self._call(self._lib.net_mesh_runtime_daemon_count, ctypes.byref(v))
        return v.value

    # --- daemons -------------------------------------------------------

    def _handle_from(self, out: c_void_p) -> DaemonHandle:
        return DaemonHandle(self, out.value)  # type: ignore[arg-type]

    def spawn(self, kind: str, identity: Identity, config: ConfigLike = None) -> DaemonHandle:
        """Spawn a daemon of ``kind`` under ``identity`` (the factory runs once, here)."""
        k, cfg = _kind(kind), _config(config)
        out = c_void_p()
        self._call(self._lib.net_mesh_runtime_spawn, k, _identity(identity), cfg, ctypes.byref(out),
                   process=True)
        return self._handle_from(out)

    def spawn_with_daemon(self, identity: Identity, daemon: Any,
                          factory: Optional[Callable[[], Any]] = None,
                          config: ConfigLike = None) -> DaemonHandle:
        """Spawn an instance you built. ``factory`` (default: ``type(daemon)``)
        rebuilds it on a migration target."""
        slot = _daemon._DaemonSlot(daemon)
        fac = factory if factory is not None else type(daemon)
        if not callable(fac):
            raise TypeError("net_mesh: factory must be callable")
        cfg = _config(config)
        ih = _identity(identity)
        vt = _daemon.new_vtable(slot)
        dkey = _daemon.keep(slot)
        fkey = _daemon.keep(_daemon._FactorySlot(fac, getattr(daemon, "name", "") or ""))
        out = c_void_p()
        self._call(self._lib.net_mesh_runtime_spawn_with_daemon, ih, cfg, ctypes.byref(vt), dkey,
                   ctypes.byref(_daemon.new_factory()), fkey, ctypes.byref(out))
        return self._handle_from(out)

    def spawn_from_snapshot(self, kind: str, identity: Identity, snapshot: bytes,
                            config: ConfigLike = None) -> DaemonHandle:
        """Spawn a daemon of ``kind`` and restore it from ``snapshot`` (CDS1 bytes)."""
        k, cfg = _kind(kind), _config(config)
        snap = _bytes_arg(snapshot, "snapshot")
        out = c_void_p()
        self._call(self._lib.net_mesh_runtime_spawn_from_snapshot, k, _identity(identity), snap,
                   len(snap), cfg, ctypes.byref(out))
        return self._handle_from(out)

    def stop(self, origin_hash: int) -> None:
        """Stop the daemon at ``origin_hash`` and drop its factory entry."""
        self._call(self._lib.net_mesh_runtime_stop, _u64(origin_hash, "origin_hash"))

    def snapshot(self, origin_hash: int) -> Optional[bytes]:
        """The daemon's snapshot as CDS1 bytes, or None for a stateless daemon."""
        if self._begin_block is not None and self._lease_held(origin_hash):
            raise InvalidArgumentError(
                f"net_mesh: a daemon cannot snapshot itself (origin {origin_hash:#018x}) from "
                "inside its own process(); it would wait for itself")
        b = _ffi.Bytes()
        self._call(self._lib.net_mesh_runtime_snapshot, _u64(origin_hash, "origin_hash"), ctypes.byref(b))
        if not b.data:
            return None
        return _ffi.take_bytes(b)

    def _lease_held(self, origin_hash: int) -> bool:
        """Whether this thread holds the lease of the daemon at origin_hash
        (i.e. runs inside its process() through deliver)."""
        held = c_int()
        o = _word_arg(_u64(origin_hash, "origin_hash"))
        self._handle()
        rc = self._held_by(self._ptr_arg, o, _word_arg(_get_ident()), ctypes.byref(held))
        if rc:
            raise last_error(rc)
        return bool(held.value)

    def deliver(self, origin_hash: int, event: CausalEvent) -> "list[CausalEvent]":
        """Deliver event to the daemon at origin_hash; its process runs on this thread. Returns the output
        events (empty when none, or when the daemon is migrating and the event was queued)."""
        # This is the Python path: the event packed into the block by
        # struct, the outputs written into it by Python. A runtime with the
        # fast path (the library reads the objects: _fast_deliver) binds its
        # own deliver, which comes here (as _deliver_blocks) for events the
        # library does not decode.
        if event.__class__ is not CausalEvent or origin_hash.__class__ is not int or self._live[0] is None:
            return self._deliver_slow(origin_hash, event)
        try:
            origin, seq, payload, parent, horizon, recv = event
        except ValueError:  # a CausalEvent made with another length: _deliver_slow raises
            return self._deliver_slow(origin_hash, event)
        if payload.__class__ is not bytes:
            return self._deliver_slow(origin_hash, event)
        try:
            blk = self._bpop()
        except IndexError:
            blk = _new_block(self._rt_word)
        w, arg = blk
        try:
            # the payload goes in by address (no copy): event keeps it alive
            _pack_begin(w, _D_ORIGIN, origin_hash, origin, horizon, seq, parent,
                        id(payload) + _OFF if payload else 0, len(payload), recv, _get_ident())
        except struct.error as e:
            self._bpush(blk)
            _u64(origin_hash, "origin_hash")
            raise InvalidArgumentError(f"net_mesh: bad CausalEvent field (u64 expected): {e}") from None
        # as in the fast path: the block is pushed back only after the try
        try:
            rc = self._begin_block(arg)
            if rc:
                raise last_error(rc)
            if not w[_W_TICKET]:
                res = []  # queued behind a migration
            else:
                try:
                    outs = _objects_get(w[12]).process(event)
                except BaseException as e:
                    raise _lease_failed(self._abort, self._ptr_arg, w, origin_hash, e) from e
                if outs.__class__ is list and len(outs) == 1 and outs[0].__class__ is bytes:
                    o = outs[0]
                    w[13] = 1  # _W_N
                    w[14] = id(o) + _OFF if o else 0
                    w[15] = len(o)
                    rc = self._commit_block(arg)
                    if rc:
                        raise last_error(rc)
                    res = [_tnew(CausalEvent, (origin_hash, w[18], o, w[19], w[20], w[21]))]
                else:
                    res = _commit_other(self._commit_block, self._abort, self._ptr_arg, w, arg,
                                        origin_hash, outs)
        except BaseException:
            _lease_end(self._abort, self._ptr_arg, w, origin_hash)
            self._bpush(blk)
            raise
        self._bpush(blk)
        return res

    _deliver_blocks = deliver

    def deliver_many(self, origin_hash: int,
                     events: "Iterable[CausalEvent]") -> "list[list[CausalEvent]]":
        """Deliver ``events`` (in order) to the daemon at ``origin_hash``;
        its ``process`` runs on this thread for each. Returns one list of
        output events per event, in order — the same outputs, chain and
        stats as calling :meth:`deliver` for each, at a fraction of the cost:
        the daemon is leased once per chunk of up to 1024 events, so two
        library calls serve the whole chunk.

        Every event is checked first (the errors of :meth:`deliver`);
        nothing is delivered if one is bad. While the daemon is migrating
        (its events must be queued) the library refuses batches and the
        events are delivered one by one instead, transparently (queued
        events give empty lists). If ``process`` raises at event k, events
        before k stay delivered and :class:`ProcessFailedError` is raised
        with the daemon's exception as ``__cause__`` and ``.outputs`` the
        outputs of those events; any other NetMeshError raised part-way
        carries ``.outputs`` too. Nothing (not even KeyboardInterrupt)
        leaves the daemon locked. Automatic snapshots
        (``auto_snapshot_interval``) are taken at most once per chunk, at
        its end. Calling it for a daemon from inside that daemon's own
        ``process`` is refused (InvalidArgumentError), as for deliver."""
        return _batch.deliver_many(self, origin_hash, events)

    def _deliver_slow(self, origin_hash: Any, event: Any) -> "list[CausalEvent]":
        """deliver for anything the fast path does not take: checks the
        runtime and the arguments, normalises the event (the daemon is handed
        a plain CausalEvent with bytes) and delivers it."""
        self._handle()
        _u64(origin_hash, "origin_hash")
        if not isinstance(event, CausalEvent):
            raise TypeError(f"net_mesh: event must be a CausalEvent, not {type(event).__name__}")
        if len(event) != 6:  # only tuple.__new__ makes such a thing
            raise TypeError(f"net_mesh: event must be a CausalEvent of 6 fields, not {len(event)}")
        origin, seq, payload, parent, horizon, recv = event
        if payload.__class__ is not bytes:
            payload = _bytes_arg(payload, "payload")
            if payload.__class__ is not bytes:
                payload = bytes(payload)
        return self.deliver(int(origin_hash), _tnew(CausalEvent, (origin, seq, payload, parent, horizon, recv)))

    def _deliver_callback(self, origin_hash: int, event: CausalEvent) -> "list[CausalEvent]":
        """deliver through the process callback (a library without
        host-driven delivery)."""
        p = self._live[0]
        if (p is None or _ffi.forked or event.__class__ is not CausalEvent
                or origin_hash.__class__ is not int or not 0 <= origin_hash <= _U64_MAX):
            self._handle()
            _u64(origin_hash, "origin_hash")
            if not isinstance(event, CausalEvent):
                raise TypeError(f"net_mesh: event must be a CausalEvent, not {type(event).__name__}")
        sc = _pool_pop() if _pool else _Scratch()
        try:
            try:
                origin, seq, payload, parent, horizon, recv = event
                if payload.__class__ is not bytes or event.__class__ is not CausalEvent:
                    # the daemon is handed a plain CausalEvent with bytes
                    payload = _bytes_arg(payload, "payload")
                    if payload.__class__ is not bytes:
                        payload = bytes(payload)
                    event = _tnew(CausalEvent, (origin, seq, payload, parent, horizon, recv))
                # the event as the library will hand it to process(), if it
                # passes it through unchanged (see _daemon._process)
                packed = (origin, horizon, seq, parent,
                          (id(payload) + _OFF if _OFF is not None else _addr(payload)) if payload else 0,
                          len(payload), recv)
                _pack_ev(sc.ev, 0, *packed)
            except struct.error as e:
                raise InvalidArgumentError(f"net_mesh: bad CausalEvent field (u64 expected): {e}") from None
            except ValueError:  # a CausalEvent made with another length
                raise TypeError(f"net_mesh: event must be a CausalEvent of 6 fields, not {len(event)}") from None
            if sc.origin != origin_hash:
                sc.origin_arg = _word_arg(origin_hash)
                sc.origin = origin_hash
            # payload (and event) stay referenced by this frame for the whole call
            _cur[0] = (packed, event)
            rc = self._deliver(self._ptr_arg, sc.origin_arg, sc.ev_arg, sc.lst_arg)
            _cur[0] = None
            if rc:
                _raise(rc, True)
            lv = sc.lst_view
            n = lv[1]
            if not n:
                return []
            # copy the outputs out now: the next call through this list reuses them
            mem, base = _MEM, lv[0]
            if n == 1:
                o, hz, sq, par, pay, plen, rv = _unpack_ev(mem, base)
                return [_tnew(CausalEvent, (o, sq, mem[pay:pay + plen].tobytes() if plen else b"",
                                            par, hz, rv))]
            res = []
            for i in range(n):
                o, hz, sq, par, pay, plen, rv = _unpack_ev(mem, base + i * _EVSZ)
                res.append(_tnew(CausalEvent, (o, sq, mem[pay:pay + plen].tobytes() if plen else b"",
                                               par, hz, rv)))
            return res
        finally:
            _pool_push(sc)

    def submit(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the runtime's worker pool (a library thread); never
        blocks. Callable from any thread. An exception in ``fn`` is printed
        to stderr (there is no caller to hand it to)."""
        if not callable(fn):
            raise TypeError("net_mesh: submit needs a callable")
        h = self._handle()
        key = _daemon.keep(fn)  # consumed also on error: the finalizer drops it
        rc = self._lib.net_mesh_runtime_submit(h, _daemon._TASK, key, _daemon._FINALIZE)
        if rc:
            _raise(rc)

    # --- migration entries and channels -----------------------------------

    def expect_migration(self, kind: str, origin_hash: int, config: ConfigLike = None) -> None:
        """Let this node receive the daemon at ``origin_hash`` by migration
        (the identity arrives sealed inside the snapshot)."""
        self._call(self._lib.net_mesh_runtime_expect_migration, _kind(kind),
                   _u64(origin_hash, "origin_hash"), _config(config))

    def register_migration_target_identity(self, kind: str, identity: Identity,
                                           config: ConfigLike = None) -> None:
        """Like :meth:`expect_migration`, with the full identity (migrations
        without identity transport)."""
        self._call(self._lib.net_mesh_runtime_register_migration_target_identity, _kind(kind),
                   _identity(identity), _config(config))

    # --- live migration --------------------------------------------------

    def start_migration(self, origin_hash: int, source_node: int, target_node: int, *,
                        transport_identity: bool = True,
                        retry_not_ready: Optional[float] = 30.0) -> MigrationHandle:
        """Migrate the daemon at ``origin_hash`` from node ``source_node`` to
        node ``target_node`` (node ids; usually ``source_node`` is this
        runtime's node). With a local source the daemon's ``snapshot`` runs on
        this thread before this returns; from then until cutover, ``deliver``
        here queues events (no outputs) that the target processes in order.

        ``transport_identity``: seal the daemon's identity for the target
        (which then only needs :meth:`expect_migration`); False: the target
        needs :meth:`register_migration_target_identity`.
        ``retry_not_ready``: seconds to keep retrying a target that answers
        not-ready (default 30); None or 0: no retry.
        Raises MigrationError (``.detail``: "daemon-not-found",
        "already-migrating", "target-unavailable", "state-failed"); nothing
        is left behind and the daemon keeps running here.
        """
        o = _u64(origin_hash, "origin_hash")
        src, dst = _u64(source_node, "source_node"), _u64(target_node, "target_node")
        opts = options(transport_identity, retry_not_ready)
        out = c_void_p()
        self._call(self._lib.net_mesh_runtime_start_migration, o, src, dst, ctypes.byref(opts),
                   ctypes.byref(out))
        return MigrationHandle(self, out.value, o, src, dst)  # type: ignore[arg-type]

    def migration_phase(self, origin_hash: int) -> Optional[str]:
        """The phase of the migration of ``origin_hash`` this runtime
        orchestrates, or None (none running)."""
        v = c_int()
        self._call(self._lib.net_mesh_runtime_migration_phase, _u64(origin_hash, "origin_hash"),
                   ctypes.byref(v))
        return phase_name(v.value)

    def set_output_sink(self, callback: Optional[Callable[[int, "list[CausalEvent]"], Any]]) -> None:
        """Receive outputs produced with no caller waiting: ``callback(origin_hash,
        outputs)`` for the replay of queued events on a migration target, and
        for queued events processed here after a failed or cancelled
        migration. It runs on a library thread (calls for one daemon come in
        order); an exception in it is printed and ignored. Without a sink
        such outputs are dropped (they still count in the stats). None removes
        the sink."""
        h = self._handle()
        if callback is None:
            rc = self._lib.net_mesh_runtime_set_output_sink(h, SINK_FN(), None, _ffi.FINALIZE_FN())
        else:
            if not callable(callback):
                raise TypeError("net_mesh: output sink must be callable")
            key = _daemon.keep(_SinkSlot(callback))  # consumed also on error
            rc = self._lib.net_mesh_runtime_set_output_sink(h, _SINK, key, _daemon._FINALIZE)
        if rc:
            _raise(rc)
        self._has_sink = callback is not None

    def subscribe(self, origin_hash: int, publisher: int, channel: str,
                  token: Optional[bytes] = None, timeout: Optional[float] = None) -> None:
        """Subscribe the daemon to ``channel`` on node ``publisher``."""
        tok = b"" if token is None else _bytes_arg(token, "token")
        self._call(self._lib.net_mesh_runtime_subscribe, _u64(origin_hash, "origin_hash"),
                   _u64(publisher, "publisher"), _kind(channel), tok or None, len(tok),
                   _timeout_ms(timeout))

    def unsubscribe(self, origin_hash: int, publisher: int, channel: str,
                    timeout: Optional[float] = None) -> None:
        self._call(self._lib.net_mesh_runtime_unsubscribe, _u64(origin_hash, "origin_hash"),
                   _u64(publisher, "publisher"), _kind(channel), _timeout_ms(timeout))

    def subscriptions(self, origin_hash: int) -> "list[Subscription]":
        """The daemon's subscription ledger."""
        lst = SubscriptionListC()
        self._call(self._lib.net_mesh_runtime_subscriptions, _u64(origin_hash, "origin_hash"),
                   ctypes.byref(lst))
        try:
            return [
                Subscription(it.publisher, (it.channel or b"").decode("utf-8"),
                             ctypes.string_at(it.token, it.token_len) if it.token_len else None)
                for it in (lst.items[i] for i in range(lst.len))
            ]
        finally:
            self._lib.net_mesh_subscription_list_free(ctypes.byref(lst))

    def __enter__(self) -> "DaemonRuntime":
        self._handle()
        return self

    def __repr__(self) -> str:
        return f"<net_mesh.DaemonRuntime{' closed' if self.closed else ''}>"
