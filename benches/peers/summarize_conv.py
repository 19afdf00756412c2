#!/usr/bin/env python
"""Markdown tables for docs/performance.md (## CPU kernels) from the interleaved runs of
`RINGDET_CONV_REPORT=ours_N.json cargo bench -p ringdet-benches --bench conv` and
`paddle_convs.py --json paddle_N.json`.

Usage: python summarize_conv.py OURS.json [OURS.json ...] -- [PADDLE.json ...]
"""
import json
import statistics as st
import sys

args = sys.argv[1:]
cut = args.index("--") if "--" in args else len(args)
ours = [json.load(open(p)) for p in args[:cut]]
peers = [json.load(open(p)) for p in args[cut + 1:]]
med = st.median

peak2 = med([g for o in ours for g in o["sgemm_gflops"]])
peak1 = med([g for o in ours for g in o["sgemm_1thread_gflops"]])
peaki = med([g for o in ours for g in o["sgemm_independent_gflops"]])
peak = max(peak2, peaki)
near = [g for o in ours for sh in o["shapes"] for g in sh["sgemm_gflops_before"]]
peak = max(peak, med(near))
n = ours[0]["sgemm_size"]
print(f"SGEMM {n}×{n}×{n} with the `gemm` crate, medians of measurements interleaved with the convs: "
      f"one GEMM on {ours[0]['threads']} threads {peak2:.1f} GFLOP/s, one single-threaded GEMM per core at once "
      f"{peaki:.1f} GFLOP/s, 1 thread {peak1:.1f} GFLOP/s; the per-core pair measured right before each conv shape: "
      f"median {med(near):.1f}, best {max(near):.1f} GFLOP/s. **Peak: {peak:.1f} GFLOP/s.** Each conv's % of peak below is "
      f"the median over rounds of (its GFLOP/s ÷ the SGEMM pair measured just before it), so both sides see the same load. "
      f"Times are the fastest call in a ≥30 ms window.")
for p in peers:
    if "numpy_sgemm_gflops" in p:
        print(f"(numpy/OpenBLAS SGEMM 2048³, median of 3, on {p['threads']} threads in the Paddle run: {p['numpy_sgemm_gflops']:.1f} GFLOP/s)")
print()
names = [s["name"] for s in ours[0]["shapes"]]
hdr = "| conv (cin→cout, k, stride, input side) | layers | fwd GFLOP/s (% peak) | bwd-data | bwd-filter |"
if peers:
    hdr += " Paddle fwd | Paddle fwd+bwd | ours fwd+bwd |"
print(hdr)
print("|" + "---|" * (hdr.count("|") - 1))
tot = 0.0
for i, name in enumerate(names):
    s = ours[0]["shapes"][i]
    cells, times = [], []
    for d in ("fwd_s", "bwd_data_s", "bwd_filter_s"):
        ts = [x for o in ours for x in o["shapes"][i][d]]
        pk = [x for o in ours for x in o["shapes"][i]["sgemm_gflops_before"]]
        t = med(ts)
        times.append(t)
        g = s["flops"] / t / 1e9
        rel = med([s["flops"] / x / 1e9 / y for x, y in zip(ts, pk)])
        cells.append(f"{g:.1f} ({100 * rel:.0f}%)")
    row = f"| {name} | {s['count']} | " + " | ".join(cells) + " |"
    if peers:
        ps = [next(x for x in p["per_shape"] if x["name"] == name) for p in peers]
        row += f" {med(x['fwd_gflops'] for x in ps):.1f} | {med(x['fwd_bwd_gflops'] for x in ps):.1f} |"
        row += f" {3 * s['flops'] / sum(times) / 1e9:.1f} |"
    print(row)
flops = sum(3 * s["flops"] * s["count"] for s in ours[0]["shapes"])
w = [x for o in ours for x in o["whole_fwd_bwd_s"]]
print(f"\nWhole set of one forward + backward (best run {min(w) * 1e3:.0f} ms) (all {sum(s['count'] for s in ours[0]['shapes'])} conv layers, "
      f"{flops / 1e9:.1f} GFLOP): ours median **{med(w) * 1e3:.0f} ms** ({flops / med(w) / 1e9:.1f} GFLOP/s, "
      f"{100 * flops / med(w) / 1e9 / peak:.0f}% of peak), runs {[round(x * 1e3) for x in w]} ms")
if peers:
    pw = [x for p in peers for x in p["whole_fwd_bwd_s_all"]]
    print(f"PaddlePaddle {peers[0]['paddle']} (FLAGS_use_mkldnn={peers[0]['FLAGS_use_mkldnn']}, {peers[0]['threads']} threads): "
          f"median **{med(pw) * 1e3:.0f} ms** ({flops / med(pw) / 1e9:.1f} GFLOP/s; best run {min(pw) * 1e3:.0f} ms), runs {[round(x * 1e3) for x in pw]} ms")
    print(f"Ratio Paddle / ours: **{med(pw) / med(w):.2f}×** on medians, {min(pw) / min(w):.2f}× on best runs")
print(f"\nLoad average at the end of each of our runs: {[o['loadavg_end'] for o in ours]}; "
      f"Paddle runs: {[p['loadavg'] for p in peers]}")
