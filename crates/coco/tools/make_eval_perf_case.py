"""Writes the evaluation speed case: 5000 images x 80 categories, ~36k GT boxes, 500k detections.

    python3 make_eval_perf_case.py OUT_DIR [--seed 0]

Writes OUT_DIR/gt.json (COCO instances, val2017-like ids and sizes) and OUT_DIR/dt.json (100 detections
per image, as a detector's results list). Needs numpy only.
"""
import argparse
import json
import os

import numpy as np

COCO_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--gt", type=int, default=36000)
    ap.add_argument("--per-image", type=int, default=100)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    img_ids = np.sort(rng.choice(np.arange(1, 600000), a.images, replace=False))
    widths = rng.choice([640, 480, 500, 427], a.images)
    heights = rng.choice([480, 640, 375, 333], a.images)
    # GT: ~7.2 boxes per image, log-uniform sizes (COCO's mix of small, medium and large).
    gt_img = np.sort(rng.integers(0, a.images, a.gt))
    gt_cat = rng.choice(COCO_IDS, a.gt)
    side = np.exp(rng.uniform(np.log(6), np.log(400), (a.gt, 2)))
    gw = np.minimum(side[:, 0], widths[gt_img] - 1)
    gh = np.minimum(side[:, 1], heights[gt_img] - 1)
    gx = rng.uniform(0, 1, a.gt) * (widths[gt_img] - gw)
    gy = rng.uniform(0, 1, a.gt) * (heights[gt_img] - gh)
    g_area = gw * gh * rng.uniform(0.4, 0.9, a.gt)
    crowd = (rng.uniform(0, 1, a.gt) < 0.01).astype(int)
    with open(os.path.join(a.out, "gt.json"), "w") as f:
        f.write('{"info": {"description": "ringdet coco-eval speed case"}, "licenses": [], "images": [')
        f.write(",".join(f'{{"id": {int(i)}, "width": {int(w)}, "height": {int(h)}, "file_name": "{int(i):012d}.jpg"}}'
                         for i, w, h in zip(img_ids, widths, heights)))
        f.write('], "annotations": [')
        f.write(",".join(
            f'{{"id": {n + 1}, "image_id": {int(img_ids[gt_img[n]])}, "category_id": {int(gt_cat[n])}, '
            f'"bbox": [{gx[n]:.2f}, {gy[n]:.2f}, {gw[n]:.2f}, {gh[n]:.2f}], "area": {g_area[n]:.1f}, '
            f'"iscrowd": {int(crowd[n])}, "segmentation": [[{gx[n]:.2f}, {gy[n]:.2f}, {gx[n] + gw[n]:.2f}, {gy[n]:.2f}, '
            f'{gx[n] + gw[n]:.2f}, {gy[n] + gh[n]:.2f}]]}}' for n in range(a.gt)))
        f.write('], "categories": [')
        f.write(",".join(f'{{"id": {c}, "name": "class_{c}", "supercategory": "thing"}}' for c in COCO_IDS))
        f.write("]}\n")
    # Detections: per GT up to 3 jittered boxes (mostly the right class), the rest of the 100 are
    # background boxes of classes present in the image or random ones, with lower scores.
    starts = np.searchsorted(gt_img, np.arange(a.images + 1))
    out = []
    for i in range(a.images):
        g0, g1 = starts[i], starts[i + 1]
        rows = []
        for n in range(g0, g1):
            for _ in range(int(rng.integers(1, 4))):
                if len(rows) >= a.per_image:
                    break
                j = rng.normal(0, 0.08, 4) * np.array([gw[n], gh[n], gw[n], gh[n]])
                cat = gt_cat[n] if rng.uniform() < 0.8 else rng.choice(COCO_IDS)
                rows.append((cat, gx[n] + j[0], gy[n] + j[1], max(1.0, gw[n] + j[2]), max(1.0, gh[n] + j[3]),
                             rng.uniform(0.3, 1.0)))
        present = gt_cat[g0:g1] if g1 > g0 else np.array(COCO_IDS)
        k = a.per_image - len(rows)
        cats = np.where(rng.uniform(0, 1, k) < 0.5, rng.choice(present, k), rng.choice(COCO_IDS, k))
        s = np.exp(rng.uniform(np.log(4), np.log(300), (k, 2)))
        x = rng.uniform(0, widths[i], k)
        y = rng.uniform(0, heights[i], k)
        sc = rng.uniform(0, 0.5, k) ** 2
        rows += list(zip(cats, x, y, s[:, 0], s[:, 1], sc))
        iid = int(img_ids[i])
        out.extend(f'{{"image_id": {iid}, "category_id": {int(c)}, "bbox": [{bx:.2f}, {by:.2f}, {bw:.2f}, {bh:.2f}], '
                   f'"score": {float(p):.5f}}}' for c, bx, by, bw, bh, p in rows)
    with open(os.path.join(a.out, "dt.json"), "w") as f:
        f.write("[" + ",\n".join(out) + "]\n")
    print(f"{a.out}: {a.images} images, {a.gt} GT boxes, {len(out)} detections")


if __name__ == "__main__":
    main()
