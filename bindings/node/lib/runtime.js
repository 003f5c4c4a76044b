'use strict';
// The global Buffer is an accessor: a module binding keeps it off the hot path.
const { Buffer } = require('node:buffer');
const native = require('./native');
const { NetMeshError, invalid } = require('./errors');
const { identityHandle } = require('./identity');
const { nodeHandle } = require('./node');
const { MigrationHandle, TOKEN: MIGRATION_TOKEN, phaseName } = require('./migration');

const HANDLE = Symbol('net-mesh.daemon');

// Shared with the addon (see "Shared memory" in src/addon.c): ids in meta
// (4 per output: sequence, parentHash, horizon, receivedAt), payload bytes of
// replayed events in the addon's slab.
const shared = { meta: new BigUint64Array(256) };
native.setShared(shared, shared.meta);
const { meta } = shared;

// The adapter the addon keeps per daemon. deliver() calls the user's
// daemon (.daemon) itself; the addon calls .process(slab, off, len) for the
// events the runtime delivers on its own (replay), with the ids in meta (or
// a Buffer and off -1). The user's methods are called as methods (so `this`
// is the daemon) with one event object; process's result goes back through
// outputs().
function adapt(daemon) {
  if (daemon === null || (typeof daemon !== 'object' && typeof daemon !== 'function')) {
    throw new TypeError(`net-mesh: a factory must return a daemon object, got ${daemon === null ? 'null' : typeof daemon}`);
  }
  if (typeof daemon.process !== 'function') {
    throw new TypeError('net-mesh: a daemon needs a process(event) method');
  }
  for (const m of ['snapshot', 'restore']) {
    if (daemon[m] !== undefined && daemon[m] !== null && typeof daemon[m] !== 'function') {
      throw new TypeError(`net-mesh: daemon.${m} must be a function`);
    }
  }
  return {
    daemon,
    // An arrow function: the addon calls it with an arbitrary receiver.
    process: (slab, off, len) => outputs(daemon.process({
      originHash: meta[0],
      sequence: meta[1],
      payload: off < 0 ? slab : Buffer.from(slab, off, len),
    })),
    snapshot: typeof daemon.snapshot === 'function' ? () => daemon.snapshot() : undefined,
    restore: typeof daemon.restore === 'function' ? (state) => daemon.restore(state) : undefined,
  };
}

const NOT_ARRAY = 'net-mesh: process() must return an array of Buffers (or nothing), synchronously';

// process()'s result for the addon: undefined (none), the lone output when
// it is a Uint8Array (Buffer), else a plain copy of the array, read once (the
// addon checks each item). The same value is what deliver() turns into the
// output payloads: returned Buffers belong to the runtime.
function outputs(r) {
  if (r === undefined || r === null) return undefined;
  if (!Array.isArray(r)) throw new TypeError(NOT_ARRAY);
  const n = r.length;
  if (n === 1) {
    const b = r[0];
    if (b instanceof Uint8Array) return b;
    return [b];
  }
  if (n === 0) return undefined;
  const a = new Array(n);
  for (let i = 0; i < n; i++) a[i] = r[i];
  return a;
}

function asBuffer(p) {
  if (ArrayBuffer.isView(p)) return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  return Buffer.from(p);
}

// deliver's output events: ids from m (meta, or the addon's own
// BigUint64Array for many outputs; sequence, parentHash, horizon, receivedAt
// per output), payloads the very outputs process() returned (items).
function shape(n, m, origin, items) {
  const o = typeof origin === 'bigint' ? origin : BigInt(origin);
  if (n === 1) {
    const p = items instanceof Uint8Array ? items : items[0];
    return [{ originHash: o, sequence: m[0], parentHash: m[1], horizon: m[2], payload: p instanceof Buffer ? p : asBuffer(p) }];
  }
  const out = new Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    const p = items[i];
    out[i] = { originHash: o, sequence: m[j], parentHash: m[j + 1], horizon: m[j + 2], payload: p instanceof Buffer ? p : asBuffer(p) };
  }
  return out;
}

function flat(flat) {
  const n = flat.length / 5;
  const out = new Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 5) {
    out[i] = { originHash: flat[j], sequence: flat[j + 1], parentHash: flat[j + 2], horizon: flat[j + 3], payload: flat[j + 4] };
  }
  return out;
}

/** A spawned daemon: its ids and counters. Dropping it does not stop the daemon. */
class DaemonHandle {
  #originHash;
  #entityId;

  constructor(h) {
    this[HANDLE] = h;
    [this.#originHash, this.#entityId] = native.daemonInfo(h);
  }

  get originHash() { return this.#originHash; }
  get entityId() { return Buffer.from(this.#entityId); }

  /** { eventsProcessed, eventsEmitted, errors, snapshotsTaken } as BigInt (reset on restore). */
  stats() {
    const [eventsProcessed, eventsEmitted, errors, snapshotsTaken] = native.daemonStats(this[HANDLE]);
    return { eventsProcessed, eventsEmitted, errors, snapshotsTaken };
  }
}

/**
 * A compute runtime on a Node. Daemons are plain objects with
 * `process(event) → Buffer[]` and optional `snapshot() → Buffer | null`,
 * `restore(buf)`, built by the factory registered for their kind. Every
 * daemon method runs on this JS thread, one call at a time per daemon:
 * synchronously inside deliver/snapshot/spawn*, and through the event loop
 * when the network initiates the call (a migration arriving, replay).
 */
class DaemonRuntime {
  #h;

  /** options: { workers, queueSize } of the runtime's worker pool. */
  constructor(node, options = {}) {
    if (typeof options !== 'object' || options === null) throw invalid('DaemonRuntime options must be an object');
    this.#h = native.runtimeNew(nodeHandle(node), options.workers, options.queueSize);
  }

  /** Register a kind: factory() returns a fresh daemon object each call. */
  registerFactory(kind, factory) {
    if (typeof factory !== 'function') throw invalid('a factory must be a function returning a daemon');
    native.registerFactory(this.#h, kind, () => adapt(factory()));
  }

  /** Registering → Ready (installs the migration handler). Idempotent. */
  async start() { await native.runtimeStart(this.#h); }

  /**
   * Stop every daemon, drop the factories and drain the pool (timeoutMs,
   * default unbounded). Idempotent; never closes the node. The native
   * runtime is released when this object is collected (or at exit).
   */
  async shutdown(timeoutMs) {
    await native.runtimeShutdown(this.#h, timeoutMs);
  }

  /**
   * A started runtime keeps the event loop alive (work may arrive from the
   * network) until shutdown; unref() lets the process exit anyway, ref()
   * undoes that. Both return this.
   */
  unref() { native.runtimeRef(this.#h, false); return this; }
  ref() { native.runtimeRef(this.#h, true); return this; }

  isReady() { return native.runtimeIsReady(this.#h); }
  daemonCount() { return native.runtimeDaemonCount(this.#h); }

  /** Spawn a daemon of kind under identity; the factory runs once, now. */
  spawn(kind, identity, config) {
    return new DaemonHandle(native.spawn(this.#h, kind, identityHandle(identity), config));
  }

  /** Spawn a daemon of kind restored from snapshot bytes of the same identity. */
  spawnFromSnapshot(kind, identity, snapshot, config) {
    return new DaemonHandle(native.spawnFromSnapshot(this.#h, kind, identityHandle(identity), snapshot, config));
  }

  /**
   * Deliver { originHash, sequence, payload } to the daemon at origin; its
   * process() runs now, on this thread. Returns the output events
   * ({ originHash, sequence, parentHash, horizon, payload }); none while the
   * daemon is migrating (the event is queued and processed on the target).
   * The payloads are the very Buffers process() returned: returned Buffers
   * belong to the runtime (the daemon must not reuse them).
   */
  deliver(origin, event) {
    if (typeof event !== 'object' || event === null) throw invalid('event must be an object { originHash, sequence, payload }');
    const { originHash, sequence, payload } = event;
    // The addon leases the daemon (its host stays locked until commit or
    // abort) and hands back its adapter; undefined: queued mid-migration.
    // A daemon delivering to itself from its own process() is refused there.
    const a = native.deliverBegin(this.#h, origin, originHash, sequence, payload);
    if (a === undefined) return [];
    let r;
    try {
      r = outputs(a.daemon.process({
        originHash: typeof originHash === 'bigint' ? originHash : BigInt(originHash),
        sequence: typeof sequence === 'bigint' ? sequence : BigInt(sequence),
        payload: payload instanceof Buffer ? payload : asBuffer(payload),
      }));
    } catch (e) {
      throw native.deliverAbort(e); // PROCESS_FAILED, e as .cause; the lease is closed
    }
    const n = native.deliverCommit(r); // closes the lease, also when it throws
    if (n === 0) return [];
    if (typeof n === 'number') return shape(n, meta, origin, r);
    return shape(n.length / 4, n, origin, r);
  }

  /** The daemon's snapshot bytes, or null for a stateless daemon (not from its own callback). */
  snapshot(origin) { return native.snapshot(this.#h, origin); }

  /** Stop the daemon at origin and drop its factory entry. */
  stop(origin) { native.stop(this.#h, origin); }

  /** Let this node receive the daemon at origin by migration (identity comes sealed). */
  expectMigration(kind, origin, config) { native.expectMigration(this.#h, kind, origin, config); }

  /** Like expectMigration with the full identity, for migrations without an envelope. */
  registerMigrationTargetIdentity(kind, identity, config) {
    native.registerMigrationTargetIdentity(this.#h, kind, identityHandle(identity), config);
  }

  /** Run fn on this JS thread by way of the runtime's worker pool (as network work runs). */
  submit(fn) { native.submit(this.#h, fn); }

  /**
   * Migrate the daemon at origin from node `source` to node `target` (node
   * ids; usually source is this runtime's node). With a local source its
   * snapshot() runs now, on this thread; from then until cutover deliver()
   * queues its events (returns []) and they are processed on the target, in
   * order. options: transportIdentity (default true: the identity travels
   * sealed; false: the target registered it with
   * registerMigrationTargetIdentity), retryNotReadyMs (budget for retrying a
   * target that is not ready; 0/undefined = 30 s, negative or false = none).
   * Resolves to a MigrationHandle once started; failures to start reject
   * with MIGRATION and .reason ('daemon-not-found', 'already-migrating',
   * 'target-unavailable', 'state-failed').
   */
  async startMigration(origin, source, target, options = {}) {
    if (typeof options !== 'object' || options === null) throw invalid('startMigration options must be an object');
    const { transportIdentity, retryNotReadyMs } = options;
    return new MigrationHandle(MIGRATION_TOKEN, (notify) =>
      native.startMigration(this.#h, origin, source, target, transportIdentity, retryNotReadyMs, notify));
  }

  /** The phase name of the migration of origin this runtime orchestrates, or 'none'. */
  migrationPhase(origin) { return phaseName(native.runtimeMigrationPhase(this.#h, origin)); }

  /**
   * The output sink: fn(origin, events) receives the outputs nobody waits
   * for — a migration target replaying the events queued on the source, and
   * a source processing its queue after a failed or cancelled migration.
   * Runs on this JS thread, in order per daemon. Without a sink those
   * outputs are dropped (they still count in stats). null removes it.
   * Returns this.
   */
  onOutput(fn) {
    if (fn !== null && fn !== undefined && typeof fn !== 'function') throw invalid('onOutput needs a function (or null)');
    native.setOutputSink(this.#h, fn ? (origin, events) => fn(origin, flat(events)) : null);
    return this;
  }
}

module.exports = { DaemonRuntime, DaemonHandle, MigrationHandle, NetMeshError };
