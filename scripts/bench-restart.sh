#!/usr/bin/env bash
# Restart with many keys (issue 12 / SPEC durability): how long after a kill -9 the server
# answers, and answers correctly, and whether event latency jumps while state is flushed.
#
# Starts `weir serve` on a fresh data dir with query `sellers` (count and sum per seller over
# a 60 min window advancing every 10 s), sends KEYS sellers two events each (durable), waits
# for a state flush, sends a tail of events the flush does not hold, kills the server with
# SIGKILL, restarts it and measures the time to /healthz and to correct answers for sample
# sellers. Then measures durable ingest over the same keys with flushes every FLUSH and with
# no flush during the run, and prints both latency distributions.
#
#   scripts/bench-restart.sh [path/to/weir]     (default: target/release/weir)
#
# Environment: PORT (18290), KEYS (1000000), FLUSH (5s), DUR (seconds per ingest run, 20),
# SERVE_ARGS (extra `weir serve` flags, e.g. `--cassandra-nodes 127.0.0.1:9042
# --cassandra-keyspace bench` to run it on Cassandra/Scylla; use a fresh keyspace each run).
# Not part of scripts/test.sh: it is a benchmark (figures go to docs/benchmarks.md).
set -euo pipefail
WEIR=${1:-target/release/weir}
PORT=${PORT:-18290}
KEYS=${KEYS:-1000000}
FLUSH=${FLUSH:-5s}
DUR=${DUR:-20}
read -r -a SERVE_ARGS <<<"${SERVE_ARGS:-}"
URL=http://127.0.0.1:$PORT
DATA=$(mktemp -d)
LOG=$(mktemp)
SERVER=
start() {
    WEIR_CHECKPOINT_INTERVAL=$1 "$WEIR" serve --http "127.0.0.1:$PORT" --data-dir "$DATA" \
        "${SERVE_ARGS[@]}" 2>>"$LOG" &
    SERVER=$!
}
cleanup() {
    [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null || true
    rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
wait_health() { until curl -sf "$URL/healthz" >/dev/null; do sleep 0.05; done; }
flushes() { curl -s "$URL/metrics" | awk '/^weir_checkpoints_total\{outcome="ok"\}/ {print $2}'; }

echo "== machine: $(nproc) cores, $(uname -sr); load: $(cut -d' ' -f1-3 /proc/loadavg)"
start "$FLUSH"
wait_health
curl -sf -X POST --data-binary "CREATE QUERY sellers AS SELECT count(*) AS n, sum(amount) AS s FROM sale GROUP BY seller, timeseries(time, 10s, 60min)" "$URL/api/statements" >/dev/null

echo "== sending $KEYS sellers x 2 events"
python3 - "$URL" "$KEYS" <<'PY'
import http.client, json, sys, threading, time, urllib.parse
url, keys = sys.argv[1], int(sys.argv[2])
u = urllib.parse.urlparse(url)
now = int(time.time() * 1000)
total = 2 * keys
def worker(lo, hi):
    c = http.client.HTTPConnection(u.hostname, u.port)
    for start in range(lo, hi, 1000):
        evs = [{"type": "sale", "seller": f"s{j % keys}", "amount": j % 100, "time": now - 60_000 + (j % 50_000)}
               for j in range(start, min(start + 1000, hi))]
        c.request("POST", "/api/events?wait=durable", json.dumps({"events": evs}), {"content-type": "application/json"})
        r = c.getresponse(); r.read()
        assert r.status < 300, r.status
t0 = time.time()
step = total // 4
ts = [threading.Thread(target=worker, args=(i * step, total if i == 3 else (i + 1) * step)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"sent {total} events in {time.time() - t0:.1f} s")
PY
before=$(flushes)
until [ "$(flushes)" != "$before" ]; do sleep 0.2; done
sleep 0.5
before=$(flushes)
until [ "$(flushes)" != "$before" ]; do sleep 0.2; done
echo "-- a flush after the load has completed"
# A tail the flushes do not hold (replayed after the restart).
python3 - "$URL" <<'PY'
import json, sys, time, urllib.request
now = int(time.time() * 1000)
evs = [{"type": "sale", "seller": f"s{j}", "amount": 1, "time": now - 1000} for j in range(10)]
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/api/events?wait=durable", json.dumps({"events": evs}).encode(), {"content-type": "application/json"})).read()
PY
sample() {
    for s in s0 s5 s12345 s999; do
        curl -sf "$URL/api/queries/sellers/result?key.seller=$s" | python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"]; print(r[0]["values"]["n"], r[0]["values"]["s"]) if r else print("none")'
    done | tr '\n' ' '
}
expected=$(sample)
echo "-- sample sellers (n s): $expected"
kill -9 "$SERVER"; wait "$SERVER" 2>/dev/null || true
t0=$(now_ms)
start "$FLUSH"
# One poller, timing from the restart: first /healthz, then the first time every sample
# seller answers as before the kill.
python3 - "$URL" "$t0" "$expected" "$KEYS" <<'PY'
import http.client, json, sys, time, urllib.parse
url, t0, expected, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
u = urllib.parse.urlparse(url)
def get(path):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    c.request("GET", path); r = c.getresponse(); body = r.read(); c.close()
    return r.status, body
def sample():
    out = []
    for s in ["s0", "s5", "s12345", "s999"]:
        st, body = get(f"/api/queries/sellers/result?key.seller={s}")
        rows = json.loads(body)["rows"] if st == 200 else []
        out.append(f'{rows[0]["values"]["n"]} {rows[0]["values"]["s"]}' if rows else "none")
    return " ".join(out) + " "
def ms(): return int(time.time() * 1000) - t0
while True:
    try:
        if get("/healthz")[0] == 200: break
    except OSError: pass
    time.sleep(0.01)
healthy = ms()
while sample() != expected: time.sleep(0.01)
print(f"== kill -9 with {keys} keys, restart: /healthz after {healthy} ms, correct answers after {ms()} ms")
PY
grep -E 'store opened|store connected|persisted state loaded|state restored' "$LOG" | tail -3

measure() {
    echo "-- weir bench ingest over the same keys, 4 connections, 1000 events per request, durable, $1"
    "$WEIR" bench --url "$URL" --workload ingest --batch 1000 --rate 0 --connections 4 \
        --keys "$KEYS" --duration "$DUR" 2>/dev/null | tail -3
}
measure "flushes every $FLUSH"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
start 1h
wait_health
measure "no flush during the run"
curl -s "$URL/metrics" | grep -E '^weir_state_rows_written_total|^weir_checkpoint_duration_seconds_(sum|count)' || true
