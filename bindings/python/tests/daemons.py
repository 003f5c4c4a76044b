"""Daemons used by the tests (importable from subprocesses too)."""

import struct
import threading

import net_mesh as nm

U64 = struct.Struct("<Q")


class Echo(nm.MeshDaemon):
    name = "echo"

    def process(self, event):
        return [event.payload]


class Counter(nm.MeshDaemon):
    """Counts events; emits the running count as a little-endian u64."""

    name = "counter"

    def __init__(self):
        self.n = 0

    def process(self, event):
        self.n += 1
        return [U64.pack(self.n)]

    def snapshot(self):
        return U64.pack(self.n)

    def restore(self, state):
        (self.n,) = U64.unpack(state)


class Silent(nm.MeshDaemon):
    name = "silent"

    def process(self, event):
        return []


class Boom(Exception):
    pass


class Faulty(nm.MeshDaemon):
    """Raises from whichever method the payload names."""

    name = "faulty"

    def __init__(self):
        self.n = 0

    def process(self, event):
        if event.payload == b"raise":
            raise Boom("process exploded")
        if event.payload == b"badtype":
            return ["not bytes"]
        if event.payload == b"keyboard":
            raise KeyboardInterrupt
        self.n += 1
        return [U64.pack(self.n)]

    def snapshot(self):
        if self.n >= 100:
            raise Boom("snapshot exploded")
        return U64.pack(self.n)

    def restore(self, state):
        (n,) = U64.unpack(state)
        if n == 42:
            raise Boom("restore exploded")
        self.n = n


class CountingFactory:
    """A factory that counts its calls (thread-safe) and remembers instances."""

    def __init__(self, cls):
        self.cls = cls
        self.calls = 0
        self.instances = []
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
        d = self.cls()
        self.instances.append(d)
        return d


def count_of(events):
    assert len(events) == 1
    return U64.unpack(events[0].payload)[0]


def through_seq(snapshot):
    """through_seq of a CDS1 snapshot (FORMATS §3)."""
    assert snapshot[:4] == b"CDS1" and snapshot[4] == 2
    return U64.unpack_from(snapshot, 37)[0]
