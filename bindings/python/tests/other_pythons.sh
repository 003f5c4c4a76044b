#!/usr/bin/env bash
# Run the given pytest files under every other CPython >= 3.9 on this machine
# (pyenv versions and python3.N on PATH): deliver's fast paths read and build
# CPython objects by layout, which differs between versions (e.g. the int
# layout of 3.12). Usage: other_pythons.sh TEST_FILE... (from bindings/python;
# $PYTHON is the interpreter `make test-python` already used).
set -euo pipefail
main="$("${PYTHON:-python3}" -c 'import sys; print(sys.version.split()[0])')"
cands=()
for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/*/bin/python3; do [ -x "$p" ] && cands+=("$p"); done
for n in 9 10 11 12 13 14; do p=$(command -v "python3.$n" 2>/dev/null || true); [ -n "$p" ] && cands+=("$p"); done
declare -A seen=(["$main"]=1)
ran=()
for p in "${cands[@]}"; do
  v=$("$p" -c 'import sys; print(sys.version.split()[0] if sys.implementation.name == "cpython" and sys.version_info >= (3, 9) else "")' 2>/dev/null || true)
  [ -z "$v" ] && continue
  [ -n "${seen[$v]:-}" ] && continue
  seen[$v]=1
  if ! "$p" -m pytest --version >/dev/null 2>&1; then
    "$p" -m pip install -q pytest >/dev/null 2>&1 || "$p" -m pip install -q --break-system-packages pytest >/dev/null 2>&1 || {
      echo "python $v: cannot install pytest" >&2; exit 1; }
  fi
  echo "python $v ($p):"
  "$p" -m pytest -q "$@"
  ran+=("$v")
done
echo "layout tests ran under CPython ${main} (test-python) and: ${ran[*]:-no other CPython found}"
