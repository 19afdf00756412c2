"""Peer for benches/benches/coco_data.rs: PaddleDetection 2.6.0's own operators (ppdet.data.transform),
the PP-YOLOE train reader (Decode, RandomDistort, RandomExpand, RandomCrop, RandomFlip,
BatchRandomResize, NormalizeImage, Permute) on the bench's 640x480 JPEGs, one thread.

    RINGDET_BENCH_JPEG_DIR=/tmp/benchjpegs cargo bench -p ringdet-benches --bench coco_data
    OMP_NUM_THREADS=1 python coco_data_paddledet.py /tmp/benchjpegs [N]

Needs paddlepaddle==2.6.2 and paddledet==2.6.0 (its wheel installed with --no-deps plus numpy<1.24,
opencv-python-headless<4.11, scipy<1.11, shapely<2.1, pyyaml, typeguard, requests, tqdm, six,
terminaltables, pycocotools, matplotlib<3.9, lap); tracking-only imports are stubbed below.
"""
import json
import os
import sys
import time
import types


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        return _Stub(name)


for _m in ["sklearn", "sklearn.utils", "sklearn.utils.linear_assignment_", "visualdl", "pandas",
           "motmetrics", "motmetrics.math_util"]:
    sys.modules.setdefault(_m, _Stub(_m))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from ppdet.data.transform import batch_operators as bop  # noqa: E402
from ppdet.data.transform import operators as op  # noqa: E402

cv2.setNumThreads(1)
folder = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
boxes = json.load(open(os.path.join(folder, "boxes.json")))
jpegs = [open(os.path.join(folder, f"{i:02}.jpg"), "rb").read() for i in range(len(boxes))]

sample_ops = [op.Decode(), op.RandomDistort(), op.RandomExpand(fill_value=[123.675, 116.28, 103.53]),
              op.RandomCrop(), op.RandomFlip()]
batch_ops = [bop.BatchRandomResize(target_size=list(range(320, 769, 32)), random_size=True,
                                   random_interp=True, keep_ratio=False),
             op.NormalizeImage(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], is_scale=True),
             op.Permute()]
np.random.seed(0)


def one(i):
    b = np.array(boxes[i % len(boxes)] or np.zeros((0, 4)), dtype=np.float32).reshape(-1, 4)
    sample = {"image": jpegs[i % len(jpegs)], "gt_bbox": b, "gt_class": np.zeros((len(b), 1), np.int32),
              "is_crowd": np.zeros((len(b), 1), np.int32), "im_id": np.array([i])}
    for t in sample_ops:
        sample = t(sample)
    batch = [sample]
    for t in batch_ops:
        batch = t(batch)
    return batch[0]["image"]


for i in range(20):
    one(i)
cpu0, wall0 = time.process_time(), time.perf_counter()
for i in range(n):
    one(i)
cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
print(f"paddledet 2.6.0 decode+train_transforms 640x480: {n / cpu:.1f} images/s per core (CPU time), "
      f"{n / wall:.1f} images/s wall, {n} images")
