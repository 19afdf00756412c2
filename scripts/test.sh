#!/usr/bin/env bash
# The test command: installs NVRTC 13.0 (a pip wheel, no GPU needed) so every CUDA kernel is
# compiled in the tests, checks formatting and lints (clippy, warnings as errors), then runs
# every test of the workspace. Works on a fresh machine with Rust and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
nvrtc_lib=$venv/lib/python3*/site-packages/nvidia/cu13/lib
if ! ls $nvrtc_lib/libnvrtc.so.13 >/dev/null 2>&1; then
    echo "== installing nvidia-cuda-nvrtc==13.0.88 into $venv (kernel compile tests)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check nvidia-cuda-nvrtc==13.0.88
fi
nvrtc_dir=$(cd $nvrtc_lib && pwd)
export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# With NVRTC installed, a kernel compile test that cannot find it fails instead of skipping.
export REQUIRE_NVRTC=1

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast "$@"

# The GPU check's bundle builds, and its runner stops cleanly where there is no GPU: exit 3 and
# "no_gpu" in its JSON (a machine with a GPU runs the whole check instead, exit 0).
scripts/gpu-check.sh --ci
gpu_out=$(mktemp -d)
set +e
OUT=$gpu_out bash gpu-bundle/run.sh
gpu_rc=$?
set -e
if [ "$gpu_rc" -eq 3 ] && grep -q '"no_gpu"' "$gpu_out/gpu-check.json"; then
    echo "gpu-check runner: no GPU here, stopped cleanly (exit 3)"
elif [ "$gpu_rc" -ne 0 ]; then
    echo "gpu-check runner failed (exit $gpu_rc); see $gpu_out" >&2
    exit 1
fi
rm -rf "$gpu_out" gpu-bundle
