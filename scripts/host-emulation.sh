#!/usr/bin/env bash
# Runs CUDA kernels of crates/kernels on the CPU, no GPU needed: scripts/host-emulation/emu.h
# models blocks, barriers, warp shuffles, atomics and mma.sync in C++20; conv.cpp checks the 12
# conv kernels, reductions.cpp the batch-norm, broadcast-reduction, loss and pooling kernels,
# pointwise.cpp the DFL, upsampling, concat and broadcast kernels and the GIoU/DFL-loss backwards,
# each against float64 references. Needs g++ with C++20.
set -euo pipefail
cd "$(dirname "$0")/host-emulation"
tmp=${TMPDIR:-/tmp}
status=0
for t in conv reductions pointwise; do
    g++ -std=c++20 -O2 -pthread -w -o "$tmp/ringdet-emu-$t" "$t.cpp"
    "$tmp/ringdet-emu-$t" || status=1
done
exit $status
