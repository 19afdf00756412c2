#!/usr/bin/env bash
# Runs the conv kernels of crates/kernels/src/conv/conv.cu on the CPU (C++20 model of blocks,
# barriers and mma.sync; see the .cpp) against a float64 direct convolution: a check of the
# implicit-GEMM index arithmetic that needs no GPU. Needs g++ with C++20.
set -euo pipefail
cd "$(dirname "$0")"
out=${TMPDIR:-/tmp}/ringdet-conv-host-emulation
g++ -std=c++20 -O2 -pthread -o "$out" conv-host-emulation.cpp
"$out"
