'use strict';
// Loads the addon built by `make node` (build/net_mesh.node, linked with
// rpath $ORIGIN against the copy of libnetmesh.so beside it).
const path = require('node:path');

const file = process.env.NET_MESH_ADDON || path.join(__dirname, '..', 'build', 'net_mesh.node');
let native;
try {
  native = require(file);
} catch (err) {
  const e = new Error(`net-mesh: cannot load the addon at ${file} (run \`make node\` at the repository root): ${err.message}`);
  e.code = 'ADDON_NOT_FOUND';
  e.cause = err;
  throw e;
}
module.exports = native;
