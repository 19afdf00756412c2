#!/usr/bin/env bash
# A/B of the CPU training step and eval forward between two `ringdet` binaries (e.g. before and
# after a change), alternating A and B in the same minutes, ROUNDS times, 2 threads each, on the
# golden weights. Prints the load average before every run; run it only when nothing else runs.
#
#   A=/tmp/ringdet-before B=target/release/ringdet ROUNDS=4 benches/peers/ab_perf_detect.sh
set -euo pipefail
A=${A:?path of binary A}
B=${B:?path of binary B}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
WEIGHTS=${WEIGHTS:-testdata/ppyoloe-golden/weights.safetensors}
OUT=${OUT:-target/ab-perf-detect}
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=${!side}
    echo "== round $r $side ($bin) $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    RAYON_NUM_THREADS=2 "$bin" perf-detect --weights "$WEIGHTS" --warmup 1 --iters "$ITERS" \
      | tee "$OUT/${side}_$r.txt"
  done
done
