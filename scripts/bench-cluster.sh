#!/usr/bin/env bash
# Throughput of a Weir cluster with 1, 2 and 3 nodes on this machine: the tansu broker
# (Kafka-compatible, records in memory) and one Cassandra node (scripts/cassandra.sh), events sent over HTTP to
# every node in batches of 1000 by 4 clients, timed from the first send until every event is
# counted by a query read from one node (so it includes produce, consume, the cells' logs in
# Cassandra and the fan-out read).
#
#   scripts/bench-cluster.sh [EVENTS] [NODES…]      (default 200000 events, nodes 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-200000}"
shift || true
NODE_COUNTS=("${@:-1 2 3}")
read -r -a NODE_COUNTS <<<"${NODE_COUNTS[*]}"

cargo build --release --bin weir
WEIR="$(pwd)/target/release/weir"
source scripts/cassandra.sh
WORK="$(mktemp -d)"
TANSU="$(command -v tansu || echo "$(pwd)/../shared/tools/tansu")"
KPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    weir_cassandra_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
# The broker keeps records in memory here: with its sqlite storage, tansu itself stalls
# under concurrent produce requests (ProduceRequests time out after 60 s at a few hundred
# records/s, measured with confluent-kafka alone), which would measure the broker, not Weir.
(cd "$WORK" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$KPORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KPORT" --storage-engine memory://tansu/) \
    >"$WORK/tansu.log" 2>&1 &
PIDS+=($!)
weir_cassandra_ready

for n in "${NODE_COUNTS[@]}"; do
    run="r$RANDOM$n"
    "$TANSU" topic create --broker "tcp://127.0.0.1:$KPORT" --partitions 6 "$run" >/dev/null
    ports=()
    for i in $(seq 1 "$n"); do
        port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
        ports+=("$port")
        "$WEIR" serve --http "127.0.0.1:$port" --cassandra-nodes "$WEIR_TEST_CASSANDRA" \
            --cassandra-keyspace "$run" --cluster-brokers "127.0.0.1:$KPORT" \
            --cluster-topic "$run" --cluster-group "$run" --cluster-node "n$i" \
            --cluster-route seller --cluster-lease 4s >"$WORK/$run-n$i.log" 2>&1 &
        PIDS+=($!)
    done
    python3 - "$EVENTS" "${ports[@]}" <<'PY'
import json, sys, time, urllib.request, concurrent.futures as cf
events, ports = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
def call(port, path, body=None, method=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"content-type": "application/json"})
    try:
        return json.loads(urllib.request.urlopen(req, timeout=60).read())
    except Exception as e:
        return {"error": str(e)}
# Wait until every partition is served.
deadline = time.time() + 300
while time.time() < deadline:
    c = call(ports[0], "/api/cluster")
    if isinstance(c.get("owners"), dict) and all(c["owners"].values()) and len(c["owners"]) == 6:
        break
    time.sleep(1)
else:
    sys.exit("the cluster never served all 6 partitions")
r = call(ports[0], "/api/statements", b"CREATE QUERY bench AS SELECT count(*) AS n FROM order GROUP BY seller, timeseries(time, 1s, 1h)")
assert "results" in r, r
time.sleep(3)
now = int(time.time() * 1000)
batches = [[{"type": "order", "ts": now, "seller": f"s{(b * 1000 + i) % 10000}", "amount": i % 100}
            for i in range(1000)] for b in range(events // 1000)]
start = time.time()
def send(ib):
    i, b = ib
    r = call(ports[i % len(ports)], "/api/events", {"events": b})
    assert r.get("accepted") == len(b), r
with cf.ThreadPoolExecutor(4) as ex:
    list(ex.map(send, enumerate(batches)))
sent = time.time() - start
total = len(batches) * 1000
while True:
    r = call(ports[0], "/api/queries/bench/result")
    n = sum(row["values"]["n"] for row in r.get("rows", []))
    if n >= total or time.time() - start > 600:
        break
    time.sleep(0.2)
done = time.time() - start
print(f"nodes={len(ports)} events={total} counted={n} accepted_in={sent:.1f}s "
      f"accepted_rate={total / sent:,.0f}/s counted_in={done:.1f}s counted_rate={total / done:,.0f}/s")
PY
    for p in "${PIDS[@]:1}"; do kill -9 "$p" 2>/dev/null || true; done
    PIDS=("${PIDS[0]}")
done
