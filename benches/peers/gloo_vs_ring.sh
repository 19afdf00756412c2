#!/usr/bin/env bash
# gloo_vs_ring.sh: ringdet's TCP ring beside PyTorch's gloo on the same emulated cluster (issue #15
# part 3; PyTorch for measuring only). For each setting HOSTSxGBIT (hosts x per-host link rate), for
# each round: `ringdet launch --ips ... allreduce-perf --json`, then benches/peers/gloo_allreduce.py
# --json, each in a fresh scripts/netns-cluster.sh cluster with the same hosts and shaping, with
# the same sizes, warm-up and iterations; alternating, so both see the same load. `uptime` is
# printed before each run and every row carries the 1-minute load it started under (load1).
# At the end: per setting and size the median over the rounds of each one's busbw and the ratio
# gloo / ringdet, as a Markdown table.
#
# Rows (rank 0's, one per size and round) go to LOGDIR/rows.jsonl with kind "allreduce-perf"
# (ringdet) or "gloo-allreduce", run "gloo-vs-ring" (to tell them from scripts/scaling-sim.sh's
# rows), hosts, link_gbit, round, load1, busbw_over_link and the tools' own fields; --out FILE
# appends them there too (e.g. docs/scaling/results.jsonl).
#
# Usage (as root, from the repository root, after `cargo build --release -p ringdet-launch`):
#   benches/peers/gloo_vs_ring.sh [--bin target/release/ringdet] [--python /tmp/torch-venv/bin/python]
#       [--rounds 3] [--settings "2x1 4x1 2x5"] [--sizes "-b 64K -e 64M -f 4 -n 10 -w 3"]
#       [--out FILE] [--logs DIR]
# A Python with torch, outside the repository:
#   python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch
set -euo pipefail

bin=target/release/ringdet py=/tmp/torch-venv/bin/python rounds=3 settings="2x1 4x1 2x5"
sizes="-b 64K -e 64M -f 4 -n 10 -w 3" out="" logs=""
while (($#)); do
    case $1 in
    --bin) bin=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --settings) settings=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gloo_vs_ring.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ -x $bin ]] || { echo "gloo_vs_ring.sh: no binary $bin (cargo build --release -p ringdet-launch)" >&2; exit 2; }
"$py" -c 'import torch.distributed as d; assert d.is_gloo_available()' ||
    { echo "gloo_vs_ring.sh: $py has no torch with gloo" >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[[ -z $out ]] || out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
[[ -n $logs ]] || logs=$(mktemp -d /tmp/gloo-vs-ring.XXXXXX)
mkdir -p "$logs"
rows=$logs/rows.jsonl
cluster="$here/scripts/netns-cluster.sh"
gloo="$here/benches/peers/gloo_allreduce.py"
export RINGDET_JOB_SECRET=gloo-vs-ring-$$ RINGDET_BIN=$bin
echo "gloo_vs_ring: $(date -u +%FT%TZ), settings $settings, $rounds rounds, sizes: $sizes; logs in $logs"

# keep KIND HOSTS GBIT ROUND LOAD1 LOG PREFIX: rank 0's JSON lines of LOG into rows.jsonl
keep() {
    sed -n "s/^$7\({.*}\)\$/\1/p" "$6" |
        jq -c --arg k "$1" --argjson h "$2" --argjson r "$3" --argjson n "$4" --argjson l "$5" \
            '{kind: $k, run: "gloo-vs-ring", hosts: $h, link_gbit: $r, round: $n, load1: $l} + .
             + {busbw_over_link: ((.busbw / ($r / 8)) * 10000 | round / 10000)}' >>"$rows"
}

for s in $settings; do
    hosts=${s%x*} gbit=${s#*x}
    for ((round = 1; round <= rounds; round++)); do
        echo "== ringdet allreduce-perf: $hosts hosts x ${gbit} Gbit/s, round $round; $(uptime)"
        load1=$(cut -d' ' -f1 /proc/loadavg)
        log=$logs/ring-$s-$round.out
        # shellcheck disable=SC2086  # $sizes is a list of flags
        "$cluster" --hosts "$hosts" --rate "${gbit}gbit" --timeout 600 -- sh -c \
            "exec \"\$RINGDET_BIN\" launch --ips \"\$RINGDET_SIM_HOSTS\" --nproc_per_node 1 \
             --log_dir $logs/ring-$s-$round/\$RINGDET_SIM_HOST allreduce-perf $sizes --json" \
            >"$log" 2>&1 || echo "ringdet run failed (status $?): see $log"
        grep -v 'no job secret' "$log" | grep '^\[h0\] \[r0\]' || true
        keep allreduce-perf "$hosts" "$gbit" "$round" "$load1" "$log" '\[h0\] \[r0\] '

        echo "== gloo: $hosts hosts x ${gbit} Gbit/s, round $round; $(uptime)"
        load1=$(cut -d' ' -f1 /proc/loadavg)
        log=$logs/gloo-$s-$round.out
        # shellcheck disable=SC2086
        "$cluster" --hosts "$hosts" --rate "${gbit}gbit" --timeout 600 -- \
            "$py" "$gloo" $sizes --json >"$log" 2>&1 || echo "gloo run failed (status $?): see $log"
        grep '^\[h0\] {' "$log" || true
        keep gloo-allreduce "$hosts" "$gbit" "$round" "$load1" "$log" '\[h0\] '
    done
done
[[ -z $out ]] || cat "$rows" >>"$out"

# Medians over the rounds, per setting and size.
echo
echo "| hosts | link | size | ringdet busbw (GB/s) | gloo busbw (GB/s) | gloo / ringdet | ringdet / link | gloo / link | rounds | load1 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
jq -rs '
  def median: sort | if length == 0 then null
      else (if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end) end;
  def r3: if . == null then "–" else (. * 1000 | round / 1000 | tostring) end;
  def size: if . >= 1048576 then "\(. / 1048576) MiB" else "\(. / 1024) KiB" end;
  group_by([.hosts, .link_gbit, .bytes])[]
  | { h: .[0].hosts, g: .[0].link_gbit, b: .[0].bytes,
      ring: ([.[] | select(.kind == "allreduce-perf") | .busbw] | median),
      gloo: ([.[] | select(.kind == "gloo-allreduce") | .busbw] | median),
      n: ([.[] | select(.kind == "gloo-allreduce")] | length),
      lo: (map(.load1) | min), hi: (map(.load1) | max) }
  | "| \(.h) | \(.g) Gbit/s | \(.b | size) | \(.ring | r3) | \(.gloo | r3) | "
    + "\(if .ring and .gloo then (.gloo / .ring | r3) else "–" end) | "
    + "\(if .ring then (.ring / (.g / 8) | r3) else "–" end) | "
    + "\(if .gloo then (.gloo / (.g / 8) | r3) else "–" end) | \(.n) | \(.lo)–\(.hi) |"' "$rows"
echo
echo "rows: $rows${out:+ (also appended to $out)}"
