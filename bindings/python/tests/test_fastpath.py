"""The deliver fast paths keep the documented values: events a daemon keeps
stay what was delivered, payload types are normalised, 64-bit values pass
intact through the prebuilt foreign-call arguments."""

import ctypes
import threading

import net_mesh as nm
from net_mesh import _daemon


class Keeper(nm.MeshDaemon):
    name = "keeper"

    def __init__(self):
        self.kept = []

    def process(self, event):
        self.kept.append(event)
        return [event.payload, bytearray(b"ba"), memoryview(b"mv")]


def _spawn(rt, daemon):
    return rt.spawn_with_daemon(nm.Identity.generate(), daemon)


def test_kept_events_keep_their_values(rt):
    d = Keeper()
    h = _spawn(rt, d)
    sent = []
    for i in range(200):
        e = nm.CausalEvent(origin_hash=2**64 - 1 - i, sequence=i + 1, payload=bytes([i % 256]) * (i % 7),
                           parent_hash=2**63 + i, horizon=i, received_at=2**64 - 1)
        sent.append(e)
        outs = rt.deliver(h.origin_hash, e)
        assert [o.payload for o in outs] == [e.payload, b"ba", b"mv"]
        assert all(type(o) is nm.CausalEvent and type(o.payload) is bytes for o in outs)
    assert d.kept == sent
    assert all(type(k) is nm.CausalEvent and type(k.payload) is bytes for k in d.kept)
    assert _daemon.CURRENT == [None]  # nothing of the last delivery is retained


def test_non_bytes_payload_and_subclass_are_normalised(rt):
    class Ev(nm.CausalEvent):
        pass

    d = Keeper()
    h = _spawn(rt, d)
    rt.deliver(h.origin_hash, nm.CausalEvent(1, 1, bytearray(b"abc")))
    rt.deliver(h.origin_hash, Ev(1, 2, b"def"))
    assert d.kept == [(1, 1, b"abc", 0, 0, 0), (1, 2, b"def", 0, 0, 0)]
    assert all(type(k) is nm.CausalEvent and type(k.payload) is bytes for k in d.kept)


def test_threads_delivering_the_same_event_object(rt):
    # concurrent deliveries share the one in-flight slot: each daemon must
    # still see exactly the event delivered to it
    daemons = [Keeper() for _ in range(4)]
    handles = [_spawn(rt, d) for d in daemons]
    shared = nm.CausalEvent(5, 5, b"shared")
    errors = []

    def run(k):
        try:
            for i in range(300):
                e = shared if i % 2 else nm.CausalEvent(k, i, bytes([k]) * 3)
                rt.deliver(handles[k].origin_hash, e)
        except BaseException as ex:  # pragma: no cover - reported below
            errors.append(ex)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for k, d in enumerate(daemons):
        assert d.kept == [shared if i % 2 else (k, i, bytes([k]) * 3, 0, 0, 0) for i in range(300)]


def test_word_arg_passes_64_bit_values():
    labs = ctypes.CDLL(None).labs  # long labs(long): echoes a word back
    labs.restype = ctypes.c_uint64
    labs.argtypes = None
    for v in (0, 1, 2**31, 2**32 + 5, 2**63 - 1):
        assert labs(_daemon.word_arg(v)) == v
    for v in (2**63 + 1, 2**64 - 1):  # negative as a long: labs gives 2**64 - v
        assert labs(_daemon.word_arg(v)) == 2**64 - v
