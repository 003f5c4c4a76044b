'use strict';
const native = require('./native');

const HANDLE = Symbol('net-mesh.handle');

/**
 * An ed25519 identity (keypair, or public key only). Ids are computed once
 * and cached: `.entityId` (32-byte Buffer, a copy each read), `.originHash`
 * and `.nodeId` (BigInt).
 */
class Identity {
  #entityId;
  #originHash;
  #nodeId;

  constructor(handle) {
    if (typeof handle !== 'object' || handle === null || handle[HANDLE] === undefined) {
      throw new TypeError('net-mesh: use Identity.generate() or Identity.fromSeed(seed)');
    }
    this[HANDLE] = handle[HANDLE];
    const [entityId, originHash, nodeId] = native.identityInfo(this[HANDLE]);
    this.#entityId = entityId;
    this.#originHash = originHash;
    this.#nodeId = nodeId;
  }

  /** A fresh identity from the OS random source. */
  static generate() {
    return new Identity({ [HANDLE]: native.identityGenerate() });
  }

  /** The identity of a 32-byte seed (Buffer / Uint8Array). */
  static fromSeed(seed) {
    return new Identity({ [HANDLE]: native.identityFromSeed(seed) });
  }

  /** A public-only identity (same ids, cannot sign or host a daemon). */
  static fromEntityId(entityId) {
    return new Identity({ [HANDLE]: native.identityFromEntityId(entityId) });
  }

  get entityId() { return Buffer.from(this.#entityId); }
  get originHash() { return this.#originHash; }
  get nodeId() { return this.#nodeId; }

  /** The 32-byte seed; throws INVALID_ARGUMENT for a public-only identity. */
  seed() { return native.identitySeed(this[HANDLE]); }

  /** Release the native keypair now (otherwise at garbage collection). Idempotent. */
  close() { native.close(this[HANDLE]); }

  toString() { return `Identity(origin=0x${this.#originHash.toString(16)})`; }
}

/** The native handle of an Identity, checked. */
function identityHandle(id, what = 'identity') {
  if (!(id instanceof Identity)) {
    const { invalid } = require('./errors');
    throw invalid(`${what} must be an Identity`);
  }
  return id[HANDLE];
}

module.exports = { Identity, identityHandle, HANDLE };
