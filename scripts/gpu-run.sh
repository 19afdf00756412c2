#!/usr/bin/env bash
# The GPU check's runner (copied into gpu-bundle/run.sh by scripts/gpu-check.sh). Runs on the GPU
# machine, which has no Rust, from the repository root, in one call and within a time budget
# (RINGDET_GPU_CHECK_BUDGET seconds, default 480):
#   1. the GPU: nvidia-smi, the NVRTC in use, `ringdet info`; no GPU = a clean stop (exit 3)
#   2. GPU tests with REQUIRE_GPU=1: kernel parity of every family, the whole training step on
#      CUDA against the CPU step (f32 and bf16), the device collectives
#   3. parity of the device against the CPU on PaddleDetection's golden weights and inputs,
#      f32 and bf16 (`ringdet parity --device cuda --reference cpu [--amp]`)
#   4. the PP-YOLOE-s training step at 640x640, batch 32, f32 and bf16: images/s, device memory
#      (`ringdet perf-detect --device cuda --json [--amp]`)
#   5. the GPU benches (kernel timings against the copy and GEMM ceilings)
#   6. the demo on the GPU: 2 ranks on one GPU through the TCP ring (`ringdet demo -o use_gpu=true`)
# Writes $OUT/gpu-check.json (one object: each step's status, seconds and log, the perf JSON,
# the parity and demo summary lines) and $OUT/gpu-check.md, with every log beside them.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
budget=${RINGDET_GPU_CHECK_BUDGET:-480}
start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/ringdet-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
steps=()
status=0

# NVRTC of the machine's own CUDA 13 toolkit: it emits PTX the installed driver accepts.
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    if [ -e "$d/libnvrtc.so.13" ] || [ -e "$d/libnvrtc.so" ]; then
        export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        break
    fi
done
export RINGDET_KERNEL_CACHE=${RINGDET_KERNEL_CACHE:-$work/kernel-cache}

json_string() {
    # A JSON string of $1 (backslashes, quotes and control characters escaped).
    printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | awk 'BEGIN { ORS = "\\n" } { print }' | sed 's/\\n$//; s/^/"/; s/$/"/'
}

# step NAME LIMIT_S CMD...: runs CMD with its output in $out/NAME.log, within both its own
# limit and what is left of the budget; records status and seconds.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - ($(date +%s) - start)))
    if [ "$left" -lt 20 ]; then
        steps+=("$name|skipped (time budget spent)|0|")
        status=1
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (limit ${limit} s)" >&2
    local t0 rc
    t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
    rc=$?
    local secs=$(($(date +%s) - t0))
    local verdict=pass
    [ "$rc" -eq 124 ] && verdict="timed out after ${limit} s"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && verdict="failed (exit $rc)"
    [ "$rc" -ne 0 ] && status=1
    steps+=("$name|$verdict|$secs|$name.log")
    tail -n 3 "$out/$name.log" | sed 's/^/   /' >&2
    return "$rc"
}

# 1. The GPU.
{ nvidia-smi || echo "nvidia-smi failed"; } >"$out/nvidia-smi.log" 2>&1
"$here/ringdet" info >"$out/ringdet-info.log" 2>&1
if grep -q '^cuda devices: *none' "$out/ringdet-info.log" || ! grep -q '^cuda devices' "$out/ringdet-info.log"; then
    reason=$(grep '^cuda devices' "$out/ringdet-info.log" | sed 's/^cuda devices: *//')
    reason=${reason:-ringdet info did not report the CUDA devices}
    printf '{"status": "no_gpu", "reason": %s}\n' "$(json_string "$reason")" >"$out/gpu-check.json"
    printf '# GPU check\n\nNo GPU: %s\n' "$reason" >"$out/gpu-check.md"
    echo "gpu-check: no GPU: $reason" >&2
    exit 3
fi
export REQUIRE_GPU=1 REQUIRE_NVRTC=1

# 2. GPU tests (each binary whole: its CPU tests run too and must pass).
tar xzf "$here/tests.tar.gz" -C "$work"
run_tests() {
    local rc=0
    for t in "$work"/tests/*; do
        echo "--- $(basename "$t")"
        (cd "$repo" && "$t" --test-threads 1) || rc=1
    done
    return $rc
}
step gpu-tests 150 run_tests

# 3. Parity against the CPU on the golden weights and inputs.
step parity-f32 60 "$here/ringdet" parity --golden "$here/golden" --device cuda --reference cpu
step parity-bf16 60 "$here/ringdet" parity --golden "$here/golden" --device cuda --reference cpu --amp

# 4. The training step at 640x640, batch 32.
step step-f32 90 "$here/ringdet" perf-detect --device cuda --batch 32 --input 640 --eval-input 640 --warmup 3 --iters 10 --json
step step-bf16 90 "$here/ringdet" perf-detect --device cuda --batch 32 --input 640 --eval-input 640 --warmup 3 --iters 10 --json --amp

# 5. GPU benches.
run_benches() {
    local rc=0
    for b in "$here"/benches/*; do
        [ -x "$b" ] || continue
        echo "--- $(basename "$b")"
        "$b" --bench || rc=1
    done
    return $rc
}
step gpu-benches 60 run_benches

# 6. The demo on the GPU: 2 ranks on device 0 through the TCP ring.
step demo 200 "$here/ringdet" demo --workdir "$work/demo" -o use_gpu=true

# Summary.
perf_json() {
    # The JSON object perf-detect printed (its log holds only that on success), else null.
    local f="$out/$1.log"
    if [ -s "$f" ] && head -c1 "$f" | grep -q '{'; then cat "$f"; else echo null; fi
}
{
    printf '{\n  "status": "%s",\n  "seconds": %d,\n  "steps": [\n' \
        "$([ $status -eq 0 ] && echo pass || echo fail)" "$(($(date +%s) - start))"
    n=${#steps[@]}
    for i in "${!steps[@]}"; do
        IFS='|' read -r name verdict secs log <<<"${steps[$i]}"
        sep=","
        [ "$i" -eq $((n - 1)) ] && sep=""
        printf '    {"name": "%s", "result": %s, "seconds": %s, "log": "%s"}%s\n' \
            "$name" "$(json_string "$verdict")" "$secs" "$log" "$sep"
    done
    printf '  ],\n'
    printf '  "parity_f32": %s,\n' "$(json_string "$(tail -n 1 "$out/parity-f32.log" 2>/dev/null)")"
    printf '  "parity_bf16": %s,\n' "$(json_string "$(tail -n 1 "$out/parity-bf16.log" 2>/dev/null)")"
    printf '  "step_f32": %s,\n' "$(perf_json step-f32)"
    printf '  "step_bf16": %s,\n' "$(perf_json step-bf16)"
    printf '  "demo": %s\n}\n' "$(json_string "$(grep -E 'mAP|bbox' "$out/demo.log" 2>/dev/null | tail -n 3)")"
} >"$out/gpu-check.json"
{
    echo "# GPU check"
    echo
    head -n 12 "$out/nvidia-smi.log" | sed 's/^/    /'
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    for s in "${steps[@]}"; do
        IFS='|' read -r name verdict secs log <<<"$s"
        echo "| $name | $verdict | $secs |"
    done
    echo
    echo "Parity f32: $(tail -n 1 "$out/parity-f32.log" 2>/dev/null)"
    echo "Parity bf16: $(tail -n 1 "$out/parity-bf16.log" 2>/dev/null)"
    for m in f32 bf16; do
        echo "Step $m: $(grep -o '"images_per_s": [0-9.]*' "$out/step-$m.log" 2>/dev/null | head -n 1)"
    done
    echo "Demo: $(grep -E 'mAP|bbox' "$out/demo.log" 2>/dev/null | tail -n 1)"
} >"$out/gpu-check.md"
cat "$out/gpu-check.md" >&2
echo "gpu-check finished with status $status in $(($(date +%s) - start)) s" >&2
exit $status
