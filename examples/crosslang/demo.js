'use strict';
// Cross-language live migration: a counter daemon starts in a Python
// process, is fed, migrates live into this Node.js process (progress shown)
// while events keep arriving, keeps counting here, and migrates back.
// Both languages keep the count in the same state format (8 bytes,
// little-endian), so the daemon's state crosses unchanged.
//
//   make demo-crosslang        (builds the library, the Python package and the addon first)
//
// The Python process is bindings/node/test/fixtures/peer.py, driven over
// Node's IPC channel (bindings/node/test/peers.js).
const crypto = require('node:crypto');
const path = require('node:path');
const ROOT = path.join(__dirname, '..', '..');
const { Node, DaemonRuntime } = require(path.join(ROOT, 'bindings', 'node'));
const { Peer, link } = require(path.join(ROOT, 'bindings', 'node', 'test', 'peers.js'));

const PSK = crypto.randomBytes(32);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (who, msg) => console.log(`${((Date.now() - t0) / 1000).toFixed(3).padStart(7)}s  ${who.padEnd(8)} ${msg}`);
const bar = (done, total) => {
  const w = 20;
  const f = total > 0n ? Number((done * BigInt(w)) / total) : 0;
  return `[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total} B`;
};

// The Node.js side of the counter: same behaviour and state format as peer.py's.
function counter() {
  let n = 0n;
  const enc = () => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
  return { process() { n += 1n; return [enc()]; }, snapshot: enc, restore(buf) { n = buf.readBigUInt64LE(0); } };
}

async function main() {
  // This process: a Node.js mesh node with a runtime that can host the counter.
  const node = await Node.create({ psk: PSK });
  const rt = new DaemonRuntime(node);
  rt.registerFactory('counter', counter);
  await rt.start();
  say('node.js', `node 0x${node.nodeId.toString(16)} at ${node.addr}`);

  // The Python process.
  const py = await Peer.start('python', { psk: PSK });
  say('python', `node 0x${py.nodeId.toString(16)} at ${py.addr} (pid ${py.child.pid})`);
  node.accept(py.nodeId);
  await py.call('connect', { addr: node.addr, publicKey: node.publicKey.toString('hex'), nodeId: node.nodeId });
  say('mesh', 'encrypted session up');

  const seen = []; // every count the daemon output, wherever it ran
  const record = (who, counts, how = '') => {
    for (const c of counts) { seen.push(c); say(who, `count = ${c}${how}`); }
  };
  py.on('output', (m) => record('python', m.counts.map(BigInt), '  (queued during the migration, replayed)'));
  rt.onOutput((_o, events) => record('node.js', events.map((e) => e.payload.readBigUInt64LE(0)), '  (queued during the migration, replayed)'));

  const { origin: o } = await py.call('spawn', { seed: crypto.randomBytes(32).toString('hex') });
  const origin = BigInt(o);
  say('python', `counter daemon spawned, origin 0x${origin.toString(16)}`);
  rt.expectMigration('counter', origin);

  let seq = 1;
  let here = 'python'; // who holds the daemon
  // One event to whoever holds the daemon now (following DAEMON_MOVED / wrong-phase).
  async function feed() {
    const s = seq;
    for (let tries = 0; tries < 4; tries++) {
      try {
        if (here === 'python') {
          const out = await py.deliver(origin, s);
          if (out.length) record('python', out); else say('python', `event ${s} queued (migrating)`);
        } else {
          const out = rt.deliver(origin, { originHash: 1n, sequence: BigInt(s), payload: Buffer.from('tick') })
            .map((e) => e.payload.readBigUInt64LE(0));
          if (out.length) record('node.js', out); else say('node.js', `event ${s} queued (migrating)`);
        }
        seq += 1;
        return;
      } catch (e) {
        if (e.code === 'DAEMON_MOVED') here = here === 'python' ? 'node.js' : 'python';
        else if (e.code === 'MIGRATION' && e.reason === 'wrong-phase') here = here === 'python' ? 'node.js' : 'python';
        else throw e;
      }
    }
    throw new Error(`nobody took event ${s}`);
  }

  // 1. Fed in Python.
  for (let i = 0; i < 5; i++) { await feed(); await sleep(30); }

  // 2. Live migration Python → Node.js, orchestrated by Python, fed meanwhile.
  say('python', '── migrating the counter to Node.js ──');
  const onPhase = (m) => say('python', `phase: ${m.phase}`);
  const onProgress = (m) => { if (m.phase === 'transfer') say('python', `transfer ${bar(BigInt(m.bytesMoved), BigInt(m.totalBytes))}`); };
  py.on('phase', onPhase);
  py.on('progress', onProgress);
  let migrating = true;
  const there = py.call('migrate', { origin, target: node.nodeId }).finally(() => { migrating = false; });
  while (migrating) { await feed(); await sleep(2); }
  await there;
  await sleep(50);
  py.off('phase', onPhase);
  py.off('progress', onProgress);
  here = 'node.js';
  say('node.js', `the counter lives here now (daemons: ${rt.daemonCount()}; python: ${(await py.call('count')).daemons})`);

  // 3. Keeps counting in Node.js.
  for (let i = 0; i < 5; i++) { await feed(); await sleep(30); }

  // 4. And back to Python, orchestrated by Node.js (Python kept the identity).
  say('node.js', '── migrating the counter back to Python ──');
  const m = await rt.startMigration(origin, node.nodeId, py.nodeId, { transportIdentity: false });
  m.on('phase', (p) => say('node.js', `phase: ${p}`));
  m.on('progress', (p) => { if (p.phase === 'transfer') say('node.js', `transfer ${bar(p.bytesMoved, p.totalBytes)}`); });
  while (!m.ended) { await feed(); await sleep(2); }
  await m.wait();
  here = 'python';
  await sleep(50);
  say('python', `the counter is back (daemons: ${(await py.call('count')).daemons}; node.js: ${rt.daemonCount()})`);
  for (let i = 0; i < 5; i++) { await feed(); await sleep(30); }

  // Every event fed was counted exactly once: 1..n without gaps.
  await sleep(100);
  const sorted = [...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const intact = sorted.length === seq - 1 && sorted.every((c, i) => c === BigInt(i + 1));
  say('demo', `${seq - 1} events fed, ${seen.length} counted: ${intact ? 'counts intact, none lost, none twice' : `MISMATCH ${sorted}`}`);

  await py.stop();
  await rt.shutdown();
  await node.close();
  process.exitCode = intact ? 0 : 1;
}

main().catch((e) => { console.error(e); process.exit(1); });
