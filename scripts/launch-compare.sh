#!/usr/bin/env bash
# Launcher behaviour side by side: `ringdet launch` and PaddlePaddle's launcher
# (`python -m paddle.distributed.launch`, what fleetrun runs), same Python worker, interleaved runs.
#   A  start-to-exit of a job of 2 no-op workers (launcher overhead)
#   B  a worker SIGKILLed -> this launcher exits (ms), and is the other worker gone?
#   C  2 hosts x 1 worker (loopback 127.0.0.2/.3): worker on host 2 SIGKILLed -> host 1 stops (ms)
#   D  the launcher SIGKILLed -> workers still alive 2 s later
# Needs: a built ringdet (RINGDET=..., default target/release/ringdet) and `pip install paddlepaddle`.
# Usage: scripts/launch-compare.sh [reps]   (prints one line per measurement; median by hand/sort)
set -u
RINGDET=$(realpath "${RINGDET:-target/release/ringdet}")
REPS=${1:-5}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
cat > w.py <<'PY'
import os, sys, time
rank = os.environ["PADDLE_TRAINER_ID"]
open(f"pid.{rank}.tmp", "w").write(str(os.getpid())); os.rename(f"pid.{rank}.tmp", f"pid.{rank}")
if sys.argv[1] == "sleep":
    time.sleep(60)
PY
now() { date +%s%3N; }
wait_file() { for _ in $(seq 1 600); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
alive() { [ -e /proc/$1 ] && ! grep -q '^[0-9]* ([^)]*) Z' /proc/$1/stat 2>/dev/null; }
# wait_pid PID SECONDS: waits for a background job to exit; prints ms waited or "timeout"
wait_pid() { local t0; t0=$(now); for _ in $(seq 1 $(($2 * 50))); do alive "$1" || { echo $(($(now) - t0)); return; }; sleep 0.02; done; echo timeout; }
cleanup() { for f in pid.*; do [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done; rm -rf pid.* log*; }

paddle() { exec python -m paddle.distributed.launch --log_dir "log-$RANDOM" "$@"; }
ringdet() { exec "$RINGDET" launch --log_dir "log-$RANDOM" "$@"; }
# args for each launcher: <single|host2|host3> 
args() {
  case "$1:$2" in
    paddle:single) echo "--nproc_per_node 2 --start_port 25100 w.py" ;;
    ringdet:single) echo "--nproc_per_node 2 --start_port 25100 -- python w.py" ;;
    paddle:host*) echo "--ips 127.0.0.2,127.0.0.3 --host 127.0.0.${2#host} --nproc_per_node 1 --start_port 25200 w.py" ;;
    ringdet:host*) echo "--ips 127.0.0.2,127.0.0.3 --host 127.0.0.${2#host} --nproc_per_node 1 --start_port 25200 -- python w.py" ;;
  esac
}

for rep in $(seq 1 "$REPS"); do
  for L in ringdet paddle; do
    # A
    t0=$(now); ($L $(args $L single) noop >/dev/null 2>&1); echo "A $L noop-job-ms $(($(now) - t0))"; cleanup
    # B
    $L $(args $L single) sleep >/dev/null 2>&1 & lp=$!
    wait_file pid.0 && wait_file pid.1; kill -9 "$(cat pid.1)"
    ms=$(wait_pid $lp 30); sleep 0.2
    other=$(alive "$(cat pid.0)" && echo alive || echo gone)
    echo "B $L worker-killed-to-launcher-exit-ms $ms other-worker $other"; kill -9 $lp 2>/dev/null; wait $lp 2>/dev/null; cleanup
    # C
    $L $(args $L host2) sleep >/dev/null 2>&1 & h2=$!
    $L $(args $L host3) sleep >/dev/null 2>&1 & h3=$!
    wait_file pid.0 && wait_file pid.1; kill -9 "$(cat pid.1)"
    echo "C $L remote-worker-killed-to-first-host-exit-ms $(wait_pid $h2 30)"
    kill -9 $h2 $h3 2>/dev/null; wait $h2 $h3 2>/dev/null; cleanup
    # D
    $L $(args $L single) sleep >/dev/null 2>&1 & lp=$!
    wait_file pid.0 && wait_file pid.1; kill -9 $lp; wait $lp 2>/dev/null; sleep 2
    n=0; for f in pid.0 pid.1; do alive "$(cat $f)" && n=$((n + 1)); done
    echo "D $L launcher-killed-workers-alive-after-2s $n"; cleanup
  done
done
