#!/usr/bin/env bash
# The Python client's tests against a real `weir serve` (target/debug/weir, built by the
# cargo tests before this runs). Installs the package into a virtualenv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets --no-run --quiet   # the binary the tests built: same features, no second build
VENV=target/py-client
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip >/dev/null
"$VENV/bin/pip" install -q "./clients/python[test]"
WEIR_BIN="$(pwd)/target/debug/weir" "$VENV/bin/python" -m pytest -q clients/python/tests
