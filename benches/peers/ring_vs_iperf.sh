#!/usr/bin/env bash
# The ring against iperf3's ring pattern on the namespace cluster (issue 15, measuring only).
# Per round and setting, alternating, each on a fresh cluster of the same shape:
#   ringdet allreduce-perf 64 MiB (-n 20 -w 2) with its default send backlog (32 KiB),
#   the same with RINGDET_SEND_BACKLOG=0 (the kernel's default: no limit on unsent bytes),
#   iperf3 in the ring pattern with the kernel's defaults (benches/peers/iperf_ring.sh),
#   iperf3 with net.ipv4.tcp_notsent_lowat=32768 (the same send backlog as ringdet).
# Prints one line per round and setting: ringdet rank 0's busbw and wrong-element count, then the
# iperf3 hosts' mean received rate, GB/s.
# Usage (as root, from anywhere; after `cargo build --release -p ringdet-launch`):
#   benches/peers/ring_vs_iperf.sh [ROUNDS] [HOSTS:RATE ...]   (default: 3 4:10gbit 8:5gbit 8:10gbit 2:10gbit)
set -uo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shift || true
settings=("$@")
((${#settings[@]})) || settings=(4:10gbit 8:5gbit 8:10gbit 2:10gbit)
export RINGDET_BIN=${RINGDET_BIN:-$PWD/target/release/ringdet}
[[ -x $RINGDET_BIN ]] || { echo "ring_vs_iperf.sh: no $RINGDET_BIN: cargo build --release -p ringdet-launch" >&2; exit 2; }
ring() { # ENV HOSTS RATE
    env "$1" scripts/netns-cluster.sh --hosts "$2" --rate "$3" --timeout 120 -- sh -c \
        'exec "$RINGDET_BIN" launch --ips "$RINGDET_SIM_HOSTS" --nproc_per_node 1 allreduce-perf -b 64M -e 64M -n 20 -w 2 --json' 2>&1 |
        sed -n 's/^\[h0\] \[r0\] {.*"busbw":\([0-9.]*\).*"wrong":\([0-9]*\).*/\1 wrong=\2/p'
}
iperf() { # HOSTS RATE [LOWAT]
    benches/peers/iperf_ring.sh "$@" | awk '/GB\/s/ { s += $(NF - 1); n++ } END { if (n) printf "%.3f", s / n }'
}
for ((round = 1; round <= rounds; round++)); do
    for set in "${settings[@]}"; do
        h=${set%%:*} r=${set##*:}
        sleep 3
        load=$(cut -d' ' -f1 /proc/loadavg)
        a=$(ring RINGDET_UNUSED=0 "$h" "$r"); sleep 2
        b=$(ring RINGDET_SEND_BACKLOG=0 "$h" "$r"); sleep 2
        c=$(iperf "$h" "$r"); sleep 2
        d=$(iperf "$h" "$r" 32768)
        echo "$(date -u +%H:%M:%S) round $round ${h}x$r load1 $load | ringdet $a | backlog=0 $b | iperf3 $c | iperf3+lowat32K $d"
    done
done
