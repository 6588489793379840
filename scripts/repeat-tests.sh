#!/usr/bin/env bash
# Runs `cargo test --workspace` N times on the unchanged tree (default 20) and counts the passes: the
# tests are deterministic (fixed seed, see tests/common/seed.rs), so every run must pass.
#   scripts/repeat-tests.sh 20
#   LLAMA_KERNELS_TEST_SEED=random scripts/repeat-tests.sh 5     # explore: a new seed per run, printed
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
log_dir=$(mktemp -d)
cargo test --workspace --no-run >"$log_dir/build.log" 2>&1 || { cat "$log_dir/build.log"; exit 2; }
passed=0
for i in $(seq 1 "$runs"); do
    if cargo test --workspace >"$log_dir/run-$i.log" 2>&1; then
        passed=$((passed + 1))
        echo "run $i/$runs: passed"
    else
        echo "run $i/$runs: FAILED (log: $log_dir/run-$i.log)"
        grep -E "drew seed|reproduce with|panicked|^test .* FAILED" "$log_dir/run-$i.log" | head -20
    fi
done
echo "repeat-tests: $passed passed, $((runs - passed)) failed"
[ "$passed" -eq "$runs" ]
