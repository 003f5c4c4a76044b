import threading

import pytest

import net_mesh as nm


def test_generate_and_ids():
    a, b = nm.Identity.generate(), nm.Identity.generate()
    assert len(a.entity_id) == 32 and a.entity_id != b.entity_id
    assert 0 <= a.origin_hash < 2**64 and 0 <= a.node_id < 2**64
    assert a.origin_hash != b.origin_hash
    assert a.has_secret


def test_from_seed_is_deterministic():
    seed = bytes(range(32))
    a, b = nm.Identity.from_seed(seed), nm.Identity.from_seed(bytearray(seed))
    assert a.entity_id == b.entity_id and a.origin_hash == b.origin_hash and a.node_id == b.node_id
    assert a.seed == seed
    assert a == b and hash(a) == hash(b)


def test_public_only():
    a = nm.Identity.generate()
    p = nm.Identity.from_entity_id(a.entity_id)
    assert p.origin_hash == a.origin_hash and p.node_id == a.node_id
    assert not p.has_secret
    with pytest.raises(nm.InvalidArgumentError):
        p.seed


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33])
def test_bad_seed_length(bad):
    with pytest.raises(nm.InvalidArgumentError):
        nm.Identity.from_seed(bad)
    with pytest.raises(ValueError):
        nm.Identity.from_entity_id(bad)


@pytest.mark.parametrize("bad", [None, "x" * 32, 5, [0] * 32])
def test_wrong_types(bad):
    with pytest.raises(TypeError):
        nm.Identity.from_seed(bad)
    with pytest.raises(TypeError):
        nm.Identity.from_entity_id(bad)


def test_direct_constructor_refused():
    with pytest.raises(TypeError):
        nm.Identity(0)
    with pytest.raises(TypeError):
        nm.Identity("x")


def test_close_is_idempotent_and_closed_raises():
    a = nm.Identity.generate()
    with a as same:
        assert same is a
    assert a.closed
    a.close()
    with pytest.raises(nm.BadHandleError):
        a.seed
    # cached ids stay readable
    assert len(a.entity_id) == 32


def test_threads_generate_concurrently():
    seen, errors = [], []

    def work():
        try:
            for _ in range(200):
                i = nm.Identity.generate()
                seen.append(i.origin_hash)
                i.close()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(set(seen)) == 1600
