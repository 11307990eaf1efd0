#!/usr/bin/env bash
# Virtualenvs of the engine servers the `servers` tests start (MLflow, MLServer, KServe).
#
# They are separate from the project's venv because each server pins dependencies that clash
# with Scrutiny's (MLflow: pyarrow<26; MLServer: fastapi<0.116, protobuf<7) and because
# Scrutiny must not depend on them at run time.
#
#   bash scripts/engine-venvs.sh [mlflow] [mlserver] [kserve]     (default: all three)
#
# Venvs go to ${SCRUTINY_ENGINE_VENVS:-$HOME/.cache/scrutiny/engine-venvs}/<name>. Each holds a
# stamp with the hash of its requirements file and interpreter version: a venv whose stamp
# matches is left alone (re-runs are instant), any other is rebuilt from scratch; the stamp is
# written last, so an interrupted build is redone. Progress goes to stderr; stdout is the
# `export SCRUTINY_<NAME>_PYTHON=...` lines the tests read (eval "$(bash scripts/engine-venvs.sh)").
# The tests also find the venvs at that default path without the variables.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${SCRUTINY_ENGINE_VENVS:-$HOME/.cache/scrutiny/engine-venvs}
PY=${SCRUTINY_ENGINE_VENV_PYTHON:-python3.11}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "engine-venvs: $PY not found (set SCRUTINY_ENGINE_VENV_PYTHON to a Python 3.11 interpreter)" >&2
  exit 1
fi
PY=$("$PY" -c 'import sys; print(sys.executable)')
PY_VERSION=$("$PY" -c 'import sys; print(sys.version)')

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(mlflow mlserver kserve)

build() {  # name req dir stamp: a fresh venv, stamped last
  local name=$1 req=$2 dir=$3 stamp=$4 start
  start=$(date +%s)
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  # --no-compile: bytecode is written on first import, only for the modules the servers use.
  # pip's notes about local index folders that do not exist are noise here.
  "$dir/bin/pip" install -q --no-compile --disable-pip-version-check -r "$req" 2>&1 \
    | grep -v "is ignored: it is neither" >&2 || true
  local module=$name
  [ "$name" = mlserver ] && module=mlserver_sklearn
  "$dir/bin/python" -c "import $module, sklearn, pandas" 2>/dev/null \
    || { echo "engine-venvs: $name: install failed" >&2; return 1; }
  echo "$stamp" >"$dir/.scrutiny-stamp"
  echo "engine-venvs: $name built in $(($(date +%s) - start)) s" >&2
}

pids=()
for name in "${names[@]}"; do
  req="$ROOT/tests/servers/requirements-$name.txt"
  if [ ! -f "$req" ]; then
    echo "engine-venvs: no requirements file $req" >&2
    exit 1
  fi
  dir="$BASE/$name"
  stamp=$( { cat "$req"; echo "$PY_VERSION"; } | sha256sum | cut -c1-32)
  if [ "$(cat "$dir/.scrutiny-stamp" 2>/dev/null || true)" != "$stamp" ]; then
    echo "engine-venvs: building $dir" >&2
    mkdir -p "$BASE"
    build "$name" "$req" "$dir" "$stamp" &  # the builds wait on the network more than on the CPU
    pids+=($!)
  fi
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || { echo "engine-venvs: a build failed (see above)" >&2; exit 1; }
for name in "${names[@]}"; do
  echo "export SCRUTINY_${name^^}_PYTHON=$BASE/$name/bin/python"
done
