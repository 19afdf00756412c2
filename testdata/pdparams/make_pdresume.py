"""Makes testdata/pdparams/resume/: a real PaddleDetection 2.6.0 checkpoint of a tiny PP-YOLOE,
written by PaddleDetection's own Trainer and `save_model` (model_final.pdparams = EMA weights,
.pdema = raw weights, .pdopt = Momentum state + LR_Scheduler + last_epoch), for the `-r` tests of
crates/train (tests/pd_resume.rs).

Usage (from the repository root; Paddle is used for making fixtures only):
    target/debug/ringdet make-dataset shapes --out /tmp/pdres/shapes --train 8 --val 2 --size 96
    /tmp/pdv/bin/python testdata/pdparams/make_pdresume.py /tmp/pdres/shapes
"""
import os, shutil, sys

import paddle
import yaml
from ppdet.core.workspace import load_config, merge_config
from ppdet.engine import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "testdata", "pdparams", "resume")
dataset = os.path.abspath(sys.argv[1])
work = "/tmp/pdres/out"

paddle.seed(0)
cfg = load_config(os.path.join(ROOT, "configs/demo/ppyoloe_shapes_demo.yml"))
merge_config(yaml.safe_load(f"""
width_mult: 0.0625
depth_mult: 0.2
epoch: 1
snapshot_epoch: 1
save_dir: {work}
LearningRate:
  base_lr: 0.004
  schedulers:
    - name: CosineDecay
      max_epochs: 1
    - name: LinearWarmup
      start_factor: 0.
      steps: 1
      epochs: null
TrainReader:
  batch_size: 4
TrainDataset:
  dataset_dir: {dataset}
EvalDataset:
  dataset_dir: {dataset}
"""))
cfg["use_gpu"] = False
paddle.set_device("cpu")
trainer = Trainer(cfg, mode="train")
# Paddle 3.x with ppdet 2.6.0: PadGT's int32 gt_class meets int64 index math in the assigners
# (benches/peers/paddledet/paddle_train.py does the same); the values are unchanged.
_fwd = trainer.model.forward


def _forward(inputs):
    if isinstance(inputs, dict) and "gt_class" in inputs:
        inputs["gt_class"] = inputs["gt_class"].astype("int64")
    return _fwd(inputs)


trainer.model.forward = _forward
trainer.train(validate=False)
os.makedirs(OUT, exist_ok=True)
src = os.path.join(work, "ppyoloe_shapes_demo", "model_final")
for ext in ("pdparams", "pdema", "pdopt"):
    shutil.copy(f"{src}.{ext}", os.path.join(OUT, f"model_final.{ext}"))
print("wrote", OUT, sorted(os.listdir(OUT)))
