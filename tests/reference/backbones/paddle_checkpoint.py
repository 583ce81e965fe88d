"""Paddle checkpoints for the .pdparams reader and converter tests (run by hand).

    pip install paddlepaddle==3.3.1   # and PaddleClas as in paddleclas_mobilenetv3.py
    PADDLECLAS_DIR=/tmp/pcls/ex/paddleclas python3 tests/reference/backbones/paddle_checkpoint.py

Writes with paddle.save:
- tests/data/backbones/paddle_mixed_p4.pdparams and ..._p2.pdparams (pickle protocols 4 and 2):
  float32 / float64 / float16 / int64 arrays of assorted shapes (one over 255 bytes, one 0-d, a
  Linear weight in Paddle's [in, out] layout), values synthetic.values(name, shape) (ints: arange);
- tests/data/backbones/mobilenetv3_x0_35.pdparams: PaddleClas' MobileNetV3_large_x0_35 state dict
  (the student's architecture at a smaller width, to keep the file small) with synthetic values
  under our names, in Paddle's names (`_mean`, `_variance`), keeping `last_second_conv` but not the
  large `last_conv` / `fc` of the classifier.
"""

import os
import sys
from pathlib import Path

import numpy as np
import paddle

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402
from paddleclas_mobilenetv3 import load_paddleclas_mobilenetv3, our_name  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "data" / "backbones"

MIXED = [
    ("conv.weight", (4, 3, 2, 2), "float32"),
    ("bn._mean", (5,), "float32"),
    ("bn._variance", (5,), "float32"),
    ("fc.weight", (6, 2), "float32"),  # a Paddle Linear weight: [in, out]
    ("big.bias", (70,), "float32"),  # 280 bytes: BINBYTES instead of SHORT_BINBYTES
    ("scalar.bias", (), "float64"),
    ("double.weight", (2, 3), "float64"),
    ("half.weight", (3, 2), "float16"),
    ("steps", (2,), "int64"),
]


def mixed():
    sd = {}
    for name, shape, dtype in MIXED:
        if dtype == "int64":
            a = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) + 7
        else:
            a = synthetic.values(name, shape).astype(dtype)
        sd[name] = paddle.to_tensor(a)
    return sd


def main():
    paddle.set_device("cpu")
    sd = mixed()
    paddle.save(sd, str(OUT / "paddle_mixed_p4.pdparams"), protocol=4)
    paddle.save(sd, str(OUT / "paddle_mixed_p2.pdparams"), protocol=2)

    module = load_paddleclas_mobilenetv3(os.environ["PADDLECLAS_DIR"])
    net = module.MobileNetV3_large_x0_35()
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith(("last_conv", "fc")):
            continue
        state[k] = paddle.to_tensor(synthetic.values(our_name(k), tuple(v.shape)).astype("float32"))
    paddle.save(state, str(OUT / "mobilenetv3_x0_35.pdparams"))
    for f in ("paddle_mixed_p4.pdparams", "paddle_mixed_p2.pdparams", "mobilenetv3_x0_35.pdparams"):
        print(f, (OUT / f).stat().st_size, "bytes")
    print(len(state), "tensors in the MobileNetV3 file")


if __name__ == "__main__":
    main()
