#!/usr/bin/env bash
# The public header compiles warning-free as C11 and as C++17.
set -euo pipefail
cc=${1:-cc}; cxx=${2:-c++}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#include "net_mesh.h"\nint main(void) { return NET_MESH_OK; }\n' > "$tmp/h.c"
printf '#include "net_mesh.h"\nint main() { return NET_MESH_OK; }\n' > "$tmp/h.cpp"
"$cc" -std=c11 -Wall -Wextra -pedantic -Werror -Iinclude -c "$tmp/h.c" -o "$tmp/h.o"
"$cxx" -std=c++17 -Wall -Wextra -pedantic -Werror -Iinclude -c "$tmp/h.cpp" -o "$tmp/hpp.o"
echo "header: C11 and C++17 clean"
