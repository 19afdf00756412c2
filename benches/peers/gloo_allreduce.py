#!/usr/bin/env python3
"""gloo_allreduce.py: PyTorch's gloo all-reduce measured the way `ringdet allreduce-perf` measures
ringdet's TCP ring, so that the two can be compared row by row on the same namespace cluster
(issue #15 part 3; for measuring only: nothing in ringdet uses PyTorch).

One process per host. Rank, world and master are taken from scripts/netns-cluster.sh's
environment (RINGDET_SIM_INDEX, RINGDET_SIM_HOSTS: rank = index, world = number of hosts,
MASTER_ADDR = the first host's address, a fixed port), or else from torch's usual RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT. GLOO_SOCKET_IFNAME defaults to eth0 inside a namespace host.

The sweep mirrors crates/launch/src/cmd/allreduce_perf.rs: sizes from -b to -e multiplied by -f,
f32 sum; per size -w warm-up all-reduces, then -n timed ones, each timed on every rank and the
slowest rank's time kept per iteration (an all-reduce MAX of the times); mean and median of those;
algbw = bytes / mean time, busbw = algbw x 2(n-1)/n (as nccl-tests); then a check all-reduce of
rank-dependent values ((rank*3 + i) % 5, summed over the ranks) whose wrong elements are counted
on every rank and summed. Prints the same columns as allreduce-perf, or with --json one JSON
object per size with the same fields (plus "impl" and "torch"). Exits 1 on a wrong result.

Usage (as root, from the repository root, with a Python that has torch):
  scripts/netns-cluster.sh --hosts 2 --rate 1gbit -- \
      /tmp/torch-venv/bin/python benches/peers/gloo_allreduce.py -b 64K -e 64M -f 4
"""

import argparse
import datetime
import json
import os
import re
import sys


def parse_size(s):
    """Bytes from '4096', '64K', '16M', '1G' (powers of 1024, as allreduce-perf)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", s)
    if not m:
        raise argparse.ArgumentTypeError(f"{s!r} is not a size (e.g. 4096, 64K, 16M)")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


def job_from_env():
    """(rank, world, master address, port) from the cluster script's or torch's variables."""
    hosts = os.environ.get("RINGDET_SIM_HOSTS")
    if hosts:
        addrs = [h for h in hosts.split(",") if h]
        try:
            rank = int(os.environ["RINGDET_SIM_INDEX"])
        except (KeyError, ValueError):
            sys.exit("gloo_allreduce: RINGDET_SIM_HOSTS is set but RINGDET_SIM_INDEX is not a number")
        return rank, len(addrs), addrs[0], int(os.environ.get("MASTER_PORT", "29533"))
    try:
        return (
            int(os.environ["RANK"]),
            int(os.environ["WORLD_SIZE"]),
            os.environ.get("MASTER_ADDR", "127.0.0.1"),
            int(os.environ.get("MASTER_PORT", "29533")),
        )
    except (KeyError, ValueError):
        sys.exit("gloo_allreduce: run under scripts/netns-cluster.sh or set RANK and WORLD_SIZE")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-b", "--minbytes", type=parse_size, default=parse_size("4K"))
    p.add_argument("-e", "--maxbytes", type=parse_size, default=parse_size("64M"))
    p.add_argument("-f", "--stepfactor", type=int, default=2)
    p.add_argument("-n", "--iters", type=int, default=20)
    p.add_argument("-w", "--warmup_iters", type=int, default=5)
    p.add_argument("--json", action="store_true", help="one JSON object per size instead of the table")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    a = p.parse_args()
    if a.stepfactor < 2 or a.minbytes == 0 or a.minbytes > a.maxbytes or a.iters < 1:
        sys.exit("gloo_allreduce: need -f >= 2, 0 < -b <= -e and -n >= 1")

    rank, world, master, port = job_from_env()
    if "RINGDET_SIM_HOSTS" in os.environ:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "eth0")

    import time

    import torch
    import torch.distributed as dist

    torch.set_num_threads(a.threads)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{master}:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=120),
    )
    n = world
    if rank == 0 and not a.json:
        print(
            f"# gloo allreduce (torch {torch.__version__}): {n} ranks, dtype f32, op Sum, "
            f"interface {os.environ.get('GLOO_SOCKET_IFNAME', '(default)')}",
            flush=True,
        )
        print(
            f"{'size(B)':>12} {'count':>12} {'type':>6} {'time(us)':>11} {'median(us)':>11} "
            f"{'algbw':>9} {'busbw':>9} {'#wrong':>7}",
            flush=True,
        )
    failed = False
    size = a.minbytes
    while size <= a.maxbytes:
        count = max(size // 4, 1)
        nbytes = count * 4
        idx = torch.arange(count, dtype=torch.int64)
        buf = ((rank * 3 + idx) % 5 % 2).to(torch.float32)
        for _ in range(a.warmup_iters):
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        times = torch.zeros(a.iters, dtype=torch.float64)
        for k in range(a.iters):
            t0 = time.perf_counter()
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            times[k] = (time.perf_counter() - t0) * 1e6
        # Per-iteration time of the slowest rank.
        dist.all_reduce(times, op=dist.ReduceOp.MAX)
        check = ((rank * 3 + idx) % 5).to(torch.float32)
        dist.all_reduce(check, op=dist.ReduceOp.SUM)
        expected = sum(((r * 3 + idx) % 5) for r in range(n)).to(torch.float32)
        wrong = torch.tensor([int((check != expected).sum())], dtype=torch.int64)
        dist.all_reduce(wrong, op=dist.ReduceOp.SUM)
        wrong = int(wrong[0])
        mean = float(times.mean())
        median = float(times.sort().values[a.iters // 2])
        algbw = nbytes / mean / 1e3
        busbw = algbw * 2.0 * (n - 1) / n
        if rank == 0:
            if a.json:
                print(
                    json.dumps(
                        {
                            "bytes": nbytes,
                            "count": count,
                            "dtype": "f32",
                            "ranks": n,
                            "time_us": round(mean, 2),
                            "median_us": round(median, 2),
                            "algbw": round(algbw, 4),
                            "busbw": round(busbw, 4),
                            "wrong": wrong,
                            "impl": "gloo",
                            "torch": torch.__version__,
                        },
                        separators=(",", ":"),
                    ),
                    flush=True,
                )
            else:
                print(
                    f"{nbytes:>12} {count:>12} {'f32':>6} {mean:>11.1f} {median:>11.1f} "
                    f"{algbw:>9.3f} {busbw:>9.3f} {wrong:>7}",
                    flush=True,
                )
        if wrong > 0:
            print(f"gloo_allreduce: {wrong} wrong elements at {nbytes} bytes", file=sys.stderr)
            failed = True
            break
        size *= a.stepfactor
    dist.destroy_process_group()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
