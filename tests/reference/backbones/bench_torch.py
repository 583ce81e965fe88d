"""PyTorch timing of the backbones, for `cargo xtask bench-backbones --python` (run by hand).

    python3 tests/reference/backbones/bench_torch.py --threads 2 --size 352 --repeat 5

Times eval-mode forward passes (no autograd) of timm's resnet50, MobileNetV3-Large x0.5 (timm's
generator with channel multiplier 0.5: close to, not identical with, the PaddleClas variant) and
swin_base_patch4_window12_384 (at 384x384, its native size) on a 1x3xSxS input, and prints one
line per model: `torch NAME: X ms`.
"""

import argparse
import time

import timm
import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from timm.models.mobilenetv3 import _gen_mobilenet_v3

    models = [
        ("resnet50", lambda: timm.create_model("resnet50", pretrained=False, num_classes=0), a.size),
        ("mobilenetv3", lambda: _gen_mobilenet_v3("mobilenetv3_large_100", 0.5, pretrained=False, num_classes=0), a.size),
        ("swin-b", lambda: timm.create_model("swin_base_patch4_window12_384", pretrained=False, num_classes=0), 384),
    ]
    for label, make, size in models:
        m = make().eval()
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            m.forward_features(x)
            best = float("inf")
            for _ in range(a.repeat):
                t = time.perf_counter()
                m.forward_features(x)
                best = min(best, time.perf_counter() - t)
        print(f"torch {label}: {best * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
