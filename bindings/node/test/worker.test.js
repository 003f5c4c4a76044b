'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { Identity } = require('..');

const PKG = path.join(__dirname, '..');

function runWorker(code) {
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { pkg: PKG } });
    let msg;
    w.on('message', (m) => { msg = m; });
    w.on('error', reject);
    w.on('exit', (c) => (c === 0 ? resolve(msg) : reject(new Error(`worker exit ${c}`))));
  });
}

test('the addon loads in worker threads, with its own instance state', async () => {
  const seed = Buffer.alloc(32, 9);
  const here = Identity.fromSeed(seed).originHash;
  const results = await Promise.all([1, 2, 3].map(() => runWorker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { Identity, NetMeshError } = require(workerData.pkg);
    let code;
    try { Identity.fromSeed(Buffer.alloc(2)); } catch (e) { code = e instanceof NetMeshError && e.code; }
    parentPort.postMessage({ origin: Identity.fromSeed(Buffer.alloc(32, 9)).originHash, code });
  `)));
  for (const r of results) {
    assert.equal(r.origin, here);
    assert.equal(r.code, 'INVALID_ARGUMENT');
  }
});

test('terminating a busy worker does not crash the process', async () => {
  for (let i = 0; i < 4; i++) {
    const w = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      const { Identity } = require(workerData.pkg);
      parentPort.postMessage('up');
      for (;;) Identity.generate();
    `, { eval: true, workerData: { pkg: PKG } });
    await new Promise((r) => w.once('message', r));
    await w.terminate();
  }
  assert.ok(Identity.generate());
});
