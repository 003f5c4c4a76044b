"""A peer process for the two-process migration tests.

Runs a Node and a started DaemonRuntime (counter kinds registered, an output
sink recording replayed counts) and obeys JSON commands, one per line on
stdin, answering one JSON line each on stdout: {"ok": ...} or
{"error": kind, "node_id": ..., "detail": ...}.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import net_mesh as nm  # noqa: E402
from daemons import U64, Counter  # noqa: E402

PSK = b"\x42" * 32


def main() -> None:
    node = nm.Node(psk=PSK)
    rt = nm.DaemonRuntime(node)
    rt.register_factory("counter", Counter)
    sunk = []
    lock = threading.Lock()

    def sink(origin, outs):
        with lock:
            sunk.extend(U64.unpack(o.payload)[0] for o in outs)

    rt.set_output_sink(sink)
    rt.start()
    out = sys.stdout
    out.write(json.dumps({"addr": node.addr, "public_key": node.public_key.hex(),
                          "node_id": node.node_id, "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        try:
            if op == "peer":
                node.accept(cmd["node_id"])
                if cmd.get("connect"):
                    node.connect(cmd["addr"], bytes.fromhex(cmd["public_key"]), cmd["node_id"], timeout=5)
                res = None
            elif op == "expect":
                rt.expect_migration("counter", cmd["origin"])
                res = None
            elif op == "deliver":
                last = None
                for _ in range(cmd.get("n", 1)):
                    outs = rt.deliver(cmd["origin"], nm.CausalEvent(1, 1, b"e"))
                    if outs:
                        last = U64.unpack(outs[0].payload)[0]
                res = last
            elif op == "count":
                res = rt.daemon_count()
            elif op == "sunk":
                with lock:
                    res = list(sunk)
            elif op == "migrate":
                phases = []
                m = rt.start_migration(cmd["origin"], node.node_id, cmd["target"])
                m.on_progress(lambda p: phases.append(p.phase))
                m.wait(timeout=30)
                for _ in range(500):  # progress arrives on a library thread
                    if "complete" in phases:
                        break
                    time.sleep(0.01)
                res = phases
            elif op == "quit":
                break
            else:
                raise ValueError(f"unknown op {op}")
            reply = {"ok": res}
        except nm.NetMeshError as e:
            reply = {"error": e.kind, "detail": e.detail, "node_id": getattr(e, "node_id", 0),
                     "message": str(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    rt.close()
    node.close()


if __name__ == "__main__":
    main()
