'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Node, Identity, NetMeshError } = require('..');
const { PSK } = require('./helpers');

test('two nodes connect after accept; ids and keys are consistent', async () => {
  const ia = Identity.generate();
  const a = await Node.create({ psk: PSK, identity: ia, heartbeatMs: 200, sessionTimeoutMs: 5000 });
  const b = await Node.create({ psk: PSK });
  try {
    assert.equal(a.nodeId, ia.nodeId);
    assert.notEqual(a.nodeId, b.nodeId);
    assert.notDeepEqual(a.publicKey, b.publicKey);
    b.accept(a.nodeId);
    await a.connect(b.addr, b.publicKey, b.nodeId);
  } finally {
    await a.close();
    await b.close();
  }
});

test('connect to a silent address times out or fails with a NetMeshError, without blocking the loop', async () => {
  const a = await Node.create({ psk: PSK });
  const b = await Node.create({ psk: PSK });
  const bAddr = b.addr;
  const bKey = b.publicKey;
  const bId = b.nodeId;
  await b.close();
  let ticks = 0;
  const timer = setInterval(() => { ticks += 1; }, 10);
  try {
    await assert.rejects(a.connect(bAddr, bKey, bId, 300), (e) => e instanceof NetMeshError && ['TIMEOUT', 'IO'].includes(e.code));
  } finally {
    clearInterval(timer);
    await a.close();
  }
  assert.ok(ticks >= 5, `event loop ran ${ticks} ticks while connecting`);
});

test('connect validates its arguments', async () => {
  const a = await Node.create({ psk: PSK });
  try {
    await assert.rejects(async () => a.connect(5, Buffer.alloc(32), 1n), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(async () => a.connect('127.0.0.1:1', Buffer.alloc(31), 1n), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(async () => a.connect('127.0.0.1:1', Buffer.alloc(32), -1n), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => a.accept('x'), { code: 'INVALID_ARGUMENT' });
  } finally {
    await a.close();
  }
});
