"""Forward reference for crates/scfnet-model from the authors' own Paddle code (run by hand).

    pip install paddlepaddle==3.3.1 numpy==2.3.4
    # the authors' repository zhangjinCV/KD-SCFNet, e.g. from a clone:
    #   git -C KD-SCFNet archive HEAD SCFNet/net.py SCFNet/backbones | tar -x -C /tmp/kd
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/model/authors_scfnet.py

Builds the released `SCFNet` class of `net.py` (student `M3_0.5`, teachers `R50` and `ST`; the
pretrained backbone loads are stubbed, nothing is downloaded), fills every tensor with the
synthetic value of its name in our convention (Paddle names with BN `_mean`/`_variance` →
`running_mean`/`running_var`; Swin in timm's layout with Linear weights transposed; see
tests/reference/backbones/synthetic.py), runs the four side outputs on synthetic inputs (small
square and non-square ones in eval mode, float32, and train mode, float64; 352x352 in eval mode;
384x384 for Swin), and writes their summaries to tests/data/model/authors_scfnet.json.
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
EVAL = [(False, "float32")]
BOTH = [(False, "float32"), (True, "float64")]


def our_name(name):
    return name.replace("._mean", ".running_mean").replace("._variance", ".running_var")


SWIN_BUFFERS = ("relative_position_index", "attn_mask")
SWIN_LINEAR = ("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight", "reduction.weight")


def scfnet_our_name(name):
    """Our name of an authors' SCFNet tensor (None: a buffer or unused layer we do not build)."""
    if not name.startswith("bkbone."):
        return our_name(name)
    rest = name[len("bkbone."):]
    swin = rest.startswith(("patch_embed.", "layers.", "norm.", "head."))
    if not swin:
        return our_name(name)
    if rest.endswith(SWIN_BUFFERS) or rest.startswith(("norm.", "head.")):
        return None
    parts = rest.split(".")
    if parts[0] == "layers" and parts[2] == "downsample":
        parts[1] = str(int(parts[1]) + 1)
    return "bkbone." + ".".join(parts)


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
    import backbones.SwinT as swint  # noqa: E402

    # Release bug: SCFNet.init_weight calls bkbone.init_weight(), which SwinTransformer lacks.
    swint.SwinTransformer.init_weight = lambda self: None
    return net


def build(net, model_type, dtype):
    model = net.SCFNet(SimpleNamespace(model_type=model_type))
    if dtype != "float32":
        model.to(dtype=dtype)
    state = {}
    for k, v in model.state_dict().items():
        ours = scfnet_our_name(k)
        shape = tuple(v.shape)
        if ours is None:
            continue  # buffers stay as built; the final norm is never applied
        if model_type == "ST" and k.startswith("bkbone.layers.") and k.endswith(SWIN_LINEAR):
            a = synthetic.values(ours, (shape[1], shape[0])).T  # Paddle Linear: [in, out]
        else:
            a = synthetic.values(ours, shape)
        state[k] = paddle.to_tensor(np.ascontiguousarray(a).astype(dtype))
    model.set_state_dict(state)
    return model, state


def main():
    paddle.set_device("cpu")
    net = load_authors_net()
    out = {}
    plans = {
        # (shape, [(train, dtype)]): small inputs in both modes, the paper's size in eval mode.
        "student": [((2, 3, 64, 64), BOTH), ((1, 3, 96, 64), BOTH), ((1, 3, 352, 352), EVAL)],
        "r50": [((2, 3, 64, 64), BOTH), ((1, 3, 96, 64), BOTH), ((1, 3, 352, 352), EVAL)],
        "swinb": [((1, 3, 384, 384), EVAL)],  # the authors' Swin takes 384x384 only
    }
    for kind, model_type in (("student", "M3_0.5"), ("r50", "R50"), ("swinb", "ST")):
        model, state = build(net, model_type, "float32")
        runs = []
        for shape, modes in plans[kind]:
            name = "input:" + "x".join(map(str, shape))
            for train, dtype in modes:
                model, _ = build(net, model_type, dtype)
                model.train() if train else model.eval()
                x = paddle.to_tensor(synthetic.image(name, shape).astype(dtype))
                with paddle.no_grad():
                    maps = model(x)
                runs.append(dict(input=name, shape=list(shape), train=train, dtype=dtype,
                                 maps=[summarise_array(m.numpy()) for m in maps]))
        out[kind] = dict(names=sorted(scfnet_our_name(k) for k in state), runs=runs)
        print(kind, len(state), "tensors")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(generator="tests/reference/model/authors_scfnet.py", paddle=paddle.__version__,
                                   networks=out), separators=(",", ":")) + "\n")
    print(f"-> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
