#!/usr/bin/env bash
# Interleaves our conv report with the PaddlePaddle peer, three times each, then summarises.
# Usage: benches/peers/run_conv_comparison.sh OUT_DIR PYTHON_WITH_PADDLE [extra paddle_convs.py args]
set -euo pipefail
out=${1:?output dir}
py=${2:?python with paddlepaddle==3.3.1}
shift 2
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
cargo bench -p ringdet-benches --bench conv --no-run -j 2
for i in 1 2 3; do
  RINGDET_CONV_REPORT="$out/ours_$i.json" RINGDET_CONV_ROUNDS=2 cargo bench -p ringdet-benches --bench conv -j 2
  "$py" "$here/paddle_convs.py" --iters 5 --whole-iters 3 --json "$out/paddle_$i.json" "$@"
done
python3 "$here/summarize_conv.py" "$out"/ours_*.json -- "$out"/paddle_*.json | tee "$out/summary.md"
