#!/usr/bin/env python
"""Turns `cargo bench --bench conv` output (criterion text) and optionally paddle_convs.py JSON
into the markdown tables of docs/performance.md (## CPU kernels).

Usage: python summarize_conv.py BENCH_OUTPUT.txt [PADDLE.json ...]
"""
import json
import re
import statistics
import sys

UNIT = {"Kelem/s": 1e-6, "Melem/s": 1e-3, "Gelem/s": 1.0, "Telem/s": 1e3, "elem/s": 1e-9}
TUNIT = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse(path):
    res, name = {}, None
    for line in open(path):
        m = re.match(r"^(\S+/\S+)\s*(time:.*)?$", line.strip())
        if m and not line.startswith(" ") and "/" in line and "Benchmarking" not in line:
            name = m.group(1)
        t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if t and name:
            res.setdefault(name, {})["time_s"] = float(t.group(1)) * TUNIT[t.group(2)]
        g = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if g and name:
            res.setdefault(name, {})["gflops"] = float(g.group(1)) * UNIT[g.group(2)]
    return res


res = parse(sys.argv[1])
peers = [json.load(open(p)) for p in sys.argv[2:]]
peak = max([v["gflops"] for k, v in res.items() if k.startswith("sgemm_peak/")] or [float(__import__("os").environ.get("PEAK", "1"))])
print("| sgemm (gemm crate) | GFLOP/s |\n|---|---|")
for k, v in res.items():
    if k.startswith("sgemm_peak/"):
        print(f"| {k.split('/')[1]} | {v['gflops']:.1f} |")
print(f"\npeak used below: {peak:.1f} GFLOP/s\n")
shapes = sorted({k.split("/", 2)[2] for k in res if k.startswith("ppyoloe_s_conv_320_b2/")},
                key=lambda n: list(res).index(f"ppyoloe_s_conv_320_b2/fwd/{n}"))
hdr = "| conv (cin→cout, kernel/stride, input) | fwd GFLOP/s (% peak) | bwd-data | bwd-filter |"
if peers:
    hdr += " Paddle fwd GFLOP/s | Paddle fwd+bwd GFLOP/s | ours fwd+bwd GFLOP/s |"
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
for n in shapes:
    cells = []
    times = []
    for d in ("fwd", "bwd_data", "bwd_filter"):
        v = res.get(f"ppyoloe_s_conv_320_b2/{d}/{n}", {})
        cells.append(f"{v.get('gflops', float('nan')):.1f} ({100 * v.get('gflops', 0) / peak:.0f}%)")
        times.append(v.get("time_s", float("nan")))
    row = f"| {n} | " + " | ".join(cells) + " |"
    if peers:
        ps = [next(x for x in p["per_shape"] if x["name"] == n) for p in peers]
        row += f" {statistics.median(x['fwd_gflops'] for x in ps):.1f} | {statistics.median(x['fwd_bwd_gflops'] for x in ps):.1f} |"
        flops3 = 3 * res[f"ppyoloe_s_conv_320_b2/fwd/{n}"]["gflops"] * res[f"ppyoloe_s_conv_320_b2/fwd/{n}"]["time_s"]
        row += f" {flops3 / sum(times):.1f} |"
    print(row)
w = res.get("ppyoloe_s_all_convs_320_b2/fwd_bwd")
if w:
    print(f"\nwhole set, ours: {w['time_s'] * 1e3:.1f} ms ({w['gflops']:.1f} GFLOP/s)")
for p in peers:
    print(f"whole set, Paddle {p['paddle']}: {p['whole_fwd_bwd_median_s'] * 1e3:.1f} ms ({p['whole_gflops']:.1f} GFLOP/s), "
          f"runs {[round(x * 1e3, 1) for x in p['whole_fwd_bwd_s_all']]}, load {p['loadavg']}")
