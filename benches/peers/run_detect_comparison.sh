#!/usr/bin/env bash
# Interleaves `ringdet perf-detect` with PaddlePaddle's time_paddle_cpu.py (cases a: train step
# batch 2 320², c: eval forward batch 1 640²) on the same weights, ROUNDS times, 2 threads each.
# Needs: target/release/ringdet, a Python with paddlepaddle 3.3.1 + paddledet 2.6.0 as PYTHON,
# and PaddleDetection's configs/ (v2.6.0) under PADDLE_CFG_ROOT.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
PYTHON=${PYTHON:-python3}
GOLDEN=${GOLDEN:-testdata/ppyoloe-golden}
CFG=${PADDLE_CFG_ROOT:-PaddleDetection}/configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml
OUT=${OUT:-target/detect-comparison}
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: ringdet"; uptime
  RAYON_NUM_THREADS=2 target/release/ringdet perf-detect --weights "$GOLDEN/weights.safetensors" \
    --warmup 1 --iters "$ITERS" | tee "$OUT/ringdet_$r.txt"
  echo "== round $r: paddle"; uptime
  "$PYTHON" "$GOLDEN/time_paddle_cpu.py" --weights "$GOLDEN/weights.safetensors" --cfg "$CFG" \
    --threads 2 --cases a,c --warmup 1 --iters "$ITERS" --json "$OUT/paddle_$r.json" 2>/dev/null | tail -6 | tee "$OUT/paddle_$r.txt"
done
