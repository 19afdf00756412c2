"""Runs a Python COCO evaluator over GT_JSON DT_JSON as one whole process, for timing beside ringdet.

    python3 peer_coco_eval.py pycocotools|faster GT_JSON DT_JSON [--json]

Prints the 12-line summary (or, with --json, the same JSON object as `ringdet coco-eval --json`).
"""
import json
import sys
import time


def main():
    which, gt_path, dt_path = sys.argv[1:4]
    t0 = time.perf_counter()
    if which == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    import contextlib
    import numpy as np

    with contextlib.redirect_stdout(sys.stderr):
        gt = COCO(gt_path)
        dt = gt.loadRes(dt_path)
        t1 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    t2 = time.perf_counter()
    print(f"{which}: load {t1 - t0:.2f} s, evaluate+accumulate+summarize {t2 - t1:.2f} s", file=sys.stderr)
    if "--json" in sys.argv:
        prec = ev.eval["precision"]
        per_cat = {}
        for k, cat in enumerate(ev.params.catIds):
            p = prec[:, :, k, 0, 2]
            p = p[p > -1]
            per_cat[str(cat)] = float(np.mean(p)) if p.size else -1.0
        print(json.dumps({"stats": [float(s) for s in ev.stats], "per_category_ap": per_cat}))


if __name__ == "__main__":
    main()
