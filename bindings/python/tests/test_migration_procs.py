"""Migration between two Python processes (subprocess; the peer never forks
from a process running the Go runtime): there and back, state intact, with
events delivered during the migration."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

import net_mesh as nm
from conftest import HERE, PKG_ROOT, PSK, ev
from daemons import U64, Counter, count_of


class Peer:
    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "peer_proc.py")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        hello = self._read()
        self.addr, self.public_key = hello["addr"], bytes.fromhex(hello["public_key"])
        self.node_id, self.pid = hello["node_id"], hello["pid"]

    def _read(self):
        line = self.p.stdout.readline()
        assert line, "peer process exited"
        return json.loads(line)

    def call(self, op, **kw):
        kw["op"] = op
        self.p.stdin.write(json.dumps(kw) + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.p.stdin.flush()
            self.p.wait(15)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def here_and_peer():
    node = nm.Node(psk=PSK)
    rt = nm.DaemonRuntime(node)
    rt.register_factory("counter", Counter)
    sunk = []
    rt.set_output_sink(lambda origin, outs: sunk.extend(U64.unpack(o.payload)[0] for o in outs))
    rt.start()
    peer = Peer()
    try:
        node.accept(peer.node_id)
        assert peer.call("peer", node_id=node.node_id, addr=node.addr,
                         public_key=node.public_key.hex(), connect=True) == {"ok": None}
        yield node, rt, peer, sunk
        assert peer.p.pid != os.getpid()
    finally:
        peer.close()
        rt.close()
        node.close()
    assert peer.p.returncode == 0


def test_there_and_back_with_state_intact(here_and_peer):
    node, rt, peer, sunk = here_and_peer
    ident = nm.Identity.generate()
    o = ident.origin_hash
    rt.spawn("counter", ident)
    for i in range(1, 4):
        assert count_of(rt.deliver(o, ev())) == i
    assert peer.call("expect", origin=o) == {"ok": None}
    phases = []
    m = rt.start_migration(o, node.node_id, peer.node_id)
    m.on_progress(lambda p: phases.append(p.phase))
    m.wait(timeout=30)
    deadline = time.monotonic() + 5  # progress arrives on a library thread
    while "complete" not in phases and time.monotonic() < deadline:
        time.sleep(0.01)
    assert {"snapshot", "transfer", "restore", "cutover", "complete"} <= set(phases)
    with pytest.raises(nm.DaemonMovedError) as ei:
        rt.deliver(o, ev())
    assert ei.value.node_id == peer.node_id
    assert peer.call("deliver", origin=o) == {"ok": 4}
    assert peer.call("count") == {"ok": 1} and rt.daemon_count() == 0

    # back, orchestrated by the peer; this side kept its factory entry
    back = peer.call("migrate", origin=o, target=node.node_id)
    assert "complete" in back["ok"]
    assert count_of(rt.deliver(o, ev())) == 5
    moved = peer.call("deliver", origin=o)
    assert moved["error"] == "daemon-moved" and moved["node_id"] == node.node_id
    assert rt.daemon_count() == 1 and peer.call("count") == {"ok": 0}


def test_events_delivered_during_the_migration_are_not_lost(here_and_peer):
    node, rt, peer, sunk = here_and_peer
    ident = nm.Identity.generate()
    o = ident.origin_hash
    rt.spawn("counter", ident)
    assert peer.call("expect", origin=o) == {"ok": None}
    direct, state = [], {"n": 0, "moved_to": None, "errors": []}
    warm = threading.Event()

    def feeder():
        try:
            while True:
                try:
                    outs = rt.deliver(o, ev())
                except nm.DaemonMovedError as e:
                    state["moved_to"] = e.node_id
                    return
                state["n"] += 1
                direct.extend(U64.unpack(x.payload)[0] for x in outs)
                if state["n"] == 100:
                    warm.set()
                if not outs:
                    time.sleep(0.0002)  # queued: let the migration's threads run
        except BaseException as e:
            state["errors"].append(e)
            warm.set()

    t = threading.Thread(target=feeder)
    t.start()
    assert warm.wait(10)
    m = rt.start_migration(o, node.node_id, peer.node_id)
    m.wait(timeout=30)
    t.join(30)
    assert not t.is_alive() and not state["errors"]
    assert state["moved_to"] == peer.node_id
    n = state["n"]
    # the peer's count equals the number delivered here
    assert peer.call("deliver", origin=o) == {"ok": n + 1}
    replayed = peer.call("sunk")["ok"]
    assert sorted(direct + replayed) == list(range(1, n + 1))
    assert sunk == []
