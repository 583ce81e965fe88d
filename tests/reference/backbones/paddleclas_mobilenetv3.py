"""PaddleClas MobileNetV3-Large x0.5 reference for crates/scfnet-backbones (run by hand).

    pip install paddlepaddle==3.3.1
    pip download --no-deps -d /tmp/pcls paddleclas==2.6.0 && unzip -q /tmp/pcls/*.whl -d /tmp/pcls/ex
    PADDLECLAS_DIR=/tmp/pcls/ex/paddleclas python3 tests/reference/backbones/paddleclas_mobilenetv3.py

Loads PaddleClas' own legendary `mobilenet_v3.py` (the file the KD-SCFNet student is built from)
without the rest of the package, fills it with the synthetic weights of synthetic.py under our
names (Paddle module paths; BN `_mean`/`_variance` named `running_mean`/`running_var`), runs it
on synthetic inputs and writes summaries of x1..x5 (stem, blocks 2, 5, 11, 14) to
tests/data/backbones/mobilenetv3.json: eval mode in float32, train mode in float64.
"""

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import paddle

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402
from common import summarise_array  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "data" / "backbones" / "mobilenetv3.json"
TAPS = (2, 5, 11, 14)


def load_paddleclas_mobilenetv3(root):
    """Imports ppcls/arch/backbone/legendary_models/mobilenet_v3.py with stubbed parents."""
    root = Path(root)
    pkg_dirs = {
        "ppcls": root / "ppcls",
        "ppcls.arch": root / "ppcls/arch",
        "ppcls.arch.backbone": root / "ppcls/arch/backbone",
        "ppcls.arch.backbone.base": root / "ppcls/arch/backbone/base",
        "ppcls.arch.backbone.legendary_models": root / "ppcls/arch/backbone/legendary_models",
        "ppcls.utils": root / "ppcls/utils",
    }
    for name, path in pkg_dirs.items():
        mod = types.ModuleType(name)
        mod.__path__ = [str(path)]  # submodules load from the real files; __init__ is skipped
        sys.modules[name] = mod
    save_load = types.ModuleType("ppcls.utils.save_load")
    save_load.load_dygraph_pretrain = lambda *a, **k: None
    sys.modules["ppcls.utils.save_load"] = save_load
    name = "ppcls.arch.backbone.legendary_models.mobilenet_v3"
    spec = importlib.util.spec_from_file_location(name, pkg_dirs["ppcls.arch.backbone.legendary_models"] / "mobilenet_v3.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    importlib.import_module("ppcls.utils.logger").init_logger()
    return module


def our_name(paddle_name):
    return paddle_name.replace("._mean", ".running_mean").replace("._variance", ".running_var")


def build(module, dtype):
    net = module.MobileNetV3_large_x0_5()
    if dtype != "float32":
        net.to(dtype=dtype)  # Paddle's legacy BatchNorm creates float32 parameters regardless
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith(("last_second_conv", "last_conv", "fc")):
            continue
        state[k] = paddle.to_tensor(synthetic.values(our_name(k), tuple(v.shape)).astype(dtype))
    net.set_state_dict(state)
    return net, state


def features(net, x):
    x1 = net.conv(x)
    y, taps = x1, []
    for i, block in enumerate(net.blocks):
        y = block(y)
        if i in TAPS:
            taps.append(y)
    return [x1] + taps


def main():
    module = load_paddleclas_mobilenetv3(os.environ["PADDLECLAS_DIR"])
    paddle.set_device("cpu")
    net, state = build(module, "float32")
    trainable = sum(int(np.prod(v.shape)) for k, v in state.items() if not k.endswith(("_mean", "_variance")))
    stats = sum(int(np.prod(v.shape)) for k, v in state.items() if k.endswith(("_mean", "_variance")))
    runs = []
    for shape in [(2, 3, 64, 64), (1, 3, 96, 80)]:
        name = "input:" + "x".join(map(str, shape))
        for train, dtype in ((False, "float32"), (True, "float64")):
            net, _ = build(module, dtype)
            net.train() if train else net.eval()
            x = paddle.to_tensor(synthetic.image(name, shape).astype(dtype))
            with paddle.no_grad():
                maps = features(net, x)
            runs.append(dict(input=name, shape=list(shape), train=train, dtype=dtype,
                             maps=[summarise_array(m.numpy()) for m in maps]))
    OUT.write_text(json.dumps(dict(generator="tests/reference/backbones/paddleclas_mobilenetv3.py",
                                   paddle=paddle.__version__, paddleclas="2.6.0", trainable_params=trainable,
                                   bn_running_stats=stats, names=sorted(our_name(k) for k in state), runs=runs),
                              separators=(",", ":")) + "\n")
    print(f"params {trainable}, running stats {stats} -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
