#!/usr/bin/env bash
# iperf3 in a ring on the namespace cluster (issue 15, measuring only): every host sends to the
# next and receives from the previous at once, one TCP flow each (the ring all-reduce's traffic
# pattern), for 5 s; prints each host's received rate in GB/s. The reference for
# `ringdet allreduce-perf` where the 2 cores, not the shaped links, set the limit.
# Usage (as root, from anywhere; needs iperf3 and python3): benches/peers/iperf_ring.sh HOSTS RATE [LOWAT]
# LOWAT (bytes) sets net.ipv4.tcp_notsent_lowat in every host's namespace first: iperf3 with the
# send backlog ringdet's data sockets get (RINGDET_SEND_BACKLOG, 32768 by default).
set -uo pipefail
cd "$(dirname "$0")/../.."
[[ $# -eq 2 || $# -eq 3 ]] || { echo "usage: $0 HOSTS RATE [LOWAT] (e.g. 4 10gbit 32768)" >&2; exit 2; }
export IPERF_LOWAT=${3:-}
command -v iperf3 >/dev/null || { echo "iperf_ring.sh: needs iperf3 (apt-get install iperf3)" >&2; exit 2; }
scripts/netns-cluster.sh --hosts "$1" --rate "$2" --timeout 60 -- sh -c '
  [ -z "$IPERF_LOWAT" ] || sysctl -q -w net.ipv4.tcp_notsent_lowat="$IPERF_LOWAT" || exit 1
  n=$(echo "$RINGDET_SIM_HOSTS" | tr , "\n" | wc -l)
  next=$(echo "$RINGDET_SIM_HOSTS" | cut -d, -f$(( (RINGDET_SIM_INDEX + 1) % n + 1 )))
  iperf3 -s -1 >/dev/null 2>&1 &
  sleep 2
  iperf3 -c "$next" -t 5 -J | python3 -c "import json, sys
d = json.load(sys.stdin)
print(\"to\", \"$next\", round(d[\"end\"][\"sum_received\"][\"bits_per_second\"] / 8e9, 3), \"GB/s\")"
  wait' 2>&1 | grep -E "GB/s|rror|cannot"
