'use strict';
// Exceptions in daemon methods and factories, bad return values, bad
// arguments and closed objects: they throw, the runtime stays usable.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Identity, NetMeshError, DaemonRuntime, Node } = require('..');
const { PSK, counter, echo, ev, runtime } = require('./helpers');

class Boom extends Error {}

function isCode(c, causeCheck) {
  return (e) => {
    assert.ok(e instanceof NetMeshError, `not a NetMeshError: ${e && e.stack}`);
    assert.equal(e.code, c, e.message);
    if (causeCheck) causeCheck(e.cause);
    return true;
  };
}

test('an exception in process → PROCESS_FAILED with the original error; errors counted; runtime usable', async (t) => {
  let fail = true;
  const { rt } = await runtime(t, {
    kinds: {
      flaky: () => ({
        process(e) {
          if (fail) throw new Boom(`bad event ${e.sequence}`);
          return [e.payload];
        },
      }),
      echo,
    },
  });
  const id = Identity.generate();
  const h = rt.spawn('flaky', id);
  const boom = (cause) => { assert.ok(cause instanceof Boom); assert.equal(cause.message, 'bad event 1'); };
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED', boom));
  try { rt.deliver(id.originHash, ev(1n)); } catch (e) { assert.match(e.message, /bad event 1/); }
  assert.equal(h.stats().errors, 2n);
  fail = false;
  assert.equal(rt.deliver(id.originHash, ev(2n, 'ok'))[0].payload.toString(), 'ok');
  const other = Identity.generate();
  rt.spawn('echo', other);
  assert.equal(rt.deliver(other.originHash, ev(1n, 'x')).length, 1);
});

test('throwing non-Error values is reported too', async (t) => {
  const { rt } = await runtime(t, { kinds: { s: () => ({ process() { throw 'plain string'; } }) } }); // eslint-disable-line no-throw-literal
  const id = Identity.generate();
  rt.spawn('s', id);
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('PROCESS_FAILED', (c) => assert.equal(c, 'plain string')));
});

test('bad process results → PROCESS_FAILED with a TypeError', async (t) => {
  const results = [42, 'str', [1], ['x'], [null], { length: 1 }, Promise.resolve([]), [new Uint16Array(2)]];
  let i = 0;
  const { rt } = await runtime(t, { kinds: { bad: () => ({ process: () => results[i] }) } });
  const id = Identity.generate();
  rt.spawn('bad', id);
  for (i = 0; i < results.length; i++) {
    assert.throws(() => rt.deliver(id.originHash, ev(i)), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  }
});

test('an exception in a factory → PROCESS_FAILED with the original error; nothing registered', async (t) => {
  const { rt } = await runtime(t, {
    kinds: {
      throws: () => { throw new Boom('no daemon today'); },
      notObject: () => 5,
      noProcess: () => ({ snapshot() { return null; } }),
      badMethod: () => ({ process() { return []; }, restore: 5 }),
    },
  });
  const id = Identity.generate();
  assert.throws(() => rt.spawn('throws', id), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof Boom)));
  assert.throws(() => rt.spawn('notObject', id), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  assert.throws(() => rt.spawn('noProcess', id), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  assert.throws(() => rt.spawn('badMethod', id), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
  assert.equal(rt.daemonCount(), 0);
  rt.registerFactory('ok', counter);
  rt.spawn('ok', id);
  assert.equal(rt.daemonCount(), 1);
});

test('an exception in snapshot → PROCESS_FAILED; in restore → RESTORE_FAILED and rolled back', async (t) => {
  let snapFails = false;
  const { rt } = await runtime(t, {
    kinds: {
      c: () => {
        const d = counter();
        return {
          process: d.process,
          snapshot() { if (snapFails) throw new Boom('snap'); return d.snapshot(); },
          restore() { throw new Boom('restore'); },
        };
      },
      stateless: echo,
    },
  });
  const id = Identity.generate();
  rt.spawn('c', id);
  rt.deliver(id.originHash, ev(1n));
  const snap = rt.snapshot(id.originHash);
  snapFails = true;
  assert.throws(() => rt.snapshot(id.originHash), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof Boom)));
  rt.stop(id.originHash);
  assert.throws(() => rt.spawnFromSnapshot('c', id, snap), isCode('RESTORE_FAILED', (c) => assert.ok(c instanceof Boom)));
  assert.equal(rt.daemonCount(), 0);
  // A daemon without restore() accepts only an empty state.
  assert.throws(() => rt.spawnFromSnapshot('stateless', id, snap), isCode('RESTORE_FAILED'));
  assert.equal(rt.daemonCount(), 0);
});

test('snapshot() must return a Buffer or null', async (t) => {
  const { rt } = await runtime(t, { kinds: { s: () => ({ process: () => [], snapshot: () => 'nope' }) } });
  const id = Identity.generate();
  rt.spawn('s', id);
  assert.throws(() => rt.snapshot(id.originHash), isCode('PROCESS_FAILED', (c) => assert.ok(c instanceof TypeError)));
});

test('a daemon may deliver to another daemon from its callback, not to itself', async (t) => {
  const { rt } = await runtime(t, { kinds: { echo, relay: () => ({ process: (e) => rt.deliver(target.originHash, e).map((o) => o.payload) }) } });
  const target = Identity.generate();
  rt.spawn('echo', target);
  const relay = Identity.generate();
  rt.spawn('relay', relay);
  assert.equal(rt.deliver(relay.originHash, ev(1n, 'via'))[0].payload.toString(), 'via');

  rt.registerFactory('selfish', () => ({ process: (e) => rt.deliver(selfish.originHash, e).map((o) => o.payload) }));
  const selfish = Identity.generate();
  rt.spawn('selfish', selfish);
  assert.throws(() => rt.deliver(selfish.originHash, ev(1n)),
    isCode('PROCESS_FAILED', (c) => { assert.ok(c instanceof NetMeshError); assert.equal(c.code, 'INVALID_ARGUMENT'); }));
});

test('a daemon can stop itself from its own process()', async (t) => {
  const { rt } = await runtime(t, { kinds: { quitter: () => ({ process() { rt.stop(me.originHash); return [Buffer.from('bye')]; } }) } });
  const me = Identity.generate();
  rt.spawn('quitter', me);
  try { rt.deliver(me.originHash, ev(1n)); } catch (e) { assert.ok(e instanceof NetMeshError); }
  assert.equal(rt.daemonCount(), 0);
});

test('bad arguments throw INVALID_ARGUMENT, never crash', async (t) => {
  const { rt } = await runtime(t);
  const id = Identity.generate();
  rt.spawn('counter', id);
  const o = id.originHash;
  const bad = [-1n, 2n ** 64n, -1, 1.5, NaN, Infinity, 2 ** 60, '1', null, undefined, {}, [], Symbol('x')];
  for (const b of bad) {
    assert.throws(() => rt.deliver(b, ev(1n)), isCode('INVALID_ARGUMENT'), `origin ${String(b)}`);
    assert.throws(() => rt.deliver(o, { originHash: b, sequence: 1n, payload: Buffer.alloc(0) }), isCode('INVALID_ARGUMENT'));
    assert.throws(() => rt.deliver(o, { originHash: 1n, sequence: b, payload: Buffer.alloc(0) }), isCode('INVALID_ARGUMENT'));
    assert.throws(() => rt.snapshot(b), isCode('INVALID_ARGUMENT'));
    assert.throws(() => rt.stop(b), isCode('INVALID_ARGUMENT'));
    assert.throws(() => rt.expectMigration('counter', b), isCode('INVALID_ARGUMENT'));
  }
  for (const p of [undefined, null, 'str', 5, {}, [1, 2]]) {
    assert.throws(() => rt.deliver(o, { originHash: 1n, sequence: 1n, payload: p }), isCode('INVALID_ARGUMENT'));
  }
  for (const e of [undefined, null, 5, 'x']) assert.throws(() => rt.deliver(o, e), isCode('INVALID_ARGUMENT'));
  for (const k of [undefined, 5, null, {}, 'a\0b']) {
    assert.throws(() => rt.spawn(k, Identity.generate()), isCode('INVALID_ARGUMENT'));
    assert.throws(() => rt.registerFactory(k, echo), isCode('INVALID_ARGUMENT'));
  }
  for (const f of [undefined, null, 5, {}]) assert.throws(() => rt.registerFactory('k' + String(f), f), isCode('INVALID_ARGUMENT'));
  for (const i of [undefined, null, 5, {}, id.originHash]) assert.throws(() => rt.spawn('counter', i), isCode('INVALID_ARGUMENT'));
  assert.throws(() => rt.spawn('counter', Identity.fromEntityId(Identity.generate().entityId)), isCode('INVALID_ARGUMENT'));
  for (const c of [5, 'x', { autoSnapshotInterval: -1n }, { autoSnapshotInterval: 'x' }]) {
    assert.throws(() => rt.spawn('counter', Identity.generate(), c), isCode('INVALID_ARGUMENT'));
  }
  for (const s of [undefined, 5, 'x']) assert.throws(() => rt.spawnFromSnapshot('counter', Identity.generate(), s), isCode('INVALID_ARGUMENT'));
  assert.throws(() => new DaemonRuntime({}), isCode('INVALID_ARGUMENT'));
  assert.throws(() => new DaemonRuntime(undefined), isCode('INVALID_ARGUMENT'));
  // Numbers in the safe range are accepted for u64 inputs.
  assert.equal(rt.deliver(o, { originHash: 3, sequence: 1, payload: new Uint8Array(1) }).length, 1);
  assert.equal(rt.daemonCount(), 1);
});

test('closed objects throw, never crash', async () => {
  const node = await Node.create({ psk: PSK });
  const rt = new DaemonRuntime(node);
  rt.registerFactory('echo', echo);
  await rt.start();
  const id = Identity.generate();
  rt.spawn('echo', id);
  id.close();
  assert.throws(() => rt.spawn('echo', id), isCode('BAD_HANDLE'));
  await node.close();
  await node.close();
  assert.throws(() => node.accept(1n), isCode('BAD_HANDLE'));
  await assert.rejects(node.connect('127.0.0.1:1', Buffer.alloc(32), 1n), isCode('BAD_HANDLE'));
  assert.throws(() => new DaemonRuntime(node), isCode('BAD_HANDLE'));
  // The runtime keeps its own reference to the node: local work goes on.
  assert.equal(rt.deliver(id.originHash, ev(1n, 'still')).length, 1);
  await rt.shutdown();
  assert.throws(() => rt.deliver(id.originHash, ev(1n)), isCode('SHUTTING_DOWN'));
});

test('Node.create validates its options', async () => {
  await assert.rejects(Node.create({ psk: Buffer.alloc(5) }), isCode('INVALID_ARGUMENT'));
  await assert.rejects(Node.create({ bind: 'not an address' }), (e) => e instanceof NetMeshError);
  await assert.rejects(Node.create({ heartbeatMs: -5 }), isCode('INVALID_ARGUMENT'));
  await assert.rejects(Node.create({ heartbeatMs: 2 ** 33 }), isCode('INVALID_ARGUMENT'));
  await assert.rejects(Node.create({ identity: 'x' }), isCode('INVALID_ARGUMENT'));
  await assert.rejects(Node.create(null), isCode('INVALID_ARGUMENT'));
  const id = Identity.generate();
  const n = await Node.create({ identity: id, heartbeatMs: 100, sessionTimeoutMs: 1000 });
  assert.equal(n.nodeId, id.nodeId);
  assert.equal(n.publicKey.length, 32);
  await n.close();
});

test('submit runs a function on the JS thread through the pool and executor', async (t) => {
  const { rt } = await runtime(t);
  const { isMainThread } = require('node:worker_threads');
  const order = [];
  await new Promise((resolve) => {
    rt.submit(() => { order.push(isMainThread); });
    rt.submit(() => { order.push('second'); resolve(); });
    order.push('sync');
  });
  assert.equal(order[0], 'sync');
  assert.deepEqual(order.slice(1).sort(), [true, 'second'].sort());
});

test('a daemon cannot snapshot itself from its own process(); another daemon it can (number or BigInt origin)', async (t) => {
  const { rt } = await runtime(t, {
    kinds: {
      counter,
      selfSnap: () => ({ process: () => { rt.snapshot(me.originHash); return []; } }),
      otherSnap: () => ({ process: () => [rt.snapshot(c.originHash)] }),
    },
  });
  const me = Identity.generate();
  rt.spawn('selfSnap', me);
  assert.throws(() => rt.deliver(me.originHash, ev(1n)),
    isCode('PROCESS_FAILED', (e) => { assert.ok(e instanceof NetMeshError); assert.equal(e.code, 'INVALID_ARGUMENT'); }));
  const c = Identity.generate();
  rt.spawn('counter', c);
  rt.deliver(c.originHash, ev(1n));
  const o = Identity.generate();
  rt.spawn('otherSnap', o);
  const out = rt.deliver(o.originHash, ev(1n));
  assert.equal(out.length, 1);
  assert.equal(out[0].payload.subarray(0, 4).toString(), 'CDS1');
});
