#!/usr/bin/env bash
# Run every Go fuzz target of the engine and the C ABI for a budget each.
#   tests/fuzz.sh 5s      — wall-clock budget per target (exploration, `make fuzz`)
#   tests/fuzz.sh 10000x  — execution-count budget per target (`make test`, CI)
#
# A count budget has no deadline, so it cannot hit the Go 1.26 fuzz
# coordinator race (golang/go#75804, fixed in Go 1.27): when a wall-clock
# -fuzztime expires while a worker is mid-input, `go test` may report
# "context deadline exceeded" as a failure although nothing failed.  With a
# wall-clock budget such a bare deadline report (no failing input written,
# no panic) is run again once; anything else fails the run.
set -euo pipefail
budget="${1:-5s}"
go="${GO:-go}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for pkg in $("$go" list ./core/... ./capi); do
  for f in $("$go" test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    for attempt in 1 2; do
      echo "fuzz $pkg $f ($budget)"
      if "$go" test -run '^$' -fuzz "^$f\$" -fuzztime "$budget" "$pkg" >"$log" 2>&1; then
        tail -n 2 "$log"
        break
      fi
      cat "$log"
      if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' "$log" &&
         ! grep -qE 'Failing input written|panic:' "$log"; then
        echo "fuzz $f: bare deadline report at the end of the budget (golang/go#75804), running again"
        continue
      fi
      exit 1
    done
  done
done
