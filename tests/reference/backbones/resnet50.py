"""timm ResNet-50 reference for crates/scfnet-backbones (run by hand, never by CI).

    python3 tests/reference/backbones/resnet50.py

Fills timm's resnet50 with the synthetic weights of synthetic.py, runs it on synthetic inputs (batch
2 at 64x64, and the non-square 1x3x96x80) in eval mode (float32) and in train mode (float64: with
batch statistics over a handful of values per channel at stride 32, float32 rounding is amplified to
~1e-4 by the last stage, which would hide real errors), and writes, for x1..x5, each map's shape,
mean, std, max |value| and a strided sample of its values to tests/data/backbones/resnet50.json.
Also records the parameter counts.
"""

import json
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402
from common import summarise  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "data" / "backbones" / "resnet50.json"


def features(m, x):
    x1 = m.act1(m.bn1(m.conv1(x)))
    y = m.maxpool(x1)
    x2 = m.layer1(y)
    x3 = m.layer2(x2)
    x4 = m.layer3(x3)
    x5 = m.layer4(x4)
    return [x1, x2, x3, x4, x5]


def main():
    torch.set_num_threads(2)
    model = timm.create_model("resnet50", pretrained=False, num_classes=0)
    synthetic.fill(model)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    runs = []
    for shape in [(2, 3, 64, 64), (1, 3, 96, 80)]:
        name = "input:" + "x".join(map(str, shape))
        for train, dtype in ((False, torch.float32), (True, torch.float64)):
            x = torch.from_numpy(synthetic.image(name, shape)).to(dtype)
            m = timm.create_model("resnet50", pretrained=False, num_classes=0).to(dtype)
            synthetic.fill(m)
            m.train(train)
            with torch.no_grad():
                maps = features(m, x)
            runs.append(dict(input=name, shape=list(shape), train=train, dtype=str(dtype).split(".")[1],
                             maps=[summarise(t) for t in maps]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(generator="tests/reference/backbones/resnet50.py", torch=torch.__version__,
                                   timm=timm.__version__, trainable_params=params, bn_running_stats=buffers,
                                   runs=runs), separators=(",", ":")) + "\n")
    print(f"params {params}, running stats {buffers} -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
