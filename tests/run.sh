#!/bin/bash
# Runs every test suite: C unit tests (ASan/UBSan), the request-decoder fuzzer for a bounded time,
# and the integration tests with real clients against the agent built with ASan/UBSan.
# Ends with one line: "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
passed=0 failed=0 skipped=0

# Adds the counts of a suite's closing line ("... N passed, N failed[, N skipped]").
count() {
    local line
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    if [ -z "$line" ]; then
        echo "!! $2 printed no result line: counted as 1 failure"
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
    if grep -qE '[0-9]+ skipped' <<<"$line"; then
        skipped=$((skipped + $(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$line")))
    fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== unit tests (ASan/UBSan)"
build/unit_tests 2>&1 | tee "$tmp/unit.out"
count "$tmp/unit.out" unit

echo "== fuzzing the request decoder for ${FUZZ_SECONDS}s"
mkdir -p "$tmp/corpus"
cp tests/fuzz/corpus/* "$tmp/corpus/" 2>/dev/null || true
if build/fuzz_request -max_total_time="$FUZZ_SECONDS" -seed=1 -print_final_stats=1 \
        -artifact_prefix="$tmp/" "$tmp/corpus" >"$tmp/fuzz.out" 2>&1; then
    grep -E 'stat::number_of_executed_units|Done' "$tmp/fuzz.out" | tail -2
    echo "fuzz: 1 passed, 0 failed" | tee "$tmp/fuzz.res"
else
    tail -40 "$tmp/fuzz.out"
    echo "fuzz: 0 passed, 1 failed" | tee "$tmp/fuzz.res"
fi
count "$tmp/fuzz.res" fuzz

echo "== integration tests (real clients, agent under ASan/UBSan)"
SLUICE_BIN="$PWD/build/sluice-san" ASAN_OPTIONS=detect_leaks=1 \
    /usr/bin/python3 tests/integration/run.py "$@" 2>&1 | tee "$tmp/integration.out"
count "$tmp/integration.out" integration

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
