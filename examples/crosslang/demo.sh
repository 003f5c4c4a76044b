#!/bin/sh
# Cross-language live migration demo (Python ↔ Node.js); see demo.js.
# Builds what it needs first. Run from anywhere: examples/crosslang/demo.sh
set -e
cd "$(dirname "$0")/../.."
make -s lib python node
exec "${NODE:-node}" examples/crosslang/demo.js
