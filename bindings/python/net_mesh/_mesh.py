"""Node: an encrypted UDP mesh node (Noise sessions, channels)."""

from __future__ import annotations

import ctypes
import dataclasses
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_int, c_size_t, c_uint32, c_uint64, c_void_p
from typing import Any, Callable, Optional

from . import _daemon, _ffi
from ._errors import InvalidArgumentError, last_error
from ._handle import Handle
from ._identity import Identity


class NodeOptions(ctypes.Structure):
    _fields_ = [
        ("size", c_uint32),
        ("bind_addr", c_char_p),
        ("psk", c_char_p),
        ("identity", c_void_p),
        ("heartbeat_interval_ms", c_uint32),
        ("session_timeout_ms", c_uint32),
        ("connect_timeout_ms", c_uint32),
        ("membership_timeout_ms", c_uint32),
    ]


class NodeStatsC(ctypes.Structure):
    _fields_ = [("size", c_uint32)] + [(n, c_uint64) for n in (
        "packets_sent", "packets_received", "bytes_sent", "bytes_received",
        "handshakes_completed", "heartbeats_sent", "heartbeats_received", "retransmits",
        "duplicates_suppressed", "dropped_malformed", "dropped_auth", "dropped_replay")]


class ChannelOptions(ctypes.Structure):
    _fields_ = [("size", c_uint32), ("require_token", c_int), ("max_subscribers", c_uint32),
                ("trusted_issuers", c_char_p), ("trusted_issuer_count", c_size_t)]


class PublishReport(ctypes.Structure):
    _fields_ = [("attempted", c_uint64), ("delivered", c_uint64), ("failed", c_uint64)]


CHANNEL_MESSAGE_FN = CFUNCTYPE(None, c_void_p, c_uint64, c_char_p, c_void_p, c_size_t)

_vp = c_void_p
_ffi.extend_signatures({
    "net_mesh_node_options_init": (None, [POINTER(NodeOptions)]),
    "net_mesh_node_new": (c_int, [POINTER(NodeOptions), POINTER(c_void_p)]),
    "net_mesh_node_addr": (c_int, [_vp, POINTER(_ffi.Bytes)]),
    "net_mesh_node_id": (c_int, [_vp, POINTER(c_uint64)]),
    "net_mesh_node_public_key": (c_int, [_vp, c_char_p]),
    "net_mesh_node_connect": (c_int, [_vp, c_char_p, c_char_p, c_uint64, c_uint32]),
    "net_mesh_node_accept": (c_int, [_vp, c_uint64]),
    "net_mesh_channel_options_init": (None, [POINTER(ChannelOptions)]),
    "net_mesh_node_channel_register": (c_int, [_vp, c_char_p, POINTER(ChannelOptions)]),
    "net_mesh_node_channel_subscribe": (c_int, [_vp, c_uint64, c_char_p, c_char_p, c_size_t, c_uint32]),
    "net_mesh_node_channel_unsubscribe": (c_int, [_vp, c_uint64, c_char_p, c_uint32]),
    "net_mesh_node_channel_publish": (c_int, [_vp, c_char_p, c_char_p, c_size_t, POINTER(PublishReport)]),
    "net_mesh_node_on_channel_message": (c_int, [_vp, CHANNEL_MESSAGE_FN, _vp, _ffi.FINALIZE_FN]),
    "net_mesh_node_stats_get": (c_int, [_vp, POINTER(NodeStatsC)]),
    "net_mesh_node_close": (c_int, [_vp]),
    "net_mesh_node_free": (None, [_vp]),
})


@dataclasses.dataclass(frozen=True)
class NodeStats:
    packets_sent: int
    packets_received: int
    bytes_sent: int
    bytes_received: int
    handshakes_completed: int
    heartbeats_sent: int
    heartbeats_received: int
    retransmits: int
    duplicates_suppressed: int
    dropped_malformed: int
    dropped_auth: int
    dropped_replay: int


def _ms(name: str, v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"net_mesh: {name} must be an int (milliseconds)")
    if not 0 < v < 2**32:
        raise InvalidArgumentError(f"net_mesh: {name} must be in (0, 2**32)")
    return v


def _channel(name: object) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"net_mesh: channel must be a str, not {type(name).__name__}")
    if not name or "\x00" in name:
        raise InvalidArgumentError("net_mesh: channel must be a non-empty string without NUL")
    return name.encode("utf-8")


def _on_message(ud: int, publisher: int, channel: bytes, payload: Optional[int], n: int) -> None:
    try:
        if _daemon._get_ident() not in _daemon.KEPT_THREADS:
            _daemon.keep_thread_state()
        cb = _daemon._objects[ud]
        cb(publisher, channel.decode("utf-8", "replace"), ctypes.string_at(payload, n) if n else b"")
    except BaseException:
        pass  # a channel callback has no caller to report to


_ON_MESSAGE = CHANNEL_MESSAGE_FN(_on_message)


class Node(Handle):
    """An encrypted UDP mesh node.

    ``psk`` is the mesh's 32-byte pre-shared key; ``identity`` (an
    :class:`Identity`, copied) names the node, a fresh one when None.
    Connecting needs the peer's address, X25519 public key and node id, and
    the peer must have called :meth:`accept` for this node first.
    """

    _what = "node"

    def __init__(self, bind: str = "127.0.0.1:0", psk: bytes = b"\x00" * 32,
                 identity: Optional[Identity] = None, heartbeat_ms: int = 5000,
                 session_timeout_ms: int = 30000, connect_timeout_ms: int = 10000,
                 membership_timeout_ms: int = 5000) -> None:
        if not isinstance(bind, str):
            raise TypeError("net_mesh: bind must be a 'host:port' str")
        if not isinstance(psk, (bytes, bytearray, memoryview)):
            raise TypeError("net_mesh: psk must be bytes")
        psk = bytes(psk)
        if len(psk) != 32:
            raise InvalidArgumentError(f"net_mesh: psk must be 32 bytes, got {len(psk)}")
        if identity is not None and not isinstance(identity, Identity):
            raise TypeError("net_mesh: identity must be a net_mesh.Identity or None")
        lib = _ffi.lib()
        opts = NodeOptions()
        lib.net_mesh_node_options_init(ctypes.byref(opts))
        opts.bind_addr = bind.encode("utf-8")
        opts.psk = psk
        opts.identity = identity._handle() if identity is not None else None
        opts.heartbeat_interval_ms = _ms("heartbeat_ms", heartbeat_ms)
        opts.session_timeout_ms = _ms("session_timeout_ms", session_timeout_ms)
        opts.connect_timeout_ms = _ms("connect_timeout_ms", connect_timeout_ms)
        opts.membership_timeout_ms = _ms("membership_timeout_ms", membership_timeout_ms)
        out = c_void_p()
        rc = lib.net_mesh_node_new(ctypes.byref(opts), ctypes.byref(out))
        if rc:
            raise last_error(rc)
        super().__init__(out.value, lib.net_mesh_node_free)  # type: ignore[arg-type]
        self._lib = lib
        try:
            b = _ffi.Bytes()
            self._check(lib.net_mesh_node_addr(out.value, ctypes.byref(b)))
            self.addr: str = _ffi.take_bytes(b).decode("utf-8")
            nid = c_uint64()
            self._check(lib.net_mesh_node_id(out.value, ctypes.byref(nid)))
            self.node_id: int = nid.value
            pk = ctypes.create_string_buffer(32)
            self._check(lib.net_mesh_node_public_key(out.value, pk))
            self.public_key: bytes = pk.raw
        except BaseException:
            self.close()
            raise
        self._msg_key: Optional[int] = None

    @staticmethod
    def _check(rc: int) -> None:
        if rc:
            raise last_error(rc)

    def connect(self, addr: str, public_key: bytes, node_id: int,
                timeout: Optional[float] = None) -> None:
        """Open a session to the peer; blocks until it is up or ``timeout``
        seconds pass (None: the node's connect timeout)."""
        from ._runtime import _timeout_ms, _u64

        if not isinstance(addr, str):
            raise TypeError("net_mesh: addr must be a 'host:port' str")
        if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != 32:
            if not isinstance(public_key, (bytes, bytearray)):
                raise TypeError("net_mesh: public_key must be 32 bytes")
            raise InvalidArgumentError("net_mesh: public_key must be 32 bytes")
        self._check(self._lib.net_mesh_node_connect(self._handle(), addr.encode("utf-8"),
                                                    bytes(public_key), _u64(node_id, "node_id"),
                                                    _timeout_ms(timeout)))

    def accept(self, node_id: int) -> None:
        """Admit handshakes from ``node_id``, now and later."""
        from ._runtime import _u64

        self._check(self._lib.net_mesh_node_accept(self._handle(), _u64(node_id, "node_id")))

    def register_channel(self, channel: str, *, require_token: bool = False,
                         max_subscribers: int = 0, trusted_issuers: "tuple[bytes, ...]" = ()) -> None:
        """Publish ``channel`` from this node."""
        opts = ChannelOptions()
        self._lib.net_mesh_channel_options_init(ctypes.byref(opts))
        opts.require_token = 1 if require_token else 0
        opts.max_subscribers = max_subscribers
        issuers = b"".join(bytes(i) for i in trusted_issuers)
        if any(len(i) != 32 for i in trusted_issuers):
            raise InvalidArgumentError("net_mesh: trusted issuers are 32-byte entity ids")
        opts.trusted_issuers = issuers or None
        opts.trusted_issuer_count = len(trusted_issuers)
        self._check(self._lib.net_mesh_node_channel_register(self._handle(), _channel(channel),
                                                             ctypes.byref(opts)))

    def publish(self, channel: str, payload: bytes) -> "tuple[int, int, int]":
        """Send ``payload`` to every subscriber; (attempted, delivered, failed)."""
        from ._runtime import _bytes_arg

        p = _bytes_arg(payload, "payload")
        r = PublishReport()
        self._check(self._lib.net_mesh_node_channel_publish(self._handle(), _channel(channel), p,
                                                            len(p), ctypes.byref(r)))
        return r.attempted, r.delivered, r.failed

    def on_channel_message(self, callback: Optional[Callable[[int, str, bytes], Any]]) -> None:
        """Call ``callback(publisher, channel, payload)`` for each channel
        message (on a library thread). None removes it."""
        if callback is not None and not callable(callback):
            raise TypeError("net_mesh: callback must be callable or None")
        h = self._handle()
        if callback is None:
            rc = self._lib.net_mesh_node_on_channel_message(h, CHANNEL_MESSAGE_FN(), None,
                                                            _ffi.FINALIZE_FN())
        else:
            key = _daemon.keep(callback)
            rc = self._lib.net_mesh_node_on_channel_message(h, _ON_MESSAGE, key, _daemon._FINALIZE)
        self._check(rc)

    def stats(self) -> NodeStats:
        s = NodeStatsC()
        s.size = ctypes.sizeof(NodeStatsC)
        self._check(self._lib.net_mesh_node_stats_get(self._handle(), ctypes.byref(s)))
        return NodeStats(*(getattr(s, f) for f, _ in NodeStatsC._fields_[1:]))

    def __enter__(self) -> "Node":
        self._handle()
        return self

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<net_mesh.Node {getattr(self, 'addr', '?')} node_id={getattr(self, 'node_id', 0):#x}{state}>"
