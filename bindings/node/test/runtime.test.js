'use strict';
// BEHAVIOUR §5 "Runtime" through JS, plus the JS-specific contract.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Node, DaemonRuntime, Identity, NetMeshError } = require('..');
const { PSK, echo, counter, ev, runtime } = require('./helpers');

const code = (c) => (e) => {
  assert.ok(e instanceof NetMeshError, `not a NetMeshError: ${e}`);
  assert.equal(e.code, c, e.message);
  return true;
};

test('spawn before start → NOT_READY; start is idempotent', async (t) => {
  const { rt } = await runtime(t, { start: false });
  assert.equal(rt.isReady(), false);
  assert.throws(() => rt.spawn('echo', Identity.generate()), code('NOT_READY'));
  assert.throws(() => rt.stop(1n), code('NOT_READY'));
  await rt.start();
  await rt.start();
  assert.equal(rt.isReady(), true);
  rt.spawn('echo', Identity.generate());
  assert.equal(rt.daemonCount(), 1);
});

test('after shutdown, spawn and register → SHUTTING_DOWN; shutdown stops all and is idempotent', async (t) => {
  const { rt } = await runtime(t);
  for (let i = 0; i < 3; i++) rt.spawn('counter', Identity.generate());
  assert.equal(rt.daemonCount(), 3);
  await rt.shutdown();
  await rt.shutdown();
  assert.equal(rt.daemonCount(), 0);
  assert.equal(rt.isReady(), false);
  assert.throws(() => rt.spawn('echo', Identity.generate()), code('SHUTTING_DOWN'));
  assert.throws(() => rt.registerFactory('late', echo), code('SHUTTING_DOWN'));
  assert.throws(() => rt.expectMigration('echo', 5n), code('SHUTTING_DOWN'));
  await assert.rejects(rt.start(), code('SHUTTING_DOWN'));
  rt.stop(123n); // a no-op success during shutdown
});

test('duplicate kind rejected; a new kind after start works; unknown kind → FACTORY_NOT_FOUND', async (t) => {
  const { rt } = await runtime(t);
  assert.throws(() => rt.registerFactory('echo', echo), code('FACTORY_ALREADY_REGISTERED'));
  assert.throws(() => rt.spawn('nope', Identity.generate()), code('FACTORY_NOT_FOUND'));
  rt.registerFactory('late', echo);
  const id = Identity.generate();
  rt.spawn('late', id);
  assert.equal(rt.deliver(id.originHash, ev(1n, 'x'))[0].payload.toString(), 'x');
});

test('echo round trip: origin, chain and stats', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  const h = rt.spawn('echo', id);
  assert.equal(h.originHash, id.originHash);
  assert.deepEqual(h.entityId, id.entityId);
  const out1 = rt.deliver(id.originHash, ev(1n, 'hello', 99n));
  assert.equal(out1.length, 1);
  assert.equal(out1[0].originHash, id.originHash);
  assert.equal(out1[0].sequence, 1n);
  assert.equal(out1[0].payload.toString(), 'hello');
  assert.equal(typeof out1[0].parentHash, 'bigint');
  assert.equal(typeof out1[0].horizon, 'bigint');
  const out2 = rt.deliver(id.originHash, ev(2n, 'again', 99n));
  assert.equal(out2[0].sequence, 2n);
  assert.notEqual(out2[0].parentHash, out1[0].parentHash);
  assert.deepEqual(h.stats(), { eventsProcessed: 2n, eventsEmitted: 2n, errors: 0n, snapshotsTaken: 0n });
});


test('many outputs come back in order with consecutive sequences', async (t) => {
  const { rt } = await runtime(t, {
    kinds: { fan: () => ({ process: (e) => [Buffer.from('a'), new Uint8Array([1, 2]), Buffer.alloc(0), e.payload] }) },
  });
  const f = Identity.generate();
  rt.spawn('fan', f);
  const out = rt.deliver(f.originHash, ev(1n, 'z'));
  assert.deepEqual(out.map((o) => o.sequence), [1n, 2n, 3n, 4n]);
  assert.deepEqual(out.map((o) => o.payload.toString('hex')), ['61', '0102', '', '7a']);
});

test('counter 1..5, snapshot through_seq 5, stop, restore, next is 6', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  rt.spawn('counter', id);
  for (let i = 1; i <= 5; i++) {
    assert.equal(rt.deliver(id.originHash, ev(i))[0].payload.toString(), String(i));
  }
  const snap = rt.snapshot(id.originHash);
  assert.ok(Buffer.isBuffer(snap));
  assert.equal(snap.subarray(0, 4).toString(), 'CDS1');
  assert.equal(snap[4], 2);
  assert.deepEqual(snap.subarray(5, 37), id.entityId);
  assert.equal(snap.readBigUInt64LE(37), 5n);
  rt.stop(id.originHash);
  assert.equal(rt.daemonCount(), 0);
  const h = rt.spawnFromSnapshot('counter', id, snap);
  assert.equal(h.stats().eventsProcessed, 0n);
  const out = rt.deliver(id.originHash, ev(6));
  assert.equal(out[0].payload.toString(), '6');
  assert.equal(out[0].sequence, 6n);
});

test('a stateless daemon snapshots to null; snapshotsTaken counts; autoSnapshotInterval works', async (t) => {
  const { rt } = await runtime(t);
  const e = Identity.generate();
  rt.spawn('echo', e);
  assert.equal(rt.snapshot(e.originHash), null);
  const c = Identity.generate();
  const h = rt.spawn('counter', c, { autoSnapshotInterval: 2n });
  for (let i = 1; i <= 4; i++) rt.deliver(c.originHash, ev(i));
  assert.equal(h.stats().snapshotsTaken, 2n);
  rt.snapshot(c.originHash);
  assert.equal(h.stats().snapshotsTaken, 3n);
});

test('snapshot identity mismatch rejected, nothing registered', async (t) => {
  const { rt } = await runtime(t);
  const a = Identity.generate();
  rt.spawn('counter', a);
  rt.deliver(a.originHash, ev(1));
  const snap = rt.snapshot(a.originHash);
  const b = Identity.generate();
  assert.throws(() => rt.spawnFromSnapshot('counter', b, snap), code('SNAPSHOT_IDENTITY_MISMATCH'));
  assert.throws(() => rt.spawnFromSnapshot('nope', b, snap), code('FACTORY_NOT_FOUND'));
  assert.throws(() => rt.spawnFromSnapshot('counter', a, Buffer.from('garbage')), (e) => e instanceof NetMeshError);
  assert.equal(rt.daemonCount(), 1);
});

test('origin hashes colliding in the low 32 bits are told apart', async (t) => {
  const { rt } = await runtime(t);
  const seed = (i) => { const s = Buffer.alloc(32); s.writeUInt32LE(i, 0); s.write('coll', 8); return s; };
  // Found by search: these two share the low 32 bits of their origin hash.
  const a = Identity.fromSeed(seed(111259));
  const b = Identity.fromSeed(seed(196168));
  assert.equal(a.originHash & 0xffffffffn, b.originHash & 0xffffffffn);
  assert.notEqual(a.originHash, b.originHash);
  rt.spawn('counter', a);
  rt.spawn('counter', b);
  assert.equal(rt.daemonCount(), 2);
  for (let i = 1; i <= 3; i++) rt.deliver(a.originHash, ev(i));
  assert.equal(rt.deliver(b.originHash, ev(1))[0].payload.toString(), '1');
  assert.equal(rt.deliver(a.originHash, ev(4))[0].payload.toString(), '4');
  rt.stop(a.originHash);
  assert.throws(() => rt.deliver(a.originHash, ev(5)), code('DAEMON_NOT_FOUND'));
  assert.equal(rt.deliver(b.originHash, ev(2))[0].payload.toString(), '2');
});

test('same identity twice rejected, count stays 1; duplicate restore leaves the incumbent alone', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  rt.spawn('counter', id);
  rt.deliver(id.originHash, ev(1));
  const snap = rt.snapshot(id.originHash);
  rt.deliver(id.originHash, ev(2));
  assert.throws(() => rt.spawn('counter', id), code('ALREADY_REGISTERED'));
  assert.throws(() => rt.spawnFromSnapshot('counter', id, snap), code('ALREADY_REGISTERED'));
  assert.equal(rt.daemonCount(), 1);
  assert.equal(rt.deliver(id.originHash, ev(3))[0].payload.toString(), '3');
});

test('expectMigration and registerMigrationTargetIdentity: kind needed, duplicates rejected', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  assert.throws(() => rt.expectMigration('nope', id.originHash), code('FACTORY_NOT_FOUND'));
  rt.expectMigration('counter', id.originHash);
  assert.throws(() => rt.expectMigration('counter', id.originHash), code('ALREADY_REGISTERED'));
  assert.throws(() => rt.registerMigrationTargetIdentity('counter', id), code('ALREADY_REGISTERED'));
  assert.throws(() => rt.spawn('counter', id), code('ALREADY_REGISTERED'));
  const other = Identity.generate();
  rt.registerMigrationTargetIdentity('counter', other, { autoSnapshotInterval: 0 });
  assert.throws(() => rt.registerMigrationTargetIdentity('counter', other), code('ALREADY_REGISTERED'));
  assert.equal(rt.daemonCount(), 0);
});

test('stop removes; later deliver and snapshot → DAEMON_NOT_FOUND', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  rt.spawn('echo', id);
  rt.stop(id.originHash);
  assert.equal(rt.daemonCount(), 0);
  assert.throws(() => rt.deliver(id.originHash, ev(1)), code('DAEMON_NOT_FOUND'));
  assert.throws(() => rt.snapshot(id.originHash), code('DAEMON_NOT_FOUND'));
  assert.throws(() => rt.stop(id.originHash), code('DAEMON_NOT_FOUND'));
});

test('the factory runs exactly once per spawn (and once per restore)', async (t) => {
  let calls = 0;
  const { rt } = await runtime(t, { kinds: { c: () => { calls += 1; return counter(); } } });
  const ids = [Identity.generate(), Identity.generate(), Identity.generate()];
  for (const id of ids) rt.spawn('c', id);
  assert.equal(calls, 3);
  rt.deliver(ids[0].originHash, ev(1));
  rt.snapshot(ids[0].originHash);
  assert.equal(calls, 3);
  assert.throws(() => rt.spawn('c', ids[0]), code('ALREADY_REGISTERED'));
  const snap = rt.snapshot(ids[1].originHash);
  rt.stop(ids[1].originHash);
  const before = calls;
  rt.spawnFromSnapshot('c', ids[1], snap);
  assert.equal(calls, before + 1);
});

test('start losing to shutdown leaves nothing ready; spawn racing shutdown leaves nothing', async () => {
  for (let i = 0; i < 8; i++) {
    const node = await Node.create({ psk: PSK });
    const rt = new DaemonRuntime(node);
    rt.registerFactory('echo', echo);
    const started = rt.start().then(() => 'started', (e) => e.code);
    const down = rt.shutdown();
    const r = await started;
    await down;
    assert.ok(r === 'started' || r === 'SHUTTING_DOWN', String(r));
    assert.equal(rt.isReady(), false);
    assert.throws(() => rt.spawn('echo', Identity.generate()), code('SHUTTING_DOWN'));
    assert.equal(rt.daemonCount(), 0);
    await node.close();
  }
  for (let i = 0; i < 8; i++) {
    const node = await Node.create({ psk: PSK });
    const rt = new DaemonRuntime(node);
    rt.registerFactory('echo', echo);
    await rt.start();
    const down = rt.shutdown();
    const spawned = [];
    for (let k = 0; k < 50; k++) {
      try { spawned.push(rt.spawn('echo', Identity.generate())); } catch (e) { assert.equal(e.code, 'SHUTTING_DOWN'); }
    }
    await down;
    assert.equal(rt.daemonCount(), 0);
    await node.close();
  }
});

test('the runtime does not close its node', async (t) => {
  const { rt, node } = await runtime(t);
  await rt.shutdown();
  assert.match(node.addr, /^127\.0\.0\.1:\d+$/);
  node.accept(5n);
});

test('process returning nothing: processed, nothing emitted, chain untouched', async (t) => {
  const { rt } = await runtime(t, { kinds: { quiet: () => ({ process: () => undefined }), echo } });
  const q = Identity.generate();
  const h = rt.spawn('quiet', q);
  assert.deepEqual(rt.deliver(q.originHash, ev(1n)), []);
  assert.deepEqual(rt.deliver(q.originHash, ev(2n)), []);
  assert.deepEqual(h.stats(), { eventsProcessed: 2n, eventsEmitted: 0n, errors: 0n, snapshotsTaken: 0n });
});

test('payload Buffers stay intact when kept, across slab refills; large payloads and many outputs', async (t) => {
  const kept = [];
  const { rt } = await runtime(t, {
    kinds: {
      keeper: () => ({ process: (e) => { kept.push(e.payload); return [e.payload, Buffer.from(e.payload)]; } }),
      many: () => ({ process: (e) => Array.from({ length: 100 }, (_, i) => Buffer.alloc(i, i)) }),
    },
  });
  const id = Identity.generate();
  rt.spawn('keeper', id);
  const outs = [];
  const sizes = [0, 1, 63, 4096, 4097, 40000, 70000, 3000];
  for (let i = 0; i < 400; i++) {
    const size = sizes[i % sizes.length];
    const out = rt.deliver(id.originHash, ev(i, Buffer.alloc(size, i & 0xff)));
    assert.equal(out.length, 2);
    outs.push(out);
  }
  for (let i = 0; i < 400; i++) {
    const size = sizes[i % sizes.length];
    const want = Buffer.alloc(size, i & 0xff);
    assert.deepEqual(kept[i], want, `kept ${i}`);
    assert.deepEqual(outs[i][0].payload, want, `out ${i}`);
    assert.deepEqual(outs[i][1].payload, want);
    assert.equal(outs[i][1].sequence, outs[i][0].sequence + 1n);
  }
  const m = Identity.generate();
  rt.spawn('many', m);
  const out = rt.deliver(m.originHash, ev(1n));
  assert.equal(out.length, 100);
  out.forEach((o, i) => { assert.deepEqual(o.payload, Buffer.alloc(i, i)); assert.equal(o.sequence, BigInt(i + 1)); });
});

test('returned payloads are handed over: outputs are the very Buffers process() returned', async (t) => {
  const made = [];
  const { rt } = await runtime(t, {
    kinds: {
      own: () => ({ process: (e) => { const b = [Buffer.from('x'), new Uint8Array([7, 8]), new Int8Array([-1])]; made.push(b); return b.slice(0, Number(e.sequence)); } }),
      echo,
      // Delivers to an echo daemon from inside its own process(), then returns its own outputs.
      outer: () => ({ process: (e) => { const inner = rt.deliver(ech.originHash, { originHash: 9n, sequence: 1n, payload: Buffer.from('in') }); return [Buffer.from('out'), inner[0].payload]; } }),
    },
  });
  const id = Identity.generate();
  rt.spawn('own', id);
  const one = rt.deliver(id.originHash, ev(1n));
  assert.equal(one.length, 1);
  assert.equal(one[0].payload, made[0][0]); // the same object, not a copy
  const three = rt.deliver(id.originHash, ev(3n));
  assert.equal(three[0].payload, made[1][0]);
  // Typed arrays come back as Buffer views of the same memory.
  assert.ok(Buffer.isBuffer(three[1].payload) && Buffer.isBuffer(three[2].payload));
  assert.deepEqual([...three[1].payload], [7, 8]);
  made[1][1][0] = 9;
  assert.equal(three[1].payload[0], 9);
  assert.deepEqual([...three[2].payload], [0xff]);
  assert.deepEqual(three.map((o) => o.sequence), [2n, 3n, 4n]);
  // The echo daemon hands back the caller's own payload.
  const ech = Identity.generate();
  rt.spawn('echo', ech);
  const p = Buffer.from('mine');
  assert.equal(rt.deliver(ech.originHash, { originHash: 1n, sequence: 1n, payload: p })[0].payload, p);
  const o = Identity.generate();
  rt.spawn('outer', o);
  const out = rt.deliver(o.originHash, ev(1n));
  assert.deepEqual(out.map((x) => x.payload.toString()), ['out', 'in']);
  assert.deepEqual(out.map((x) => x.originHash), [o.originHash, o.originHash]);
  assert.deepEqual(out.map((x) => x.sequence), [1n, 2n]);
});
