// Type check of index.d.ts (`make test-node` runs `tsc -p test/types`; nothing
// here is executed). The first part uses the public API as README.md and the
// declarations document it; every `@ts-expect-error` line is a misuse the
// declarations must reject: tsc fails if one of them type-checks.
import {
  Node, DaemonRuntime, Identity, NetMeshError, MigrationHandle, libraryVersion,
  Daemon, DaemonEvent, OutputEvent, ErrorCode, MigrationPhase,
} from '../..';

async function documentedUse(): Promise<void> {
  const version: string = libraryVersion;
  const node = await Node.create({ psk: Buffer.alloc(32, 0x42), bind: '127.0.0.1:0' });
  const rt = new DaemonRuntime(node, { workers: 2, queueSize: 64 });
  rt.registerFactory('counter', (): Daemon => {
    let n = 0n;
    return {
      process(event: DaemonEvent) {
        const seq: bigint = event.sequence;
        n += seq > 0n ? 1n : 0n;
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(n);
        return [b];
      },
      snapshot: () => Buffer.from(n.toString()),
      restore(state: Buffer) { n = BigInt(state.toString()); },
    };
  });
  rt.registerFactory('sink', () => ({ process() {} }));
  await rt.start();
  const id = Identity.generate();
  const h = rt.spawn('counter', id, { autoSnapshotInterval: 0 });
  const origin: bigint = h.originHash;
  const outs: OutputEvent[] = rt.deliver(origin, { originHash: 1n, sequence: 1, payload: new Uint8Array(3) });
  for (const o of outs) {
    const parts: [bigint, bigint, bigint, bigint, Buffer] = [o.originHash, o.sequence, o.parentHash, o.horizon, o.payload];
    void parts;
  }
  const snap: Buffer | null = rt.snapshot(id.originHash);
  if (snap !== null) rt.spawnFromSnapshot('counter', Identity.fromSeed(id.seed()), snap);
  const processed: bigint = h.stats().eventsProcessed;
  rt.onOutput((o: bigint, events: OutputEvent[]) => { void o; void events; }).unref().ref();
  rt.onOutput(null);
  const m: MigrationHandle = await rt.startMigration(origin, node.nodeId, 7n, { transportIdentity: false, retryNotReadyMs: 0 });
  m.on('phase', (p: MigrationPhase) => void p).on('progress', ({ bytesMoved, totalBytes }) => {
    const moved: bigint = bytesMoved + totalBytes;
    void moved;
  });
  try {
    await m.wait(1000);
  } catch (e) {
    if (e instanceof NetMeshError) {
      const code: ErrorCode = e.code;
      const moved: bigint | undefined = e.movedTo;
      void code; void moved; void e.cause;
    }
  }
  rt.stop(origin);
  await rt.shutdown(1000);
  await node.close();
  void version; void processed;
}

async function misuse(rt: DaemonRuntime, node: Node, id: Identity): Promise<void> {
  // @ts-expect-error: a payload is bytes, not a string
  rt.deliver(id.originHash, { originHash: 1n, sequence: 1n, payload: 'x' });
  // @ts-expect-error: an event needs a sequence
  rt.deliver(id.originHash, { originHash: 1n, payload: Buffer.alloc(0) });
  // @ts-expect-error: origins are u64 (bigint | number), not strings
  rt.deliver('1', { originHash: 1n, sequence: 1n, payload: Buffer.alloc(0) });
  // @ts-expect-error: outputs are OutputEvent objects, not Buffers
  const bufs: Buffer[] = rt.deliver(id.originHash, { originHash: 1n, sequence: 1n, payload: Buffer.alloc(0) });
  // @ts-expect-error: process() returns an array of Buffers, not one Buffer
  rt.registerFactory('bad', () => ({ process: () => Buffer.alloc(1) }));
  // @ts-expect-error: a daemon needs process()
  rt.registerFactory('bad', () => ({ snapshot: () => null }));
  // @ts-expect-error: spawn takes an Identity, not an origin hash
  rt.spawn('counter', id.originHash);
  // @ts-expect-error: the event's ids are BigInt, never number
  rt.registerFactory('bad', () => ({ process(e: { originHash: number; sequence: bigint; payload: Buffer }) { void e; } }));
  // @ts-expect-error: start() is asynchronous
  const ready: void = rt.start();
  // @ts-expect-error: node ids are bigint
  const nid: number = node.nodeId;
  // @ts-expect-error: Node has no public constructor (use Node.create)
  new Node();
  // @ts-expect-error: 'finished' is not a MigrationPhase
  const phase: MigrationPhase = 'finished';
  void bufs; void ready; void nid; void phase;
}

void documentedUse;
void misuse;
