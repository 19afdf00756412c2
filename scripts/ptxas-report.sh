#!/usr/bin/env bash
# The ptxas resource report of every CUDA kernel for sm_90 (registers, shared memory, stack,
# spills), from the PTX that NVRTC 13.0.88 emits for the kernel runtime: installs the
# nvidia-cuda-nvrtc and nvidia-cuda-nvcc 13.0.88 wheels into .venv (no GPU needed), dumps each
# source's PTX with the `dump_ptx` example and runs `ptxas -v -arch=sm_90` on it.
# Output: a Markdown table on stdout (paste it into docs/gpu.md); raw logs in target/ptxas/.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-sm_90}
venv=.venv
cu13=$venv/lib/python3*/site-packages/nvidia/cu13
if ! ls $cu13/bin/ptxas $cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
    echo "== installing nvidia-cuda-nvrtc/nvcc 13.0.88 into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-nvcc==13.0.88
fi
cu13=$(cd $cu13 && pwd)
export LD_LIBRARY_PATH="$cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out=target/ptxas
rm -rf "$out" && mkdir -p "$out"
major=${arch#sm_}; major=${major%?}; minor=${arch: -1}
cargo run -q -p ringdet-kernels --example dump_ptx -- "$out" "$major" "$minor" >/dev/null
echo "| source | kernel | registers | shared (bytes) | stack (bytes) | spill stores | spill loads |"
echo "|---|---|---|---|---|---|---|"
for ptx in "$out"/*.ptx; do
    log=${ptx%.ptx}.log
    "$cu13/bin/ptxas" -v -arch="$arch" -o /dev/null "$ptx" 2>"$log"
    src=$(basename "$ptx" .ptx); src=${src//__//}.cu
    awk -v src="$src" '
        /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); fn = substr($0, RSTART + 1, RLENGTH - 2) }
        /bytes stack frame/ { stack = $1 + 0; st = $5 + 0; ld = $9 + 0 }
        /Used [0-9]+ registers/ {
            regs = ""; smem = 0
            for (i = 2; i <= NF; i++) {
                if ($i ~ /^registers/) regs = $(i - 1)
                if ($i ~ /^smem/) smem = $(i - 2)
            }
            printf "| %s | `%s` | %s | %s | %s | %s | %s |\n", src, fn, regs, smem + 0, stack, st, ld
        }' "$log"
done
