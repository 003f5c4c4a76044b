#!/usr/bin/env python3
"""Per-event cost of Python deliver into a Python daemon, next to the floor.

The floor, measured in the same run: net_mesh_callback_probe with an empty
Python callback, i.e. one ctypes call into the library plus one callback back
into Python on the calling thread — the least any deliver can cost. Goal:
deliver into an echo daemon <= 3x floor.

Also measured: a callback on a library thread (net_mesh_runtime_submit ->
empty Python callback), the per-event overhead when the runtime calls Python
from its own threads (as migration replay does).

Usage: bench_deliver.py [--out RESULTS.md] [--n 200000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import net_mesh as nm  # noqa: E402
from net_mesh import _daemon, _ffi  # noqa: E402


class Echo(nm.MeshDaemon):
    name = "echo"

    def process(self, event):
        return [event.payload]


class Sink(nm.MeshDaemon):
    name = "sink"

    def process(self, event):
        return None


def best_ns(fn, n: int, repeats: int = 5) -> float:
    """Best per-iteration time over repeats of n iterations (ns)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(n)
        dt = (time.perf_counter_ns() - t0) / n
        best = min(best, dt)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--n", type=int, default=200_000)
    args = ap.parse_args()
    n = args.n
    lib = _ffi.lib()

    # empty ctypes call (no callback)
    code = lib.net_mesh_last_error_code

    def empty_call(k):
        for _ in range(k):
            code()

    # floor: ctypes call + empty Python callback on this thread
    probe = lib.net_mesh_callback_probe
    key = _daemon.keep(lambda: None)
    task = _daemon._TASK

    def floor(k):
        for _ in range(k):
            probe(task, key)

    # a raw empty CFUNCTYPE callback (no table lookup) for reference
    raw_cb = _daemon.TASK_FN(lambda ud: None)

    def floor_raw(k):
        for _ in range(k):
            probe(raw_cb, None)

    node = nm.Node(psk=b"\x42" * 32)
    rt = nm.DaemonRuntime(node)
    rt.register_factory("echo", Echo)
    rt.register_factory("sink", Sink)
    rt.start()
    echo = rt.spawn("echo", nm.Identity.generate()).origin_hash
    sink = rt.spawn("sink", nm.Identity.generate()).origin_hash
    payload = bytes(64)

    def deliver_echo(k):
        d = rt.deliver
        for i in range(k):
            d(echo, nm.CausalEvent(1, i + 1, payload))

    def deliver_sink(k):
        d = rt.deliver
        for i in range(k):
            d(sink, nm.CausalEvent(1, i + 1, payload))

    # split of the cost: ctypes deliver into a bare CFUNCTYPE process (no
    # Python daemon layer, no outputs), through the raw scratch buffers
    import ctypes
    from net_mesh import _runtime

    bare = _daemon.PROCESS_FN(lambda ud, e, o: 0)
    vt = _daemon.DaemonVTable()
    vt.size = ctypes.sizeof(vt)
    vt.process = bare
    bare_id = nm.Identity.generate()
    out = ctypes.c_void_p()
    rc = lib.net_mesh_runtime_spawn_with_daemon(
        rt._ptr, bare_id._ptr, None, ctypes.byref(vt), None, ctypes.byref(_daemon.new_factory()),
        _daemon.keep(lambda: None), ctypes.byref(out))
    assert rc == 0, rc
    sc = _runtime._Scratch()
    _runtime._pack_ev(sc.ev, 0, 1, 0, 1, 0, _daemon.bytes_address(payload), len(payload), 0)
    raw_deliver = lib.net_mesh_runtime_deliver

    def deliver_bare(k):
        h, o = rt._ptr, bare_id.origin_hash
        for _ in range(k):
            raw_deliver(h, o, sc.ev_addr, sc.out_addr)

    # library-thread callbacks: submit k empty tasks, wait for the last
    def submit_tasks(k):
        done = threading.Event()
        count = [0]

        def t():
            count[0] += 1
            if count[0] == k:
                done.set()

        for _ in range(k):
            while True:
                try:
                    rt.submit(t)
                    break
                except nm.QueueFullError:  # queue full: let the pool catch up
                    time.sleep(0.0005)
        done.wait(60)

    empty_call(1000); floor(1000); deliver_echo(1000)  # warm up
    rows = [
        ("empty ctypes call into the library", best_ns(empty_call, n)),
        ("floor: net_mesh_callback_probe + empty Python callback (table lookup)", best_ns(floor, n)),
        ("floor, raw: net_mesh_callback_probe + empty CFUNCTYPE", best_ns(floor_raw, n)),
        ("deliver 64 B into Python echo daemon (1 output)", best_ns(deliver_echo, n)),
        ("deliver 64 B into Python daemon, no outputs", best_ns(deliver_sink, n)),
        ("split: bare ctypes deliver into an empty CFUNCTYPE process (no daemon layer)", best_ns(deliver_bare, n)),
        ("library-thread callback: submit + empty Python task (throughput)", best_ns(submit_tasks, n // 4, 3)),
    ]
    floor_ns = rows[1][1]
    rt.close()
    node.close()
    _daemon._finalize(key)

    lines = [
        "# Python binding benchmark",
        "",
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"libnetmesh {nm.version()}, {os.cpu_count()} CPUs; best of 5 runs of {n} "
        "iterations (submit: best of 3 runs of n/4). Written by "
        "`make bench-python` (bindings/python/bench/bench_deliver.py).",
        "",
        "| case | ns/op | × floor |",
        "|---|---:|---:|",
    ]
    for name, v in rows:
        lines.append(f"| {name} | {v:.0f} | {v / floor_ns:.2f} |")
    ratio = rows[3][1] / floor_ns
    lines += ["", f"Goal: deliver into a Python echo daemon ≤ 3× floor — measured {ratio:.2f}× "
              f"({'met' if ratio <= 3 else 'NOT met'}).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
