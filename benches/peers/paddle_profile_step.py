#!/usr/bin/env python
"""Where PaddlePaddle's PP-YOLOE CPU training step (and eval forward) spends its time, in the
op families of `ringdet perf-detect --profile` (issue #18), on the same weights and step as
testdata/ppyoloe-golden/time_paddle_cpu.py: batch 2, 320x320, TAL assigner (epoch_id 150),
Momentum 0.9 + L2 5e-4 from ppdet's OptimizerBuilder; eval forward batch 1 640x640, no NMS.

How: `paddle.profiler` (CPU target) records the timed iterations; each top-level operator event
of the main thread (forward `... dygraph` ops and backward `...GradNode` nodes) is put in a family
by its name, except that whatever runs inside the assigner or inside the head's `get_loss`
(marked with `RecordEvent` spans) is `assigner` / `loss`, and whatever runs inside
`opt.step()` + `clear_grad()` is `sgd`. Forward convs get their kernel size and stem/non-stem
from a forward pre-hook on every Conv2D layer, matched in call order. Paddle's `conv2d_grad`
computes the data and the filter gradient in one op, and its kernel size is not in the trace, so
the backward conv is one family, `conv_bwd` (ringdet's conv_bwd_data_* + conv_bwd_filter_*).
Backward nodes of other ops (head decode, loss) are `other_grads`; forward ops not named above
are `other_ops`; `other` is the step's wall minus every operator (Python and dispatch).

The profiler adds overhead per op; compare shares and gaps, and take absolute step times from
time_paddle_cpu.py. Give `--ringdet-json` (the output of `ringdet perf-detect --profile --json`
on the same shapes) to print both side by side on the coarser common families.

Usage:  python paddle_profile_step.py --cfg PaddleDetection/configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml
            [--weights testdata/ppyoloe-golden/weights.safetensors] [--threads 2] [--warmup 1]
            [--iters 3] [--batch 2] [--input 320] [--eval-input 640] [--json OUT]
            [--ringdet-json ringdet_profile.json]
"""
import argparse
import json
import os
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--iters", type=int, default=3)
ap.add_argument("--batch", type=int, default=2)
ap.add_argument("--input", type=int, default=320)
ap.add_argument("--eval-input", type=int, default=640, help="0 skips the eval forward")
ap.add_argument("--weights", default="testdata/ppyoloe-golden/weights.safetensors")
ap.add_argument("--cfg", default="PaddleDetection/configs/ppyoloe/ppyoloe_crn_s_300e_coco.yml")
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--json", default=None)
ap.add_argument("--ringdet-json", default=None)
args = ap.parse_args()

os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["MKL_NUM_THREADS"] = str(args.threads)

import warnings  # noqa: E402
warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.profiler as profiler  # noqa: E402
from paddle.base import core  # noqa: E402

paddle.set_device("cpu")
core.set_num_threads(args.threads)

from ppdet.core.workspace import load_config, create  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

cfg = load_config(args.cfg)
model = create(cfg.architecture)
head = model.yolo_head
model.set_state_dict({k: v.copy() for k, v in load_file(args.weights).items()})


def synth_images(n, h, w, seed):
    """The inputs of time_paddle_cpu.py: smooth gradients, textured rectangles and noise,
    normalised like ppdet; six boxes per image; int64 labels (Paddle 3 + ppdet 2.6 need them)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ims, boxes = [], []
    for i in range(n):
        base = np.stack([(xx / w) * 160 + 40 + 25 * np.sin(xx / 13.0 + i),
                         (yy / h) * 140 + 60 + 25 * np.cos(yy / 19.0 - i),
                         ((xx + yy) / (h + w)) * 120 + 70], -1)
        bx = []
        for _ in range(6):
            bw, bh = rng.uniform(0.08, 0.45) * w, rng.uniform(0.08, 0.45) * h
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            bx.append([x1, y1, x1 + bw, y1 + bh])
            base[int(y1):int(y1 + bh), int(x1):int(x1 + bw)] = rng.uniform(30, 230, 3)
        base += rng.normal(0, 10, size=base.shape)
        im = np.clip(base, 0, 255).round().astype(np.float32) / 255.0
        im = (im - np.array([0.485, 0.456, 0.406], np.float32)) / np.array(
            [0.229, 0.224, 0.225], np.float32)
        ims.append(im.transpose(2, 0, 1))
        boxes.append(bx)
    return (np.ascontiguousarray(np.stack(ims), np.float32),
            np.array(boxes, np.float32), rng.randint(0, 80, size=(n, 6, 1)).astype(np.int64))


# --- conv layers: kernel size and stem, in call order -------------------------------------
conv_calls = []
stem_ids = {id(m) for m in model.backbone.stem.sublayers(include_self=True)}
for name, m in model.named_sublayers():
    if isinstance(m, paddle.nn.Conv2D):
        k = tuple(m._kernel_size)
        fam = "conv_fwd_stem" if id(m) in stem_ids else (
            "conv_fwd_1x1" if k == (1, 1) else "conv_fwd_3x3")
        flops_per_px = 2 * m._in_channels // m._groups * k[0] * k[1] * m._out_channels

        def hook(layer, inp, fam=fam, f=flops_per_px):
            x = inp[0]
            s = layer._stride[0] if isinstance(layer._stride, (list, tuple)) else layer._stride
            conv_calls.append((fam, f * x.shape[0] * (x.shape[2] // s) * (x.shape[3] // s)))
        m.register_forward_pre_hook(hook)

# --- spans: assigner, loss, optimizer -------------------------------------------------------
for attr in ("assigner", "static_assigner"):
    a = getattr(head, attr)
    orig_fwd = a.forward

    def wrapped(*x, _f=orig_fwd, **kw):
        with profiler.RecordEvent("ringdet_span:assigner"):
            return _f(*x, **kw)
    a.forward = wrapped
orig_get_loss = head.get_loss


def get_loss(*x, **kw):
    with profiler.RecordEvent("ringdet_span:loss"):
        return orig_get_loss(*x, **kw)


head.get_loss = get_loss

NAME_FAMILIES = [  # (substring of the lower-cased op name, family); first match wins
    ("conv2dgrad", "conv_bwd"), ("conv2d_grad", "conv_bwd"),
    ("batchnormgrad", "bn_backward"), ("batch_norm_grad", "bn_backward"),
    ("batch_norm", "bn_forward"),
    ("swish", "activation"), ("silu", "activation"), ("sigmoid", "activation"),
    ("hardsigmoid", "activation"), ("relu", "activation"),
    ("concat", "concat_upsample_pool"), ("interp", "concat_upsample_pool"),
    ("pool2d", "concat_upsample_pool"), ("pool", "concat_upsample_pool"),
    ("momentum", "sgd"),
    ("add", "elementwise"), ("multiply", "elementwise"), ("elementwise", "elementwise"),
]


def family_of(name, in_backward):
    n = name.lower()
    if n.startswith("conv2d ") or n == "conv2d":
        return "conv_fwd"
    for sub, fam in NAME_FAMILIES:
        if sub in n:
            return fam
    return "other_grads" if ("gradnode" in n or in_backward) else "other_ops"


def inside(t0, t1, spans):
    return any(s0 <= t0 and t1 <= s1 for s0, s1 in spans)


def profile(run_iter, n_iters, warmup):
    for _ in range(warmup):
        run_iter()
    out = tempfile.mkdtemp(prefix="paddle_profile_")
    path = os.path.join(out, "trace.json")
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU],
                             on_trace_ready=lambda p: p.export(path, format="json"))
    conv_calls.clear()
    prof.start()
    for _ in range(n_iters):
        run_iter()
        prof.step()
    prof.stop()
    with open(path) as f:
        d = json.load(f)
    return d["traceEvents"] if isinstance(d, dict) else d, list(conv_calls)


def tally(events, convs, n_iters):
    xs = [e for e in events if e.get("ph") == "X"]
    steps = [e for e in xs if str(e.get("name", "")).startswith("ProfileStep#")]
    pid = steps[0]["pid"] if steps else None
    wall_us = sum(float(e["dur"]) for e in steps[:n_iters])

    def spans(label):
        return [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in xs
                if e.get("name") == label or str(e.get("name", "")).startswith(label)]
    asg, loss = spans("ringdet_span:assigner"), spans("ringdet_span:loss")
    sgd, bwd = spans("ringdet_span:sgd"), spans("ringdet_span:backward")
    ops = sorted((e for e in xs if e.get("cat") == "Operator" and e.get("pid") == pid),
                 key=lambda e: float(e["ts"]))
    fams = {}
    conv_i, end = 0, -1.0
    for e in ops:
        t0, t1 = float(e["ts"]), float(e["ts"]) + float(e["dur"])
        if t1 <= end:  # nested in an operator already counted
            continue
        end = t1
        name = str(e["name"])
        if inside(t0, t1, asg):
            fam = "assigner"
        elif inside(t0, t1, loss):
            fam = "loss"
        elif inside(t0, t1, sgd):
            fam = "sgd"
        else:
            fam = family_of(name, inside(t0, t1, bwd))
        flops = 0
        if fam == "conv_fwd":
            if conv_i < len(convs):
                fam, flops = convs[conv_i]
            conv_i += 1
        r = fams.setdefault(fam, {"us": 0.0, "calls": 0, "flops": 0})
        r["us"] += float(e["dur"])
        r["calls"] += 1
        r["flops"] += flops
    if conv_i != len(convs):
        print(f"warning: {conv_i} conv2d ops against {len(convs)} Conv2D layer calls; "
              "forward conv kernel sizes may be mismatched", file=sys.stderr)
    attributed = sum(r["us"] for r in fams.values())
    it = max(n_iters, 1)
    rows = [{"family": k, "ms_per_iter": r["us"] / it / 1e3,
             "percent": 100.0 * r["us"] / max(wall_us, 1e-9),
             "calls_per_iter": r["calls"] / it,
             "gflops": (r["flops"] / (r["us"] * 1e3)) if r["flops"] and r["us"] else None}
            for k, r in sorted(fams.items(), key=lambda kv: -kv[1]["us"])]
    rest = max(wall_us - attributed, 0.0)
    rows.append({"family": "other", "ms_per_iter": rest / it / 1e3,
                 "percent": 100.0 * rest / max(wall_us, 1e-9), "calls_per_iter": 0,
                 "gflops": None})
    return {"iters": n_iters, "ms_per_iter": wall_us / it / 1e3, "families": rows}


def print_rows(title, p):
    print(f"{title}: {p['ms_per_iter']:.1f} ms per iteration over {p['iters']} iterations "
          "(under the profiler)")
    print(f"  {'family':<22} {'ms/iter':>10} {'%':>7} {'calls':>8} {'GFLOP/s':>9}")
    for r in p["families"]:
        g = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
        print(f"  {r['family']:<22} {r['ms_per_iter']:>10.2f} {r['percent']:>6.1f}% "
              f"{r['calls_per_iter']:>8.1f} {g:>9}")


# The coarse families both sides have: ringdet's finer ones summed into them.
COMMON = [
    ("conv fwd stem", ["conv_fwd_stem"]),
    ("conv fwd 3x3", ["conv_fwd_3x3"]),
    ("conv fwd 1x1", ["conv_fwd_1x1"]),
    ("conv bwd (data+filter)", ["conv_bwd", "conv_bwd_data_stem", "conv_bwd_data_3x3",
                                "conv_bwd_data_1x1", "conv_bwd_filter_stem",
                                "conv_bwd_filter_3x3", "conv_bwd_filter_1x1"]),
    ("bn forward (+stats)", ["bn_forward", "bn_stats"]),
    ("bn backward", ["bn_backward"]),
    ("activation", ["activation"]),
    ("elementwise", ["elementwise"]),
    ("concat/upsample/pool", ["concat_upsample_pool"]),
    ("assigner", ["assigner"]),
    ("loss, head host work", ["loss", "head_gather_scatter", "other_grads", "other_ops"]),
    ("sgd / ema", ["sgd", "ema"]),
    ("alloc, fuse, other", ["alloc", "fuse", "other"]),
]


def side_by_side(title, ours, theirs):
    def coarse(p):
        by = {r["family"]: r["ms_per_iter"] for r in p["families"]}
        return [sum(by.get(k, 0.0) for k in keys) for _, keys in COMMON]
    a, b = coarse(ours), coarse(theirs)
    print(f"\n{title}: ringdet {ours['ms_per_iter']:.1f} ms, "
          f"paddle {theirs['ms_per_iter']:.1f} ms per iteration")
    print(f"  {'family':<24} {'ringdet ms':>11} {'paddle ms':>10} {'ratio':>7}")
    for (label, _), x, y in zip(COMMON, a, b):
        ratio = f"{x / y:.2f}" if y > 0 else "-"
        print(f"  {label:<24} {x:>11.2f} {y:>10.2f} {ratio:>7}")


result = {"info": {"paddlepaddle": paddle.__version__, "threads": args.threads,
                   "loadavg_start": open("/proc/loadavg").read().split()[:3],
                   "cfg": args.cfg, "weights": args.weights}}

# --- train step -----------------------------------------------------------------------------
model.train()
opt = create("OptimizerBuilder")(args.lr, model)
img, bb, cl = synth_images(args.batch, args.input, args.input, seed=100 + args.batch)


def train_iter():
    inp = {"image": paddle.to_tensor(img), "gt_bbox": paddle.to_tensor(bb),
           "gt_class": paddle.to_tensor(cl),
           "pad_gt_mask": paddle.to_tensor(np.ones((args.batch, 6, 1), np.float32)),
           "epoch_id": 150}
    loss = model(inp)["loss"]
    with profiler.RecordEvent("ringdet_span:backward"):
        loss.backward()
    with profiler.RecordEvent("ringdet_span:sgd"):
        opt.step()
        opt.clear_grad()
    return float(loss.numpy().reshape(-1)[0])


t0 = time.time()
ev, convs = profile(train_iter, args.iters, args.warmup)
result["train"] = {"batch": args.batch, "input": args.input,
                   "profile": tally(ev, convs, args.iters)}
print_rows(f"paddle train step batch {args.batch} {args.input}x{args.input}",
           result["train"]["profile"])

# --- eval forward ---------------------------------------------------------------------------
if args.eval_input > 0:
    model.eval()
    head.exclude_nms = True
    if head.eval_size and list(head.eval_size) != [args.eval_input] * 2:
        head.eval_size = None  # its anchors are cached for the config's eval size only
    eimg, _, _ = synth_images(1, args.eval_input, args.eval_input, seed=7)

    def eval_iter():
        inp = {"image": paddle.to_tensor(eimg),
               "im_shape": paddle.to_tensor(np.array([[args.eval_input] * 2], np.float32)),
               "scale_factor": paddle.to_tensor(np.array([[1.0, 1.0]], np.float32))}
        with paddle.no_grad():
            out = model(inp)
        return float(out["bbox"].numpy().reshape(-1)[0])

    ev, convs = profile(eval_iter, args.iters, args.warmup)
    result["eval"] = {"input": args.eval_input, "profile": tally(ev, convs, args.iters)}
    print_rows(f"paddle eval forward batch 1 {args.eval_input}x{args.eval_input}, no NMS",
               result["eval"]["profile"])

result["info"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
result["info"]["total_wall_s"] = time.time() - t0

if args.ringdet_json:
    with open(args.ringdet_json) as f:
        ours = json.load(f)
    for part in ("train", "eval"):
        if part in result and "profile" in ours.get(part, {}):
            side_by_side(part, ours[part]["profile"], result[part]["profile"])
if args.json:
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
