#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, unit, property and
# integration tests (the latter against real brokers, which this script starts).
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean CI build gains nothing from incremental artefacts; they only take disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

# A real Apache Cassandra node for the Cassandra/Scylla backend's tests: fetched once from
# Maven Central, started now in the background (it takes a minute or two), awaited before the
# tests. Without it those tests fail and say why.
echo "==> Cassandra"
source scripts/cassandra.sh
trap weir_cassandra_cleanup EXIT

echo "==> formatting"
cargo fmt --all --check

echo "==> lints"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> brokers and Redis"
source scripts/brokers.sh
trap 'weir_brokers_cleanup; weir_cassandra_cleanup' EXIT
source scripts/redis.sh    # Redis for the alert sink's tests (WEIR_TEST_REDIS)
trap 'weir_redis_cleanup; weir_brokers_cleanup; weir_cassandra_cleanup' EXIT
source scripts/prometheus.sh
weir_cassandra_ready

echo "==> tests"
cargo test --workspace --all-targets --no-fail-fast
# The server's contract, crash, backfill, input, state, tenancy, alert and rate-limit tests again,
# every server on the Cassandra node (tests that read the embedded store's files are skipped by name).
echo "==> tests on the Cassandra/Scylla backend"
WEIR_TEST_STORAGE=cassandra cargo test --workspace --no-fail-fast \
    --test contract --test crash --test backfill --test inputs --test state --test catalog \
    --test tenancy --test alerts --test rate_limits
scripts/web.sh   # the web console: bundle check and end-to-end tests in headless Chromium
scripts/python-client.sh   # the Python client's tests against a real server
scripts/schemathesis.sh    # schemathesis over /api/openapi.json against a real server
scripts/fuzz.sh 30         # a short coverage-guided fuzzing pass over the parser
scripts/compose-check.sh  # docker compose config over docker/compose.yaml
