#!/usr/bin/env bash
# `weir replay` against Apache Flink (PyFlink) on the same file and the same query: count(*)
# and sum(amount) per seller over 60 s windows every 10 s (Weir: `timeseries(time, 10s, 60s)`
# with --emit windows; Flink: TABLE(HOP(...)) into a blackhole sink).
#
#   scripts/bench-replay.sh                  # 10 M events, at 1 k and at 100 k keys
#   EVENTS=5000000 KEYS="1000" RUNS=3 scripts/bench-replay.sh
#
# Generates the NDJSON files (once) and installs PyFlink into a venv (once), both under
# $WEIR_BENCH_CACHE (default ~/.cache/weir/bench). Checks first that both give the same
# windows on the first 100 k events, then prints per run the events/s of each and the ratio.
# Flink's events/s count from job submission to its end (JVM and Python start-up excluded);
# Weir's from the start of the process to its end, output (JSON lines to /dev/null) included.
# Not part of scripts/test.sh: it downloads PyFlink and runs for minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-10000000}
KEYS=${KEYS:-"1000 100000"}
RUNS=${RUNS:-1}
RATE=${RATE:-10}            # events per millisecond of event time
FLINK_VERSION=${FLINK_VERSION:-2.3.0}
PARALLELISM=${PARALLELISM:-$(nproc)}
CACHE=${WEIR_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/bench}
mkdir -p "$CACHE"

echo "==> weir (release build)"
cargo build --release --bin weir
WEIR=target/release/weir
QUERY=examples/replay/hop.wql

VENV=$CACHE/pyflink-$FLINK_VERSION
if ! "$VENV/bin/python" -c "import pyflink" 2>/dev/null; then
    echo "==> PyFlink $FLINK_VERSION into $VENV"
    command -v java >/dev/null || { echo "PyFlink needs a JDK (17) on PATH" >&2; exit 1; }
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "apache-flink==$FLINK_VERSION"
fi
FLINK="$VENV/bin/python scripts/flink_hop.py"

# Flat order events: time ascending (RATE a millisecond), seller uniform over the keys.
gen() {
    local n=$1 keys=$2 out=$3
    [ -s "$out" ] && return
    echo "==> generating $out ($n events, $keys keys)"
    python3 - "$n" "$keys" "$RATE" "$out.tmp" <<'EOF'
import random, sys
n, keys, rate, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
random.seed(42)
base = 1_700_000_000_000
mask = (1 << 20) - 1
ks = [random.randrange(keys) for _ in range(mask + 1)]
am = [random.randrange(1000) for _ in range(mask + 1)]
with open(out, "w", buffering=1 << 20) as f:
    for i in range(0, n, 1000):
        f.write("".join(
            '{"type":"order","ts":%d,"seller":"s%d","amount":%d}\n'
            % (base + j // rate, ks[(j * 2654435761) & mask], am[(j * 40503) & mask])
            for j in range(i, min(n, i + 1000))))
EOF
    mv "$out.tmp" "$out"
}

echo "==> same answer: Weir's windows against Flink's on the first 100 k events"
first=$(echo "$KEYS" | awk '{print $1}')
gen "$EVENTS" "$first" "$CACHE/events-$EVENTS-$first.ndjson"
sample=$CACHE/sample.ndjson
head -n 100000 "$CACHE/events-$EVENTS-$first.ndjson" > "$sample"
rm -rf "$CACHE/flink-out"
$FLINK "$sample" --parallelism "$PARALLELISM" --out "$CACHE/flink-out" > /dev/null
cat "$CACHE/flink-out"/part-* | sort > "$CACHE/flink.sorted"
"$WEIR" replay -q -s "$QUERY" "$sample" --emit windows --output-format csv \
    | awk -F, '$1 == "window" {print $7","$4","$5","$8","$9}' | sort > "$CACHE/weir.sorted"
if cmp -s "$CACHE/flink.sorted" "$CACHE/weir.sorted"; then
    echo "identical: $(wc -l < "$CACHE/weir.sorted") windows"
else
    echo "Weir and Flink differ on $sample:" >&2
    diff "$CACHE/flink.sorted" "$CACHE/weir.sorted" | head >&2
    exit 1
fi

echo "==> machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-8s %-4s %-14s %-14s %-14s %-8s %s\n' keys run weir_ev/s flink_ev/s flink_total_s ratio load
for keys in $KEYS; do
    file=$CACHE/events-$EVENTS-$keys.ndjson
    gen "$EVENTS" "$keys" "$file"
    for run in $(seq "$RUNS"); do
        load=$(cut -d' ' -f1 /proc/loadavg)
        t0=$(date +%s.%N)
        "$WEIR" replay -s "$QUERY" "$file" --emit windows -o /dev/null 2> "$CACHE/weir.log"
        t1=$(date +%s.%N)
        weir_eps=$(echo "$EVENTS / ($t1 - $t0)" | bc -l)
        flink=$($FLINK "$file" --parallelism "$PARALLELISM" 2> "$CACHE/flink.log" | tail -1)
        job=$(echo "$flink" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_seconds"])')
        total=$(echo "$flink" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_seconds"])')
        flink_eps=$(echo "$EVENTS / $job" | bc -l)
        printf '%-8s %-4s %-14.0f %-14.0f %-14.1f %-8.1f %s\n' "$keys" "$run" "$weir_eps" \
            "$flink_eps" "$total" "$(echo "$weir_eps / $flink_eps" | bc -l)" "$load"
        echo "         weir: $(tail -1 "$CACHE/weir.log")"
    done
done
