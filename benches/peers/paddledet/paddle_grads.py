# One PaddleDetection 2.6.0 training step's parameter gradients on the first batch written by
# the `paddle_parity` example, saved as OUT/paddle_grads.safetensors for
# `paddle_parity DATASET OUT grads` to compare. Usage: python paddle_grads.py CONFIG OUT
import sys
import numpy as np
import paddle
from safetensors.numpy import load_file, save_file
from ppdet.core.workspace import load_config, create

cfg_path, out = sys.argv[1], sys.argv[2]
cfg = load_config(cfg_path)
cfg['PPYOLOEHead']['static_assigner_epoch'] = 4
model = create(cfg.architecture)
w = load_file(f'{out}/parity_init.safetensors')
model.set_state_dict({k: w[k] for k in model.state_dict()})
b = load_file(f'{out}/parity_batches.safetensors')
model.train()
o = model({'image': paddle.to_tensor(b['b0.image']), 'gt_bbox': paddle.to_tensor(b['b0.gt_bbox']),
           'gt_class': paddle.to_tensor(b['b0.gt_class'].astype(np.int64)),
           'pad_gt_mask': paddle.to_tensor(b['b0.pad_gt_mask']), 'epoch_id': 5})
o['loss'].backward()
g = {n: p.grad.numpy().astype(np.float32) for n, p in model.named_parameters() if p.grad is not None}
save_file(g, f'{out}/paddle_grads.safetensors')
print('saved', len(g), 'gradients; loss', float(o['loss']))
