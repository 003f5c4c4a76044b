#!/usr/bin/env bash
# Run C test programs under valgrind memcheck. The gate: no invalid read,
# write or free, no use of uninitialised memory and no definite leak outside
# the Go runtime (see go.supp for exactly what is suppressed and why).
# Installs valgrind with apt when it is missing (CI runs on a fresh clone as root).
set -euo pipefail
dir=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v valgrind >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "valgrind: installing with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
  else
    echo "valgrind: not installed and cannot install it (need root + apt-get)" >&2; exit 1
  fi
fi
# go.supp hides errors whose innermost frame has a dotted (Go) name; make
# sure no symbol of capi's own C code has one.
lib=$(dirname "$0")/../../build/libnetmesh.so
if nm "$lib" | awk '{print $NF}' | grep -qE '^(nm_|net_mesh_)[^.]*\.'; then
  echo "valgrind: capi C symbols with clone suffixes would be suppressed:" >&2
  nm "$lib" | awk '{print $NF}' | grep -E '^(nm_|net_mesh_)[^.]*\.' >&2; exit 1
fi
# VALGRIND_EXTRA: extra memcheck options for one invocation (see c.mk: the
# migration suite runs with --undef-value-errors=no, because bytes that cross
# the network reach C from Go goroutine stacks, and memcheck marks those
# undefined when the scheduler switches stacks: "created by a stack
# allocation at mesh.(*Node).handleRouted", on a fraction of runs).
status=0
for t in "$@"; do
  log="$dir/$t.valgrind.log"
  # asyncpreemptoff: Go's signal-based preemption writes below the stack
  # pointer in a way memcheck reports; it changes nothing we test.
  GODEBUG=asyncpreemptoff=1 NM_UNDER_VALGRIND=1 valgrind --tool=memcheck --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --suppressions="$here/go.supp" --error-exitcode=97 ${VALGRIND_EXTRA:-} \
    --log-file="$log" "$dir/$t" >/dev/null && rc=0 || rc=$?
  summary=$(grep -E 'ERROR SUMMARY|FATAL' "$log" | tail -1 | sed 's/^==[0-9]*== //' || true)
  leaks=$(grep -E 'definitely lost:' "$log" | tail -1 | sed 's/^==[0-9]*== *//' || true)
  if [ "$rc" != 0 ]; then
    echo "valgrind $t: FAILED (exit $rc) — $summary; see $log"
    grep -E -A12 'Invalid|uninitialised|definitely lost in' "$log" | head -60 || true
    status=1
  else
    echo "valgrind $t: clean — $summary; ${leaks:-definitely lost: 0 bytes}"
  fi
done
exit $status
