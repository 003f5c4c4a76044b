'use strict';
// Live migration in Node.js: two mesh nodes (A and B) in this process. A
// counter daemon written in JavaScript is fed on A, migrates live to B while
// events keep arriving (phases and progress shown), keeps counting on B, and
// migrates back to A. Run: make node && node examples/node/demo.js
const path = require('node:path');
const { Node, DaemonRuntime, Identity } = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (who, msg) => console.log(`${((Date.now() - t0) / 1000).toFixed(3).padStart(7)}s  ${who}  ${msg}`);

function counter() {
  let n = 0n;
  const enc = () => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
  return { process() { n += 1n; return [enc()]; }, snapshot: enc, restore(buf) { n = buf.readBigUInt64LE(0); } };
}

async function main() {
  const psk = Buffer.alloc(32, 7);
  const [a, b] = [await Node.create({ psk }), await Node.create({ psk })];
  b.accept(a.nodeId);
  await a.connect(b.addr, b.publicKey, b.nodeId);
  const rts = new Map();
  for (const [name, node] of [['A', a], ['B', b]]) {
    const rt = new DaemonRuntime(node);
    rt.registerFactory('counter', counter);
    rt.onOutput((_o, evs) => evs.forEach((e) => say(name, `count = ${e.payload.readBigUInt64LE(0)}  (replayed after the migration)`)));
    await rt.start();
    rts.set(name, rt);
  }
  const id = Identity.generate();
  rts.get('A').spawn('counter', id);
  rts.get('B').expectMigration('counter', id.originHash);
  let here = 'A';
  let seq = 1n;
  const feed = () => {
    try {
      const out = rts.get(here).deliver(id.originHash, { originHash: 1n, sequence: seq++, payload: Buffer.from('tick') });
      if (out.length) say(here, `count = ${out[0].payload.readBigUInt64LE(0)}`);
      else say(here, `event ${seq - 1n} queued (migrating)`);
    } catch (e) {
      if (e.code !== 'DAEMON_MOVED') throw e;
      seq -= 1n;
      here = here === 'A' ? 'B' : 'A';
      say(here, `the daemon moved here (DAEMON_MOVED → node 0x${e.movedTo.toString(16)})`);
    }
  };
  for (let i = 0; i < 3; i++) { feed(); await sleep(20); }
  for (const [from, to, node] of [['A', 'B', b], ['B', 'A', a]]) {
    say(from, `── migrating to ${to} ──`);
    const m = await rts.get(from).startMigration(id.originHash, from === 'A' ? a.nodeId : b.nodeId, node.nodeId,
      { transportIdentity: to === 'B' });
    m.on('phase', (p) => say(from, `phase: ${p}`));
    m.on('progress', (p) => { if (p.phase === 'transfer') say(from, `transfer ${p.bytesMoved}/${p.totalBytes} bytes`); });
    while (!m.ended) { feed(); await sleep(1); }
    await m.wait();
    for (let i = 0; i < 3; i++) { feed(); await sleep(20); }
  }
  for (const rt of rts.values()) await rt.shutdown();
  await a.close();
  await b.close();
}

main().catch((e) => { console.error(e); process.exit(1); });
