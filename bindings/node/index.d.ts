/// <reference types="node" />
// net-mesh: TypeScript declarations (hand-written beside index.js).

/** u64 inputs accept a BigInt or a non-negative safe-integer number; u64 outputs are BigInt. */
export type U64 = bigint | number;
export type Bytes = Buffer | Uint8Array | ArrayBuffer | DataView;

export type ErrorCode =
  | 'NOT_READY' | 'SHUTTING_DOWN' | 'FACTORY_ALREADY_REGISTERED' | 'FACTORY_NOT_FOUND'
  | 'SNAPSHOT_IDENTITY_MISMATCH' | 'DAEMON_NOT_FOUND' | 'DAEMON_MOVED' | 'ALREADY_REGISTERED'
  | 'PROCESS_FAILED' | 'RESTORE_FAILED' | 'INVALID_ARGUMENT' | 'TIMEOUT' | 'MIGRATION'
  | 'MIGRATION_FAILED' | 'BAD_HANDLE' | 'CALLBACK_FAILED' | 'INTERNAL_PANIC' | 'NO_MEMORY'
  | 'IO' | 'INTERNAL';

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
