import ctypes

import pytest

import net_mesh as nm
from net_mesh import _errors, _ffi

EXPECTED = {
    -1: nm.NotReadyError, -2: nm.ShuttingDownError, -3: nm.FactoryAlreadyRegisteredError,
    -4: nm.FactoryNotFoundError, -5: nm.SnapshotIdentityMismatchError,
    -6: nm.DaemonNotFoundError, -7: nm.DaemonMovedError, -8: nm.AlreadyRegisteredError,
    -9: nm.ProcessFailedError, -10: nm.RestoreFailedError, -11: nm.InvalidArgumentError,
    -12: nm.NetMeshTimeoutError, -13: nm.MigrationError, -14: nm.MigrationFailedError,
    -15: nm.BadHandleError, -16: nm.CallbackFailedError, -17: nm.InternalError,
    -18: nm.InternalError, -19: nm.NetMeshIOError, -20: nm.InternalError, -21: nm.QueueFullError,
    -22: nm.InternalError,
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_status_maps_to_its_class_and_the_library_kind(code):
    e = _errors.error_for(code, "msg", "detail", 42)
    assert type(e) is EXPECTED[code]
    assert isinstance(e, nm.NetMeshError)
    assert e.code == code
    assert e.kind == _ffi.lib().net_mesh_status_kind(code).decode()
    assert str(e) == "msg"


def test_unknown_code_is_internal_unknown():
    e = _errors.error_for(-999, "m")
    assert isinstance(e, nm.InternalError) and e.kind == "unknown"
    assert _ffi.lib().net_mesh_status_kind(-999) == b"unknown"


def test_special_attributes():
    moved = _errors.error_for(-7, "moved", "", 1234)
    assert moved.node_id == 1234
    failed = _errors.error_for(-14, "f", "not-ready")
    assert failed.reason == "not-ready" and isinstance(failed, nm.MigrationError)
    local = _errors.error_for(-13, "l", "target-unavailable")
    assert local.detail == "target-unavailable" and not isinstance(local, nm.MigrationFailedError)
    assert isinstance(_errors.error_for(-11, ""), ValueError)
    assert isinstance(_errors.error_for(-12, ""), TimeoutError)
    assert isinstance(_errors.error_for(-19, ""), OSError)


def test_last_error_is_read_from_the_library():
    lib = _ffi.lib()
    out = ctypes.c_void_p()
    rc = lib.net_mesh_identity_from_seed(b"short", 5, ctypes.byref(out))
    e = _errors.last_error(rc)
    assert isinstance(e, nm.InvalidArgumentError)
    assert "seed" in str(e)


def test_real_failure_raises_mapped_exception():
    with pytest.raises(nm.InvalidArgumentError) as ei:
        nm.Identity.from_entity_id(b"\x00" * 32).seed
    assert ei.value.kind == "invalid-argument"
