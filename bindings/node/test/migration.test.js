'use strict';
// Live migration between two Nodes in one process (BEHAVIOUR §3–§4 through JS).
const test = require('node:test');
const assert = require('node:assert/strict');
const { Node, DaemonRuntime, Identity, MigrationHandle, NetMeshError } = require('..');
const { PSK, ev } = require('./helpers');

const code = (c, reason) => (e) => {
  assert.ok(e instanceof NetMeshError, `not a NetMeshError: ${e && e.stack}`);
  assert.equal(e.code, c, e.message);
  if (reason !== undefined) assert.equal(e.reason, reason, e.message);
  return true;
};

/** Counter with the cross-language state format: the count as 8 bytes little-endian. */
function counter() {
  let n = 0n;
  return {
    process() { n += 1n; const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return [b]; },
    snapshot() { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; },
    restore(buf) { n = buf.readBigUInt64LE(0); },
  };
}
const countOf = (outs) => outs.map((o) => o.payload.readBigUInt64LE(0));

/** Two started runtimes on two connected nodes, counter registered on both. */
async function pair(t, { startB = true } = {}) {
  const a = await Node.create({ psk: PSK });
  const b = await Node.create({ psk: PSK });
  b.accept(a.nodeId);
  await a.connect(b.addr, b.publicKey, b.nodeId);
  const ra = new DaemonRuntime(a);
  const rb = new DaemonRuntime(b);
  ra.registerFactory('counter', counter);
  rb.registerFactory('counter', counter);
  await ra.start();
  if (startB) await rb.start();
  t.after(async () => {
    await ra.shutdown();
    await rb.shutdown();
    await a.close();
    await b.close();
  });
  return { a, b, ra, rb };
}

function deliverCount(rt, origin, seq) {
  return countOf(rt.deliver(origin, ev(BigInt(seq), 'e')));
}

test('counter 3 on A continues at 4 on B; A answers DAEMON_MOVED naming B; phases and progress', async (t) => {
  const { a, b, ra, rb } = await pair(t);
  const id = Identity.generate();
  rb.expectMigration('counter', id.originHash);
  ra.spawn('counter', id);
  for (let i = 1; i <= 3; i++) assert.deepEqual(deliverCount(ra, id.originHash, i), [BigInt(i)]);

  const m = await ra.startMigration(id.originHash, a.nodeId, b.nodeId);
  assert.ok(m instanceof MigrationHandle);
  assert.notEqual(m.phase, 'none');
  assert.notEqual(ra.migrationPhase(id.originHash), 'none');
  const phases = [];
  const progress = [];
  let ended;
  m.on('phase', (p) => phases.push(p));
  m.on('progress', (p) => progress.push(p));
  m.on('end', (e) => { ended = e; });
  await m.wait(10_000);
  await m.wait(); // ended: resolves at once
  assert.equal(ended, null);
  assert.equal(m.ended, true);
  assert.equal(m.phase, 'none');
  assert.equal(m.lastPhase, 'complete');
  assert.equal(ra.migrationPhase(id.originHash), 'none');
  for (const p of ['snapshot', 'transfer', 'restore', 'cutover', 'complete']) assert.ok(phases.includes(p), `${p} in ${phases}`);
  const order = ['snapshot', 'transfer', 'restore', 'replay', 'cutover', 'complete'];
  for (let i = 1; i < phases.length; i++) assert.ok(order.indexOf(phases[i]) > order.indexOf(phases[i - 1]), `${phases}`);
  const transfer = progress.filter((p) => p.phase === 'transfer');
  assert.ok(transfer.length > 0);
  const last = transfer[transfer.length - 1];
  assert.equal(typeof last.bytesMoved, 'bigint');
  assert.ok(last.totalBytes > 0n);
  assert.equal(last.bytesMoved, last.totalBytes);

  assert.equal(ra.daemonCount(), 0);
  assert.equal(rb.daemonCount(), 1);
  assert.deepEqual(deliverCount(rb, id.originHash, 4), [4n]);
  assert.throws(() => ra.deliver(id.originHash, ev(5n, 'x')), (e) => {
    code('DAEMON_MOVED')(e);
    assert.equal(e.movedTo, b.nodeId);
    return true;
  });

  // Back to A, orchestrated by B (A kept its entry; it has the full keypair).
  const back = await rb.startMigration(id.originHash, b.nodeId, a.nodeId, { transportIdentity: false });
  await back.wait(10_000);
  assert.deepEqual(deliverCount(ra, id.originHash, 5), [5n]);
  assert.throws(() => rb.deliver(id.originHash, ev(6n, 'x')), code('DAEMON_MOVED'));
});

test('events delivered during the migration are none lost: queued on A, replayed on B (outputs to B\'s sink)', async (t) => {
  const { a, b, ra, rb } = await pair(t);
  const id = Identity.generate();
  rb.expectMigration('counter', id.originHash);
  ra.spawn('counter', id);
  const sunk = [];
  rb.onOutput((origin, events) => {
    assert.equal(origin, id.originHash);
    sunk.push(...countOf(events));
  });
  const sunkA = [];
  ra.onOutput((_o, events) => sunkA.push(...countOf(events)));
  for (let i = 1; i <= 3; i++) deliverCount(ra, id.originHash, i);
  const m = await ra.startMigration(id.originHash, a.nodeId, b.nodeId);
  // Deliver while the migration runs: queued on A (no outputs) until cutover,
  // then B takes them directly.
  let seq = 4;
  const direct = [];
  let moved = false;
  const feeder = setInterval(() => {
    const rt = moved ? rb : ra;
    try {
      direct.push(...deliverCount(rt, id.originHash, seq));
      seq += 1;
    } catch (e) {
      if (e.code !== 'DAEMON_MOVED') throw e;
      moved = true; // retried on B next tick
    }
  }, 1);
  await m.wait(10_000);
  clearInterval(feeder);
  if (!moved) { // never saw the cutover from A's side: the rest goes to B
    moved = true;
  }
  direct.push(...deliverCount(rb, id.originHash, seq));
  seq += 1;
  const all = [...sunk, ...sunkA, ...direct].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const want = [];
  for (let i = 4n; i < BigInt(seq); i++) want.push(i);
  assert.deepEqual(all, want, `sink ${sunk} direct ${direct}`);
  assert.ok(sunk.length > 0 || direct.length === want.length);
  assert.deepEqual(sunkA, []);
});

/**
 * Deliver seq once, where the library accepts it: the target (B) takes it
 * directly or queues it behind its replay; before cutover B refuses with
 * MIGRATION 'wrong-phase' ("deliver to the source") and the source (A) queues
 * it; after cutover A answers DAEMON_MOVED. Returns [where, counts] or null
 * (no taker right now: try again later).
 */
function route(ra, rb, origin, seq) {
  try {
    const o = deliverCount(rb, origin, seq);
    return [o.length ? 'B' : 'B-queued', o];
  } catch (e) {
    if (!((e.code === 'MIGRATION' && e.reason === 'wrong-phase') || e.code === 'DAEMON_NOT_FOUND')) throw e;
  }
  try {
    const o = deliverCount(ra, origin, seq);
    return [o.length ? 'A' : 'A-queued', o];
  } catch (e) {
    if (e.code !== 'DAEMON_MOVED') throw e;
  }
  return null;
}

test('no deadlock: deliver from JS into a daemon while the migration replays into it (from inside the replay)', async (t) => {
  const { a, b, ra, rb } = await pair(t);
  const id = Identity.generate();
  const origin = id.originHash;
  rb.expectMigration('counter', origin);
  ra.spawn('counter', id);
  deliverCount(ra, origin, 1);
  let seq = 2;
  const outs = [];
  const where = [];
  const pending = [];
  let replaying = 0;
  // B's sink runs on this thread inside the replay's executor tasks: each
  // call delivers into the very daemon being replayed into.
  rb.onOutput((o, events) => {
    assert.equal(o, origin);
    outs.push(...countOf(events));
    replaying += 1;
    const s = seq++;
    const r = route(ra, rb, origin, s);
    if (r === null) pending.push(s);
    else { where.push(`sink:${r[0]}`); outs.push(...r[1]); }
  });
  const m = await ra.startMigration(origin, a.nodeId, b.nodeId);
  // Events queued on A: the target replays them one by one on this thread.
  for (let i = 0; i < 100; i++) assert.deepEqual(deliverCount(ra, origin, seq++), []);
  // Keep delivering from the event loop too, between the replay's tasks.
  const deadline = Date.now() + 20_000;
  while (!m.ended && Date.now() < deadline) {
    const s = pending.length ? pending.shift() : seq++;
    const r = route(ra, rb, origin, s);
    if (r === null) pending.push(s);
    else { where.push(`loop:${r[0]}`); outs.push(...r[1]); }
    await new Promise((r2) => setImmediate(r2));
  }
  await m.wait(10_000);
  while (pending.length) {
    const r = route(ra, rb, origin, pending.shift());
    assert.ok(r);
    outs.push(...r[1]);
  }
  // Let outputs of events queued behind the replay reach the sink.
  for (let i = 0; i < 100 && outs.length < seq - 2; i++) await new Promise((r) => setTimeout(r, 10));
  rb.onOutput(null);
  const sorted = [...outs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const want = [];
  for (let i = 2n; i < BigInt(seq); i++) want.push(i);
  assert.deepEqual(sorted, want, 'every accepted event processed exactly once');
  assert.ok(replaying >= 100, `the sink ran inside the replay (${replaying} calls)`);
  assert.ok(where.some((w) => w.startsWith('sink:')));
  assert.deepEqual(deliverCount(rb, origin, seq), [BigInt(seq)]);
  const tally = {};
  for (const w of where) tally[w] = (tally[w] || 0) + 1;
  t.diagnostic(`deliveries during the migration: ${JSON.stringify(tally)}`);
});

test('no entry on the target: MIGRATION_FAILED with reason factory-not-found; the daemon stays', async (t) => {
  const { a, b, ra } = await pair(t);
  const id = Identity.generate();
  ra.spawn('counter', id);
  deliverCount(ra, id.originHash, 1);
  const m = await ra.startMigration(id.originHash, a.nodeId, b.nodeId);
  let ended;
  m.on('end', (e) => { ended = e; });
  await assert.rejects(m.wait(10_000), code('MIGRATION_FAILED', 'factory-not-found'));
  await assert.rejects(m.wait(), code('MIGRATION_FAILED', 'factory-not-found'));
  assert.ok(ended instanceof NetMeshError);
  assert.equal(m.error, ended);
  assert.deepEqual(deliverCount(ra, id.originHash, 2), [2n]);
});

test('startMigration failures reject with MIGRATION and a reason', async (t) => {
  const { a, b, ra } = await pair(t);
  await assert.rejects(ra.startMigration(0x42n, a.nodeId, b.nodeId), code('MIGRATION', 'daemon-not-found'));
  const id = Identity.generate();
  ra.spawn('counter', id);
  await assert.rejects(ra.startMigration(id.originHash, a.nodeId, 0xdeadbeefn), code('MIGRATION'));
  assert.deepEqual(deliverCount(ra, id.originHash, 1), [1n]);
  await assert.rejects(ra.startMigration(id.originHash, a.nodeId, b.nodeId, null), code('INVALID_ARGUMENT'));
  await assert.rejects(ra.startMigration(id.originHash, -1, b.nodeId), code('INVALID_ARGUMENT'));
  await assert.rejects(ra.startMigration(id.originHash, a.nodeId, b.nodeId, { transportIdentity: 'yes' }), code('INVALID_ARGUMENT'));
  await assert.rejects(ra.startMigration(id.originHash, a.nodeId, b.nodeId, { retryNotReadyMs: 1.5 }), code('INVALID_ARGUMENT'));
  assert.throws(() => ra.onOutput(42), code('INVALID_ARGUMENT'));
  assert.throws(() => new MigrationHandle(), TypeError);
});

test('a target that is not started: compute-not-supported, not retried', async (t) => {
  const { a, b, ra, rb } = await pair(t, { startB: false });
  const id = Identity.generate();
  ra.spawn('counter', id);
  rb.expectMigration('counter', id.originHash);
  const m = await ra.startMigration(id.originHash, a.nodeId, b.nodeId, { retryNotReadyMs: -1 });
  await assert.rejects(m.wait(10_000), code('MIGRATION_FAILED', 'compute-not-supported'));
  assert.equal(ra.daemonCount(), 1);
});

test('wait(timeoutMs) rejects TIMEOUT and the migration goes on; cancel rolls back, queued events run on A (sink)', async (t) => {
  const { a, b, ra } = await pair(t);
  // B's node goes away after the session is up: the migration cannot get
  // past the target's restore, deterministically.
  await b.close();
  const id = Identity.generate();
  ra.spawn('counter', id);
  deliverCount(ra, id.originHash, 1);
  const sunkA = [];
  ra.onOutput((o, events) => {
    assert.equal(o, id.originHash);
    sunkA.push(...countOf(events));
  });
  const m = await ra.startMigration(id.originHash, a.nodeId, b.nodeId);
  assert.deepEqual(deliverCount(ra, id.originHash, 2), []); // queued on A
  await assert.rejects(m.wait(0), code('TIMEOUT'));
  await assert.rejects(m.wait(100), code('TIMEOUT'));
  await assert.rejects(m.wait(-1), code('INVALID_ARGUMENT'));
  assert.equal(m.ended, false);
  assert.notEqual(m.phase, 'none');
  // A waiter from before the cancel settles too. Its rejection handler is
  // attached now: the end note may arrive before cancel() resolves.
  const waiting = assert.rejects(m.wait(5000), code('MIGRATION', 'state-failed'));
  await m.cancel();
  await waiting;
  await assert.rejects(m.wait(), (e) => code('MIGRATION', 'state-failed')(e) && /cancel/.test(e.message));
  await assert.rejects(m.cancel(), code('MIGRATION', 'wrong-phase'));
  assert.equal(m.phase, 'none');
  // The queued event ran on A; its output went to A's sink.
  for (let i = 0; i < 200 && sunkA.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(sunkA, [2n]);
  assert.deepEqual(deliverCount(ra, id.originHash, 3), [3n]);
  assert.equal(ra.daemonCount(), 1);
});

test('a dropped MigrationHandle still gets its events (runtimes unref()d)', async (t) => {
  const { a, b, ra, rb } = await pair(t);
  ra.unref();
  rb.unref();
  const id = Identity.generate();
  rb.expectMigration('counter', id.originHash);
  ra.spawn('counter', id);
  let done;
  const finished = new Promise((r) => { done = r; });
  (await ra.startMigration(id.originHash, a.nodeId, b.nodeId)).on('end', done); // handle dropped
  global.gc?.();
  assert.equal(await finished, null);
  assert.equal(rb.daemonCount(), 1);
  ra.ref();
  rb.ref();
});
