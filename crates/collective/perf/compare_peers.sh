#!/usr/bin/env bash
# Side-by-side all-reduce measurement on loopback: raw TCP ring-pattern ceiling (tcp_bw.c),
# torch gloo, and `ringdet allreduce-perf`, interleaved per repetition so that all of them see
# the same background load. "ringdet" is the default (ranks of one host reduce large buffers by
# reading each other's memory), "ringdet-tcp" the TCP ring alone (--no-hierarchical). MPI=1 adds
# Open MPI 4.1 (mpi4py) over TCP only and with its default shared-memory transport.
# Prints one line per measurement; summarize.py takes medians.
#
#   PY=/path/to/python-with-torch PEERS=crates/collective/perf/peers \
#   RINGDET=target/release/ringdet REPS=3 bash crates/collective/perf/compare_peers.sh > out.txt
#
# Only 127.0.0.1 is used; every run is bounded by `timeout`.
set -u
PY=${PY:-python3}
PEERS=${PEERS:-crates/collective/perf/peers}
RINGDET=${RINGDET:-target/release/ringdet}
REPS=${REPS:-3}
WORK=$(mktemp -d)
gcc -O2 -pthread -o "$WORK/tcp_bw" "$PEERS/tcp_bw.c" || exit 1
load() { echo "# $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg) | cpu pressure: $(head -1 /proc/pressure/cpu 2>/dev/null)"; }
uname -r; nproc; $PY -c 'import torch; print("torch", torch.__version__)'
for rep in $(seq "$REPS"); do
  load
  for n in 2 4; do
    echo "ceiling $(timeout 30 "$WORK/tcp_bw" ring $n 3 131072 $((20000 + RANDOM % 30000)))"
    # Same pattern with 64 MiB messages: the copies stream from DRAM as an all-reduce's do.
    echo "ceiling-dram $(timeout 30 "$WORK/tcp_bw" ring $n 3 67108864 $((20000 + RANDOM % 30000)))"
    timeout 300 $PY "$PEERS/gloo_allreduce_bench.py" --world $n --sizes 4K,64M,256M 2>/dev/null | grep '^gloo' | sed 's/^/gloo /'
    timeout 300 "$RINGDET" allreduce-perf --nproc $n -b 4K -e 4K -n 200 -w 20 --json | sed 's/^/ringdet /'
    timeout 300 "$RINGDET" allreduce-perf --nproc $n -b 4K -e 4K -n 200 -w 20 --no-hierarchical --json | sed 's/^/ringdet-tcp /'
    timeout 300 "$RINGDET" allreduce-perf --nproc $n -b 64M -e 256M -f 4 -n 4 -w 1 --json | sed 's/^/ringdet /'
    timeout 300 "$RINGDET" allreduce-perf --nproc $n -b 64M -e 256M -f 4 -n 4 -w 1 --no-hierarchical --json | sed 's/^/ringdet-tcp /'
    if [ "${MPI:-0}" = 1 ]; then
      MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none"
      timeout 300 $MPIRUN --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo -np $n \
        $PY "$PEERS/mpi_allreduce_bench.py" --sizes 4K,64M,256M --tag tcp 2>/dev/null | grep '^tcp,' | sed 's/^/mpi-tcp /'
      timeout 300 $MPIRUN -np $n $PY "$PEERS/mpi_allreduce_bench.py" --sizes 4K,64M,256M --tag default 2>/dev/null | grep '^default,' | sed 's/^/mpi-shm /'
    fi
  done
done
load
rm -rf "$WORK"
