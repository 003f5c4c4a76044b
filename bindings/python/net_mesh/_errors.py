"""The exception hierarchy, mapped from the C ABI's status codes.

Every exception is a :class:`NetMeshError` whose ``.kind`` is the stable
symbolic string shared by every binding (``"not-ready"``, ``"daemon-moved"``,
...). ``.code`` is the C status (0 for errors raised by Python itself).
"""

from __future__ import annotations

import ctypes
from typing import Optional


class NetMeshError(Exception):
    """Base of every error raised by net_mesh; ``.kind`` is the symbolic kind."""

    kind: str = "internal"

    def __init__(self, message: str = "", *, kind: Optional[str] = None, code: int = 0,
                 detail: str = "") -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.code = code
        #: For migration errors: the local kind or the protocol reason; else "".
        self.detail = detail


class NotReadyError(NetMeshError):
    """The runtime has not been started (Registering)."""

    kind = "not-ready"


class ShuttingDownError(NetMeshError):
    """The runtime is shutting down or shut down."""

    kind = "shutting-down"


class FactoryAlreadyRegisteredError(NetMeshError):
    """A factory is already registered for this kind."""

    kind = "factory-already-registered"


class FactoryNotFoundError(NetMeshError):
    """No factory is registered for this kind."""

    kind = "factory-not-found"


class SnapshotIdentityMismatchError(NetMeshError):
    """The snapshot belongs to another identity."""

    kind = "snapshot-identity-mismatch"


class DaemonNotFoundError(NetMeshError):
    """No daemon with this origin hash runs on this runtime."""

    kind = "daemon-not-found"


class DaemonMovedError(NetMeshError):
    """The daemon migrated away; ``.node_id`` names the node it went to."""

    kind = "daemon-moved"

    def __init__(self, message: str = "", *, node_id: int = 0, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.node_id = node_id


class AlreadyRegisteredError(NetMeshError):
    """This origin hash is already registered (a daemon or a migration entry)."""

    kind = "already-registered"


class ProcessFailedError(NetMeshError):
    """A daemon's ``process`` failed; a Python exception is the ``__cause__``."""

    kind = "process-failed"


class RestoreFailedError(NetMeshError):
    """Restoring daemon state failed (``restore`` raised or bad snapshot bytes)."""

    kind = "restore-failed"


class InvalidArgumentError(NetMeshError, ValueError):
    """An argument was out of range or malformed."""

    kind = "invalid-argument"


class NetMeshTimeoutError(NetMeshError, TimeoutError):
    """An operation did not finish in time."""

    kind = "timeout"


class MigrationError(NetMeshError):
    """A local migration error; ``.detail`` is its kind (e.g. "target-unavailable")."""

    kind = "migration"


class MigrationFailedError(MigrationError):
    """The migration protocol reported a failure; ``.reason`` says which."""

    kind = "migration-failed"

    @property
    def reason(self) -> str:
        return self.detail


class QueueFullError(NetMeshError):
    """The runtime's bounded work queue is full; nothing was queued, try again later."""

    kind = "queue-full"


class BadHandleError(NetMeshError):
    """The object is closed, freed, or of the wrong kind."""

    kind = "bad-handle"


class CallbackFailedError(NetMeshError):
    """A host callback (factory, snapshot, ...) failed; see ``__cause__``."""

    kind = "callback-failed"


class InternalError(NetMeshError):
    """The library failed internally (a caught panic, out of memory, ...)."""

    kind = "internal"


class NetMeshIOError(NetMeshError, OSError):
    """A network or socket failure (bind, send, peer unreachable)."""

    kind = "io"


# ABI status -> (class, kind). Kinds match net_mesh_status_kind().
_BY_CODE: dict[int, tuple[type[NetMeshError], str]] = {
    -1: (NotReadyError, "not-ready"),
    -2: (ShuttingDownError, "shutting-down"),
    -3: (FactoryAlreadyRegisteredError, "factory-already-registered"),
    -4: (FactoryNotFoundError, "factory-not-found"),
    -5: (SnapshotIdentityMismatchError, "snapshot-identity-mismatch"),
    -6: (DaemonNotFoundError, "daemon-not-found"),
    -7: (DaemonMovedError, "daemon-moved"),
    -8: (AlreadyRegisteredError, "already-registered"),
    -9: (ProcessFailedError, "process-failed"),
    -10: (RestoreFailedError, "restore-failed"),
    -11: (InvalidArgumentError, "invalid-argument"),
    -12: (NetMeshTimeoutError, "timeout"),
    -13: (MigrationError, "migration"),
    -14: (MigrationFailedError, "migration-failed"),
    -15: (BadHandleError, "bad-handle"),
    -16: (CallbackFailedError, "callback-failed"),
    -17: (InternalError, "internal-panic"),
    -18: (InternalError, "no-memory"),
    -19: (NetMeshIOError, "io"),
    -20: (InternalError, "internal"),
    -21: (QueueFullError, "queue-full"),
    # deliver_many handles it (falls back to single delivers); never raised
    -22: (InternalError, "batch-refused"),
}


def error_for(code: int, message: str, detail: str = "", node_id: int = 0) -> NetMeshError:
    """Build the exception for an ABI status (no library call)."""
    cls, kind = _BY_CODE.get(code, (InternalError, "unknown"))
    if cls is DaemonMovedError:
        return DaemonMovedError(message, node_id=node_id, kind=kind, code=code, detail=detail)
    return cls(message, kind=kind, code=code, detail=detail)


def last_error(code: int) -> NetMeshError:
    """The exception for status ``code`` just returned on this thread.

    Must run on the thread that made the failing call, before any other
    library call (the library keeps the last error per thread).
    """
    from . import _ffi

    lib = _ffi.lib()
    msg = (lib.net_mesh_last_error() or b"").decode("utf-8", "replace")
    detail = (lib.net_mesh_last_error_detail() or b"").decode("utf-8", "replace")
    node_id = 0
    if code == -7:
        out = ctypes.c_uint64()
        if lib.net_mesh_last_error_moved_to(ctypes.byref(out)) == 0:
            node_id = out.value
    return error_for(code, msg or f"net_mesh: {code}", detail, node_id)


def check(rc: int) -> None:
    """Raise the mapped exception if ``rc`` is a failure status."""
    if rc != 0:
        raise last_error(rc)


def process_failed(cause: BaseException) -> ProcessFailedError:
    """The error a deliver raises when the daemon's process raised cause (or
    returned outputs that are not bytes); its str() is the message the
    lease's abort hands the library."""
    return ProcessFailedError(f"net_mesh: process failed: {type(cause).__name__}: {cause}",
                              kind="process-failed", code=-9)


def closed(what: str) -> BadHandleError:
    return BadHandleError(f"net_mesh: {what} is closed")
