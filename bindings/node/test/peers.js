'use strict';
// Driving mesh peers in child processes (test/fixtures/peer.js, peer.py)
// over the IPC channel, and the live round trip the multi-process tests and
// the cross-language demo run: a counter is fed on one peer, migrates to the
// other while events keep arriving, keeps counting there, and comes back.
const { fork, spawn } = require('node:child_process');
const { EventEmitter } = require('node:events');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..', '..');
const FIXTURES = path.join(__dirname, 'fixtures');

class PeerError extends Error {
  constructor(op, e) {
    super(`${op}: ${e.code}${e.reason ? ` (${e.reason})` : ''}: ${e.message}`);
    Object.assign(this, e);
  }
}

/** A peer process: call(op, args) → Promise of the reply; 'phase', 'progress', 'output' events. */
class Peer extends EventEmitter {
  #next = 1;
  #pending = new Map();

  constructor(child, lang) {
    super();
    this.child = child;
    this.lang = lang;
    this.outputs = []; // counts from the peer's output sink (BigInt)
    child.on('message', (m) => {
      if (m.event) {
        if (m.event === 'output') this.outputs.push(...m.counts.map(BigInt));
        this.emit(m.event, m);
        return;
      }
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m);
      else p.reject(new PeerError(p.op, m.error));
    });
    child.on('exit', (code, sig) => {
      this.exited = { code, sig };
      for (const p of this.#pending.values()) p.reject(new Error(`${lang} peer exited (${code ?? sig}) during ${p.op}`));
      this.#pending.clear();
      this.emit('exit', code, sig);
    });
  }

  /** Start a peer: lang 'node' or 'python'. Resolves once it reported its node. */
  static async start(lang, { psk } = {}) {
    const env = { ...process.env };
    if (psk) env.NET_MESH_PSK = psk.toString('hex');
    let child;
    if (lang === 'node') {
      child = fork(path.join(FIXTURES, 'peer.js'), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    } else if (lang === 'python') {
      const py = path.join(ROOT, 'bindings', 'python');
      env.PYTHONPATH = env.PYTHONPATH ? `${py}${path.delimiter}${env.PYTHONPATH}` : py;
      child = spawn(process.env.PYTHON || 'python3', [path.join(FIXTURES, 'peer.py')],
        { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    } else {
      throw new Error(`unknown peer language ${lang}`);
    }
    const peer = new Peer(child, lang);
    const ready = await new Promise((resolve, reject) => {
      peer.once('ready', resolve);
      child.once('error', reject);
      child.once('exit', (c) => reject(new Error(`${lang} peer exited (${c}) before it was ready`)));
    });
    peer.addr = ready.addr;
    peer.publicKey = ready.publicKey;
    peer.nodeId = BigInt(ready.nodeId);
    return peer;
  }

  call(op, args = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, op });
      const msg = { id, op };
      for (const [k, v] of Object.entries(args)) msg[k] = typeof v === 'bigint' ? v.toString() : v;
      this.child.send(msg);
    });
  }

  /** Deliver event seq to origin here: the counts it output (empty when queued). */
  async deliver(origin, seq) {
    return (await this.call('deliver', { origin, seq })).counts.map(BigInt);
  }

  /** Ask the peer to exit cleanly (kill after timeoutMs). */
  async stop(timeoutMs = 10_000) {
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try { await this.call('exit'); } catch { /* exited meanwhile */ }
    await gone;
    clearTimeout(timer);
  }
}

/** Let b accept a and a connect to b (one session serves both directions). */
async function link(a, b) {
  await b.call('accept', { nodeId: a.nodeId });
  await a.call('connect', { addr: b.addr, publicKey: b.publicKey, nodeId: b.nodeId });
}

const isRefusal = (e) => (e.code === 'MIGRATION' && e.reason === 'wrong-phase') || e.code === 'DAEMON_NOT_FOUND';

/**
 * Migrate origin from `from` to `to` (orchestrated by `from`) while feeding
 * events every `everyMs`: each goes to whoever takes it — the source queues
 * it until cutover, then answers DAEMON_MOVED; the target refuses before
 * cutover and queues behind its replay after. Returns the counts output
 * directly, the next sequence number and how many events were fed.
 */
async function migrateWhileFeeding(from, to, origin, seq, { everyMs = 2, log = () => {}, transportIdentity } = {}) {
  let holder = from;
  const direct = [];
  let fed = 0;
  let done = false;
  let failure = null;
  const migration = from.call('migrate', { origin, target: to.nodeId, transportIdentity })
    .then(() => { done = true; }, (e) => { done = true; failure = e; });
  while (!done) {
    const s = seq;
    try {
      const out = await holder.deliver(origin, s);
      direct.push(...out);
      seq += 1;
      fed += 1;
      log({ seq: s, at: holder.lang, counts: out });
    } catch (e) {
      if (e.code === 'DAEMON_MOVED' && holder === from) holder = to;
      else if (isRefusal(e) && holder === to) holder = from;
      else throw e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  await migration;
  if (failure) throw failure;
  return { direct, seq, fed };
}

/** Wait until pred() holds (polling), at most ms. */
async function until(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return pred();
}

module.exports = { Peer, PeerError, link, migrateWhileFeeding, until, ROOT };
