#!/usr/bin/env python3
"""Test tooling (not a cargo test; needs paddlepaddle + ppdet 2.6.0): checks that a
PaddleDetection checkpoint written by `ringdet convert CKPT OUT --to paddle-checkpoint` resumes
in PaddleDetection's own Trainer (`-r OUT`, i.e. `Trainer.resume_weights` -> `load_weight`):
the epoch, the raw weights (`.pdema`), the EMA (`.pdparams`, step = LR_Scheduler.last_epoch) and
every Momentum velocity arrive equal bit for bit to the files, then one more epoch trains.

The model is the one of testdata/pdparams/make_pdresume.py (width 0.0625, depth 0.2, 7 classes):
    target/debug/ringdet make-dataset shapes --out /tmp/pdres/shapes --train 8 --val 2 --size 96
    # a ringdet checkpoint of that model, e.g. by resuming the Paddle fixture for one epoch with a
    # config of the same model (see docs/train.md), then:
    target/debug/ringdet convert output/<cfg>/model_final /tmp/pdres/to_pd/model_final \\
        --to paddle-checkpoint -c CONFIG --paddle_names testdata/pdparams/resume/model_final.pdparams
    /tmp/pdv/bin/python scripts/check_pdresume_paddle.py /tmp/pdres/shapes /tmp/pdres/to_pd/model_final

Prints one line per check and exits non-zero on the first difference.
"""
import os
import pickle
import sys

import numpy as np
import paddle
import yaml
from ppdet.core.workspace import load_config, merge_config
from ppdet.engine import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def arrays(path):
    # Our own files: plain dicts of numpy arrays, ints, floats, strs (no code to run).
    with open(path, "rb") as f:
        return pickle.load(f)


def main(dataset, base):
    opt_file = arrays(base + ".pdopt")
    last_epoch = opt_file["last_epoch"]
    cfg = load_config(os.path.join(ROOT, "configs/demo/ppyoloe_shapes_demo.yml"))
    merge_config(yaml.safe_load(f"""
width_mult: 0.0625
depth_mult: 0.2
epoch: {last_epoch + 1}
snapshot_epoch: 1
save_dir: /tmp/pdres/check_out
TrainReader:
  batch_size: 4
TrainDataset:
  dataset_dir: {os.path.abspath(dataset)}
EvalDataset:
  dataset_dir: {os.path.abspath(dataset)}
"""))
    cfg["use_gpu"] = False
    paddle.set_device("cpu")
    trainer = Trainer(cfg, mode="train")
    trainer.resume_weights(base)
    assert trainer.start_epoch == last_epoch, (trainer.start_epoch, last_epoch)
    print("start_epoch %d == last_epoch of %s.pdopt" % (trainer.start_epoch, base))
    raw = arrays(base + ".pdema")
    for k, v in trainer.model.state_dict().items():
        assert v.numpy().tobytes() == raw[k].tobytes(), k
    print("model: %d tensors equal bit for bit to %s.pdema" % (len(raw) - 1, base))
    ema = arrays(base + ".pdparams")
    for k, v in trainer.ema.state_dict.items():
        assert np.asarray(v.numpy()).tobytes() == ema[k].tobytes(), k
    step = opt_file["LR_Scheduler"]["last_epoch"]
    assert trainer.ema.step == step, (trainer.ema.step, step)
    print("EMA: %d tensors equal to %s.pdparams, step %d" % (len(ema) - 1, base, step))
    holder = trainer.optimizer._accumulators_holder
    n = 0
    for p in trainer.model.parameters():
        if p.stop_gradient:
            continue
        key = p.name + "_velocity_0"
        got = holder[key]
        got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
        want = opt_file[key]
        assert got.tobytes() == want.tobytes(), key
        n += 1
    print("optimizer: %d velocities equal bit for bit to %s.pdopt" % (n, base))
    assert trainer.optimizer._learning_rate.last_epoch == step
    print("LR scheduler at step %d" % step)
    _fwd = trainer.model.forward

    def _forward(inputs):
        if isinstance(inputs, dict) and "gt_class" in inputs:
            inputs["gt_class"] = inputs["gt_class"].astype("int64")
        return _fwd(inputs)

    trainer.model.forward = _forward
    trainer.train(validate=False)
    print("trained epoch %d after the resume" % last_epoch)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
