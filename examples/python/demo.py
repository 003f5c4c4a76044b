#!/usr/bin/env python3
"""Live migration of a Python daemon between two Python processes.

Process A (this one) starts a node and a counter daemon and feeds it events.
It starts process B (this script with --role b) and they exchange address,
public key and node id over B's stdin/stdout. While A keeps feeding, the
counter migrates to B, with the progress shown as it happens. Events that
arrive during the migration are queued and replayed on B; after cutover A's
deliver says "moved to B" and the feeding continues in B, the count going on
where it left off. At the end the demo checks that no event was lost.

Run: make demo-python   (or: python3 examples/python/demo.py after make python)
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import threading
import time

try:
    import net_mesh as nm
except ImportError:  # run from a checkout: use bindings/python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "bindings", "python"))
    import net_mesh as nm

PSK = b"\x42" * 32
U64 = struct.Struct("<Q")


class Counter(nm.MeshDaemon):
    """Counts the events it sees and emits the running count."""

    name = "counter"

    def __init__(self) -> None:
        self.n = 0

    def process(self, event: nm.CausalEvent) -> "list[bytes]":
        self.n += 1
        return [U64.pack(self.n)]

    def snapshot(self) -> bytes:
        return U64.pack(self.n)

    def restore(self, state: bytes) -> None:
        (self.n,) = U64.unpack(state)
        if RESTORE_DELAY:
            # a migration on loopback takes ~2 ms; the demo stretches the
            # restore on B so that events visibly queue up and replay
            time.sleep(RESTORE_DELAY)


RESTORE_DELAY = 0.0


def say(who: str, msg: str) -> None:
    print(f"[{who}] {msg}", flush=True)


# --- process B -----------------------------------------------------------------


def role_b(restore_delay: float) -> int:
    """The target: answers JSON commands on stdin; talks to the user on stderr."""
    global RESTORE_DELAY
    RESTORE_DELAY = restore_delay
    out = sys.stdout
    sys.stdout = sys.stderr  # say() goes to the terminal, replies to A on the pipe
    node = nm.Node(psk=PSK)
    rt = nm.DaemonRuntime(node)
    rt.register_factory("counter", Counter)
    replayed: "list[int]" = []

    def sink(origin: int, outs: "list[nm.CausalEvent]") -> None:
        for o in outs:
            replayed.append(U64.unpack(o.payload)[0])
        say("B", f"replayed queued event(s) -> count {replayed[-1]}")

    rt.set_output_sink(sink)
    rt.start()
    say("B", f"pid {os.getpid()}, node {node.node_id:#018x} at {node.addr}")
    out.write(json.dumps({"addr": node.addr, "key": node.public_key.hex(), "id": node.node_id}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        reply: object = None
        if cmd["op"] == "peer":
            node.accept(cmd["id"])
        elif cmd["op"] == "expect":
            rt.expect_migration("counter", cmd["origin"])
            say("B", f"ready to receive counter {cmd['origin']:#018x}")
        elif cmd["op"] == "feed":
            last = 0
            for _ in range(cmd["n"]):
                last = U64.unpack(rt.deliver(cmd["origin"], nm.CausalEvent(1, 0, b"tick"))[0].payload)[0]
                say("B", f"count {last}")
                time.sleep(cmd.get("every", 0))
            reply = last
        elif cmd["op"] == "replayed":
            reply = len(replayed)
        elif cmd["op"] == "quit":
            break
        out.write(json.dumps({"ok": reply}) + "\n")
        out.flush()
    rt.close()
    node.close()
    return 0


# --- process A -----------------------------------------------------------------


class PeerB:
    def __init__(self, restore_delay: float) -> None:
        env = dict(os.environ)
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(nm.__file__)))
        env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
        # a fresh interpreter (never fork a process that runs the Go runtime)
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--role", "b",
                                   "--restore-delay", str(restore_delay)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.p.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("process B exited")
        return json.loads(line)

    def call(self, op: str, **kw: object) -> object:
        kw["op"] = op
        self.p.stdin.write(json.dumps(kw) + "\n")  # type: ignore[union-attr]
        self.p.stdin.flush()  # type: ignore[union-attr]
        return self._read()["ok"]

    def close(self) -> None:
        try:
            self.call("quit")
        except Exception:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def role_a(events_before: int, events_after: int, every: float, restore_delay: float) -> int:
    node = nm.Node(psk=PSK)
    rt = nm.DaemonRuntime(node)
    rt.register_factory("counter", Counter)
    rt.start()
    say("A", f"pid {os.getpid()}, node {node.node_id:#018x} at {node.addr}")
    b = PeerB(restore_delay)
    b_id = b.hello["id"]
    try:
        b.call("peer", id=node.node_id)
        node.accept(b_id)
        node.connect(b.hello["addr"], bytes.fromhex(b.hello["key"]), b_id, timeout=5)
        say("A", f"session with B ({b_id:#018x}) up")

        ident = nm.Identity.generate()
        origin = ident.origin_hash
        rt.spawn("counter", ident)
        b.call("expect", origin=origin)

        # feed the counter from a thread, until it has moved
        fed = {"accepted": 0, "queued": 0, "moved_to": None}
        go = threading.Event()

        def feeder() -> None:
            while True:
                try:
                    outs = rt.deliver(origin, nm.CausalEvent(1, 0, b"tick"))
                except nm.DaemonMovedError as e:
                    fed["moved_to"] = e.node_id
                    say("A", f"deliver -> DaemonMovedError: the counter now lives on node {e.node_id:#018x}")
                    return
                fed["accepted"] += 1
                if outs:
                    say("A", f"count {U64.unpack(outs[0].payload)[0]}")
                else:
                    fed["queued"] += 1
                    say("A", "event queued (migration in progress)")
                if fed["accepted"] == events_before:
                    go.set()
                time.sleep(every)

        t = threading.Thread(target=feeder, daemon=True)
        t.start()
        go.wait()

        say("A", f"migrating the counter to B (process {b.p.pid}) while it is being fed ...")
        if restore_delay:
            say("A", f"  (B's restore is stretched by {restore_delay:g} s so the window is visible)")
        t0 = time.monotonic()
        m = rt.start_migration(origin, node.node_id, b_id)
        last = {"phase": None}

        def progress(p: nm.MigrationProgress) -> None:
            if p.phase == "transfer" and p.total_bytes:
                say("A", f"  progress: {p.phase:<8} {p.bytes_moved}/{p.total_bytes} bytes, "
                         f"{p.chunks_moved}/{p.total_chunks} chunks")
            elif p.phase != last["phase"]:
                say("A", f"  progress: {p.phase}")
            last["phase"] = p.phase

        m.on_progress(progress)
        m.wait(timeout=60)
        say("A", f"migration complete in {(time.monotonic() - t0) * 1000:.1f} ms")
        t.join(30)

        final = b.call("feed", origin=origin, n=events_after, every=every)
        replayed = b.call("replayed")
        total = fed["accepted"] + events_after
        say("A", f"A accepted {fed['accepted']} events ({fed['queued']} queued during the migration, "
                 f"{replayed} replayed on B); B then took {events_after} more")
        if final != total or fed["moved_to"] != b_id:
            say("A", f"FAILED: B's count is {final}, expected {total}")
            return 1
        say("A", f"B's count is {final} = every event delivered, none lost, none twice. OK")
        return 0
    finally:
        b.close()
        rt.close()
        node.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=["a", "b"], default="a")
    ap.add_argument("--before", type=int, default=5, help="events fed before the migration starts")
    ap.add_argument("--after", type=int, default=5, help="events fed on B after the move")
    ap.add_argument("--every", type=float, default=0.02, help="seconds between events")
    ap.add_argument("--restore-delay", type=float, default=0.15,
                    help="seconds B's restore sleeps, to make the migration window visible (0: off)")
    args = ap.parse_args()
    if args.role == "b":
        return role_b(args.restore_delay)
    return role_a(args.before, args.after, args.every, args.restore_delay)


if __name__ == "__main__":
    sys.exit(main())
