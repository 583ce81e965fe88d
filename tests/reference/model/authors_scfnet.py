"""Forward reference for crates/scfnet-model from the authors' own Paddle code (run by hand).

    pip install paddlepaddle==3.3.1 numpy==2.3.4
    # the authors' repository zhangjinCV/KD-SCFNet, e.g. from a clone:
    #   git -C KD-SCFNet archive HEAD SCFNet/net.py SCFNet/backbones | tar -x -C /tmp/kd
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/model/authors_scfnet.py

Builds the released `SCFNet` class of `net.py` (student `M3_0.5` and teacher `R50`; the pretrained
backbone loads are stubbed, nothing is downloaded), fills every tensor with the synthetic value of
its name in our convention (Paddle names with BN `_mean`/`_variance` → `running_mean`/`running_var`;
see tests/reference/backbones/synthetic.py), runs the four side outputs on synthetic inputs (a
square and a non-square one) in eval mode (float32) and train mode (float64), and writes their
summaries to tests/data/model/authors_scfnet.json.
"""

import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import paddle

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "backbones"))
import synthetic  # noqa: E402
from common import summarise_array  # noqa: E402

OUT = HERE.parents[1] / "data" / "model" / "authors_scfnet.json"


def our_name(name):
    return name.replace("._mean", ".running_mean").replace("._variance", ".running_var")


def load_authors_net():
    root = Path(os.environ["KDSCFNET_DIR"])
    sys.path.insert(0, str(root))
    # No pretrained weights: the synthetic ones replace them anyway.
    original_resnet50 = paddle.vision.models.resnet50
    paddle.vision.models.resnet50 = lambda *a, **k: original_resnet50(pretrained=False)
    paddle.load = lambda *a, **k: {}
    import collections
    import collections.abc

    collections.Callable = collections.abc.Callable  # SwinT.py predates Python 3.10
    import net  # noqa: E402  (the authors' net.py)

    return net


def build(net, model_type, dtype):
    model = net.SCFNet(SimpleNamespace(model_type=model_type))
    if dtype != "float32":
        model.to(dtype=dtype)
    state = {k: paddle.to_tensor(synthetic.values(our_name(k), tuple(v.shape)).astype(dtype))
             for k, v in model.state_dict().items()}
    model.set_state_dict(state)
    return model, state


def main():
    paddle.set_device("cpu")
    net = load_authors_net()
    out = {}
    for kind, model_type in (("student", "M3_0.5"), ("r50", "R50")):
        model, state = build(net, model_type, "float32")
        runs = []
        for shape in [(2, 3, 64, 64), (1, 3, 96, 64)]:
            name = "input:" + "x".join(map(str, shape))
            for train, dtype in ((False, "float32"), (True, "float64")):
                model, _ = build(net, model_type, dtype)
                model.train() if train else model.eval()
                x = paddle.to_tensor(synthetic.image(name, shape).astype(dtype))
                with paddle.no_grad():
                    maps = model(x)
                runs.append(dict(input=name, shape=list(shape), train=train, dtype=dtype,
                                 maps=[summarise_array(m.numpy()) for m in maps]))
        out[kind] = dict(names=sorted(our_name(k) for k in state), runs=runs)
        print(kind, len(state), "tensors")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(generator="tests/reference/model/authors_scfnet.py", paddle=paddle.__version__,
                                   networks=out), separators=(",", ":")) + "\n")
    print(f"-> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
