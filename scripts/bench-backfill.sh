#!/usr/bin/env bash
# Live traffic while backfills run (SPEC section 5: a backfill never starves live traffic).
#
# Starts `weir serve` on a fresh data dir, stores EVENTS (default 1.5 M) `bench_order`
# events, then measures the live workloads twice: once alone, and once while
# `CREATE OR REPLACE QUERY bf …` (no time window: it replays every stored event) runs back
# to back for the whole measurement. Prints each measurement and the backfills' times.
#
#   scripts/bench-backfill.sh [path/to/weir]     (default: target/release/weir)
#
# Environment: PORT (18190), EVENTS (1500000), DUR (seconds per measurement, 10).
# Not part of scripts/test.sh: it is a benchmark (figures go to docs/benchmarks.md).
set -euo pipefail
WEIR=${1:-target/release/weir}
PORT=${PORT:-18190}
EVENTS=${EVENTS:-1500000}
DUR=${DUR:-10}
URL=http://127.0.0.1:$PORT
DATA=$(mktemp -d)
LOG=$(mktemp)
"$WEIR" serve --http "127.0.0.1:$PORT" --data-dir "$DATA" 2>"$LOG" &
SERVER=$!
LOOP=
cleanup() {
    [ -n "$LOOP" ] && kill "$LOOP" 2>/dev/null || true
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT
until curl -sf "$URL/healthz" >/dev/null; do sleep 0.2; done

echo "== machine: $(nproc) cores, $(uname -sr); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== storing $EVENTS events"
"$WEIR" gen --url "$URL" --total "$EVENTS" --types bench_order --batch 1000 --concurrency 8 \
    --start "$(date -u -d '-50 min' '+%Y-%m-%d %H:%M:%S')" 2>/dev/null

BF="CREATE OR REPLACE QUERY bf AS SELECT count(*) AS n, sum(amount) AS s FROM bench_order GROUP BY user_id"
backfills() {
    while :; do
        curl -s -o /dev/null -w '%{time_total}\n' -X POST --data-binary "$BF" "$URL/api/statements"
    done
}

measure() {
    echo "-- weir gen (4 connections, 500 events per request, durable)"
    "$WEIR" gen --url "$URL" --total 400000 --types page_view --seed "$RANDOM" 2>/dev/null
    echo "-- weir bench ingest (8 connections, 1000 events per request, durable)"
    "$WEIR" bench --url "$URL" --workload ingest --batch 1000 --rate 0 --connections 8 \
        --duration "$DUR" 2>/dev/null | tail -3
    echo "-- weir bench add-and-check at 2000/s (64 connections)"
    "$WEIR" bench --url "$URL" --workload add-and-check --rate 2000 --connections 64 \
        --duration "$DUR" 2>/dev/null | tail -3
    echo "-- weir bench add-and-check closed loop (64 connections)"
    "$WEIR" bench --url "$URL" --workload add-and-check --rate 0 --connections 64 \
        --duration "$DUR" 2>/dev/null | tail -3
}

echo "== without backfill"
measure

echo "== while backfills of every stored bench_order event run back to back"
TIMES=$(mktemp)
backfills >"$TIMES" &
LOOP=$!
sleep 1
measure
kill "$LOOP"
wait "$LOOP" 2>/dev/null || true
LOOP=
echo "-- backfills: $(wc -l <"$TIMES") completed; seconds each: $(tr '\n' ' ' <"$TIMES")"
rm -f "$TIMES"
