import pytest

import net_mesh as nm
from conftest import PSK


def test_node_properties():
    ident = nm.Identity.generate()
    with nm.Node(bind="127.0.0.1:0", psk=PSK, identity=ident, heartbeat_ms=1000,
                 session_timeout_ms=5000) as n:
        host, port = n.addr.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert n.node_id == ident.node_id
        assert len(n.public_key) == 32
    assert n.closed


def test_two_nodes_connect():
    with nm.Node(psk=PSK) as a, nm.Node(psk=PSK) as b:
        b.accept(a.node_id)
        a.connect(b.addr, b.public_key, b.node_id, timeout=5)
        assert a.stats().handshakes_completed >= 1


def test_connect_to_nobody_times_out():
    with nm.Node(psk=PSK) as a, nm.Node(psk=PSK) as b:
        # b never accepts a
        with pytest.raises((nm.NetMeshTimeoutError, nm.NetMeshIOError)):
            a.connect(b.addr, b.public_key, b.node_id, timeout=0.5)


@pytest.mark.parametrize("kw", [
    {"psk": b"short"}, {"bind": "not an address"}, {"heartbeat_ms": 0},
])
def test_bad_node_values(kw):
    args = {"psk": PSK}
    args.update(kw)
    with pytest.raises(ValueError):
        nm.Node(**args)


@pytest.mark.parametrize("kw", [{"psk": "x" * 32}, {"bind": 5}, {"identity": "me"}])
def test_bad_node_types(kw):
    args = {"psk": PSK}
    args.update(kw)
    with pytest.raises(TypeError):
        nm.Node(**args)
