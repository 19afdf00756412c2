# PaddleDetection 2.6.0's PP-YOLOE on the initial weights and batches written by
# `cargo run --release -p ringdet-train --example paddle_parity -- DATASET OUT`: 40 momentum-SGD
# steps (lr 0.0025, momentum 0.9, L2 5e-4 with BN undecayed as PaddleDetection's ParamAttr says),
# task-aligned assigner (epoch 5 >= static_assigner_epoch 4); prints the losses per step.
# Usage: python paddle_steps.py CONFIG OUT
import sys
import numpy as np
import paddle
from safetensors.numpy import load_file
from ppdet.core.workspace import load_config, create

cfg_path, out = sys.argv[1], sys.argv[2]
cfg = load_config(cfg_path)
cfg['PPYOLOEHead']['static_assigner_epoch'] = 4
model = create(cfg.architecture)
w = load_file(f'{out}/parity_init.safetensors')
model.set_state_dict({k: w[k] for k in model.state_dict()})
b = load_file(f'{out}/parity_batches.safetensors')
nb = len([k for k in b if k.endswith('.image')])
opt = paddle.optimizer.Momentum(learning_rate=0.0025, momentum=0.9, parameters=model.parameters(),
                                weight_decay=paddle.regularizer.L2Decay(0.0005))
model.train()


def batch(i):
    # gt_class as int64: Paddle 3.x with ppdet 2.6.0 (see testdata/ppyoloe-golden/README.md).
    return {'image': paddle.to_tensor(b[f'b{i}.image']), 'gt_bbox': paddle.to_tensor(b[f'b{i}.gt_bbox']),
            'gt_class': paddle.to_tensor(b[f'b{i}.gt_class'].astype(np.int64)),
            'pad_gt_mask': paddle.to_tensor(b[f'b{i}.pad_gt_mask']), 'epoch_id': 5}


for step in range(40):
    o = model(batch(step % nb))
    o['loss'].backward()
    opt.step()
    opt.clear_grad()
    f = lambda k: float(o[k].numpy().reshape(-1)[0])
    print(f"PADDLE step {step} loss {f('loss'):.5f} cls {f('loss_cls'):.5f} "
          f"iou {f('loss_iou'):.5f} dfl {f('loss_dfl'):.5f}", flush=True)
