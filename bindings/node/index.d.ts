/// <reference types="node" />
import { EventEmitter } from 'node:events';
// net-mesh: TypeScript declarations (hand-written beside index.js).

/** u64 inputs accept a BigInt or a non-negative safe-integer number; u64 outputs are BigInt. */
export type U64 = bigint | number;
export type Bytes = Buffer | Uint8Array | ArrayBuffer | DataView;

export type ErrorCode =
  | 'NOT_READY' | 'SHUTTING_DOWN' | 'FACTORY_ALREADY_REGISTERED' | 'FACTORY_NOT_FOUND'
  | 'SNAPSHOT_IDENTITY_MISMATCH' | 'DAEMON_NOT_FOUND' | 'DAEMON_MOVED' | 'ALREADY_REGISTERED'
  | 'PROCESS_FAILED' | 'RESTORE_FAILED' | 'INVALID_ARGUMENT' | 'TIMEOUT' | 'MIGRATION'
  | 'MIGRATION_FAILED' | 'BAD_HANDLE' | 'CALLBACK_FAILED' | 'INTERNAL_PANIC' | 'NO_MEMORY'
  | 'IO' | 'INTERNAL' | 'QUEUE_FULL' | 'BATCH_REFUSED';

export class NetMeshError extends Error {
  constructor(message: string, options?: {
    kind?: string; status?: number; reason?: string; movedTo?: bigint; cause?: unknown;
  });
  readonly name: 'NetMeshError';
  /** The symbolic kind in upper snake case, e.g. 'NOT_READY'. */
  readonly code: ErrorCode;
  /** The symbolic kind as every binding spells it, e.g. 'not-ready'. */
  readonly kind: string;
  /** The C status (negative), 0 for errors raised by the JS layer. */
  readonly status: number;
  /** MIGRATION: the local kind; MIGRATION_FAILED: the protocol reason (e.g. 'factory-not-found'). */
  readonly reason?: string;
  /** DAEMON_MOVED: the node id the daemon moved to. */
  readonly movedTo?: bigint;
  /** PROCESS_FAILED / RESTORE_FAILED: what the JS daemon or factory threw. */
  readonly cause?: unknown;
}

export class Identity {
  private constructor();
  static generate(): Identity;
  static fromSeed(seed: Bytes): Identity;
  /** A public-only identity: same ids, cannot sign or host a daemon. */
  static fromEntityId(entityId: Bytes): Identity;
  /** 32-byte ed25519 public key (a fresh copy on each read). */
  readonly entityId: Buffer;
  readonly originHash: bigint;
  readonly nodeId: bigint;
  /** The 32-byte seed; throws INVALID_ARGUMENT for a public-only identity. */
  seed(): Buffer;
  /** Release the native keypair now (otherwise at garbage collection). Idempotent. */
  close(): void;
}

/** The loaded library's version, "MAJOR.MINOR.PATCH". */
export const libraryVersion: string;

export interface NodeOptions {
  /** 'host:port' to bind; default '127.0.0.1:0'. */
  bind?: string;
  /** The mesh's 32-byte pre-shared key; default all zero. */
  psk?: Bytes;
  /** The node's identity; default generated. */
  identity?: Identity;
  heartbeatMs?: U64;
  sessionTimeoutMs?: U64;
  connectTimeoutMs?: U64;
  membershipTimeoutMs?: U64;
}

/** An encrypted UDP mesh node. */
export class Node {
  private constructor();
  static create(options?: NodeOptions): Promise<Node>;
  /** The bound address, 'host:port'. */
  readonly addr: string;
  readonly nodeId: bigint;
  /** The node's 32-byte X25519 static public key (a copy). */
  readonly publicKey: Buffer;
  /** Open a session to a peer that accepted this node (timeoutMs default: connectTimeoutMs). */
  connect(addr: string, publicKey: Bytes, nodeId: U64, timeoutMs?: U64): Promise<void>;
  /** Admit handshakes from nodeId, now and later. */
  accept(nodeId: U64): void;
  /** Stop the socket and threads and release the node. Idempotent. */
  close(): Promise<void>;
}

/** What a daemon's process() receives. */
export interface DaemonEvent {
  originHash: bigint;
  sequence: bigint;
  payload: Buffer;
}

/** What deliver() takes. */
export interface InputEvent {
  originHash: U64;
  sequence: U64;
  payload: Bytes;
}

/** An output event: one step of the daemon's causal chain. */
export interface OutputEvent {
  originHash: bigint;
  sequence: bigint;
  parentHash: bigint;
  horizon: bigint;
  payload: Buffer;
}

/**
 * A daemon: any object with process(); snapshot()/restore() make it stateful.
 * Methods run on the JS thread, never concurrently; they must be synchronous.
 */
export interface Daemon {
  /**
   * The returned Buffers are handed over to the runtime: deliver()'s output
   * events carry these very objects as payloads (a Uint8Array as a Buffer view
   * of its memory). Do not modify or reuse them after returning.
   */
  process(event: DaemonEvent): ReadonlyArray<Buffer | Uint8Array> | null | undefined | void;
  /** The state to carry; null/undefined = stateless. */
  snapshot?(): Buffer | Uint8Array | null | undefined;
  restore?(state: Buffer): void;
}

export type DaemonFactory = () => Daemon;

export interface DaemonConfig {
  /** Take a snapshot every N processed events (0 = off). */
  autoSnapshotInterval?: U64;
}

export interface DaemonStats {
  eventsProcessed: bigint;
  eventsEmitted: bigint;
  errors: bigint;
  snapshotsTaken: bigint;
}

export class DaemonHandle {
  private constructor();
  readonly originHash: bigint;
  readonly entityId: Buffer;
  stats(): DaemonStats;
}

export interface RuntimeOptions {
  /** Worker pool threads; default the number of CPUs. */
  workers?: number;
  /** Worker pool queue bound; default 1024. */
  queueSize?: number;
}

export class DaemonRuntime {
  constructor(node: Node, options?: RuntimeOptions);
  registerFactory(kind: string, factory: DaemonFactory): void;
  start(): Promise<void>;
  shutdown(timeoutMs?: U64): Promise<void>;
  /** A started runtime keeps the event loop alive until shutdown; unref() lets the process exit. */
  unref(): this;
  ref(): this;
  isReady(): boolean;
  daemonCount(): number;
  spawn(kind: string, identity: Identity, config?: DaemonConfig): DaemonHandle;
  spawnFromSnapshot(kind: string, identity: Identity, snapshot: Bytes, config?: DaemonConfig): DaemonHandle;
  /**
   * Synchronous: the daemon runs on this thread and gets this event's own
   * payload object (not a copy); the outputs' payloads are the Buffers its
   * process() returned (handed over to the runtime, not copies). Empty while the daemon is migrating (queued);
   * DAEMON_MOVED (.movedTo = node id) once it has moved; on a target before
   * cutover MIGRATION 'wrong-phase' (deliver to the source).
   */
  deliver(origin: U64, event: InputEvent): OutputEvent[];
  snapshot(origin: U64): Buffer | null;
  stop(origin: U64): void;
  expectMigration(kind: string, origin: U64, config?: DaemonConfig): void;
  registerMigrationTargetIdentity(kind: string, identity: Identity, config?: DaemonConfig): void;
  /** Run fn on this JS thread by way of the runtime's worker pool. */
  submit(fn: () => void): void;
  /**
   * Migrate the daemon at origin from node `source` to node `target` (node
   * ids). With a local source its snapshot() runs now, on this thread; until
   * cutover deliver() queues its events (returns []), processed on the
   * target in order. Rejects with MIGRATION and .reason ('daemon-not-found',
   * 'already-migrating', 'target-unavailable', 'state-failed') if it cannot start.
   */
  startMigration(origin: U64, source: U64, target: U64, options?: MigrationOptions): Promise<MigrationHandle>;
  /** The phase of the migration of origin this runtime orchestrates, or 'none'. */
  migrationPhase(origin: U64): MigrationPhase;
  /**
   * The output sink: outputs nobody waits for — a target replaying the events
   * queued on the source, a source processing its queue after a failed or
   * cancelled migration. Runs on this JS thread, in order per daemon. Without
   * a sink such outputs are dropped. null removes it. Returns this.
   */
  onOutput(fn: ((origin: bigint, events: OutputEvent[]) => void) | null): this;
}

export interface MigrationOptions {
  /** Seal the daemon's identity for the target (default true); false: the target
   * registered it with registerMigrationTargetIdentity. */
  transportIdentity?: boolean;
  /** Budget for retrying a target that answers not-ready: 0/undefined = 30 s,
   * negative or false = no retry. */
  retryNotReadyMs?: number | bigint | boolean;
}

export type MigrationPhase = 'none' | 'snapshot' | 'transfer' | 'restore' | 'replay' | 'cutover' | 'complete';

export interface MigrationProgress {
  phase: MigrationPhase;
  /** Snapshot bytes / chunks handed to the mesh so far in this attempt, and their totals (0 until known). */
  bytesMoved: bigint;
  totalBytes: bigint;
  chunksMoved: bigint;
  totalChunks: bigint;
}

/**
 * A live migration this runtime orchestrates. Events arrive on the JS thread;
 * the handle (and its events) stay alive until the migration has ended.
 */
export class MigrationHandle extends EventEmitter {
  private constructor();
  /** The current phase; 'none' once ended. */
  readonly phase: MigrationPhase;
  /** The last phase reported by events ('complete' after a success). */
  readonly lastPhase: MigrationPhase;
  readonly ended: boolean;
  /** The failure once ended; null after success or while running. */
  readonly error: NetMeshError | null;
  /**
   * Resolves when the migration completes; rejects with its failure
   * (MIGRATION_FAILED with .reason such as 'factory-not-found',
   * 'not-ready-timeout', 'compute-not-supported'; MIGRATION 'state-failed' when
   * cancelled) or TIMEOUT after timeoutMs — the migration then goes on.
   * Uses the library's completion callback: no thread is blocked.
   */
  wait(timeoutMs?: number): Promise<void>;
  /** Abort before cutover (the daemon resumes on the source); MIGRATION 'wrong-phase' after. */
  cancel(): Promise<void>;
  on(event: 'phase', listener: (phase: MigrationPhase) => void): this;
  on(event: 'progress', listener: (progress: MigrationProgress) => void): this;
  on(event: 'end', listener: (error: NetMeshError | null) => void): this;
  once(event: 'phase', listener: (phase: MigrationPhase) => void): this;
  once(event: 'progress', listener: (progress: MigrationProgress) => void): this;
  once(event: 'end', listener: (error: NetMeshError | null) => void): this;
}
