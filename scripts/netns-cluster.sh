#!/usr/bin/env bash
# netns-cluster.sh: an emulated cluster on one machine. Makes H network namespaces ("hosts"
# rdns-<pid>-0 .. rdns-<pid>-(H-1)), each with loopback and one veth (eth0, 10.77.0.<10+i>/24)
# into a bridge that lives in a namespace of its own (rdns-<pid>-br, no address), shapes every
# host's link in both directions with tc htb, runs CMD once in every host with
#   RINGDET_SIM_HOST   this host's address      RINGDET_SIM_HOSTS  all addresses, comma-separated
#   RINGDET_SIM_INDEX  this host's index (0..H-1)
# and a private /dev/shm, prefixes each host's output with [hI], waits for all, and removes every
# namespace, link and process it made: at the end, on failure, on timeout and on Ctrl-C.
# Nothing is created in the root namespace; 10.77.0.0/24 exists only inside the namespaces.
#
# Usage (as root):
#   scripts/netns-cluster.sh --hosts H [--rate 10gbit|none] [--delay 0] [--loss 0%]
#                            [--seed 1] [--mtu 9000] [--relay] [--timeout 300] -- CMD ARGS...
#   e.g. scripts/netns-cluster.sh --hosts 2 --rate 1gbit -- sh -c \
#          'target/debug/ringdet launch --ips $RINGDET_SIM_HOSTS --nproc_per_node 1 allreduce-perf -b 4K -e 1M'
# Test-only (hidden) option, repeatable: --fault KIND:HOST:AFTER_S, HOST = index or address,
#   KIND link-down  HOST's eth0 loses carrier AFTER_S s after the start: with the bridge, the bridge
#                   side of its veth goes down; with the relay, its TUN's carrier goes off
#                   (TUNSETCARRIER) and the relay drops every packet from or to it
#        partition  the link stays up and frames vanish silently: with the bridge, HOST's veth
#                   leaves the bridge; with the relay, it drops every packet from or to HOST
#   (the relay learns of a fault from a line in its --control file and a SIGUSR1).
# --delay D (one-way, per packet a host sends) and --loss P% (per packet) use the netem qdisc
# where the kernel has it. Without netem each host gets a TUN device (eth0) instead of the veth,
# and the switch is a user-space relay in rdns-<pid>-br, `ringdet netsim-relay` (the binary in
# $RINGDET_BIN, else the newer of target/{release,debug}/ringdet, else `ringdet` on PATH): it
# drops each packet with probability P (seeded: --seed N, default 1), holds it for D, and paces
# what each host receives at --rate (htb on the TUN shapes what it sends). Relay-only options:
# --mtu N (the TUNs' MTU, default 9000); --relay uses the relay even where netem exists, or
# with neither delay nor loss (to measure the relay itself).
#
# Exit status: 0 if CMD succeeded on every host; else the first non-zero status (in time) of a
# host's CMD; 124 on --timeout; 2 on a usage error; 77 when this machine cannot build the cluster
# asked for (not root, no `ip netns`, no veth/bridge, no htb, --delay/--loss with neither netem
# nor /dev/net/tun and a ringdet binary for the relay).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "netns-cluster: $*" >&2; exit 2; }
cannot() { echo "netns-cluster: cannot emulate here: $*" >&2; exit 77; }
say() { echo "netns-cluster: $*" >&2; }

hosts="" rate="10gbit" delay="0" loss="0" timeout=300 faults=() force_relay=0 mtu=9000 seed=1
while (($#)); do
    case $1 in
    --hosts) hosts=${2:-}; shift 2 || die "--hosts needs a value" ;;
    --rate) rate=${2:-}; shift 2 || die "--rate needs a value" ;;
    --delay) delay=${2:-}; shift 2 || die "--delay needs a value" ;;
    --loss) loss=${2:-}; shift 2 || die "--loss needs a value" ;;
    --timeout) timeout=${2:-}; shift 2 || die "--timeout needs a value" ;;
    --fault) faults+=("${2:-}"); shift 2 || die "--fault needs a value" ;;
    --relay) force_relay=1; shift ;;
    --mtu) mtu=${2:-}; shift 2 || die "--mtu needs a value" ;;
    --seed) seed=${2:-}; shift 2 || die "--seed needs a value" ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done
cmd=("$@")
((${#cmd[@]})) || die "no command: netns-cluster.sh --hosts H [options] -- CMD ARGS..."
[[ $hosts =~ ^[0-9]+$ ]] && ((hosts >= 1 && hosts <= 200)) || die "--hosts must be 1..200, not '$hosts'"
[[ $timeout =~ ^[0-9]+$ ]] && ((timeout >= 1)) || die "--timeout must be a whole number of seconds >= 1"
[[ $rate == none || $rate =~ ^[0-9]+(\.[0-9]+)?([kKmMgGtT]i?)?(bit|bps)$ ]] ||
    die "--rate must look like 10gbit, 800mbit, 100mbps or be 'none', not '$rate'"
[[ $delay =~ ^[0-9]+(\.[0-9]+)?(us|ms|s)?$ ]] || die "--delay must look like 100us or 2ms, not '$delay'"
[[ $loss =~ ^[0-9]+(\.[0-9]+)?%?$ ]] || die "--loss must look like 0.1%, not '$loss'"
[[ $mtu =~ ^[0-9]+$ ]] && ((mtu >= 576 && mtu <= 65535)) || die "--mtu must be 576..65535, not '$mtu'"
[[ $seed =~ ^[0-9]+$ ]] || die "--seed must be a whole number, not '$seed'"
[[ $delay =~ ^0+(\.0+)?[a-z]*$ ]] && delay=""
[[ $loss =~ ^0+(\.0+)?%?$ ]] && loss=""
[[ -z $loss || $loss == *% ]] || loss="$loss%"

# htb's own burst (rate/HZ) is a few KiB, less than one 64 KiB GSO packet of the veth: give it
# 1 ms of the rate, at least 128 KiB, so that high rates are reachable on a busy machine.
burst=131072 rate_bps=0
if [[ $rate != none ]]; then
    rate_bps=$(awk -v r="$rate" 'BEGIN {
        match(r, /^[0-9.]+/); n = substr(r, 1, RLENGTH) + 0; u = tolower(substr(r, RLENGTH + 1))
        bytes = u ~ /bps$/
        sub(/(bit|bps)$/, "", u); m = 1
        if (u ~ /^k/) m = 1e3; if (u ~ /^m/) m = 1e6; if (u ~ /^g/) m = 1e9; if (u ~ /^t/) m = 1e12
        if (u ~ /i$/) m = 1024 ^ (index("kmgt", substr(u, 1, 1)))
        printf "%.0f", n * m * (bytes ? 8 : 1) }')
    burst=$((rate_bps / 8000 > 131072 ? rate_bps / 8000 : 131072))
fi
addr() { echo "10.77.0.$((10 + $1))"; }
all_hosts=$(for ((i = 0; i < hosts; i++)); do addr "$i"; done | paste -sd,)
fault_kind=() fault_host=() fault_after=()
for f in ${faults[@]+"${faults[@]}"}; do
    IFS=: read -r kind who after <<<"$f"
    [[ $kind == link-down || $kind == partition ]] || die "--fault kind must be link-down or partition: '$f'"
    [[ ${after:-} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--fault needs KIND:HOST:AFTER_S: '$f'"
    idx=""
    for ((i = 0; i < hosts; i++)); do [[ $who == "$i" || $who == "$(addr "$i")" ]] && idx=$i; done
    [[ -n $idx ]] || die "--fault host '$who' is neither 0..$((hosts - 1)) nor one of $all_hosts"
    fault_kind+=("$kind") fault_host+=("$idx") fault_after+=("$after")
done

# ---- capabilities ----------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || cannot "network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)"
command -v ip >/dev/null || cannot "no 'ip' command (iproute2)"
[[ $rate == none && -z $delay && -z $loss ]] || command -v tc >/dev/null || cannot "no 'tc' command"

pfx="rdns-$$"
br_ns="$pfx-br"
made_ns=() host_pids=() timer_pids=() tmpdir="" relay=0 relay_pid=""
declare -A link_down=() # hosts whose link a --fault took down (their TUN drops what they send)

# Every pid of the processes in namespace $1.
ns_pids() { ip netns pids "$1" 2>/dev/null || true; }
# Descendants of pid $1 (ours only: children of processes this script started), then $1.
tree() {
    local c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do tree "$c"; done
    echo "$1"
}

cleaned=0
cleanup() {
    local status=$?
    ((cleaned)) && return 0
    cleaned=1
    trap '' INT TERM
    local p ns round left
    for p in ${timer_pids[@]+"${timer_pids[@]}"}; do { kill -KILL "$p" && wait "$p"; } 2>/dev/null || true; done
    # The hosts' processes: SIGTERM (the launcher stops its workers cleanly), SIGKILL after 5 s.
    # (The switch's namespace runs only the relay, stopped below.)
    for ns in ${made_ns[@]+"${made_ns[@]}"}; do
        [[ $ns == "$br_ns" ]] && continue
        for p in $(ns_pids "$ns"); do kill -TERM "$p" 2>/dev/null || true; done
    done
    for ((round = 0; round < 100; round++)); do
        left=0
        for ns in ${made_ns[@]+"${made_ns[@]}"}; do
            [[ $ns != "$br_ns" && -n $(ns_pids "$ns") ]] && left=1
        done
        ((left)) || break
        ((round == 50)) && say "processes still running in the namespaces after 5 s: SIGKILL"
        if ((round >= 50)); then
            for ns in ${made_ns[@]+"${made_ns[@]}"}; do
                [[ $ns == "$br_ns" ]] && continue
                for p in $(ns_pids "$ns"); do kill -KILL "$p" 2>/dev/null || true; done
            done
        fi
        sleep 0.1
    done
    # Our per-host pipelines (ip netns exec + the [hI] prefixer) end once the hosts are empty.
    for ((round = 0; round < 30; round++)); do
        left=0
        for p in ${host_pids[@]+"${host_pids[@]}"}; do kill -0 "$p" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in ${host_pids[@]+"${host_pids[@]}"}; do
        for c in $(tree "$p"); do kill -KILL "$c" 2>/dev/null || true; done
    done
    # The relay last (it carried the hosts' last packets): SIGTERM, it prints what it did.
    if [[ -n $relay_pid ]]; then
        kill -TERM "$relay_pid" 2>/dev/null || true
        for ((round = 0; round < 30; round++)); do
            kill -0 "$relay_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
        sed 's/^/netns-cluster: /' "$tmpdir/relay.err" >&2 || true
        for ns in ${made_ns[@]+"${made_ns[@]}"}; do
            [[ $ns == "$br_ns" || -n ${link_down[$ns]:-} ]] && continue
            p=$(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/tx_dropped 2>/dev/null || echo 0)
            ((p == 0)) || say "warning: the TUN of $ns dropped $p packets the relay did not read in time"
        done
    fi
    wait 2>/dev/null || true
    for ns in ${made_ns[@]+"${made_ns[@]}"}; do ip netns del "$ns" 2>/dev/null || true; done
    [[ -n $tmpdir ]] && rm -rf "$tmpdir"
    left=$(ip netns list 2>/dev/null | awk -v p="$pfx-" 'index($1, p) == 1 {print $1}' | paste -sd' ')
    [[ -z $left ]] || say "warning: namespaces left behind: $left"
    return "$status"
}
trap cleanup EXIT
trap 'say "interrupted: stopping every host"; exit 130' INT
trap 'say "terminated: stopping every host"; exit 143' TERM

add_ns() {
    ip netns add "$1" 2>"$tmpdir/err" || cannot "'ip netns add $1' failed: $(cat "$tmpdir/err")"
    made_ns+=("$1")
    ip -n "$1" link set lo up
}
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/netns-cluster.XXXXXX")

add_ns "$br_ns"
ip netns exec "$br_ns" true 2>"$tmpdir/err" || cannot "'ip netns exec' fails: $(cat "$tmpdir/err")"

# Delay and loss: netem where the kernel has it, else the relay over TUN devices.
relay_bin=""
if [[ -n "$delay$loss" ]] || ((force_relay)); then
    if ((!force_relay)) && tc -n "$br_ns" qdisc add dev lo root netem delay 1ms 2>/dev/null; then
        tc -n "$br_ns" qdisc del dev lo root 2>/dev/null || true
    else
        relay=1
        [[ -c /dev/net/tun ]] ||
            cannot "--delay/--loss need the netem qdisc or /dev/net/tun (for the user-space relay); \
this machine has neither: run without them"
        root=$(cd "$(dirname "$0")/.." && pwd)
        if [[ -n ${RINGDET_BIN:-} ]]; then
            relay_bin=$RINGDET_BIN
        elif [[ -x $root/target/release/ringdet && ! $root/target/debug/ringdet -nt $root/target/release/ringdet ]]; then
            relay_bin=$root/target/release/ringdet
        elif [[ -x $root/target/debug/ringdet ]]; then
            relay_bin=$root/target/debug/ringdet
        else
            relay_bin=$(command -v ringdet || true)
        fi
        [[ -n $relay_bin && -x $relay_bin ]] ||
            cannot "--delay/--loss without netem need the relay in the ringdet binary: build it \
(cargo build -p ringdet-launch) or set RINGDET_BIN"
    fi
fi
if ((!relay)); then
    ip -n "$br_ns" link add br0 type bridge 2>"$tmpdir/err" || cannot "no bridge: $(cat "$tmpdir/err")"
    ip -n "$br_ns" link set br0 up
fi

# Shapes egress of device $2 in namespace $1 to $rate with htb (the kernel here has htb and tbf;
# not netem, fq, fq_codel, cake, prio or hfsc). $3 = "host" adds netem (delay/loss) as the leaf.
shape() {
    local ns=$1 dev=$2 side=$3
    if [[ $rate != none ]]; then
        tc -n "$ns" qdisc add dev "$dev" root handle 1: htb default 1 2>"$tmpdir/err" ||
            cannot "tc htb on $dev fails ($(cat "$tmpdir/err")); pass --rate none to run unshaped"
        tc -n "$ns" class add dev "$dev" parent 1: classid 1:1 htb rate "$rate" ceil "$rate" \
            burst "$burst" cburst "$burst" quantum 60000 \
            2>"$tmpdir/err" || die "tc rejects --rate $rate: $(cat "$tmpdir/err")"
    fi
    if [[ $side == host && -n "$delay$loss" ]] && ((!relay)); then
        local parent=(root) netem=(netem)
        [[ $rate != none ]] && parent=(parent 1:1 handle 10:)
        [[ -n $delay ]] && netem+=(delay "$delay")
        [[ -n $loss ]] && netem+=(loss "$loss")
        tc -n "$ns" qdisc add dev "$dev" "${parent[@]}" "${netem[@]}" 2>"$tmpdir/err" ||
            cannot "--delay/--loss need the netem qdisc, which this kernel lacks ($(cat "$tmpdir/err")); \
there is no other way here (no iptables for a 'statistic' drop, no tc matchall/gact): run without them"
    fi
}

for ((i = 0; i < hosts; i++)); do
    ns="$pfx-$i"
    add_ns "$ns"
    if ((relay)); then
        ip -n "$ns" tuntap add dev eth0 mode tun 2>"$tmpdir/err" ||
            cannot "no TUN device in a namespace: $(cat "$tmpdir/err")"
        ip -n "$ns" link set eth0 mtu "$mtu" txqueuelen 1000
    else
        ip -n "$br_ns" link add "h$i" type veth peer name eth0 netns "$ns" 2>"$tmpdir/err" ||
            cannot "no veth: $(cat "$tmpdir/err")"
        ip -n "$br_ns" link set "h$i" master br0 up
    fi
    ip -n "$ns" addr add "$(addr "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
    shape "$ns" eth0 host # what the host sends
    ((relay)) || shape "$br_ns" "h$i" bridge # what it receives (the relay paces it)
done
if ((relay)); then
    # One-way delay in microseconds (a bare number is microseconds, as for tc).
    delay_us=$(awk -v d="${delay:-0}" 'BEGIN { match(d, /^[0-9.]+/); n = substr(d, 1, RLENGTH) + 0
        u = substr(d, RLENGTH + 1); m = 1; if (u == "ms") m = 1e3; if (u == "s") m = 1e6
        printf "%d", n * m + 0.5 }')
    loss_pct=${loss:-0} && loss_pct=${loss_pct%\%}
    # --fault: a line per fault in the control file, then SIGUSR1 (see the fault loop below).
    : >"$tmpdir/relay.control"
    relay_args=(netsim-relay --parent "$$" --seed "$seed" --delay-us "$delay_us"
        --loss-pct "$loss_pct" --rate-bps "$rate_bps" --queue-bytes "$((1000 * mtu))"
        --control "$tmpdir/relay.control")
    for ((i = 0; i < hosts; i++)); do relay_args+=(--host "$pfx-$i=$(addr "$i")"); done
    ip netns exec "$br_ns" "$relay_bin" "${relay_args[@]}" </dev/null >"$tmpdir/relay.out" 2>"$tmpdir/relay.err" &
    relay_pid=$!
    for ((round = 0; round < 100; round++)); do
        grep -qx ready "$tmpdir/relay.out" && break
        kill -0 "$relay_pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -qx ready "$tmpdir/relay.out" || {
        err=$(cat "$tmpdir/relay.err")
        { kill -KILL "$relay_pid" && wait "$relay_pid"; } 2>/dev/null || true
        relay_pid="" # no figures to print
        cannot "the user-space relay ($relay_bin netsim-relay) did not start: ${err:-no message in 10 s}"
    }
fi
shaping="rate ${rate} each way per host (htb)"
((relay)) && shaping="rate ${rate} each way per host (htb out, relay pacing in)"
[[ $rate == none ]] && shaping="unshaped"
[[ -n $delay ]] && shaping+=", delay $delay"
[[ -n $loss ]] && shaping+=", loss $loss"
((relay)) && shaping+=" (user-space relay, MTU $mtu)"
switch="bridge"
((relay)) && switch="relay"
say "$hosts hosts $all_hosts in namespaces $pfx-{0..$((hosts - 1))}, $switch in $br_ns; $shaping; timeout ${timeout} s"

run_host() {
    local i=$1 rc=0
    ip netns exec "$pfx-$i" env RINGDET_SIM_HOST="$(addr "$i")" RINGDET_SIM_HOSTS="$all_hosts" \
        RINGDET_SIM_INDEX="$i" sh -c 'mount -t tmpfs -o mode=1777 rdns-shm /dev/shm 2>/dev/null ||
            echo "netns-cluster: warning: no private /dev/shm on this host" >&2
        exec "$@"' netns-host "${cmd[@]}" </dev/null || rc=$?
    echo "$rc" >"$tmpdir/status.$i"
}
declare -A host_of=()
for ((i = 0; i < hosts; i++)); do
    { run_host "$i" 2>&1 | sed -u "s/^/[h$i] /"; } &
    host_pids+=("$!")
    host_of[$!]=$i
done
declare -A fault_of=()
sleep "$timeout" &
timer=$!
timer_pids+=("$timer")
for ((f = 0; f < ${#fault_kind[@]}; f++)); do
    sleep "${fault_after[f]}" &
    timer_pids+=("$!")
    fault_of[$!]=$f
done

first=0 running=("${host_pids[@]}") waiting=("${timer_pids[@]}")
while ((${#running[@]})); do
    done_pid=""
    wait -n -p done_pid "${running[@]}" "${waiting[@]}" || true
    [[ -n $done_pid ]] || continue
    waiting=($(printf '%s\n' "${waiting[@]}" | grep -vx "$done_pid" || true))
    if [[ $done_pid == "$timer" ]]; then
        say "timed out after $timeout s: stopping every host"
        exit 124
    elif [[ -n ${fault_of[$done_pid]:-} ]]; then
        f=${fault_of[$done_pid]} i=${fault_host[f]}
        if ((relay)); then
            # The relay rereads the whole file on each signal (signals close together merge).
            echo "${fault_kind[f]} $(addr "$i")" >>"$tmpdir/relay.control"
            [[ ${fault_kind[f]} == link-down ]] && link_down[$pfx-$i]=1
            kill -USR1 "$relay_pid" 2>/dev/null || say "warning: the relay has ended: fault not applied"
        elif [[ ${fault_kind[f]} == link-down ]]; then
            ip -n "$br_ns" link set "h$i" down
        else
            ip -n "$br_ns" link set "h$i" nomaster
        fi
        say "fault: ${fault_kind[f]} of host $i ($(addr "$i")) at ${fault_after[f]} s"
        continue
    fi
    running=($(printf '%s\n' "${running[@]}" | grep -vx "$done_pid" || true))
    i=${host_of[$done_pid]}
    rc=$(cat "$tmpdir/status.$i" 2>/dev/null || echo 1)
    say "host $i ($(addr "$i")) finished with status $rc"
    ((rc == 0 || first != 0)) || first=$rc
done
exit "$first"
