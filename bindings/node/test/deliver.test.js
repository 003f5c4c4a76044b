'use strict';
// deliver() is host-driven: the addon leases the daemon (deliverBegin), JS
// calls its process() itself, and deliverCommit / deliverAbort close the
// lease. These tests pin down that every lease is closed, whatever the
// daemon does, and that the lease API refuses misuse instead of crashing.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { Node, DaemonRuntime, Identity, NetMeshError } = require('..');
const native = require('../lib/native');
const { PSK, counter, echo, ev, runtime } = require('./helpers');

class Boom extends Error {}

const isCode = (c, causeCheck) => (e) => {
  assert.ok(e instanceof NetMeshError, `not a NetMeshError: ${e && e.stack}`);
  assert.equal(e.code, c, e.message);
  if (causeCheck) causeCheck(e.cause);
  return true;
};
const noLease = () => assert.equal(native.openLeases(), 0, 'a lease was left open');

test('every way process() can fail closes the lease; the daemon stays usable', async (t) => {
  let mode = 'ok';
  const results = {
    throw: () => { throw new Boom('boom'); },
    string: () => { throw 'plain'; }, // eslint-disable-line no-throw-literal
    symbol: () => { throw Symbol('s'); },
    badToString: () => { throw { toString() { throw new Error('no text'); } }; },
    notArray: () => 'x',
    badItem: () => [Buffer.from('a'), 5],
    badGetter: () => { const a = [Buffer.from('a'), Buffer.from('b')]; Object.defineProperty(a, 1, { get() { throw new Boom('getter'); } }); return a; },
    promise: () => Promise.resolve([]),
  };
  let seen = 0;
  const { rt } = await runtime(t, {
    kinds: { c: () => { let n = 0; return { process(e) { seen++; if (mode !== 'ok') return results[mode](e); n++; return [Buffer.from(String(n))]; }, snapshot: () => Buffer.from(String(n)) }; } },
  });
  const id = Identity.generate();
  const h = rt.spawn('c', id);
  let errors = 0n;
  let ok = 0;
  for (const m of Object.keys(results)) {
    mode = m;
    assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED'), m);
    noLease();
    errors++;
    // The host is free again: snapshot and deliver reach the daemon at once.
    assert.ok(Buffer.isBuffer(rt.snapshot(id.originHash)));
    mode = 'ok';
    assert.equal(rt.deliver(id.originHash, ev(2n))[0].payload.toString(), String(++ok), m);
    noLease();
  }
  assert.equal(seen, 2 * Object.keys(results).length);
  const st = h.stats();
  assert.equal(st.errors, errors);
  assert.equal(st.eventsProcessed, BigInt(Object.keys(results).length));
});

test('the original error is the cause: TypeError for bad results, the thrown value otherwise', async (t) => {
  let r;
  const { rt } = await runtime(t, { kinds: { f: () => ({ process: () => r() }) } });
  const id = Identity.generate();
  rt.spawn('f', id);
  r = () => { throw new Boom('x'); };
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof Boom)));
  r = () => [new Uint32Array(1)];
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  r = () => [Buffer.alloc(1), new Float64Array(1)];
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  r = () => 7;
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  noLease();
});

test('nested delivers close innermost first, whether the inner one fails or not', async (t) => {
  let innerFails = false;
  let catchInner = true;
  const { rt } = await runtime(t, {
    kinds: {
      inner: () => ({ process(e) { if (innerFails) throw new Boom('inner'); return [e.payload]; } }),
      outer: () => ({
        process(e) {
          assert.equal(native.openLeases(), 1);
          let got;
          try {
            got = rt.deliver(inner.originHash, e).map((o) => o.payload);
          } catch (err) {
            if (!catchInner) throw err;
            assert.equal(native.openLeases(), 1); // the inner lease is closed, ours is open
            got = [Buffer.from('caught')];
          }
          return [Buffer.from('outer'), ...got];
        },
      }),
    },
  });
  const inner = Identity.generate();
  const outer = Identity.generate();
  rt.spawn('inner', inner);
  const ho = rt.spawn('outer', outer);
  assert.deepEqual(rt.deliver(outer.originHash, ev(1n, 'x')).map((o) => o.payload.toString()), ['outer', 'x']);
  innerFails = true;
  assert.deepEqual(rt.deliver(outer.originHash, ev(2n, 'x')).map((o) => o.payload.toString()), ['outer', 'caught']);
  catchInner = false;
  assert.throws(() => rt.deliver(outer.originHash, ev(3n)),
    isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof NetMeshError && c.code === 'PROCESS_FAILED' && c.cause instanceof Boom)));
  noLease();
  innerFails = false;
  assert.equal(rt.deliver(outer.originHash, ev(4n, 'y')).length, 2);
  assert.equal(ho.stats().errors, 1n);
  noLease();
});

test('an automatic snapshot inside the commit may deliver elsewhere: both commits keep their outputs', async (t) => {
  let snaps = 0;
  const { rt } = await runtime(t, {
    kinds: {
      echo,
      // Its snapshot() (run by the library inside deliverCommit, every event)
      // delivers to the echo daemon: a commit nested in a commit.
      snappy: () => {
        let n = 0;
        return {
          process() { n++; return [Buffer.from(`n${n}`), Buffer.from(`m${n}`)]; },
          snapshot() {
            snaps++;
            const inner = rt.deliver(ech.originHash, { originHash: 2n, sequence: BigInt(n), payload: Buffer.from(`s${n}`) });
            assert.equal(inner[0].payload.toString(), `s${n}`);
            assert.equal(native.openLeases(), 1); // the inner lease is closed, the outer's is still open
            return Buffer.from(String(n));
          },
        };
      },
    },
  });
  const ech = Identity.generate();
  rt.spawn('echo', ech);
  const id = Identity.generate();
  rt.spawn('snappy', id, { autoSnapshotInterval: 1 });
  for (let i = 1; i <= 3; i++) {
    const out = rt.deliver(id.originHash, ev(BigInt(i)));
    assert.deepEqual(out.map((o) => o.payload.toString()), [`n${i}`, `m${i}`]);
    assert.deepEqual(out.map((o) => o.sequence), [BigInt(2 * i - 1), BigInt(2 * i)]);
    assert.deepEqual(out.map((o) => o.originHash), [id.originHash, id.originHash]);
  }
  assert.equal(snaps, 3);
  noLease();
});

test('a daemon that delivers to or snapshots itself is refused without a lease being kept', async (t) => {
  let what = 'deliver';
  const { rt } = await runtime(t, {
    kinds: { selfish: () => ({ process(e) { if (what === 'deliver') rt.deliver(me.originHash, e); else rt.snapshot(me.originHash); return []; } }) },
  });
  const me = Identity.generate();
  rt.spawn('selfish', me);
  for (what of ['deliver', 'snapshot']) {
    assert.throws(() => rt.deliver(me.originHash, ev(1n)),
      isCode('PROCESS_FAILED', (c) => { assert.ok(c instanceof NetMeshError); assert.equal(c.code, 'INVALID_ARGUMENT'); }));
    noLease();
  }
});

test('bad arguments: refused before any lease; the lease exports refuse misuse', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  rt.spawn('echo', id);
  const throwing = { get originHash() { throw new Boom('getter'); }, sequence: 1n, payload: Buffer.alloc(0) };
  assert.throws(() => rt.deliver(id.originHash, throwing), Boom);
  for (const bad of [{ originHash: -1n, sequence: 1n, payload: Buffer.alloc(0) }, { originHash: 1n, sequence: 1n, payload: 'x' }, { originHash: 1n, sequence: 2 ** 64, payload: Buffer.alloc(0) }]) {
    assert.throws(() => rt.deliver(id.originHash, bad), isCode('INVALID_ARGUMENT'));
  }
  assert.throws(() => rt.deliver(Identity.generate().originHash, ev(1n)), isCode('DAEMON_NOT_FOUND'));
  noLease();
  // The raw exports: no open lease to commit or abort, wrong argument counts
  // and kinds: errors, never a crash or a stray lease.
  assert.throws(() => native.deliverCommit(undefined), /no deliver is open/);
  assert.throws(() => native.deliverCommit([Buffer.alloc(1)]), /no deliver is open/);
  assert.throws(() => native.deliverAbort(new Error('x')), /no deliver is open/);
  assert.throws(() => native.deliverBegin(), isCode('INVALID_ARGUMENT'));
  assert.throws(() => native.deliverBegin({}, 1n, 1n, 1n, Buffer.alloc(0)), isCode('INVALID_ARGUMENT'));
  noLease();
  // Queued and failed begins leave nothing open; a normal one still works.
  assert.equal(rt.deliver(id.originHash, ev(1n, 'ok'))[0].payload.toString(), 'ok');
  noLease();
});

test('outputs: none, one, many (past the shared id array), typed-array payloads; ids match the chain', async (t) => {
  let k = 0;
  const { rt } = await runtime(t, {
    kinds: { fan: () => ({ process: () => Array.from({ length: k }, (_, i) => (i % 2 ? new Uint8Array([i & 0xff]) : Buffer.from([i & 0xff]))) }) },
  });
  const id = Identity.generate();
  const h = rt.spawn('fan', id);
  let seq = 0n;
  let parent = null;
  for (k of [0, 1, 2, 63, 64, 65, 200, 1]) {
    const out = rt.deliver(id.originHash, ev(1n));
    assert.equal(out.length, k);
    out.forEach((o, i) => {
      seq += 1n;
      assert.equal(o.originHash, id.originHash);
      assert.equal(o.sequence, seq);
      assert.ok(Buffer.isBuffer(o.payload));
      assert.deepEqual([...o.payload], [i & 0xff]);
      assert.equal(typeof o.parentHash, 'bigint');
      assert.equal(typeof o.horizon, 'bigint');
      if (parent !== null) assert.notEqual(o.parentHash, parent);
      parent = o.parentHash;
    });
  }
  assert.equal(h.stats().eventsEmitted, seq);
  noLease();
});

test('origins given as numbers: outputs carry BigInt ids; ArrayBuffer and DataView payloads reach process() as Buffers', async (t) => {
  const got = [];
  const { rt } = await runtime(t, { kinds: { rec: () => ({ process: (e) => { got.push(e); return [e.payload]; } }) } });
  const id = Identity.fromSeed(Buffer.alloc(32, 3));
  rt.spawn('rec', id);
  const ab = new Uint8Array([1, 2, 3]).buffer;
  for (const payload of [ab, new DataView(ab, 1), new Uint8Array(ab, 2)]) {
    const out = rt.deliver(id.originHash, { originHash: 5, sequence: 6, payload });
    const e = got[got.length - 1];
    assert.equal(e.originHash, 5n);
    assert.equal(e.sequence, 6n);
    assert.ok(Buffer.isBuffer(e.payload));
    assert.deepEqual(out[0].payload, e.payload);
  }
  assert.deepEqual(got.map((e) => [...e.payload]), [[1, 2, 3], [2, 3], [3]]);
  noLease();
});

test('deliver while the daemon is migrating: queued, returns [] without calling process(); replayed on the target', async (t) => {
  const a = await Node.create({ psk: PSK });
  const b = await Node.create({ psk: PSK });
  b.accept(a.nodeId);
  await a.connect(b.addr, b.publicKey, b.nodeId);
  let calls = 0;
  const counting = () => { const d = counter(); return { process() { calls++; return d.process(); }, snapshot: d.snapshot, restore: d.restore }; };
  const ra = new DaemonRuntime(a);
  const rb = new DaemonRuntime(b);
  ra.registerFactory('c', counting);
  rb.registerFactory('c', counter);
  await ra.start();
  await rb.start();
  t.after(async () => { await ra.shutdown(); await rb.shutdown(); await a.close(); await b.close(); });
  const id = Identity.generate();
  ra.spawn('c', id);
  rb.expectMigration('c', id.originHash);
  assert.equal(ra.deliver(id.originHash, ev(1n))[0].payload.toString(), '1');
  const sunk = [];
  rb.onOutput((_o, evs) => sunk.push(...evs.map((e) => e.payload.toString())));
  const m = await ra.startMigration(id.originHash, a.nodeId, b.nodeId);
  // Between snapshot and cutover the source queues: no process() call, no lease.
  const before = calls;
  const queued = [];
  for (let i = 2; i <= 6; i++) {
    try {
      const out = ra.deliver(id.originHash, ev(BigInt(i)));
      assert.deepEqual(out, []);
      queued.push(String(i));
    } catch (e) {
      assert.equal(e.code, 'DAEMON_MOVED'); // the migration finished first
      break;
    }
    noLease();
  }
  assert.equal(calls, before);
  assert.ok(queued.length > 0, 'nothing was queued');
  await m.wait(20_000);
  for (let i = 0; i < 200 && sunk.length < queued.length; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(sunk, queued); // the counter continues at 2 on B, in order
  noLease();
});

test('a worker terminated inside process() releases its lease at exit; the process goes on', async () => {
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { Node, DaemonRuntime, Identity } = require(workerData.pkg);
    const native = require(workerData.pkg + '/lib/native');
    (async () => {
      const node = await Node.create({});
      const rt = new DaemonRuntime(node);
      rt.registerFactory('spin', () => ({ process() { parentPort.postMessage(native.openLeases()); for (;;); } }));
      await rt.start();
      const id = Identity.generate();
      rt.spawn('spin', id);
      rt.deliver(id.originHash, { originHash: 1n, sequence: 1n, payload: Buffer.alloc(1) });
    })();
  `, { eval: true, workerData: { pkg: path.join(__dirname, '..') } });
  const open = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
  assert.equal(open, 1);
  // The cleanup hook aborts the lease before shutting the runtime down; a
  // lease left open would keep the shutdown waiting for the daemon's lock.
  let timer;
  const done = await Promise.race([
    w.terminate().then(() => 'exited'),
    new Promise((r) => { timer = setTimeout(() => r('hung'), 15_000); }),
  ]);
  clearTimeout(timer);
  assert.equal(done, 'exited');
  const node = await Node.create({});
  const rt = new DaemonRuntime(node);
  rt.registerFactory('echo', echo);
  await rt.start();
  const id = Identity.generate();
  rt.spawn('echo', id);
  assert.equal(rt.deliver(id.originHash, ev(1n, 'x'))[0].payload.toString(), 'x');
  await rt.shutdown();
  await node.close();
});
