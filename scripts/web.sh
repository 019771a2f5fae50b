#!/usr/bin/env bash
# The web console (web/): checks that the committed bundle web/dist/ is exactly what a fresh
# `npm ci && npm run build` gives, then runs the console's end-to-end tests in Debian's
# headless Chromium against a real `weir serve` (target/debug/weir, built here if needed).
# Called by scripts/test.sh; runnable alone from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
if ! command -v npm >/dev/null; then
  echo "scripts/web.sh: npm (Node 20.19 or later) is needed to build and test the console" >&2
  exit 1
fi

echo "==> web: npm ci"
(cd web && npm ci --no-audit --no-fund)

echo "==> web: the committed bundle matches a fresh build"
fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
(cd web && npx vite build --logLevel warn --outDir "$fresh/dist")
if ! diff -r web/dist "$fresh/dist"; then
  echo "web/dist differs from a fresh build of web/: run 'npm run build' in web/ and commit web/dist" >&2
  exit 1
fi

echo "==> web: unit tests"
(cd web && npm test)

echo "==> web: end-to-end tests (headless chromium)"
cargo test --workspace --all-targets --no-run --quiet   # the binary the tests built: same features, no second build
(cd web && WEIR_BIN="$PWD/../target/debug/weir" npm run e2e)
