#!/usr/bin/env bash
# Runs on the GPU machine (no Rust there) from the repository root: prints the GPU and the NVRTC
# library in use, runs every GPU test with REQUIRE_GPU=1 (a missing GPU fails, never skips) and
# every GPU bench, and writes logs under $OUT (or gpu-bundle/out).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"

{ nvidia-smi || echo "nvidia-smi failed"; } 2>&1 | tee "$out/nvidia-smi.txt"

# NVRTC of the machine's own CUDA 13 toolkit: it emits PTX the installed driver accepts.
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    if [ -e "$d/libnvrtc.so.13" ] || [ -e "$d/libnvrtc.so" ]; then
        export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        break
    fi
done
nvrtc=$(ldconfig -p 2>/dev/null | grep -m1 'libnvrtc.so' || true)
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" | tee "$out/nvrtc.txt"
echo "ldconfig nvrtc: ${nvrtc:-none}" | tee -a "$out/nvrtc.txt"
ls -l ${LD_LIBRARY_PATH//:/ } 2>/dev/null | grep -i nvrtc | tee -a "$out/nvrtc.txt"

export REQUIRE_GPU=1 REQUIRE_NVRTC=1
"$here/ringdet" info 2>&1 | tee "$out/ringdet-info.txt"
export RINGDET_KERNEL_CACHE=${RINGDET_KERNEL_CACHE:-/tmp/ringdet-kernel-cache}
status=0
# GPU tests are the ones with `cuda` or `gpu` in their name, plus every kernel compile test.
"$here/cargo-nextest" nextest run --archive-file "$here/tests.tar.zst" --workspace-remap "$repo" \
    -E 'test(/cuda|gpu/) | binary(nvrtc_compile)' --no-fail-fast --success-output final \
    2>&1 | tee "$out/gpu-tests.log" || status=1
for b in "$here"/benches/*; do
    [ -x "$b" ] || continue
    echo "== bench $(basename "$b")" | tee -a "$out/gpu-benches.log"
    "$b" --bench 2>&1 | tee -a "$out/gpu-benches.log" || status=1
done
echo "gpu-check finished with status $status" | tee -a "$out/gpu-tests.log"
exit $status
