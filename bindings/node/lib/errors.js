'use strict';
const native = require('./native');

/** Upper snake case of a symbolic kind: 'daemon-moved' → 'DAEMON_MOVED'. */
function codeOf(kind) {
  return String(kind).toUpperCase().replace(/-/g, '_');
}

/**
 * Every error the library reports. `.code` is the symbolic kind in upper
 * snake case ('NOT_READY', 'DAEMON_MOVED', ...), `.kind` the same as every
 * binding spells it ('not-ready'), `.status` the C status. Migration errors
 * carry `.reason` (the local kind or the protocol's reason, e.g.
 * 'factory-not-found'); DAEMON_MOVED carries `.movedTo` (node id, BigInt);
 * a failure of JS code the library called has that error as `.cause`.
 */
class NetMeshError extends Error {
  constructor(message, { kind = 'internal', status = 0, reason, movedTo, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'NetMeshError';
    this.code = codeOf(kind);
    this.kind = kind;
    this.status = status;
    if (reason) this.reason = reason;
    if (movedTo !== undefined) this.movedTo = movedTo;
  }
}

// Called by the addon for every failure it throws.
function makeError(status, kind, message, detail, movedTo, cause) {
  return new NetMeshError(message || kind, { kind, status, reason: detail || undefined, movedTo, cause });
}
native.init(makeError);

/** An argument error raised by the JS layer itself. */
function invalid(message) {
  return new NetMeshError(`net-mesh: ${message}`, { kind: 'invalid-argument', status: -11 });
}

module.exports = { NetMeshError, codeOf, invalid };
