'use strict';
// net-mesh: Node.js binding of libnetmesh.
const native = require('./lib/native');
const { NetMeshError } = require('./lib/errors');
const { Identity } = require('./lib/identity');

module.exports = {
  Identity,
  NetMeshError,
  /** The loaded library's version, "MAJOR.MINOR.PATCH". */
  libraryVersion: native.version(),
};
