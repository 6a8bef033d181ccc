#!/bin/bash
# Runs every test suite: C unit tests (ASan/UBSan), the fuzzers (request decoder, record batches,
# whole requests through the handlers) for a bounded time each, and the integration tests with
# real clients against the agent built with ASan/UBSan.
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

# Each run fuzzes from a new seed, printed so that a failure can be replayed (FUZZ_SEED=N); the
# input that failed is kept in build/fuzz-crashes/ (run the fuzzer on it to see the failure again).
fuzz() { # name, binary, seed corpus
    local name=$1 bin=$2 seeds=$3
    local seed=${FUZZ_SEED:-$(((RANDOM << 15 | RANDOM) + 1))}
    echo "== fuzzing $name for ${FUZZ_SECONDS}s, seed $seed"
    mkdir -p "$tmp/corpus-$name"
    cp "$seeds"/* "$tmp/corpus-$name/" 2>/dev/null || true
    if "$bin" -max_total_time="$FUZZ_SECONDS" -seed="$seed" -print_final_stats=1 \
            -artifact_prefix="$tmp/$name-" "$tmp/corpus-$name" >"$tmp/fuzz-$name.out" 2>&1; then
        grep -E 'stat::number_of_executed_units|Done' "$tmp/fuzz-$name.out" | tail -2
        echo "fuzz $name: 1 passed, 0 failed" | tee "$tmp/fuzz-$name.res"
    else
        tail -40 "$tmp/fuzz-$name.out"
        mkdir -p build/fuzz-crashes
        cp "$tmp/$name-"* build/fuzz-crashes/ 2>/dev/null &&
            echo "!! failing input kept in build/fuzz-crashes/ (FUZZ_SEED=$seed to replay the run)"
        echo "fuzz $name: 0 passed, 1 failed" | tee "$tmp/fuzz-$name.res"
    fi
    count "$tmp/fuzz-$name.res" "fuzz $name"
}
fuzz request build/fuzz_request tests/fuzz/corpus
fuzz records build/fuzz_records tests/fuzz/corpus_records
fuzz handlers build/fuzz_handlers tests/fuzz/corpus_handlers

echo "== integration tests (real clients, agent under ASan/UBSan)"
SLUICE_BIN="$PWD/build/sluice-san" ASAN_OPTIONS=detect_leaks=1 \
    /usr/bin/python3 tests/integration/run.py "$@" 2>&1 | tee "$tmp/integration.out"
count "$tmp/integration.out" integration

echo
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
