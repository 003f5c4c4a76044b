'use strict';
// Daemons and fixtures shared by the tests.
const { Node, DaemonRuntime, Identity } = require('..');

const PSK = Buffer.alloc(32, 0x5a);

/** Echo: outputs its input. */
function echo() {
  return { process: (ev) => [ev.payload] };
}

/** Counter: counts events, outputs the count as a decimal string; state = the count. */
function counter() {
  let n = 0;
  return {
    process() { n += 1; return [Buffer.from(String(n))]; },
    snapshot() { return Buffer.from(String(n)); },
    restore(buf) { n = Number(buf.toString()); },
  };
}

function ev(sequence, payload = Buffer.alloc(0), originHash = 7n) {
  return { originHash, sequence, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload) };
}

/** A started runtime on a fresh node, with echo and counter registered; closed after the test. */
async function runtime(t, { start = true, kinds = { echo, counter } } = {}) {
  const node = await Node.create({ psk: PSK });
  const rt = new DaemonRuntime(node);
  for (const [k, f] of Object.entries(kinds)) rt.registerFactory(k, f);
  if (start) await rt.start();
  t.after(async () => { await rt.shutdown(); await node.close(); });
  return { node, rt };
}

function seededIdentity(tag) {
  const seed = Buffer.alloc(32);
  seed.write(String(tag));
  return Identity.fromSeed(seed);
}

module.exports = { PSK, echo, counter, ev, runtime, seededIdentity };
