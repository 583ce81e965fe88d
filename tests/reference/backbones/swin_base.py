"""timm Swin-B (patch 4, window 12) reference for crates/scfnet-backbones (run by hand).

    python3 tests/reference/backbones/swin_base.py

Fills timm's swin_base_patch4_window12_384 (built for the test's input size) with the synthetic
weights of synthetic.py and writes summaries of the SCFNet taps to tests/data/backbones/swin_base.json:
x2 = patch embedding after its norm, x3 / x4 = outputs of the patch merging at the start of
stages 2 / 3, x5 = stage 4 output (x1 = x2). Eval mode, float32, at 384x384 (the original
setting) and 416x384 (non-square; stage maps not multiples of the window, so timm pads).
"""

import json
import sys
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).parent))
import synthetic  # noqa: E402
from common import summarise  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "data" / "backbones" / "swin_base.json"


def to_nchw(x):
    return x.permute(0, 3, 1, 2)


def features(m, x):
    y = m.patch_embed(x)  # (B, H/4, W/4, C) after the patch norm
    x2 = to_nchw(y)
    taps = []
    for i, stage in enumerate(m.layers):
        y = stage.downsample(y)
        if i in (1, 2):
            taps.append(to_nchw(y))
        y = stage.blocks(y)
    return [x2, x2] + taps + [to_nchw(y)]


def build(size):
    m = timm.create_model("swin_base_patch4_window12_384", pretrained=False, num_classes=0, img_size=size)
    names = synthetic.fill(m)
    return m.eval(), names


def main():
    torch.set_num_threads(2)
    runs = []
    m, names = build((384, 384))
    total = sum(p.numel() for p in m.parameters())
    final_norm = sum(p.numel() for n, p in m.named_parameters() if n.startswith("norm."))
    for shape in [(1, 3, 384, 384), (1, 3, 416, 384)]:
        name = "input:" + "x".join(map(str, shape))
        m, _ = build(shape[2:])
        x = torch.from_numpy(synthetic.image(name, shape)).float()
        with torch.no_grad():
            maps = features(m, x)
        runs.append(dict(input=name, shape=list(shape), train=False, dtype="float32", maps=[summarise(t) for t in maps]))
        print(name, [tuple(t.shape) for t in maps])
    OUT.write_text(json.dumps(dict(generator="tests/reference/backbones/swin_base.py", torch=torch.__version__,
                                   timm=timm.__version__, trainable_params=total - final_norm, bn_running_stats=0,
                                   timm_total_params=total, final_norm_params=final_norm,
                                   names=sorted(n for n in names if not n.startswith("norm.")), runs=runs),
                              separators=(",", ":")) + "\n")
    print(f"params {total} (final norm {final_norm}) -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
