#!/usr/bin/env bash
# scaling-sim.sh: the scaling figures of docs/scaling.md (issue #15 parts 3 and 4) on the
# emulated cluster of scripts/netns-cluster.sh, appended as JSON lines to one results file:
#  1. `ringdet scaling-sim` (the trainer's gradient buckets of PP-YOLOE-s released as backward
#     finishes them, compute as timed waits, real all-reduces over the shaped links, each host an
#     8-GPU machine) for hosts 1 2 4 8 x links 10 and 25 Gbit/s, f32 and bf16, overlap on and off,
#     V100-speed compute (0.26 s per step); and H100-speed compute (0.26/6 s) at 4 hosts. Time is
#     slowed by a factor K: the compute waits are multiplied by K and the links shaped to the
#     nominal rate / K, so every ratio is kept; results are in nominal seconds. K is chosen per run
#     so that all hosts together move at most --aggregate-gbit (default 4) through the bridge,
#     K = max(--slowdown, hosts x rate / aggregate), so that the 2 cores keep up at 8 hosts too.
#  2. `ringdet allreduce-perf` (16 and 64 MiB f32) across 2, 4 and 8 hosts at 1, 5 and 10 Gbit/s,
#     unslowed: bus bandwidth against the link rate.
# `uptime` is printed before each run, and each row carries the 1-minute load (`load1`) it was
# measured under. Plot: `ringdet scaling-sim --plot RESULTS --plot-out docs/scaling/efficiency.png`
# (done at the end).
#
# Usage (as root, from the repository root, after `cargo build --release -p ringdet-launch`):
#   scripts/scaling-sim.sh [--bin target/release/ringdet] [--slowdown 10] [--aggregate-gbit 4] [--steps 2]
#                          [--out docs/scaling/results.jsonl] [--only sim|allreduce]
set -euo pipefail

bin=target/release/ringdet slowdown=10 aggregate=4 steps=2 out=docs/scaling/results.jsonl only=""
while (($#)); do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --slowdown) slowdown=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --aggregate-gbit) aggregate=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling-sim.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
done
[[ -x $bin ]] || { echo "scaling-sim.sh: no binary $bin (cargo build --release -p ringdet-launch)" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
logs=$(mktemp -d /tmp/scaling-sim.XXXXXX)
cluster="$here/scripts/netns-cluster.sh"
export RINGDET_JOB_SECRET=scaling-sim-$$ RINGDET_BIN=$bin

# sim HOSTS LINK_GBIT LABEL STEP_S
sim() {
    local hosts=$1 link=$2 label=$3 step=$4
    local shaped k
    k=$(awk -v h="$hosts" -v r="$link" -v a="$aggregate" -v m="$slowdown" \
        'BEGIN { k = h * r / a; if (k < m) k = m; print k }')
    shaped=$(awk -v r="$link" -v k="$k" 'BEGIN { printf "%dmbit", r * 1000 / k }')
    echo "== scaling-sim: $hosts hosts, $link Gbit/s ($shaped shaped, slowdown $k), $label; $(uptime)"
    "$cluster" --hosts "$hosts" --rate "$shaped" --timeout 600 -- sh -c \
        "exec \"\$RINGDET_BIN\" launch --ips \"\$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir $logs/sim-$hosts-$link-$label/\$RINGDET_SIM_HOST scaling-sim \
         --slowdown $k --link-gbit $link --label $label --step-s $step \
         --steps $steps --warmup 1 --out $out" 2>&1 | grep -v 'no job secret' || true
}

# perf HOSTS RATE_GBIT
perf() {
    local hosts=$1 link=$2
    echo "== allreduce-perf: $hosts hosts, $link Gbit/s; $(uptime)"
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    "$cluster" --hosts "$hosts" --rate "${link}gbit" --timeout 600 -- sh -c \
        "exec \"\$RINGDET_BIN\" launch --ips \"\$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
         --log_dir $logs/perf-$hosts-$link/\$RINGDET_SIM_HOST allreduce-perf \
         -b 16M -e 64M -f 4 -n 5 -w 2 --json" 2>&1 | tee "$logs/perf-$hosts-$link.out" |
        grep -v 'no job secret' || true
    sed -n 's/^\[h0\] \[r0\] \({.*}\)$/\1/p' "$logs/perf-$hosts-$link.out" |
        jq -c --argjson h "$hosts" --argjson r "$link" --argjson l "$load1" \
            '{kind: "allreduce-perf", hosts: $h, link_gbit: $r, load1: $l} + .
             + {busbw_over_link: (.busbw / ($r / 8))}' >> "$out"
}

if [[ $only != allreduce ]]; then
    for link in 10 25; do
        for hosts in 1 2 4 8; do
            sim "$hosts" "$link" v100 0.26
        done
        sim 4 "$link" h100 0.0433333
    done
fi
if [[ $only != sim ]]; then
    for link in 1 5 10; do
        for hosts in 2 4 8; do
            perf "$hosts" "$link"
        done
    done
fi
# The plot is of the simulation's rows: an --only allreduce run leaves it as it is.
if [[ $only != allreduce ]]; then
    "$bin" scaling-sim --plot "$out" --plot-out "$(dirname "$out")/efficiency.png"
fi
echo "results: $out (logs in $logs)"
