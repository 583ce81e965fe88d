"""PyTorch eager re-creation of SCFNet for timing (`cargo xtask bench-models --python`; by hand).

    python3 tests/reference/model/bench_torch.py --threads 2 --size 352 --repeat 5

The SCFNet decoder (as in the authors' net.py) on timm backbones: resnet50 for the R50 teacher and
timm's MobileNetV3-Large generator at channel multiplier 0.5 for the student (close to, not the
same as, PaddleClas'). Random weights, eval mode, no autograd, the prediction p2 only (as inference computes it); the map
is copied to the host. Prints `torch NAME bB: X ms`.
`--device cuda` times it on a GPU (tests/gpu/check.sh).
"""

import argparse
import time

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(c_in, c_out, dilation=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, dilation, dilation=dilation), nn.BatchNorm2d(c_out), nn.ReLU())


class SCFM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cv1, self.cv2, self.cv3 = cbr(c, c), cbr(c, c), cbr(c, c)

    def forward(self, fl, fh, fd):
        fdh = self.cv1(fh + fh * F.interpolate(fd, size=fh.shape[2:], mode="bilinear"))
        fhl = self.cv2(fl + fl * F.interpolate(fh, size=fl.shape[2:], mode="bilinear"))
        return self.cv3(fhl + F.interpolate(fdh, size=fl.shape[2:], mode="bilinear"))


class SCFNet(nn.Module):
    def __init__(self, backbone, channels, c):
        super().__init__()
        self.bkbone = backbone
        self.mp = nn.ModuleList([cbr(ch, c) for ch in channels])
        self.cv1 = cbr(c, c, 5)
        self.de1, self.de2, self.de3 = SCFM(c), SCFM(c), SCFM(c)
        self.heads = nn.ModuleList([nn.Conv2d(c, 1, 3, 1, 1) for _ in range(4)])

    def forward(self, x):
        x2, x3, x4, x5 = [m(f) for m, f in zip(self.mp, self.bkbone(x))]
        x5 = self.cv1(x5)
        x4 = self.de3(x4, x5, x5)
        x3 = self.de2(x3, x4, x5)
        x2 = self.de1(x2, x3, x5)
        return [F.interpolate(h(f), size=x.shape[2:], mode="bilinear") for h, f in zip(self.heads, (x2, x3, x4, x5))]

    def prediction(self, x):
        """The p2 map only, as inference (ours and the ONNX export) computes it."""
        x2, x3, x4, x5 = [m(f) for m, f in zip(self.mp, self.bkbone(x))]
        x5 = self.cv1(x5)
        x2 = self.de1(x2, self.de2(x3, self.de3(x4, x5, x5), x5), x5)
        return F.interpolate(self.heads[0](x2), size=x.shape[2:], mode="bilinear")


class ChannelsFirst(nn.Module):
    """A timm feature extractor whose maps come out (B, C, H, W) whatever the backbone's format
    (timm's Swin may give (B, H, W, C))."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.channels = backbone.feature_info.channels()

    def forward(self, x):
        out = self.backbone(x)
        return [f if f.shape[1] == c else f.permute(0, 3, 1, 2).contiguous() for f, c in zip(out, self.channels)]


def build(kind):
    from timm.models.mobilenetv3 import _gen_mobilenet_v3

    if kind == "swinb":
        bb = timm.create_model(
            "swin_base_patch4_window12_384",
            pretrained=False,
            features_only=True,
            out_indices=(0, 1, 2, 3),
            drop_path_rate=0.0,
        )
        return SCFNet(ChannelsFirst(bb), bb.feature_info.channels(), 64)
    if kind == "student":
        bb = _gen_mobilenet_v3("mobilenetv3_large_100", 0.5, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        return SCFNet(bb, bb.feature_info.channels(), 16)
    bb = timm.create_model("resnet50", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    return SCFNet(bb, bb.feature_info.channels(), 64)


def peak_text(dev):
    """`, peak N MiB` on a GPU: the most memory PyTorch's tensors took at once since the last
    `torch.cuda.reset_peak_memory_stats` (beside `scfnet check-device`'s `peak_mib`); else nothing."""
    if dev.type != "cuda":
        return ""
    return f", peak {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check)")
    p.add_argument("--models", default="student,r50")
    p.add_argument("--batches", default="1,8")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for kind in a.models.split(","):
        m = build(kind).eval().to(dev)
        for batch in map(int, a.batches.split(",")):
            x = torch.randn(batch, 3, a.size, a.size, device=dev)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            with torch.no_grad():
                torch.sigmoid(m.prediction(x)).cpu()
                best = float("inf")
                for _ in range(a.repeat):
                    sync()
                    t = time.perf_counter()
                    torch.sigmoid(m.prediction(x)).cpu()
                    best = min(best, time.perf_counter() - t)
            print(f"torch {kind} b{batch}: {best * 1e3:.1f} ms{peak_text(dev)}")
            del x


if __name__ == "__main__":
    main()
