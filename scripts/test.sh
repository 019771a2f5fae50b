#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit, property and
# integration tests (the latter against real brokers, which this script starts).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> formatting"
cargo fmt --all --check

echo "==> lints"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> brokers"
source scripts/brokers.sh
source scripts/prometheus.sh

echo "==> tests"
cargo test --workspace --all-targets --no-fail-fast
scripts/web.sh   # the web console: bundle check and end-to-end tests in headless Chromium
scripts/python-client.sh   # the Python client's tests against a real server
scripts/schemathesis.sh    # schemathesis over /api/openapi.json against a real server
scripts/fuzz.sh 30         # a short coverage-guided fuzzing pass over the parser
scripts/compose-check.sh  # docker compose config over docker/compose.yaml
