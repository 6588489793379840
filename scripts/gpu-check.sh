#!/usr/bin/env bash
# The one command to run on a lent GPU: builds, runs every `::cuda` test and the bench, and writes
# OUTDIR/gpu-check.json and OUTDIR/gpu-check.md with the device, driver and clocks, each measured
# figure next to the speed-of-light model's prediction for that GPU (examples/roofline.rs).
#
#   scripts/gpu-check.sh --prepare         here, on the CPU machine: build the release binaries the
#                                          check runs (::cuda test binaries, the bench, the roofline
#                                          example), stripped, packed as target/gpu-check-bin.tar.gz
#                                          (about 25 MB)
#   scripts/gpu-check.sh OUTDIR            on the GPU machine
#
# The lent GPU machines have CUDA but no Rust toolchain and no network, so the usual way is: prepare
# here, carry the archive (`run` with carry ["target/gpu-check-bin.tar.gz"]), run there. Where cargo
# is present the check builds instead (nvcc from PyPI if missing, as in .ci/run). Without a GPU it
# writes the reason to both files and exits 0. Budget: under 8 minutes on an H100/H200-class GPU:
# the step timeouts add up to 7 min 5 s with prepared binaries (11 test binaries x 15 s, the bench
# with its model predictions 200 s, roofline 60 s) and 7 min 10 s when building there (pip 60 s,
# build 210 s, tests 90 s, bench 120 s, roofline 50 s), so a hang cannot eat the lease. On this
# 2-core machine, with a stand-in nvidia-smi and no driver, the prepared path ran in 52 s (the
# roofline step hit its timeout: it needs the GPU machine's 16 cores).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN_ARCHIVE=target/gpu-check-bin.tar.gz
BIN_DIR=/tmp/gpu-check-bin

if [ "${1:-}" = "--prepare" ]; then
    DIR=target/gpu-check-bin
    rm -rf "$DIR" && mkdir -p "$DIR"
    # Test binaries of the crate whose tests have ::cuda halves, the bench, the roofline example.
    cargo build --release --tests --benches --examples --message-format=json 2>/dev/null |
        python3 -c '
import json, shutil, sys
dest = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    name, kind = t["name"], t["kind"][0]
    keep = (kind == "test" and (name.startswith("ops_") or name == "backend_memory")) or (kind == "bench" and name == "vs_cublas") or (kind == "example" and name == "roofline")
    if keep:
        shutil.copy(m["executable"], f"{dest}/{kind}-{name}")
        print(f"{kind}-{name}")
' "$DIR" || exit 1
    strip "$DIR"/* 2>/dev/null || true
    tar czf "$BIN_ARCHIVE" -C target gpu-check-bin
    ls -la "$BIN_ARCHIVE"
    exit 0
fi

OUT=${1:?usage: scripts/gpu-check.sh OUTDIR | --prepare [DIR]}
mkdir -p "$OUT"
LOG="$OUT/gpu-check.log"
: >"$LOG"
start=$(date +%s)
say() { echo "== $*" | tee -a "$LOG"; }

no_gpu_tools() {
    say "cannot run: $1"
    printf '{"gpu": "%s", "reason": "%s"}\n' "${DEVICE:-}" "$1" >"$OUT/gpu-check.json"
    printf '# GPU check\n\nCould not run: %s.\n' "$1" >"$OUT/gpu-check.md"
    exit 1
}

no_gpu() {
    say "no GPU: $1"
    printf '{"gpu": null, "reason": "%s"}\n' "$1" >"$OUT/gpu-check.json"
    printf '# GPU check\n\nNo GPU: %s. Nothing was measured.\n' "$1" >"$OUT/gpu-check.md"
    exit 0
}

command -v nvidia-smi >/dev/null 2>&1 || no_gpu "nvidia-smi not found"
DEVICE=$(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,memory.total --format=csv,noheader 2>>"$LOG" | head -1)
[ -n "$DEVICE" ] || no_gpu "nvidia-smi lists no device"
say "device: $DEVICE"

# The model's name for this GPU (for the predictions beside each figure).
case "$DEVICE" in
    *H200*) ARCH=h200 ;;
    *H100*PCIe*) ARCH=h100-pcie ;;
    *H100*) ARCH=h100-sxm ;;
    *A100*PCIE*80GB* | *A100*PCIe*80GB*) ARCH=a100-pcie-80gb ;;
    *A100*80GB*) ARCH=a100-sxm4-80gb ;;
    *A100*) ARCH=a100-sxm4-40gb ;;
    *L4*) ARCH=l4 ;;
    *A6000*) ARCH=rtx-a6000 ;;
    *4090*) ARCH=rtx-4090 ;;
    *5090*) ARCH=rtx-5090 ;;
    *) ARCH=h100-sxm ;;
esac
say "model arch: $ARCH"

PREBUILT=0
if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$BIN_ARCHIVE" ] || no_gpu_tools "no cargo on this machine and no $BIN_ARCHIVE (run scripts/gpu-check.sh --prepare where cargo is, and carry $BIN_ARCHIVE)"
    rm -rf "$BIN_DIR" && mkdir -p "$(dirname "$BIN_DIR")" && tar xzf "$BIN_ARCHIVE" -C "$(dirname "$BIN_DIR")"
    PREBUILT=1
    say "no cargo here: running the binaries prepared in $BIN_ARCHIVE"
fi

if [ "$PREBUILT" = 0 ] && [ -z "${NVCC:-}" ] && ! command -v nvcc >/dev/null 2>&1; then
    say "installing nvcc from PyPI"
    timeout 60 python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        nvidia-cuda-nvcc==13.2.86 nvidia-cuda-crt==13.2.86 nvidia-cuda-runtime==13.2.86 \
        nvidia-cuda-cccl==13.2.86 nvidia-nvvm==13.2.86 libclang==18.1.1 >>"$LOG" 2>&1
    NVIDIA_ROOT=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
    export NVCC="$NVIDIA_ROOT/bin/nvcc"
fi
if [ -z "${LIBCLANG_PATH:-}" ]; then
    LIBCLANG_PATH=$(python3 -c 'import clang, os; print(os.path.join(os.path.dirname(clang.__file__), "native"))' 2>/dev/null || true)
    export LIBCLANG_PATH
fi

if [ "$PREBUILT" = 0 ]; then
    say "build (release)"
    timeout 210 cargo build --release --all-targets >>"$LOG" 2>&1 || say "build failed (see gpu-check.log)"
fi

say "::cuda tests"
if [ "$PREBUILT" = 1 ]; then
    TESTS_RC=0
    : >"$OUT/cuda-tests.txt"
    for t in "$BIN_DIR"/test-*; do
        echo "== $t" >>"$OUT/cuda-tests.txt"
        timeout 15 "$t" cuda --test-threads 1 >>"$OUT/cuda-tests.txt" 2>&1 || TESTS_RC=1
    done
else
    timeout 90 cargo test --release --workspace cuda -- --test-threads 1 >"$OUT/cuda-tests.txt" 2>&1
    TESTS_RC=$?
fi
PASSED=$(grep -o "[0-9]* passed" "$OUT/cuda-tests.txt" | awk '{s+=$1} END {print s+0}')
FAILED=$(grep -o "[0-9]* failed" "$OUT/cuda-tests.txt" | awk '{s+=$1} END {print s+0}')
SKIPPED=$(grep -c "skipping .*::cuda" "$OUT/cuda-tests.txt")
say "cuda tests: rc $TESTS_RC, $PASSED passed, $FAILED failed, $SKIPPED skipped"

say "bench"
if [ "$PREBUILT" = 1 ]; then
    BENCH_JSON="$OUT/bench.jsonl" BENCH_REPS=10 timeout 200 "$BIN_DIR/bench-vs_cublas" >"$OUT/bench.txt" 2>&1
else
    BENCH_JSON="$OUT/bench.jsonl" BENCH_REPS=10 timeout 120 cargo bench --bench vs_cublas >"$OUT/bench.txt" 2>&1
fi
say "bench rc $?"

say "model predictions for $ARCH"
if [ "$PREBUILT" = 1 ]; then
    timeout 60 "$BIN_DIR/example-roofline" --json --arch "$ARCH" >"$OUT/model.jsonl" 2>>"$LOG"
else
    timeout 50 cargo run --release --example roofline -- --json --arch "$ARCH" >"$OUT/model.jsonl" 2>>"$LOG"
fi
say "model rc $?"

elapsed=$(($(date +%s) - start))
{
    printf '{"gpu": "%s", "arch": "%s", "elapsed_s": %d, "cuda_tests": {"rc": %d, "passed": %d, "failed": %d, "skipped": %d},\n' \
        "$DEVICE" "$ARCH" "$elapsed" "$TESTS_RC" "$PASSED" "$FAILED" "$SKIPPED"
    printf ' "bench": "bench.jsonl", "model": "model.jsonl"}\n'
} >"$OUT/gpu-check.json"
{
    printf '# GPU check\n\n- device (name, driver, max SM MHz, max mem MHz, memory): %s\n- model arch: %s\n' "$DEVICE" "$ARCH"
    printf -- '- `::cuda` tests: rc %d, %d passed, %d failed, %d skipped\n- elapsed: %d s\n\n' "$TESTS_RC" "$PASSED" "$FAILED" "$SKIPPED" "$elapsed"
    printf '## Bench (CUDA events, median, L2 flushed; measured next to the model)\n\n'
    grep -E "^(device:|\|)" "$OUT/bench.txt"
    printf '\n## Model predictions for %s (examples/roofline.rs)\n\n```\n' "$ARCH"
    cat "$OUT/model.jsonl"
    printf '```\n'
} >"$OUT/gpu-check.md"
say "done in ${elapsed}s: $OUT/gpu-check.md"
