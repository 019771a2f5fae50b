#!/usr/bin/env bash
# Coverage-guided fuzzing of the query-language parser and analyzer with cargo-fuzz
# (libFuzzer), on the stable toolchain.
#
#   scripts/fuzz.sh [SECONDS]      # default 60; the test script runs a short pass
#
# The corpus starts from the golden files (query-lang/tests/queries/*.wql), the examples and the
# docs' statements, and grows in query-lang/fuzz/corpus/parse (not committed). Findings (crashes,
# failed round trips) are written to query-lang/fuzz/artifacts/parse and fail this script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked
fi

mkdir -p target
CORPUS=query-lang/fuzz/corpus/parse
mkdir -p "$CORPUS"
for f in query-lang/tests/queries/*.wql examples/*.wql; do
    cp "$f" "$CORPUS/seed-$(basename "$f")"
done
# Every statement of the golden files on its own, too: shorter seeds mutate further.
python3 - "$CORPUS" <<'PY'
import glob, hashlib, os, sys
out = sys.argv[1]
for path in glob.glob("query-lang/tests/queries/*.wql") + glob.glob("examples/*.wql"):
    for stmt in open(path).read().split(";"):
        stmt = stmt.strip()
        if stmt:
            name = "stmt-" + hashlib.sha1(stmt.encode()).hexdigest()[:12]
            open(os.path.join(out, name), "w").write(stmt)
PY

# cargo-fuzz passes nightly-only -Z flags for the sanitizers; RUSTC_BOOTSTRAP lets the stable
# compiler take them. AddressSanitizer is off: the crate has no unsafe code, and libFuzzer's
# coverage guidance is what finds panics and round-trip failures.
echo "==> fuzzing the parser for ${SECONDS_TO_RUN}s"
cd query-lang
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none parse "fuzz/corpus/parse" -- \
    -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 2>&1 |
    tee ../target/fuzz-parse.log | grep -E "^(#[0-9]+ +(INITED|DONE)|stat::|==|SUMMARY|Done)" || true
if ls fuzz/artifacts/parse/* >/dev/null 2>&1; then
    echo "fuzzing found failing inputs in query-lang/fuzz/artifacts/parse:" >&2
    ls fuzz/artifacts/parse >&2
    exit 1
fi
grep -q "Done [0-9]* runs" ../target/fuzz-parse.log || { echo "the fuzzer did not finish a run; see target/fuzz-parse.log" >&2; exit 1; }
