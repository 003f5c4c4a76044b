"""net_mesh: run daemons written in Python on libnetmesh (pure ctypes).

The shared library ``libnetmesh.so`` is loaded on first use; see
:func:`load_library` for where it is looked up.

Fork hazard: the Go runtime inside the library does not survive ``fork()``.
A child forked after the library was loaded refuses to use it (NetMeshError
with kind ``"forked"``). Start worker processes with multiprocessing's
``"spawn"`` method or with subprocess.
"""

from ._errors import (
    AlreadyRegisteredError,
    BadHandleError,
    CallbackFailedError,
    DaemonMovedError,
    DaemonNotFoundError,
    FactoryAlreadyRegisteredError,
    FactoryNotFoundError,
    InternalError,
    InvalidArgumentError,
    MigrationError,
    MigrationFailedError,
    NetMeshError,
    NetMeshIOError,
    NetMeshTimeoutError,
    NotReadyError,
    ProcessFailedError,
    QueueFullError,
    RestoreFailedError,
    ShuttingDownError,
    SnapshotIdentityMismatchError,
)
from ._ffi import LibraryError, library_path, load_library, version
from ._identity import Identity
from ._daemon import CausalEvent, MeshDaemon
from ._mesh import Node, NodeStats
from ._migration import MigrationHandle, MigrationProgress
from ._runtime import DaemonConfig, DaemonHandle, DaemonRuntime, DaemonStats, Subscription

__version__ = "0.1.0"

__all__ = [
    "AlreadyRegisteredError",
    "BadHandleError",
    "CausalEvent",
    "CallbackFailedError",
    "DaemonConfig",
    "DaemonHandle",
    "DaemonMovedError",
    "DaemonNotFoundError",
    "DaemonRuntime",
    "DaemonStats",
    "FactoryAlreadyRegisteredError",
    "FactoryNotFoundError",
    "Identity",
    "InternalError",
    "InvalidArgumentError",
    "LibraryError",
    "MeshDaemon",
    "MigrationError",
    "MigrationFailedError",
    "MigrationHandle",
    "MigrationProgress",
    "NetMeshError",
    "NetMeshIOError",
    "NetMeshTimeoutError",
    "Node",
    "NodeStats",
    "NotReadyError",
    "ProcessFailedError",
    "QueueFullError",
    "RestoreFailedError",
    "ShuttingDownError",
    "SnapshotIdentityMismatchError",
    "Subscription",
    "library_path",
    "load_library",
    "version",
]
