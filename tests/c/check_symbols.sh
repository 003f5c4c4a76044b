#!/usr/bin/env bash
# The net_mesh_ functions the library exports are exactly those the header declares.
set -euo pipefail
lib=$1; hdr=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '{print $NF}' | grep '^net_mesh_' | sort -u > "$tmp/lib"
# Declarations: an identifier followed by '(' at the start of a prototype line,
# after stripping comments; typedef'd function pointer names are not functions.
sed -e 's://.*$::' "$hdr" | perl -0pe 's:/\*.*?\*/::gs' \
  | grep -v '^\s*typedef' | grep -v '^\s*#' \
  | grep -oE '\bnet_mesh_[a-z0-9_]+\s*\(' | grep -v '(\*' | sed -E 's/\s*\($//' | sort -u > "$tmp/hdr"
if ! diff -u "$tmp/hdr" "$tmp/lib" > "$tmp/diff"; then
  echo "exported symbols differ from header declarations (- header only, + library only):"
  cat "$tmp/diff"; exit 1
fi
echo "symbols: $(wc -l < "$tmp/lib") net_mesh_ functions, header and library agree"
