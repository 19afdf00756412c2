#!/usr/bin/env python3
"""Makes the `.pdparams` / `.pdopt` / `.pdema` fixtures of ringdet-tensor's pdparams tests with
Paddle's own `paddle.save` (fixtures only: paddle is no dependency of ringdet).

Run it once under PaddlePaddle 3.x (numpy 2) and once under PaddlePaddle 2.6 (numpy 1), from the
repository root; each run writes the files of its Paddle major version (`paddle3_*`, `paddle2_*`):

    python3 -m venv /tmp/pd3 && /tmp/pd3/bin/pip install paddlepaddle==3.3.1
    /tmp/pd3/bin/python testdata/pdparams/make_pdparams.py
    python3 -m venv /tmp/pd2 && /tmp/pd2/bin/pip install paddlepaddle==2.6.2 'numpy<2'
    /tmp/pd2/bin/python testdata/pdparams/make_pdparams.py

Files (see README.md beside this script):
  <tag>_p2.pdparams, <tag>_p3.pdparams, <tag>_p4.pdparams
      a subset of testdata/ppyoloe-golden/weights.safetensors (the names of SUBSET_PREFIXES),
      paddle.save'd as a state dict at pickle protocols 2, 3 and 4;
  <tag>_dtypes.pdparams + <tag>_dtypes.safetensors
      one tensor per dtype Paddle saves (f32 f64 f16 bf16 i32 i64 u8 bool, a 0-d tensor, a
      Fortran-ordered array) and the same bytes as safetensors, the expected values;
  <tag>.pdopt + <tag>_pdopt.safetensors
      a real Momentum optimizer's state_dict after one step (LR scheduler state, velocities)
      plus PaddleDetection's `last_epoch` and a nested `master_weights` dict, and the expected
      tensors under the names ringdet gives them (`outer/inner` for nested ones);
  <tag>.pdema     the subset again, as PaddleDetection's EMA companion file;
  <tag>_bigparam.pdparams
      a parameter split into flat slices under `UnpackBigParamInfor@@`, as Paddle's
      `_unpack_saved_dict` does for parameters over 1 GiB at protocols 2-3 (here with small
      slices, written with pickle as Paddle's legacy save does; checked: `paddle.load` joins
      them back into backbone.stem.conv2.conv.weight);
  evil_p2.pdparams, evil_p4.pdparams (paddle 3 run only)
      a dict whose value pickles as a call of os.system: must be refused, naming the global.
"""
import collections
import json
import os
import pickle
import struct
import sys

import numpy as np
import paddle

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "ppyoloe-golden", "weights.safetensors")
SUBSET_PREFIXES = (
    "backbone.stem.",
    "backbone.stages.0.blocks.0.",
    "yolo_head.proj_conv.",
)
ST_DTYPES = {
    "float32": "F32", "float64": "F64", "float16": "F16", "int32": "I32",
    "int64": "I64", "uint8": "U8", "bool": "BOOL",
}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = collections.OrderedDict()
    names = sorted((k for k in header if k != "__metadata__"),
                   key=lambda k: header[k]["data_offsets"][0])
    for k in names:
        v = header[k]
        assert v["dtype"] == "F32", k
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(v["shape"])
    return out


def write_safetensors(path, tensors):
    """tensors: list of (name, numpy array, safetensors dtype name)."""
    header, blobs, off = {}, [], 0
    for name, arr, dt in tensors:
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    tag = "paddle%s" % paddle.__version__.split(".")[0]
    out = lambda name: os.path.join(HERE, name)
    golden = read_safetensors(GOLDEN)
    subset = collections.OrderedDict(
        (k, paddle.to_tensor(v)) for k, v in golden.items() if k.startswith(SUBSET_PREFIXES))
    for proto in (2, 3, 4):
        paddle.save(subset, out("%s_p%d.pdparams" % (tag, proto)), protocol=proto)
    paddle.save(subset, out("%s.pdema" % tag))

    # One tensor per dtype, from the stem's first conv weights.
    w = golden["backbone.stem.conv1.conv.weight"]
    t = paddle.to_tensor(w)
    dtypes = collections.OrderedDict()
    expect = []
    for name, pt, st in [
        ("f32", t, "F32"),
        ("f64", t.astype("float64"), "F64"),
        ("f16", t.astype("float16"), "F16"),
        ("bf16", t.astype("bfloat16"), "BF16"),
        ("i32", (t * 1000).astype("int32"), "I32"),
        ("i64", (t * 1e6).astype("int64"), "I64"),
        ("u8", (t.abs() * 1000).astype("uint8"), "U8"),
        ("bool", t > 0, "U8"),
        ("scalar", paddle.to_tensor(np.float32(2.5)), "F32"),
    ]:
        dtypes[name] = pt
        arr = pt.numpy()  # bfloat16 comes out as uint16, the bits ringdet reads as BF16
        expect.append((name, arr.astype(np.uint8) if st == "U8" and arr.dtype == bool else arr, st))
    # paddle.save of a dict holding a plain numpy array keeps its memory order: column-major.
    fortran = np.asfortranarray(w.reshape(16, 27))
    dtypes["fortran"] = fortran
    expect.append(("fortran", np.ascontiguousarray(fortran), "F32"))
    paddle.save(dtypes, out("%s_dtypes.pdparams" % tag), protocol=4)
    write_safetensors(out("%s_dtypes.safetensors" % tag), expect)

    # A Momentum optimizer's state after one step, as PaddleDetection saves it.
    paddle.seed(0)
    lin = paddle.nn.Linear(4, 3)
    sched = paddle.optimizer.lr.PiecewiseDecay([10], [0.01, 0.001])
    opt = paddle.optimizer.Momentum(learning_rate=sched, parameters=lin.parameters(),
                                    momentum=0.9)
    lin(paddle.ones([2, 4])).sum().backward()
    opt.step()
    sd = opt.state_dict()
    sd["last_epoch"] = 7
    sd["master_weights"] = {"linear_0.w_0": lin.weight.detach().astype("float32")}
    paddle.save(sd, out("%s.pdopt" % tag))
    expect = []

    def flat(prefix, v):
        if isinstance(v, (paddle.Tensor, np.ndarray)):
            a = v.numpy() if isinstance(v, paddle.Tensor) else v
            expect.append((prefix, a, ST_DTYPES[str(a.dtype)]))
        elif isinstance(v, dict):
            for k, x in v.items():
                flat("%s/%s" % (prefix, k), x)

    for k, v in sd.items():
        flat(k, v)
    write_safetensors(out("%s_pdopt.safetensors" % tag), expect)

    # A parameter in slices, as _unpack_saved_dict writes one over 1 GiB.
    key = "backbone.stem.conv2.conv.weight"
    flat = golden[key].flatten()
    big = collections.OrderedDict()
    big["backbone.stem.conv1.conv.weight"] = golden["backbone.stem.conv1.conv.weight"]
    parts = []
    for i in range(0, len(flat), 1000):
        parts.append("%s@@.%d" % (key, i // 1000))
        big[parts[-1]] = flat[i:i + 1000]
    big["UnpackBigParamInfor@@"] = {key: {"OriginShape": golden[key].shape, "slices": parts}}
    path = out("%s_bigparam.pdparams" % tag)
    with open(path, "wb") as f:
        pickle.dump(dict(big), f, protocol=2)
    back = paddle.load(path, return_numpy=True)
    assert sorted(back) == sorted([key, "backbone.stem.conv1.conv.weight"]), sorted(back)
    assert back[key].tobytes() == golden[key].tobytes()

    if tag == "paddle3":
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo this must never run",))

        for proto in (2, 4):
            with open(out("evil_p%d.pdparams" % proto), "wb") as f:
                pickle.dump({"backbone.stem.conv1.conv.weight": Evil()}, f, protocol=proto)
    print("wrote %s fixtures to %s" % (tag, HERE), file=sys.stderr)


if __name__ == "__main__":
    main()
