"""DaemonRuntime.deliver_many: many events to one daemon under one lease.

net_mesh_runtime_deliver_batch_begin leases the daemon once for a chunk of
events; the daemon's ``process`` runs here on each of them as a plain Python
call; net_mesh_runtime_deliver_batch_commit appends every event's outputs
to the chain (exactly as single deliveries would) and writes their
sequence/parent/horizon/received_at. Two library calls per chunk instead of
two per event. With the library's builtin deliver (rt.native) the common
case — every event returned exactly one exact bytes — is done by the
library from the outputs list itself: net_mesh_pyobj_deliver_batch_commit
builds the commit's records, net_mesh_pyobj_native_results the output
events; anything else (or an older library) takes the Python path below.
"""

from __future__ import annotations

import ctypes
import struct
import threading
from itertools import chain, repeat
from operator import itemgetter
from ctypes import POINTER, c_char_p, c_int, c_size_t, c_uint64, c_void_p
from typing import TYPE_CHECKING, Any, Iterable, List

from . import _daemon, _ffi, _pyobj
from ._daemon import CausalEvent
from ._errors import InvalidArgumentError, NetMeshError, last_error, process_failed

if TYPE_CHECKING:
    from ._runtime import DaemonRuntime

_ffi.extend_signatures({
    "net_mesh_runtime_deliver_batch_begin": (
        c_int, [c_void_p, c_uint64, c_void_p, c_size_t, c_uint64, POINTER(c_uint64), POINTER(c_void_p)]),
    "net_mesh_runtime_deliver_batch_commit": (
        c_int, [c_void_p, c_uint64, c_uint64, c_size_t, c_int, c_char_p, c_size_t, c_void_p, c_size_t,
                POINTER(c_size_t)]),
    "net_mesh_runtime_deliver_batch_abort": (c_int, [c_void_p, c_uint64, c_uint64, c_char_p]),
})

#: Events per lease: a long list is delivered in chunks, so one lease never
#: holds the daemon (or the records of its outputs) for too long.
CHUNK = 1024
_BATCH_REFUSED = -22
_OFF = _daemon.BYTES_OFFSET
_EVSZ = _daemon._EV.size
_pack_ev = _daemon._EV.pack
_pack_q = struct.Struct("<Q").pack
_pack_qq = struct.Struct("<QQ").pack
_get_ident = threading.get_ident
_objects_get = _daemon._objects.__getitem__
_as_payload = _daemon._as_payload
_tnew = tuple.__new__
_item2 = itemgetter(2)
_EVENT_T = {CausalEvent}
_BYTES_T = {bytes}
_SIX = {6}


def _normalise(evs: "List[Any]") -> "List[CausalEvent]":
    """The events as CausalEvents with bytes payloads (what process() gets);
    TypeError / InvalidArgumentError before anything is delivered."""
    if (set(map(type, evs)) <= _EVENT_T and set(map(len, evs)) == _SIX
            and set(map(type, map(_item2, evs))) <= _BYTES_T):
        return evs  # the common case, checked in C loops
    for i, e in enumerate(evs):
        if e.__class__ is not CausalEvent:
            if not isinstance(e, CausalEvent):
                raise TypeError(f"net_mesh: events[{i}] must be a CausalEvent, not {type(e).__name__}")
        if len(e) != 6:  # only tuple.__new__ makes such a thing
            raise TypeError(f"net_mesh: events[{i}] must be a CausalEvent of 6 fields, not {len(e)}")
        p = e[2]
        if p.__class__ is not bytes:
            if not isinstance(p, (bytes, bytearray, memoryview)):
                raise TypeError(f"net_mesh: events[{i}].payload must be bytes, not {type(p).__name__}")
            p = bytes(p)
        if e.__class__ is not CausalEvent or p is not e[2]:
            evs[i] = _tnew(CausalEvent, (e[0], e[1], p, e[3], e[4], e[5]))
    return evs


_UNDECODABLE = 1  # NET_MESH_PYOBJ_UNDECODABLE
_natives: "list[Any]" = []  # [(batch commit, results) or None], made on first use


def _native() -> Any:
    """(net_mesh_pyobj_deliver_batch_commit, net_mesh_pyobj_native_results)
    for runtimes whose deliver is the library's builtin (rt.native: the
    library has the interpreter's layout and functions), or None with an
    older library. Both read the outs list of _batch in place (GIL held):
    the commit builds the records when every event returned exactly one
    exact bytes; results builds the output events from them and the meta."""
    if not _natives:
        try:
            commit = _ffi.raw_function("net_mesh_pyobj_deliver_batch_commit", hold_gil=True)
            commit.argtypes = [c_void_p, c_uint64, c_uint64, c_uint64, c_size_t, c_int, POINTER(c_uint64),
                               c_size_t, POINTER(c_size_t)]
            results = _ffi.raw_function("net_mesh_pyobj_native_results", c_uint64, hold_gil=True)
            results.argtypes = [c_uint64, c_uint64, POINTER(c_uint64), c_size_t]
            _natives.append((commit, _pyobj._returns_object(results)))
        except AttributeError:  # an older library
            _natives.append(None)
    return _natives[0]


_decoder: "list[Any]" = []  # [net_mesh_pyobj_decode_events or None], made on first use


def _decode(evs: "List[Any]") -> Any:
    """evs as a net_mesh_event array read by the library from the objects
    themselves (net_mesh_pyobj_decode_events; the runtime's pyobj layout
    check passed), or None when an event is not exactly a CausalEvent of
    u64 ints and bytes (the Python path then normalises, packs or raises)."""
    if not _decoder:
        try:
            fn = _ffi.raw_function("net_mesh_pyobj_decode_events", hold_gil=True)  # reads a list: GIL held
            fn.argtypes = [c_uint64, c_size_t, c_size_t, c_void_p, c_void_p]
        except AttributeError:  # an older library
            fn = None
        _decoder.append(fn)
    fn = _decoder[0]
    if fn is None:
        return None
    n = len(evs)
    buf = (ctypes.c_char * (_EVSZ * n))()
    return buf if fn(id(evs), 0, n, buf, None) == 0 else None


def _pack_all(evs: "List[CausalEvent]", off: "int | None" = _OFF) -> bytes:
    """The events as one net_mesh_event array (payloads by address: evs keeps
    them alive; off 0 packs NULL payload addresses, to check fields only). A
    field that is no u64 is InvalidArgumentError."""
    try:
        if not off:
            return b"".join([_pack_ev(o, hz, sq, par, 0, len(p), rv) for o, sq, p, par, hz, rv in evs])
        return b"".join([_pack_ev(o, hz, sq, par, id(p) + off if p else 0, len(p), rv)
                         for o, sq, p, par, hz, rv in evs])
    except (struct.error, TypeError) as e:
        raise InvalidArgumentError(f"net_mesh: bad CausalEvent field (u64 expected): {e}") from None


def deliver_many(rt: "DaemonRuntime", origin_hash: int, events: Iterable[CausalEvent]) -> "List[List[CausalEvent]]":
    """See DaemonRuntime.deliver_many."""
    from ._runtime import _u64

    rt._handle()
    _u64(origin_hash, "origin_hash")
    if isinstance(events, (bytes, str, CausalEvent)):
        raise TypeError("net_mesh: deliver_many needs an iterable of CausalEvent")
    evs = list(events)  # our own list: nobody else changes it while the library reads it
    done: "List[List[CausalEvent]]" = []
    if not evs:
        return done
    lib = _ffi.lib()
    if (rt._begin_block is None or _OFF is None
            or isinstance(lib.net_mesh_runtime_deliver_batch_begin, _ffi._Missing)):
        evs = _normalise(evs)
        _pack_all(evs, 0)  # every field checked before the first delivery
        return _singly(rt, origin_hash, evs, done)  # no batches here: one by one
    arr = _decode(evs) if rt.pyobj else None
    if arr is not None:
        base = ctypes.addressof(arr)
    else:
        evs = _normalise(evs)
        arr = _pack_all(evs)
        base = id(arr) + _OFF
    try:
        for start in range(0, len(evs), CHUNK):
            chunk = evs[start:start + CHUNK]
            if not _batch(rt, lib, origin_hash, chunk, base + start * _EVSZ, done):
                # refused (the daemon is migrating): these and the rest one by
                # one, which queues them correctly
                return _singly(rt, origin_hash, evs[start:], done)
    except NetMeshError as e:
        e.outputs = done  # type: ignore[attr-defined]
        raise
    return done


def _singly(rt: "DaemonRuntime", origin_hash: int, evs: "List[CausalEvent]",
            done: "List[List[CausalEvent]]") -> "List[List[CausalEvent]]":
    deliver = rt.deliver
    try:
        for e in evs:
            done.append(deliver(origin_hash, e))
    except NetMeshError as e:
        e.outputs = done  # type: ignore[attr-defined]
        raise
    return done


def _batch(rt: "DaemonRuntime", lib: Any, origin_hash: int, chunk: "List[CausalEvent]", addr: int,
           done: "List[List[CausalEvent]]") -> bool:
    """One lease: begin, process each event here, commit. Appends the
    outputs per event to done; False when the batch was refused (nothing
    changed). Raises ProcessFailedError when process failed at some event
    (the events before it are committed and in done)."""
    n = len(chunk)
    tk, ud = c_uint64(), c_void_p()
    rc = lib.net_mesh_runtime_deliver_batch_begin(rt._handle(), origin_hash, addr, n, _get_ident(),
                                                  ctypes.byref(tk), ctypes.byref(ud))
    if rc == _BATCH_REFUSED:
        return False
    if rc:
        raise last_error(rc)
    ticket = tk.value
    # From here on the lease is open until a commit or abort returned:
    # whatever interrupts this frame, the except below ends it. outs holds,
    # per event done, its one output (bytes) or its outputs (a list); an
    # event counts as done once its entry is appended (one atomic step).
    outs: "List[Any]" = []
    keep = outs.append
    cause = None
    try:
        proc = _objects_get(ud.value).process
        for e in chunk:
            try:
                r = proc(e)
                if r.__class__ is list and len(r) == 1 and r[0].__class__ is bytes:
                    keep(r[0])
                    continue
                r = [o if o.__class__ is bytes else _as_payload(o) for o in r] if r else _NONE
            except BaseException as ex:
                cause = ex
                break
            keep(r)
        k = len(outs)
        failed = 1 if cause is not None else 0
        nat = _native() if rt.native else None
        rc = _UNDECODABLE
        if nat is not None:
            # every output exact bytes (checked by the library): it builds
            # the records; anything else changes nothing (lease still open)
            total = k
            meta = (c_uint64 * (4 * k))() if k else None
            rc = nat[0](rt._rt_word, origin_hash, ticket, id(outs), k, failed, meta, 4 * k,
                        ctypes.byref(c_size_t()))
        if rc == _UNDECODABLE:
            nat = None
            rc, meta, total = _commit_records(rt, lib, origin_hash, ticket, outs, failed)
        ticket = 0
    except BaseException:
        if ticket:
            _end_interrupted(rt, lib, origin_hash, ticket, outs, n)
        raise
    if rc:
        raise last_error(rc)
    res = nat[1](id(origin_hash), id(outs), meta, total) if nat is not None and total else None
    done += res if res is not None else _results(origin_hash, outs, meta, total)
    if cause is not None:
        raise process_failed(cause) from cause
    return True


_NONE: "List[bytes]" = []  # shared, never mutated: an event without outputs
_ONE = b"\x01\0\0\0\0\0\0\0"
_ZERO = b"\0\0\0\0\0\0\0\0"
_iter_meta = struct.Struct("=4Q").iter_unpack


def _records(outs: "List[Any]") -> "tuple[bytes, int]":
    """The commit's records for outs (see _batch) and the number of outputs."""
    if all(map(bytes.__instancecheck__, outs)):
        # every event one output: [1][len][bytes] each, built in C loops
        heads = map(_pack_qq, repeat(1), map(len, outs))
        return b"".join(chain.from_iterable(zip(heads, outs))), len(outs)
    parts = []
    total = 0
    for r in outs:
        if r.__class__ is bytes:
            parts += (_pack_qq(1, len(r)), r)
            total += 1
        elif not r:
            parts.append(_ZERO)
        else:
            parts.append(_pack_q(len(r)))
            for o in r:
                parts += (_pack_q(len(o)), o)
            total += len(r)
    return b"".join(parts), total


def _commit_records(rt: "DaemonRuntime", lib: Any, origin_hash: int, ticket: int, outs: "List[Any]",
                    failed: int) -> "tuple[int, Any, int]":
    """Commit the lease with outs (see _batch) as records built in Python:
    (status, the meta the library filled, the number of outputs)."""
    recs, total = _records(outs)
    meta = (c_uint64 * (4 * total))() if total else None
    rc = lib.net_mesh_runtime_deliver_batch_commit(rt._rt_word, origin_hash, ticket, len(outs), failed, recs,
                                                   len(recs), meta, 4 * total, ctypes.byref(c_size_t()))
    return rc, meta, total


def _results(origin_hash: int, outs: "List[Any]", meta: Any, total: int) -> "List[List[CausalEvent]]":
    """The output events per event, from the payloads and the commit's meta."""
    if not total:
        return [[] for _ in outs]
    it = _iter_meta(meta)
    if total == len(outs) and all(map(bytes.__instancecheck__, outs)):
        return [[_tnew(CausalEvent, (origin_hash, s, o, p, h, rv))] for o, (s, p, h, rv) in zip(outs, it)]
    res = []
    for r in outs:
        if r.__class__ is bytes:
            s, p, h, rv = next(it)
            res.append([_tnew(CausalEvent, (origin_hash, s, r, p, h, rv))])
        else:
            evs = []
            for o in r:
                s, p, h, rv = next(it)
                evs.append(_tnew(CausalEvent, (origin_hash, s, o, p, h, rv)))
            res.append(evs)
    return res


def _end_interrupted(rt: "DaemonRuntime", lib: Any, origin_hash: int, ticket: int, outs: "List[Any]",
                     n: int) -> None:
    """End a lease whose frame was interrupted outside process() (e.g.
    KeyboardInterrupt between two bytecodes): commit the events done, the
    next one (if any) as failed; if that is refused, abort. The outputs of
    the committed events are not reported (the caller gets the exception)."""
    try:
        k = len(outs)
        rc, _, _ = _commit_records(rt, lib, origin_hash, ticket, outs[:k], 1 if k < n else 0)
        if rc == 0:
            return
    except BaseException:
        pass
    lib.net_mesh_runtime_deliver_batch_abort(rt._rt_word, origin_hash, ticket, b"interrupted")


