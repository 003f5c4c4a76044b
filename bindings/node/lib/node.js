'use strict';
const native = require('./native');
const { invalid } = require('./errors');
const { identityHandle } = require('./identity');

const HANDLE = Symbol('net-mesh.node');

/** An encrypted UDP mesh node. Create with `await Node.create(options)`. */
class Node {
  #addr;
  #nodeId;
  #publicKey;

  constructor(handle) {
    if (typeof handle !== 'object' || handle === null || handle[HANDLE] === undefined) {
      throw new TypeError('net-mesh: use `await Node.create(options)`');
    }
    this[HANDLE] = handle[HANDLE];
    [this.#addr, this.#nodeId, this.#publicKey] = native.nodeInfo(this[HANDLE]);
  }

  /**
   * Bind a node. options: bind ('host:port', default '127.0.0.1:0'), psk
   * (32 bytes, the mesh's pre-shared key), identity (default: generated),
   * heartbeatMs, sessionTimeoutMs, connectTimeoutMs, membershipTimeoutMs.
   */
  static async create(options = {}) {
    if (typeof options !== 'object' || options === null) throw invalid('Node.create options must be an object');
    const { bind, psk, identity } = options;
    const id = identity === undefined ? undefined : identityHandle(identity, 'options.identity');
    const h = await native.nodeNew(bind, psk, id, options);
    return new Node({ [HANDLE]: h });
  }

  /** The bound address, 'host:port'. */
  get addr() { return this.#addr; }
  get nodeId() { return this.#nodeId; }
  /** The node's 32-byte X25519 static public key (a copy). */
  get publicKey() { return Buffer.from(this.#publicKey); }

  /** Open a session to a peer (which must have accepted this node first). */
  async connect(addr, publicKey, nodeId, timeoutMs) {
    await native.nodeConnect(this[HANDLE], addr, publicKey, nodeId, timeoutMs);
  }

  /** Admit handshakes from nodeId, now and later. */
  accept(nodeId) { native.nodeAccept(this[HANDLE], nodeId); }

  /** Stop the node's socket and threads and release it. Idempotent. */
  async close() { await native.nodeClose(this[HANDLE]); }

  toString() { return `Node(${this.#addr}, id=0x${this.#nodeId.toString(16)})`; }
}

function nodeHandle(node) {
  if (!(node instanceof Node)) throw invalid('expected a Node');
  return node[HANDLE];
}

module.exports = { Node, nodeHandle };
