'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { NetMeshError, Identity } = require('..');
const native = require('../lib/native');
const { codeOf } = require('../lib/errors');

// Every status of the C enum and its upper-snake-case JS code.
const CODES = {
  '-1': 'NOT_READY', '-2': 'SHUTTING_DOWN', '-3': 'FACTORY_ALREADY_REGISTERED',
  '-4': 'FACTORY_NOT_FOUND', '-5': 'SNAPSHOT_IDENTITY_MISMATCH', '-6': 'DAEMON_NOT_FOUND',
  '-7': 'DAEMON_MOVED', '-8': 'ALREADY_REGISTERED', '-9': 'PROCESS_FAILED',
  '-10': 'RESTORE_FAILED', '-11': 'INVALID_ARGUMENT', '-12': 'TIMEOUT', '-13': 'MIGRATION',
  '-14': 'MIGRATION_FAILED', '-15': 'BAD_HANDLE', '-16': 'CALLBACK_FAILED',
  '-17': 'INTERNAL_PANIC', '-18': 'NO_MEMORY', '-19': 'IO', '-20': 'INTERNAL',
};

test('every status maps to its upper snake case code', () => {
  for (const [status, code] of Object.entries(CODES)) {
    assert.equal(codeOf(native.statusKind(Number(status))), code, `status ${status}`);
  }
  assert.equal(codeOf('daemon-moved'), 'DAEMON_MOVED');
});

test('a library failure is a NetMeshError with code, kind, status and the library message', () => {
  try {
    Identity.fromSeed(Buffer.alloc(5));
    assert.fail('no throw');
  } catch (e) {
    assert.ok(e instanceof NetMeshError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'NetMeshError');
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.equal(e.kind, 'invalid-argument');
    assert.equal(e.status, -11);
    assert.match(e.message, /32 bytes/);
    assert.ok(e.stack.includes('errors.test.js'));
  }
});

test('NetMeshError carries reason, movedTo and cause when given', () => {
  const cause = new RangeError('inner');
  const e = new NetMeshError('m', { kind: 'migration-failed', status: -14, reason: 'factory-not-found', cause });
  assert.equal(e.code, 'MIGRATION_FAILED');
  assert.equal(e.reason, 'factory-not-found');
  assert.equal(e.cause, cause);
  const moved = new NetMeshError('m', { kind: 'daemon-moved', status: -7, movedTo: 5n });
  assert.equal(moved.movedTo, 5n);
});

test('native functions refuse foreign values instead of crashing', () => {
  for (const bad of [undefined, null, 1, 'x', {}, [], Buffer.alloc(8), 1n]) {
    assert.throws(() => native.identityInfo(bad), { code: 'INVALID_ARGUMENT' });
    assert.throws(() => native.close(bad), { code: 'INVALID_ARGUMENT' });
  }
});
