"""Live migration: MigrationHandle, progress, completion and the output sink.

Threads. The library calls the progress, completion and output-sink
trampolines below on its own threads; ctypes takes the GIL for them. Each
trampoline catches every exception (nothing may unwind into Go) and reports
it on stderr. The Python objects a callback needs are kept in
``_daemon._objects`` under the ``user_data`` key and dropped by the library's
finalizer, so no caller has to hold references.

Completion is observed once per migration (one ``on_complete`` installed when
the handle is made) and fanned out to any number of waiters: threads blocked
in :meth:`MigrationHandle.wait` and asyncio futures of
:meth:`MigrationHandle.wait_async` (settled through
``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import ctypes
import struct
import sys
import threading
import time
import traceback
import weakref
from ctypes import CFUNCTYPE, POINTER, c_char, c_int, c_int64, c_uint32, c_uint64, c_void_p
from typing import Any, Callable, NamedTuple, Optional

from . import _daemon, _ffi
from ._daemon import CausalEvent
from ._errors import InvalidArgumentError, NetMeshError, error_for, last_error
from ._handle import Handle

_get_ident = threading.get_ident


class MigrationOptionsC(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("transport_identity", c_int), ("retry_not_ready_ms", c_int64),
                ("no_retry", c_int)]


class MigrationResultC(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("finished", c_int), ("status", c_int), ("attempts", c_uint32),
                ("kind", c_char * 64), ("message", _ffi.Bytes)]


PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_int, c_uint64, c_uint64, c_uint64, c_uint64)
COMPLETE_FN = CFUNCTYPE(None, c_void_p, c_int)
SINK_FN = CFUNCTYPE(None, c_void_p, c_uint64, c_void_p)

_vp = c_void_p
_ffi.extend_signatures({
    "net_mesh_migration_options_init": (None, [POINTER(MigrationOptionsC)]),
    "net_mesh_runtime_start_migration": (c_int, [_vp, c_uint64, c_uint64, c_uint64,
                                                 POINTER(MigrationOptionsC), POINTER(c_void_p)]),
    "net_mesh_migration_phase": (c_int, [_vp, POINTER(c_int)]),
    "net_mesh_runtime_migration_phase": (c_int, [_vp, c_uint64, POINTER(c_int)]),
    "net_mesh_migration_wait": (c_int, [_vp, c_int64, c_uint32]),
    "net_mesh_migration_result_get": (c_int, [_vp, POINTER(MigrationResultC)]),
    "net_mesh_migration_cancel": (c_int, [_vp]),
    "net_mesh_migration_on_progress": (c_int, [_vp, PROGRESS_FN, _vp, _ffi.FINALIZE_FN]),
    "net_mesh_migration_on_complete": (c_int, [_vp, COMPLETE_FN, _vp, _ffi.FINALIZE_FN]),
    "net_mesh_migration_free": (None, [_vp]),
    "net_mesh_runtime_set_output_sink": (c_int, [_vp, SINK_FN, _vp, _ffi.FINALIZE_FN]),
})

#: NET_MESH_MIGRATION_PHASE_* -> the phase name (None: no migration / ended).
PHASES: "dict[int, Optional[str]]" = {
    0: None, 1: "snapshot", 2: "transfer", 3: "restore", 4: "replay", 5: "cutover", 6: "complete",
}
_WAIT_ABANDON = 0x1
_TIMEOUT = -12
#: How long one blocking library wait lasts; between two, Ctrl-C is seen.
WAIT_STEP = 0.05


def phase_name(code: int) -> Optional[str]:
    return PHASES.get(code, f"unknown-{code}")


class MigrationProgress(NamedTuple):
    """One progress notification: the phase and how much of the snapshot
    (bytes and 7000-byte chunks) was handed to the mesh in this attempt;
    totals are 0 until known."""

    phase: Optional[str]
    bytes_moved: int
    total_bytes: int
    chunks_moved: int
    total_chunks: int


def report_callback_error(what: str, exc: BaseException) -> None:
    """A callback with no caller raised: print it (like an unhandled thread
    exception) and carry on."""
    try:
        print(f"net_mesh: exception in {what} (ignored):", file=sys.stderr)
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    except BaseException:
        pass


# --- completion state, shared by every waiter --------------------------------


class _Completion:
    """Filled once, on a library thread, when the migration ends."""

    __slots__ = ("done", "status", "lock", "futures")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.status: Optional[int] = None
        self.lock = threading.Lock()
        self.futures: "list[tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]]" = []

    def finish(self, status: int) -> None:
        with self.lock:
            if self.status is not None:
                return
            self.status = status
            futs, self.futures = self.futures, []
        self.done.set()
        for loop, fut in futs:
            _settle_threadsafe(loop, fut, status)

    def add_future(self, loop: "asyncio.AbstractEventLoop", fut: "asyncio.Future[int]") -> None:
        with self.lock:
            if self.status is None:
                self.futures.append((loop, fut))
                return
            status = self.status
        fut.set_result(status)

    def drop_future(self, fut: "asyncio.Future[int]") -> None:
        with self.lock:
            self.futures = [(lp, f) for lp, f in self.futures if f is not fut]


def _settle(fut: "asyncio.Future[int]", status: int) -> None:
    if not fut.done():
        fut.set_result(status)


def _settle_threadsafe(loop: "asyncio.AbstractEventLoop", fut: "asyncio.Future[int]", status: int) -> None:
    try:
        loop.call_soon_threadsafe(_settle, fut, status)
    except RuntimeError:  # the loop is closed: nobody awaits any more
        pass


# --- trampolines (library threads) --------------------------------------------


class _ProgressSlot:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[MigrationProgress], Any]) -> None:
        self.callback = callback


def _on_progress(ud: int, phase: int, moved: int, total: int, chunks: int, total_chunks: int) -> None:
    try:
        if _get_ident() not in _daemon.KEPT_THREADS:
            _daemon.keep_thread_state()
        _daemon._objects[ud].callback(MigrationProgress(phase_name(phase), moved, total, chunks, total_chunks))
    except BaseException as e:
        report_callback_error("a migration progress callback", e)


def _on_complete(ud: int, status: int) -> None:
    try:
        if _get_ident() not in _daemon.KEPT_THREADS:
            _daemon.keep_thread_state()
        _daemon._objects[ud].finish(status)
    except BaseException as e:
        report_callback_error("the migration completion callback", e)


class _SinkSlot:
    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[int, "list[CausalEvent]"], Any]) -> None:
        self.callback = callback


_LIST = struct.Struct("@PNP")


def read_event_list(addr: int) -> "list[CausalEvent]":
    """Copy the events of the net_mesh_event_list at addr into Python."""
    mem = _daemon.MEM
    base, n, _ = _LIST.unpack_from(mem, addr)
    ev = _daemon._event_from
    size = _daemon._EV_SIZE
    return [ev(base + i * size) for i in range(n)]




def _on_sink(ud: int, origin: int, outputs: Optional[int]) -> None:
    try:
        if _get_ident() not in _daemon.KEPT_THREADS:
            _daemon.keep_thread_state()
        evs = read_event_list(outputs) if outputs else []
        _daemon._objects[ud].callback(origin, evs)
    except BaseException as e:
        report_callback_error("the output sink", e)


_PROGRESS = PROGRESS_FN(_on_progress)
_COMPLETE = COMPLETE_FN(_on_complete)
_SINK = SINK_FN(_on_sink)

# Objects whose library callbacks must stop before the interpreter finalizes
# (a library thread entering Python after that would hang or crash).
_live_migrations: "weakref.WeakSet[MigrationHandle]" = weakref.WeakSet()


# --- the handle --------------------------------------------------------------


def options(transport_identity: bool, retry_not_ready: Optional[float]) -> MigrationOptionsC:
    """Build net_mesh_migration_options from the Python arguments."""
    if not isinstance(transport_identity, bool):
        raise TypeError("net_mesh: transport_identity must be a bool")
    o = MigrationOptionsC()
    _ffi.lib().net_mesh_migration_options_init(ctypes.byref(o))
    o.transport_identity = 1 if transport_identity else 0
    if retry_not_ready is None:
        o.no_retry = 1
    else:
        if not isinstance(retry_not_ready, (int, float)) or isinstance(retry_not_ready, bool):
            raise TypeError("net_mesh: retry_not_ready must be seconds (a number) or None")
        if retry_not_ready != retry_not_ready or retry_not_ready < 0:
            raise InvalidArgumentError("net_mesh: retry_not_ready must be >= 0 seconds or None")
        if retry_not_ready == 0:
            o.no_retry = 1  # a zero budget: the first not-ready fails
        else:
            o.retry_not_ready_ms = max(1, min(int(retry_not_ready * 1000), 2**62))
    return o


class MigrationHandle(Handle):
    """A live migration started by :meth:`DaemonRuntime.start_migration`.

    The migration goes on whether or not anybody waits; closing the handle
    (or letting it be collected) does not stop it. All methods may be called
    from any thread.
    """

    _what = "migration"

    def __init__(self, runtime: Any, ptr: int, origin_hash: int, source_node: int,
                 target_node: int) -> None:
        lib = _ffi.lib()
        super().__init__(ptr, lib.net_mesh_migration_free)
        self._lib = lib
        self.runtime = runtime
        self.origin_hash = origin_hash
        self.source_node = source_node
        self.target_node = target_node
        self._completion = _Completion()
        key = _daemon.keep(self._completion)  # consumed also on error
        rc = lib.net_mesh_migration_on_complete(ptr, _COMPLETE, key, _daemon._FINALIZE)
        if rc:
            err = last_error(rc)
            self.close()
            raise err
        _live_migrations.add(self)

    # --- observing ------------------------------------------------------

    @property
    def phase(self) -> Optional[str]:
        """"snapshot", "transfer", "restore", "replay", "cutover", "complete",
        or None once the migration has ended."""
        v = c_int()
        rc = self._lib.net_mesh_migration_phase(self._handle(), ctypes.byref(v))
        if rc:
            raise last_error(rc)
        return phase_name(v.value)

    @property
    def done(self) -> bool:
        """True once the migration has ended (completed, failed or cancelled)."""
        return self._completion.done.is_set() or self._result().finished == 1

    @property
    def attempts(self) -> int:
        """Attempts made so far (the first included); 0 until it has ended."""
        return self._result().attempts

    def _result(self) -> MigrationResultC:
        r = MigrationResultC()
        r.size = ctypes.sizeof(MigrationResultC)
        rc = self._lib.net_mesh_migration_result_get(self._handle(), ctypes.byref(r))
        if rc:
            raise last_error(rc)
        return r

    def error(self) -> Optional[NetMeshError]:
        """The failure of an ended migration as an exception (not raised),
        None if it completed or is still running."""
        r = self._result()
        msg = _ffi.take_bytes(r.message).decode("utf-8", "replace")  # frees it
        if not r.finished or r.status == 0:
            return None
        return error_for(r.status, msg, r.kind.decode("utf-8", "replace"))

    def on_progress(self, callback: Optional[Callable[[MigrationProgress], Any]]) -> None:
        """Call ``callback(progress)`` (a :class:`MigrationProgress`) at every
        phase change and every chunk moved. It first receives the phases the
        migration already went through. It runs on a library thread, one call
        at a time, in order; an exception in it is printed and ignored.
        Replaces the previous callback; None removes it."""
        h = self._handle()
        if callback is None:
            rc = self._lib.net_mesh_migration_on_progress(h, PROGRESS_FN(), None, _ffi.FINALIZE_FN())
        else:
            if not callable(callback):
                raise TypeError("net_mesh: progress callback must be callable")
            key = _daemon.keep(_ProgressSlot(callback))  # consumed also on error
            rc = self._lib.net_mesh_migration_on_progress(h, _PROGRESS, key, _daemon._FINALIZE)
        if rc:
            raise last_error(rc)

    # --- waiting --------------------------------------------------------

    def wait(self, timeout: Optional[float] = None, *, abandon: bool = True) -> None:
        """Block until the migration ends; raise its failure
        (:class:`MigrationFailedError` with ``.reason``, or
        :class:`MigrationError`).

        ``timeout`` (seconds) bounds the wait. At the deadline, by default
        (``abandon=True``, the contract of the reference's
        ``wait_with_timeout``) the migration is abandoned: before cutover both
        nodes are told, the target rolls back, the daemon resumes on the
        source, and :class:`MigrationError` (detail ``"state-failed"``,
        "timed out") is raised. With ``abandon=False`` the migration goes on
        and :class:`NetMeshTimeoutError` is raised; wait again later.

        The wait is made of short library waits, so Ctrl-C interrupts it
        (the migration goes on).
        """
        if timeout is not None:
            if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
                raise TypeError("net_mesh: timeout must be a number of seconds or None")
            if timeout != timeout or timeout < 0:
                raise InvalidArgumentError("net_mesh: timeout must be >= 0 seconds")
        deadline = None if timeout is None else time.monotonic() + timeout
        wait = self._lib.net_mesh_migration_wait
        while True:
            h = self._handle()
            step = WAIT_STEP
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    rc = wait(h, 0, _WAIT_ABANDON if abandon else 0)
                    if rc:
                        raise last_error(rc)
                    return
            rc = wait(h, max(1, int(step * 1000)), 0)
            if rc == _TIMEOUT:
                continue  # back in Python: a pending KeyboardInterrupt is raised here
            if rc:
                raise last_error(rc)
            return

    async def wait_async(self, timeout: Optional[float] = None, *, abandon: bool = True) -> None:
        """``await`` the end of the migration without blocking the event loop
        (the library's completion callback settles a future through
        ``loop.call_soon_threadsafe``). Raises like :meth:`wait`; ``timeout``
        and ``abandon`` mean the same."""
        self._handle()
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[int]" = loop.create_future()
        comp = self._completion
        comp.add_future(loop, fut)
        try:
            if timeout is None:
                await fut
            else:
                try:
                    await asyncio.wait_for(asyncio.shield(fut), timeout)
                except asyncio.TimeoutError:
                    if fut.done():
                        pass
                    else:
                        rc = self._lib.net_mesh_migration_wait(self._handle(), 0,
                                                               _WAIT_ABANDON if abandon else 0)
                        if rc:
                            raise last_error(rc) from None
                        return
        finally:
            comp.drop_future(fut)
        err = self.error()
        if err is not None:
            raise err

    # --- control --------------------------------------------------------

    def cancel(self) -> None:
        """Abort before cutover: the target rolls back and the daemon resumes
        on the source (its queued events are processed there; outputs go to
        the source runtime's output sink). Raises MigrationError
        ("wrong-phase") past cutover or once ended."""
        rc = self._lib.net_mesh_migration_cancel(self._handle())
        if rc:
            raise last_error(rc)

    def __enter__(self) -> "MigrationHandle":
        self._handle()
        return self

    def __repr__(self) -> str:
        return (f"<net_mesh.MigrationHandle origin_hash={self.origin_hash:#018x} "
                f"{self.source_node:#x}->{self.target_node:#x}{' closed' if self.closed else ''}>")
