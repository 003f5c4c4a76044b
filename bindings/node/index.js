'use strict';
// net-mesh: Node.js binding of libnetmesh.
const native = require('./lib/native');
const { NetMeshError } = require('./lib/errors');
const { Identity } = require('./lib/identity');
const { Node } = require('./lib/node');
const { DaemonRuntime, DaemonHandle, MigrationHandle } = require('./lib/runtime');

module.exports = {
  Identity,
  Node,
  DaemonRuntime,
  DaemonHandle,
  MigrationHandle,
  NetMeshError,
  /** The loaded library's version, "MAJOR.MINOR.PATCH". */
  libraryVersion: native.version(),
};
