#!/usr/bin/env python3
"""Test tooling (not a cargo test; needs paddlepaddle): checks that a `.pdparams` written by
`ringdet convert` (ringdet_tensor::pdparams::save) loads in Paddle's own `paddle.load`, equal bit
for bit to the safetensors file it was converted from, and that a PP-YOLOE-s layer-shaped dict
takes it through `set_state_dict`, as PaddleDetection's `load_weight` does.

    python3 -m venv /tmp/pd3 && /tmp/pd3/bin/pip install paddlepaddle==3.3.1
    target/debug/ringdet convert testdata/ppyoloe-golden/weights.safetensors /tmp/golden.pdparams
    /tmp/pd3/bin/python scripts/check_pdparams_paddle.py testdata/ppyoloe-golden/weights.safetensors /tmp/golden.pdparams

Prints one line per check and exits non-zero on the first difference.
"""
import json
import struct
import sys

import numpy as np
import paddle

ST = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2", "I32": "<i4", "I64": "<i8",
      "U8": "u1"}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=ST[v["dtype"]]).reshape(v["shape"])
    return out


def main(st_path, pd_path):
    want = read_safetensors(st_path)
    got = paddle.load(pd_path)
    assert isinstance(got, dict), type(got)
    assert sorted(got) == sorted(want), set(got) ^ set(want)
    for k, w in want.items():
        g = got[k]
        g = g.numpy() if isinstance(g, paddle.Tensor) else np.asarray(g)
        assert g.shape == w.shape, (k, g.shape, w.shape)
        assert g.tobytes() == w.tobytes(), k
    print("paddle.load: %d tensors equal bit for bit to %s" % (len(want), st_path))
    numpy_view = paddle.load(pd_path, return_numpy=True)
    assert all(isinstance(v, np.ndarray) for v in numpy_view.values())
    print("paddle.load(return_numpy=True): %d numpy arrays" % len(numpy_view))

    # set_state_dict as PaddleDetection's load_weight does, into parameters of the same shapes.
    class Holder(paddle.nn.Layer):
        def __init__(self, shapes):
            super().__init__()
            self.names = {}
            for i, (k, s) in enumerate(shapes.items()):
                p = self.create_parameter(list(s) or [1], dtype="float32")
                setattr(self, "p%d" % i, p)
                self.names["p%d" % i] = k

    shapes = {k: v.shape for k, v in want.items() if v.ndim > 0}
    holder = Holder(shapes)
    state = {"p%d" % i: got[k] for i, k in enumerate(shapes)}
    missing, unexpected = holder.set_state_dict(state)
    assert not missing and not unexpected, (missing, unexpected)
    for attr, k in holder.names.items():
        assert getattr(holder, attr).numpy().tobytes() == want[k].tobytes(), k
    print("set_state_dict: %d parameters set" % len(shapes))


if __name__ == "__main__":
    main(*sys.argv[1:3])
