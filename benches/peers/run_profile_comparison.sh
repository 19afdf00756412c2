#!/usr/bin/env bash
# Where the step's time goes, ringdet beside PaddlePaddle (issue #18): `ringdet perf-detect
# --profile --json` then benches/peers/paddle_profile_step.py on the same weights and shapes
# (train step batch 2 320², eval forward batch 1 640², 2 threads each), which prints Paddle's
# families and both side by side. Measure only in a quiet window (see docs/performance.md).
# Needs: target/release/ringdet, a Python with paddlepaddle 3.3.1 + paddledet 2.6.0 as PYTHON,
# and PaddleDetection's configs/ (v2.6.0) under PADDLE_CFG_ROOT.
set -euo pipefail
ITERS=${ITERS:-5}
PYTHON=${PYTHON:-python3}
GOLDEN=${GOLDEN:-testdata/ppyoloe-golden}
CFG=${PADDLE_CFG_ROOT:-PaddleDetection}/configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml
OUT=${OUT:-target/profile-comparison}
mkdir -p "$OUT"
uptime
RAYON_NUM_THREADS=2 target/release/ringdet perf-detect --weights "$GOLDEN/weights.safetensors" \
  --warmup 1 --iters "$ITERS" --profile --json > "$OUT/ringdet.json"
uptime
"$PYTHON" benches/peers/paddle_profile_step.py --weights "$GOLDEN/weights.safetensors" --cfg "$CFG" \
  --threads 2 --warmup 1 --iters "$ITERS" --ringdet-json "$OUT/ringdet.json" \
  --json "$OUT/paddle.json" 2>/dev/null | tee "$OUT/comparison.txt"
