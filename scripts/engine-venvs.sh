#!/usr/bin/env bash
# Virtualenvs of the engine servers the `servers` tests start (MLflow, MLServer, KServe), and of
# IBM's OpenScale SDKs the `openscale_sdk` tests run (openscale-v2: ibm-watson-openscale 3.x,
# openscale-v1: ibm-ai-openscale 2.2.1).
#
# They are separate from the project's venv because each pins dependencies that clash with
# Scrutiny's (MLflow: pyarrow<26; MLServer: fastapi<0.116, protobuf<7; the SDKs:
# ibm-cloud-sdk-core, an old requests stack) and because Scrutiny must not depend on them.
#
#   bash scripts/engine-venvs.sh [mlflow] [mlserver] [kserve] [openscale-v2] [openscale-v1]
#                                                                   (default: all five)
#
# Requirements: tests/servers/requirements-<name>.txt, or tests/openscale_sdk/requirements-<name>.txt.
# Venvs go to ${SCRUTINY_ENGINE_VENVS:-$HOME/.cache/scrutiny/engine-venvs}/<name>. Each holds a
# stamp with the hash of its requirements file and interpreter version: a venv whose stamp
# matches is left alone (re-runs are instant), any other is rebuilt from scratch; the stamp is
# written last, so an interrupted build is redone. Progress goes to stderr; stdout is the
# `export SCRUTINY_<NAME>_PYTHON=...` lines the tests read (eval "$(bash scripts/engine-venvs.sh)";
# hyphens in <NAME> become underscores).
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
[ ${#names[@]} -eq 0 ] && names=(mlflow mlserver kserve openscale-v2 openscale-v1)

imports_of() {  # what a working venv imports
  case $1 in
    mlserver) echo "mlserver_sklearn, sklearn, pandas" ;;
    openscale-v2) echo "ibm_watson_openscale" ;;
    openscale-v1) echo "ibm_ai_openscale" ;;
    *) echo "$1, sklearn, pandas" ;;
  esac
}

build() {  # name req dir stamp: a fresh venv, stamped last
  local name=$1 req=$2 dir=$3 stamp=$4 start
  start=$(date +%s)
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  # --no-compile: bytecode is written on first import, only for the modules the servers use.
  # pip's notes about local index folders that do not exist are noise here.
  "$dir/bin/pip" install -q --no-compile --disable-pip-version-check -r "$req" 2>&1 \
    | grep -v "is ignored: it is neither" >&2 || true
  # PIP_NO_INDEX: the 2020 OpenScale SDK pip-installs what it misses; importing must not download
  PIP_NO_INDEX=1 "$dir/bin/python" -c "import $(imports_of "$name")" >/dev/null 2>&1 \
    || { echo "engine-venvs: $name: install failed" >&2; return 1; }
  echo "$stamp" >"$dir/.scrutiny-stamp"
  echo "engine-venvs: $name built in $(($(date +%s) - start)) s" >&2
}

pids=()
for name in "${names[@]}"; do
  req="$ROOT/tests/servers/requirements-$name.txt"
  [ -f "$req" ] || req="$ROOT/tests/openscale_sdk/requirements-$name.txt"
  if [ ! -f "$req" ]; then
    echo "engine-venvs: no requirements file for $name (tests/servers or tests/openscale_sdk)" >&2
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
  var=${name^^}
  echo "export SCRUTINY_${var//-/_}_PYTHON=$BASE/$name/bin/python"
done
