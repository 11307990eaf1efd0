#!/usr/bin/env bash
# Refresh the dashboard's vendored chart library from the npm registry (run by hand, then commit
# the files): the dashboard serves them from the package, so it needs no CDN and works offline.
set -euo pipefail
VERSION=${1:-1.6.32}
cd "$(dirname "$0")/.."
DEST=scrutiny/web/static
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "uplot@$VERSION" >/dev/null && tar xzf "uplot-$VERSION.tgz")
cp "$TMP/package/dist/uPlot.iife.min.js" "$TMP/package/dist/uPlot.min.css" "$DEST/"
cp "$TMP/package/LICENSE" "$DEST/uPlot.LICENSE.txt"
head -c 60 "$DEST/uPlot.iife.min.js"; echo
