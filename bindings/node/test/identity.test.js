'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Identity, NetMeshError } = require('..');

// ed25519 public key of a seed, computed by Node's own crypto (independent of the library).
function ed25519Public(seed) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv = crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
}

test('known answers: entity id is the ed25519 key, ids are BLAKE2s-MAC (checked with Python hashlib)', () => {
  const cases = [
    { seed: Buffer.alloc(32, 0x42), origin: 0xc162c80da6be3de4n, node: 0xc211b9fddfaef86dn },
    { seed: Buffer.from([...Array(32).keys()]), origin: 0x782a3238801976bfn, node: 0xbd826a5d0a6394f5n },
  ];
  for (const c of cases) {
    const id = Identity.fromSeed(c.seed);
    assert.deepEqual(id.entityId, ed25519Public(c.seed));
    assert.equal(id.originHash, c.origin);
    assert.equal(id.nodeId, c.node);
    assert.deepEqual(id.seed(), c.seed);
  }
});

test('generate gives distinct identities with BigInt ids', () => {
  const a = Identity.generate();
  const b = Identity.generate();
  assert.equal(a.entityId.length, 32);
  assert.notDeepEqual(a.entityId, b.entityId);
  assert.equal(typeof a.originHash, 'bigint');
  assert.equal(typeof a.nodeId, 'bigint');
  assert.notEqual(a.originHash, b.originHash);
  assert.ok(a.originHash >= 0n && a.originHash < 2n ** 64n);
});

test('fromSeed is deterministic and accepts any byte view', () => {
  const seed = crypto.randomBytes(32);
  const a = Identity.fromSeed(seed);
  const b = Identity.fromSeed(new Uint8Array(seed));
  const c = Identity.fromSeed(seed.buffer.slice(seed.byteOffset, seed.byteOffset + 32));
  for (const x of [b, c]) {
    assert.deepEqual(x.entityId, a.entityId);
    assert.equal(x.originHash, a.originHash);
    assert.equal(x.nodeId, a.nodeId);
  }
});

test('entityId is a copy', () => {
  const a = Identity.generate();
  const e = a.entityId;
  e.fill(0);
  assert.notDeepEqual(a.entityId, e);
});

test('public-only identity: same ids, no seed', () => {
  const a = Identity.generate();
  const p = Identity.fromEntityId(a.entityId);
  assert.equal(p.originHash, a.originHash);
  assert.equal(p.nodeId, a.nodeId);
  assert.throws(() => p.seed(), (e) => e instanceof NetMeshError && e.code === 'INVALID_ARGUMENT');
});

test('bad seeds and entity ids throw INVALID_ARGUMENT', () => {
  for (const bad of [Buffer.alloc(0), Buffer.alloc(31), Buffer.alloc(33)]) {
    assert.throws(() => Identity.fromSeed(bad), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => Identity.fromEntityId(bad), { code: 'INVALID_ARGUMENT' });
  }
  for (const bad of [undefined, null, 'x'.repeat(32), 5, 5n, [0], {}, () => {}, Symbol('s')]) {
    assert.throws(() => Identity.fromSeed(bad), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => Identity.fromEntityId(bad), { code: 'INVALID_ARGUMENT' });
  }
});

test('the constructor is not public', () => {
  assert.throws(() => new Identity(), TypeError);
  assert.throws(() => new Identity({}), TypeError);
});

test('close is idempotent; a closed identity throws BAD_HANDLE, ids stay readable', () => {
  const a = Identity.fromSeed(Buffer.alloc(32, 1));
  const origin = a.originHash;
  a.close();
  a.close();
  assert.equal(a.originHash, origin);
  assert.throws(() => a.seed(), { code: 'BAD_HANDLE' });
});

test('many identities are collected without leaking handles', async () => {
  for (let i = 0; i < 20000; i++) Identity.generate();
  if (global.gc) global.gc();
  assert.ok(Identity.generate());
});
