#!/usr/bin/env bash
# Fetch the dashboard's vendored libraries again from the npm registry, at their pinned versions, into
# src/rolloutdb/dashboard/static/vendor/ (the built files and their licenses; committed, so that running the
# dashboard needs no Node.js). Needs npm only here, to fetch.
set -euo pipefail
cd "$(dirname "$0")/.."
UPLOT_VERSION=1.6.31
target=src/rolloutdb/dashboard/static/vendor/uplot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null && tar xzf "uplot-$UPLOT_VERSION.tgz")
cp "$work/package/dist/uPlot.esm.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$target/"
echo "uPlot $UPLOT_VERSION -> $target"
