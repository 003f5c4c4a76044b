"""Identity: an ed25519 keypair (or public key only) and the ids derived from it."""

from __future__ import annotations

import ctypes
from ctypes import c_uint64, c_void_p

from . import _ffi
from ._errors import InvalidArgumentError, check
from ._handle import Handle

SEED_SIZE = 32
ENTITY_ID_SIZE = 32


def _as_bytes(value: object, name: str, size: int) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"net_mesh: {name} must be bytes, not {type(value).__name__}")
    b = bytes(value)
    if len(b) != size:
        raise InvalidArgumentError(f"net_mesh: {name} must be {size} bytes, got {len(b)}")
    return b


class Identity(Handle):
    """An ed25519 identity. Build with :meth:`generate` or :meth:`from_seed`.

    ``entity_id`` (32 bytes, the public key), ``origin_hash`` and ``node_id``
    (64-bit ints) are read once and cached.
    """

    _what = "identity"

    def __init__(self, _ptr: int) -> None:
        """Internal: use :meth:`generate`, :meth:`from_seed` or :meth:`from_entity_id`."""
        if not isinstance(_ptr, int) or _ptr == 0:
            raise TypeError("net_mesh: use Identity.generate() or Identity.from_seed(seed)")
        lib = _ffi.lib()
        super().__init__(_ptr, lib.net_mesh_identity_free)
        eid = ctypes.create_string_buffer(ENTITY_ID_SIZE)
        check(lib.net_mesh_identity_entity_id(_ptr, eid))
        oh, nid = c_uint64(), c_uint64()
        check(lib.net_mesh_identity_origin_hash(_ptr, ctypes.byref(oh)))
        check(lib.net_mesh_identity_node_id(_ptr, ctypes.byref(nid)))
        self._entity_id = eid.raw
        self._origin_hash = oh.value
        self._node_id = nid.value

    @classmethod
    def generate(cls) -> "Identity":
        """A fresh identity from the OS random source."""
        _ffi.check_usable()
        out = c_void_p()
        check(_ffi.lib().net_mesh_identity_generate(ctypes.byref(out)))
        return cls(out.value)  # type: ignore[arg-type]

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        """The identity whose ed25519 seed is ``seed`` (exactly 32 bytes)."""
        b = _as_bytes(seed, "seed", SEED_SIZE)
        _ffi.check_usable()
        out = c_void_p()
        check(_ffi.lib().net_mesh_identity_from_seed(b, len(b), ctypes.byref(out)))
        return cls(out.value)  # type: ignore[arg-type]

    @classmethod
    def from_entity_id(cls, entity_id: bytes) -> "Identity":
        """A public-only identity (same ids; cannot sign or spawn a daemon)."""
        b = _as_bytes(entity_id, "entity_id", ENTITY_ID_SIZE)
        _ffi.check_usable()
        out = c_void_p()
        check(_ffi.lib().net_mesh_identity_from_entity_id(b, ctypes.byref(out)))
        return cls(out.value)  # type: ignore[arg-type]

    @property
    def entity_id(self) -> bytes:
        """The 32-byte entity id (the ed25519 public key)."""
        return self._entity_id

    @property
    def origin_hash(self) -> int:
        """The 64-bit origin hash daemons with this identity are addressed by."""
        return self._origin_hash

    @property
    def node_id(self) -> int:
        """The 64-bit node id derived from this identity."""
        return self._node_id

    @property
    def seed(self) -> bytes:
        """The 32-byte seed; InvalidArgumentError for a public-only identity."""
        out = ctypes.create_string_buffer(SEED_SIZE)
        check(_ffi.lib().net_mesh_identity_seed(self._handle(), out))
        return out.raw

    @property
    def has_secret(self) -> bool:
        """True if this identity holds the private key (can spawn a daemon)."""
        out = ctypes.create_string_buffer(SEED_SIZE)
        rc = _ffi.lib().net_mesh_identity_seed(self._handle(), out)
        ctypes.memset(out, 0, SEED_SIZE)
        return rc == 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._entity_id == self._entity_id

    def __hash__(self) -> int:
        return hash(self._entity_id)

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<net_mesh.Identity origin_hash={self._origin_hash:#018x}{state}>"
