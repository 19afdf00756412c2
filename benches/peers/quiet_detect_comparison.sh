#!/usr/bin/env bash
# issue 18's method in one script: two `ringdet` binaries (before A, after B) and PaddlePaddle's
# time_paddle_cpu.py alternating, ROUNDS times, 2 threads each, on the golden weights; every run
# waits until the 1-minute load average is below LOAD_MAX (1.5) and prints it. Run it only when
# nothing else of yours runs. Paddle prints its effective threads (a round below 1.5 is void).
#
#   A=/tmp/ringdet-before B=target/release/ringdet PYTHON=/tmp/pdv/bin/python \
#     benches/peers/quiet_detect_comparison.sh
set -euo pipefail
A=${A:?path of binary A (before)}
B=${B:?path of binary B (after)}
PYTHON=${PYTHON:?a Python with paddlepaddle 3.3.1 and paddledet 2.6.0}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
LOAD_MAX=${LOAD_MAX:-1.5}
GOLDEN=${GOLDEN:-testdata/ppyoloe-golden}
CFG=${CFG:-configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml}
OUT=${OUT:-target/quiet-detect-comparison}
mkdir -p "$OUT"
wait_quiet() {
  local l
  while :; do
    l=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$l" -v m="$LOAD_MAX" 'BEGIN { exit !(l < m) }' && break
    sleep 5
  done
  echo "load $l at $(date -u +%T)"
}
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    echo "== round $r ringdet $side (${!side})"; wait_quiet
    RAYON_NUM_THREADS=2 "${!side}" perf-detect --weights "$GOLDEN/weights.safetensors" \
      --warmup 1 --iters "$ITERS" | tee "$OUT/${side}_$r.txt"
  done
  echo "== round $r paddle"; wait_quiet
  "$PYTHON" "$GOLDEN/time_paddle_cpu.py" --weights "$GOLDEN/weights.safetensors" --cfg "$CFG" \
    --threads 2 --cases a,c --warmup 1 --iters "$ITERS" --json "$OUT/paddle_$r.json" 2>/dev/null \
    | tail -6 | tee "$OUT/paddle_$r.txt"
done
