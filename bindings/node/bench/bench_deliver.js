'use strict';
// JS deliver into a JS daemon, per event, next to the floor measured in the
// same run: one N-API call into the library that makes one callback into an
// empty JS function (net_mesh_callback_probe). Also the cost of
// runtime-initiated calls: a task through the worker pool and the executor
// to the JS thread (the path of migration replay and restore).
//
//   node bench/bench_deliver.js [--out RESULTS-node.md] [--quick]
const fs = require('node:fs');
const os = require('node:os');
const { Node, DaemonRuntime, Identity, libraryVersion } = require('..');
const native = require('../lib/native');

const args = process.argv.slice(2);
const outFile = args.includes('--out') ? args[args.indexOf('--out') + 1] : null;
const quick = args.includes('--quick');
const N = quick ? 50_000 : 500_000;
const ROUNDS = quick ? 3 : 7;

// Median ns/op over ROUNDS runs of n ops of fn(i).
function measure(n, fn) {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i); // warm up
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  runs.sort((a, b) => a - b);
  return runs[runs.length >> 1];
}

async function measureAsync(n, fn) {
  await fn(Math.min(n, 2000)); // warm up
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await fn(n);
    runs.push(Number(process.hrtime.bigint() - t0) / n);
  }
  runs.sort((a, b) => a - b);
  return runs[runs.length >> 1];
}

async function main() {
  const node = await Node.create({});
  const rt = new DaemonRuntime(node, { workers: 2 });
  rt.registerFactory('echo', () => ({ process: (e) => [e.payload] }));
  rt.registerFactory('sink', () => ({ process: () => undefined }));
  await rt.start();
  const echo = Identity.generate();
  const sink = Identity.generate();
  rt.spawn('echo', echo);
  rt.spawn('sink', sink);
  const payload = Buffer.alloc(64, 0xab);
  const ev = { originHash: 1n, sequence: 1n, payload };
  const empty = () => {};

  const rows = [];
  const floorC = measure(N, () => native.probe());
  const floor = measure(N, () => native.probeJs(empty));
  rows.push(['floor: N-API call → library → empty C callback', floorC]);
  rows.push(['floor: N-API call → library → empty JS callback', floor]);
  const sinkNs = measure(N, () => rt.deliver(sink.originHash, ev));
  rows.push(['deliver 64 B → JS daemon, no outputs', sinkNs]);
  const echoNs = measure(N, () => rt.deliver(echo.originHash, ev));
  rows.push(['deliver 64 B → JS echo daemon → 1 output event', echoNs]);

  // Runtime-initiated: tasks posted from the pool, run on the JS thread.
  const M = quick ? 5_000 : 50_000;
  const BATCH = 256; // below the pool's queue bound
  const batch = () => new Promise((resolve) => {
    let left = BATCH;
    for (let i = 0; i < BATCH; i++) rt.submit(() => { if (--left === 0) resolve(); });
  });
  const batched = await measureAsync(M, async (n) => { for (let k = 0; k < n; k += BATCH) await batch(); });
  rows.push(['pool → executor → JS thread, per task (batched)', batched]);
  const serial = await measureAsync(quick ? 500 : 5_000, (n) => new Promise((resolve) => {
    let left = n;
    const next = () => { if (--left === 0) resolve(); else rt.submit(next); };
    rt.submit(next);
  }));
  rows.push(['pool → executor → JS thread, round trip (one at a time)', serial]);

  await rt.shutdown();
  await node.close();

  const fmt = (ns) => (ns >= 10_000 ? `${(ns / 1000).toFixed(1)} µs` : `${ns.toFixed(0)} ns`);
  const lines = [
    '# Node binding benchmark (`make bench-node`)',
    '',
    `node ${process.version}, libnetmesh ${libraryVersion}, ${os.cpus()[0].model} (${os.cpus().length} CPUs, shared), ` +
      `${new Date().toISOString().slice(0, 10)}. Median of ${ROUNDS} runs of ${N} ops each.`,
    '',
    '| case | per op | ops/s | × floor |',
    '|---|---:|---:|---:|',
    ...rows.map(([name, ns]) => `| ${name} | ${fmt(ns)} | ${Math.round(1e9 / ns).toLocaleString('en-US')} | ${(ns / floor).toFixed(1)} |`),
    '',
    `Floor = one N-API call into the library making one callback into an empty JS function. ` +
      `Goal: deliver ≤ 3× floor. Measured: ${(sinkNs / floor).toFixed(1)}× (no outputs), ${(echoNs / floor).toFixed(1)}× (echo).`,
    '',
  ];
  const text = lines.join('\n');
  process.stdout.write(text);
  if (outFile) fs.writeFileSync(outFile, text);
}

main().catch((e) => { console.error(e); process.exit(1); });
