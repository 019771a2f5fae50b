#!/usr/bin/env bash
# schemathesis (PyPI) against a real `weir serve`: every operation of /api/openapi.json is
# called with generated requests (examples, coverage, fuzzing, and stateful sequences along
# the document's links), and every answer is checked: no 5xx, a documented status, content
# type and headers, and a body that fits the documented schema. The document itself is first
# checked against the OpenAPI 3.1 meta-schema (openapi-spec-validator).
#
# Installs schemathesis into a virtualenv under target/ (kept between runs), starts the debug
# binary on a free loopback port with a temporary data directory, seeds it with a query, a
# rule, a schema and some events, and runs a bounded pass.
#
#   scripts/schemathesis.sh                       # the default pass
#   SCHEMATHESIS_EXAMPLES=100 scripts/schemathesis.sh
#
# Under CI=true a failure to install or to start the server fails the script; elsewhere it
# says so and stops without testing (exit 0, with SKIPPED on the last line).
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="${SCHEMATHESIS_EXAMPLES:-100}"
VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
VALIDATOR_VERSION=0.8.5
VENV=target/schemathesis
REPORT=target/schemathesis-report

unavailable() {
    echo "schemathesis.sh: $*" >&2
    if [ "${CI:-}" = "true" ]; then
        echo "schemathesis.sh: FAILED (CI=true: schemathesis must run)" >&2
        exit 1
    fi
    echo "schemathesis.sh: SKIPPED: $*" >&2
    exit 0
}

cargo test --workspace --all-targets --no-run --quiet   # the binary the tests built: same features, no second build
BIN="$(pwd)/target/debug/weir"

if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$VERSION" ||
    [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
    python3 -m venv "$VENV" || unavailable "cannot create a virtualenv (python3 -m venv)"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null || unavailable "cannot upgrade pip"
    "$VENV/bin/pip" install -q "schemathesis==$VERSION" "openapi-spec-validator==$VALIDATOR_VERSION" ||
        unavailable "cannot install schemathesis $VERSION from PyPI"
fi

PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
DATA="$(mktemp -d)"
LOG="$DATA.log"
RUST_LOG=warn "$BIN" serve --http "127.0.0.1:$PORT" --data-dir "$DATA" >"$LOG" 2>&1 &
PID=$!
cleanup() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
    curl -sf "$URL/healthz" >/dev/null 2>&1 && break
    if ! kill -0 "$PID" 2>/dev/null; then
        cat "$LOG" >&2
        unavailable "weir serve exited before it was ready"
    fi
    sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { cat "$LOG" >&2; unavailable "weir serve did not become ready in 60 s"; }

# Something for the reading routes to read.
post() { # path content-type body
    curl -sf -X POST "$URL$1" -H "content-type: $2" --data-binary "$3" >/dev/null ||
        { echo "schemathesis.sh: seeding POST $1 failed" >&2; exit 1; }
}
post /api/statements text/plain \
    "CREATE QUERY orders AS SELECT count(*) AS n, sum(amount) AS total FROM neworder GROUP BY seller, timeseries(time, 1min, 10min);
     CREATE QUERY per_minute AS SELECT count(*) AS n FROM neworder GROUP BY timeseries(time, 1min);
     CREATE RULE many_orders AS SELECT count(*) AS orders FROM neworder GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 1000"
curl -sf -X PUT "$URL/api/schemas/typed" -H 'content-type: application/json' \
    --data-binary '{"type":"object","required":["n"],"properties":{"n":{"type":"number"}}}' >/dev/null ||
    { echo "schemathesis.sh: seeding PUT /api/schemas/typed failed" >&2; exit 1; }
post '/api/events?wait=durable' application/json \
    '{"events":[{"type":"neworder","seller":"s1","amount":10,"session_id":"a"},{"type":"neworder","seller":"s2","amount":3},{"type":"click","page":"/","session_id":"a"}]}'
post /api/add_and_check application/json '{"type":"neworder","seller":"s1","amount":1}'

mkdir -p "$REPORT"
echo "==> the document against the OpenAPI 3.1 meta-schema (openapi-spec-validator)"
curl -sf "$URL/api/openapi.json" >"$REPORT/openapi.json" ||
    { echo "schemathesis.sh: GET /api/openapi.json failed" >&2; exit 1; }
"$VENV/bin/openapi-spec-validator" "$REPORT/openapi.json"

echo "==> schemathesis $VERSION against $URL/api/openapi.json ($EXAMPLES examples per operation)"
# Which checks run, and where not, is in scripts/schemathesis.toml.
# It runs inside the report directory, where it also keeps its own files (.schemathesis/).
ROOT="$(pwd)"
cd "$REPORT"
timeout 900 "$ROOT/$VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" \
    run "$URL/api/openapi.json" \
    --max-examples "$EXAMPLES" \
    --workers 2 \
    --request-timeout 10 \
    --generation-database none \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color \
    --report junit --report-dir .
