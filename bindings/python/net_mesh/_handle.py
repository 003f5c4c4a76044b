"""A base class owning one library handle: idempotent close, ``with``, __del__."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from . import _ffi
from ._errors import closed


class Handle:
    """Owns one opaque library pointer and the function that frees it.

    ``close()`` is idempotent and thread-safe. The library tolerates a handle
    freed while another thread uses it (that call returns bad-handle), so the
    pointer is read without a lock on the hot path.
    """

    _what = "object"
    _ptr: Optional[int] = None

    def __init__(self, ptr: int, free: Callable[[Any], Any]) -> None:
        self._ptr = ptr
        self._free = free
        self._close_lock = threading.Lock()

    def _handle(self) -> int:
        """The pointer, or raise if closed / in a forked child."""
        if _ffi.forked:  # first: a forked child drops runtime pointers (_runtime)
            _ffi.check_usable()
        p = self._ptr
        if p is None:
            raise closed(self._what)
        return p

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def _release(self, ptr: int) -> None:
        """Free the pointer; subclasses may do more work first."""
        self._free(ptr)

    def close(self) -> None:
        """Release the handle. Safe to call more than once."""
        lock = getattr(self, "_close_lock", None)
        if lock is None:  # __init__ never finished
            return
        with lock:
            p, self._ptr = self._ptr, None
        if p is not None and not _ffi.forked:
            self._release(p)

    def __enter__(self) -> "Handle":
        self._handle()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
