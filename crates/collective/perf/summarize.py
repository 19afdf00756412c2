#!/usr/bin/env python3
"""Medians over repetitions of compare_peers.sh output: time (us) and busbw (GB/s) per
implementation, ranks and size. gloo, Open MPI and ringdet "(mean of calls)" time the mean of
back-to-back calls (nccl-tests style); "ringdet default (median call)" is the median single call."""
import json
import re
import statistics
import sys
from collections import defaultdict

DEFAULT = "ringdet default (mean of calls)"
TCP = "ringdet TCP ring only, --no-hierarchical (mean of calls)"
MPI_TCP = "Open MPI 4.1, TCP BTL only"
MPI_SHM = "Open MPI 4.1, default (shared memory)"
rows = defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("ceiling-dram"):
        m = re.search(r"n=(\d+).*per_link_avg_GB/s=([\d.]+)", line)
        if m:
            rows[("tcp ring-pattern, 64 MiB messages (per link)", int(m.group(1)), 0)].append((0.0, float(m.group(2))))
    elif line.startswith("ceiling"):
        m = re.search(r"n=(\d+).*per_link_avg_GB/s=([\d.]+)", line)
        if m:
            rows[("tcp ring-pattern ceiling (per link)", int(m.group(1)), 0)].append((0.0, float(m.group(2))))
    elif line.startswith("gloo "):
        _, world, nbytes, _, t, _, busbw = line.split()[1].split(",")
        rows[("torch gloo", int(world), int(nbytes))].append((float(t), float(busbw)))
    elif line.startswith("mpi-tcp ") or line.startswith("mpi-shm "):
        _, world, nbytes, _, t, _, busbw = line.split()[1].split(",")
        impl = MPI_TCP if line.startswith("mpi-tcp") else MPI_SHM
        rows[(impl, int(world), int(nbytes))].append((float(t), float(busbw)))
    elif line.startswith("ringdet-tcp ") or line.startswith("ringdet "):
        tcp = line.startswith("ringdet-tcp ")
        d = json.loads(line.split(" ", 1)[1])
        rows[(TCP if tcp else DEFAULT, d["ranks"], d["bytes"])].append((d["time_us"], d["busbw"]))
        if d["bytes"] <= 65536:
            med_bw = d["bytes"] / d["median_us"] / 1e3 * 2 * (d["ranks"] - 1) / d["ranks"]
            label = "ringdet TCP ring only (median call)" if tcp else "ringdet default (median call)"
            rows[(label, d["ranks"], d["bytes"])].append((d["median_us"], med_bw))

print("| impl | ranks | size | median time (us) | median busbw (GB/s) | best busbw | reps |")
print("|---|---|---|---|---|---|---|")
for (impl, n, b), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
    size = "-" if b == 0 else (f"{b >> 20} MiB" if b >= 1 << 20 else f"{b >> 10} KiB")
    t = statistics.median(x[0] for x in v)
    bw = statistics.median(x[1] for x in v)
    print(f"| {impl} | {n} | {size} | {t:.0f} | {bw:.3f} | {max(x[1] for x in v):.3f} | {len(v)} |")

print()
print("| ringdet path | ranks | size | / gloo | / Open MPI TCP | / Open MPI default | / tcp ceiling (128 KiB msgs) | / tcp 64 MiB msgs |")
print("|---|---|---|---|---|---|---|---|")


def ratio(ours, key):
    peer = rows.get(key)
    return f"{ours / statistics.median(x[1] for x in peer):.2f}x" if peer else "-"


for (impl, n, b), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
    if impl not in (DEFAULT, TCP) or b < 1 << 20:
        continue
    ours = statistics.median(x[1] for x in v)
    print(f"| {'default' if impl == DEFAULT else 'TCP only'} | {n} | {b >> 20} MiB | "
          f"{ratio(ours, ('torch gloo', n, b))} | {ratio(ours, (MPI_TCP, n, b))} | {ratio(ours, (MPI_SHM, n, b))} | "
          f"{ratio(ours, ('tcp ring-pattern ceiling (per link)', n, 0))} | "
          f"{ratio(ours, ('tcp ring-pattern, 64 MiB messages (per link)', n, 0))} |")
