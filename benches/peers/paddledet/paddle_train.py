# PaddleDetection 2.6.0's own trainer (what tools/train.py runs) on the demo config, CPU, for
# measuring its images/s beside ringdet's. Usage: paddle_train.py CONFIG [key=value ...]
import sys, os, paddle
from ppdet.core.workspace import load_config, merge_config
from ppdet.engine import Trainer
from ppdet.utils.cli import merge_args
cfg = load_config(sys.argv[1])
opts = {}
for kv in sys.argv[2:]:
    k, v = kv.split('=', 1)
    import yaml
    d = opts
    ks = k.split('.')
    for p in ks[:-1]:
        d = d.setdefault(p, {})
    d[ks[-1]] = yaml.safe_load(v)
merge_config(opts)
cfg['use_gpu'] = False
paddle.set_device('cpu')
trainer = Trainer(cfg, mode='train')
# Paddle 3.x with ppdet 2.6.0: PadGT's int32 gt_class meets int64 index math in the assigners
# (the golden set's README documents the same workaround); the values are unchanged.
_fwd = trainer.model.forward
def _forward(inputs):
    if isinstance(inputs, dict) and 'gt_class' in inputs:
        inputs['gt_class'] = inputs['gt_class'].astype('int64')
    return _fwd(inputs)
trainer.model.forward = _forward
trainer.train(validate=False)
