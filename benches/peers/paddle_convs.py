#!/usr/bin/env python
"""PaddlePaddle CPU peer for benches/benches/conv.rs: the same PP-YOLOE-s conv shapes
(ppyoloe_s_convs_320_b2.json, written by the Rust bench) timed forward and forward+backward
(dx, dw, db) with paddle's CPU kernels, plus the whole set of one forward+backward.

Usage: python paddle_convs.py [--threads 2] [--iters 5] [--json out.json]
Measuring only: paddlepaddle is never a dependency of ringdet.
"""
import argparse
import json
import os
import statistics
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--whole-iters", type=int, default=5)
ap.add_argument("--shapes", default=os.path.join(os.path.dirname(__file__), "ppyoloe_s_convs_320_b2.json"))
ap.add_argument("--json", default=None)
args = ap.parse_args()
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["MKL_NUM_THREADS"] = str(args.threads)

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from paddle.base import core  # noqa: E402

paddle.set_device("cpu")
core.set_num_threads(args.threads)
shapes = json.load(open(args.shapes))


def make(s):
    rng = np.random.RandomState(0)
    x = paddle.to_tensor(rng.standard_normal((s["batch"], s["cin"], s["side"], s["side"])).astype("float32"), stop_gradient=False)
    w = paddle.to_tensor((0.05 * rng.standard_normal((s["cout"], s["cin"], s["kernel"], s["kernel"]))).astype("float32"), stop_gradient=False)
    b = paddle.to_tensor(np.zeros(s["cout"], "float32"), stop_gradient=False) if s["bias"] else None
    o = (s["side"] + 2 * s["pad"] - s["kernel"]) // s["stride"] + 1
    dy = paddle.to_tensor(rng.standard_normal((s["batch"], s["cout"], o, o)).astype("float32"))
    return x, w, b, dy


def fwd(s, t):
    x, w, b, _ = t
    with paddle.no_grad():
        y = F.conv2d(x, w, b, stride=s["stride"], padding=s["pad"])
    return y


def fwd_bwd(s, t):
    x, w, b, dy = t
    y = F.conv2d(x, w, b, stride=s["stride"], padding=s["pad"])
    y.backward(dy)
    x.clear_grad()
    w.clear_grad()
    if b is not None:
        b.clear_grad()


def timed(fn, iters):
    fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


tensors = [make(s) for s in shapes]
per_shape = []
for s, t in zip(shapes, tensors):
    tf = timed(lambda: fwd(s, t).numpy(), args.iters)
    tfb = timed(lambda: fwd_bwd(s, t), args.iters)
    per_shape.append({"name": s["name"], "fwd_s": tf, "fwd_bwd_s": tfb,
                      "fwd_gflops": s["flops"] / tf / 1e9, "fwd_bwd_gflops": 3 * s["flops"] / tfb / 1e9})
    print(f"{s['name']:32s} fwd {tf * 1e3:8.2f} ms  fwd+bwd {tfb * 1e3:8.2f} ms", flush=True)


def whole():
    for s, t in zip(shapes, tensors):
        for _ in range(s["count"]):
            fwd_bwd(s, t)


tw = [timed(whole, 1) for _ in range(args.whole_iters)]
flops = sum(3 * s["flops"] * s["count"] for s in shapes)
out = {
    "paddle": paddle.__version__,
    "threads": args.threads,
    "FLAGS_use_mkldnn": paddle.get_flags(["FLAGS_use_mkldnn"])["FLAGS_use_mkldnn"],
    "loadavg": open("/proc/loadavg").read().split()[:3],
    "whole_fwd_bwd_s_all": tw,
    "whole_fwd_bwd_median_s": statistics.median(tw),
    "whole_gflops": flops / statistics.median(tw) / 1e9,
    "per_shape": per_shape,
}
print(json.dumps({k: v for k, v in out.items() if k != "per_shape"}))
if args.json:
    json.dump(out, open(args.json, "w"), indent=1)
