'use strict';
const { EventEmitter } = require('node:events');
const native = require('./native');
const { NetMeshError } = require('./errors');

/** Phase names by NET_MESH_MIGRATION_PHASE_* value. */
const PHASES = ['none', 'snapshot', 'transfer', 'restore', 'replay', 'cutover', 'complete'];
const phaseName = (p) => PHASES[p] || `unknown(${p})`;

const TOKEN = Symbol('net-mesh.migration');

/**
 * A live migration this runtime orchestrates. Events (on the JS thread):
 * - 'phase' (name: 'snapshot' | 'transfer' | 'restore' | 'replay' | 'cutover' | 'complete')
 * - 'progress' ({ phase, bytesMoved, totalBytes, chunksMoved, totalChunks }, BigInt counters)
 * - 'end' (error: NetMeshError | null), once.
 * The migration goes on whether or not anybody listens or waits; the handle
 * stays alive (and its events arrive) until the migration has ended.
 */
class MigrationHandle extends EventEmitter {
  #h;
  #phase = 'snapshot';
  #sawPhase = false;
  #ended = false;
  #error = null;
  #waiters = [];

  constructor(token, start) {
    if (token !== TOKEN) throw new TypeError('net-mesh: use `await runtime.startMigration(...)`');
    super();
    // The addon calls notify from the event loop only, so this handle exists by then.
    this.#h = start((kind, a, b, c, d, e) => this.#notify(kind, a, b, c, d, e));
  }

  /** The current phase name; 'none' once the migration has ended (see `.ended`, `.error`). */
  get phase() {
    if (this.#ended) return 'none';
    try {
      return phaseName(native.migrationPhase(this.#h));
    } catch {
      return 'none';
    }
  }

  /** The last phase reported through events ('complete' after a success). */
  get lastPhase() { return this.#phase; }
  /** Whether the migration has ended (completed, failed or cancelled). */
  get ended() { return this.#ended; }
  /** The failure once ended (null after a success or while running). */
  get error() { return this.#error; }

  /**
   * Resolves when the migration completes; rejects with its NetMeshError
   * (MIGRATION_FAILED with .reason, e.g. 'factory-not-found'; MIGRATION
   * 'state-failed' when cancelled), or with TIMEOUT after timeoutMs (the
   * migration goes on; wait again). Never blocks a thread.
   */
  wait(timeoutMs) {
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve();
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !(timeoutMs >= 0))) {
      return Promise.reject(new NetMeshError('net-mesh: timeoutMs must be a non-negative number', { kind: 'invalid-argument', status: -11 }));
    }
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: null };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          reject(new NetMeshError(`net-mesh: migration did not end within ${timeoutMs} ms (phase ${this.phase})`,
            { kind: 'timeout', status: -12 }));
        }, timeoutMs);
      }
      this.#waiters.push(w);
    });
  }

  /**
   * Abort before cutover: the target rolls back, the daemon resumes on the
   * source (its queued events are processed there, outputs to the source's
   * onOutput sink) and wait() rejects with MIGRATION 'state-failed'. Past
   * cutover: rejects with MIGRATION 'wrong-phase'.
   */
  async cancel() { await native.migrationCancel(this.#h); }

  #notify(kind, a, bytesMoved, totalBytes, chunksMoved, totalChunks) {
    if (kind === 'progress') {
      const phase = phaseName(a);
      // 'phase' fires once per phase change, the first report included.
      const changed = phase !== this.#phase || !this.#sawPhase;
      this.#sawPhase = true;
      this.#phase = phase;
      if (changed) this.emit('phase', phase);
      this.emit('progress', { phase, bytesMoved, totalBytes, chunksMoved, totalChunks });
      return;
    }
    // 'complete': status is what net_mesh_migration_wait returns.
    this.#ended = true;
    if (a !== 0) this.#error = this.#failure(a);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      if (w.timer) clearTimeout(w.timer);
      if (this.#error) w.reject(this.#error);
      else w.resolve();
    }
    this.emit('end', this.#error);
  }

  #failure(status) {
    let kind = native.statusKind(status);
    let reason;
    let message = kind;
    try {
      const r = native.migrationResult(this.#h);
      if (r) {
        [, , reason, message] = r;
        if (!message) message = `${kind}: ${reason}`;
      }
    } catch { /* closed handle: the status alone */ }
    return new NetMeshError(message, { kind, status, reason: reason || undefined });
  }
}

module.exports = { MigrationHandle, TOKEN, PHASES, phaseName };
