"""PyTorch reference values for the differentiable ops of crates/scfnet-ops.

Run by hand from the repository root (CI never runs it):

    pip install -r tests/reference/ops/requirements.txt
    python3 tests/reference/ops/make_reference.py

For each case it stores a small float64 input, the op's output, and the gradient of
sum(output * weight) for a stored weight tensor, all computed by PyTorch in float64, to
tests/data/ops/expected.json. crates/scfnet-ops/tests/pytorch_parity.rs recomputes them.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

torch.manual_seed(20221023)
torch.set_default_dtype(torch.float64)
OUT = Path(__file__).resolve().parents[2] / "data" / "ops" / "expected.json"


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


def case(name, op, params, shape, fn, x=None, t=None):
    x = (torch.randn(*shape) * 2.0 if x is None else x).clone().requires_grad_(True)
    inputs = [x]
    if t is not None:
        t = t.clone().requires_grad_(True)
        inputs.append(t)
    y = fn(*inputs)
    w = torch.randn(*y.shape)
    (y * w).sum().backward()
    entry = dict(name=name, op=op, params=params, shape=list(shape), x=flat(x), out_shape=list(y.shape),
                 out=flat(y), weight=flat(w), grad_x=flat(x.grad))
    if t is not None:
        entry.update(t=flat(t), grad_t=flat(t.grad))
    return entry


def main():
    cases = []
    for (h, w), (oh, ow) in [((5, 7), (11, 9)), ((9, 8), (4, 5)), ((6, 6), (12, 12)), ((7, 5), (7, 13)), ((1, 4), (3, 1))]:
        for ac in (False, True):
            cases.append(case(f"resize_{h}x{w}_to_{oh}x{ow}_ac{int(ac)}", "resize", dict(size=[oh, ow], align_corners=ac),
                              (2, 3, h, w), lambda x, oh=oh, ow=ow, ac=ac: F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=ac)))
    for k, s, p, hw in [(3, 2, 1, (9, 10)), (3, 2, 1, (8, 7)), (3, 1, 1, (6, 7)), (5, 1, 2, (7, 6)), (2, 2, 0, (6, 8))]:
        cases.append(case(f"maxpool_k{k}s{s}p{p}_{hw[0]}x{hw[1]}", "maxpool", dict(kernel=k, stride=s, padding=p),
                          (2, 2) + hw, lambda x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p)))
    # Values kept away from the kinks, where the frameworks' one-sided derivatives differ.
    cases.append(case("hardswish", "hardswish", {}, (2, 3, 8), F.hardswish, x=torch.linspace(-5.3, 5.6, 48).reshape(2, 3, 8)))
    cases.append(case("hardsigmoid_paddle", "hardsigmoid", dict(slope=0.2, offset=0.5), (2, 3, 8),
                      lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0), x=torch.linspace(-4.1, 4.3, 48).reshape(2, 3, 8)))
    logits = torch.cat([torch.randn(40) * 4, torch.tensor([30.0, -30.0, 80.0, -80.0, 0.0])])
    targets = torch.cat([torch.rand(40), torch.tensor([0.0, 1.0, 0.3, 0.7, 0.5])])
    cases.append(case("bce_with_logits", "bce", {}, (45,), lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
                      x=logits, t=targets))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(dict(generator="tests/reference/ops/make_reference.py", torch=torch.__version__, cases=cases),
                              separators=(",", ":")) + "\n")
    print(f"{len(cases)} cases -> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
