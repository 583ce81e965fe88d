"""Reference values for crates/scfnet-train from the authors' own training code (run by hand).

    pip install paddlepaddle==3.3.1 numpy==2.3.4
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/train/authors_training.py

Imports `dice_loss`, `boundary_dice_loss`, `lr_decay` from the authors' train_FS.py and the KD
`dice_loss` from train_KD.py (their data/logging imports are stubbed), and Paddle's `Momentum`
optimiser. Writes tests/data/train/authors_training.json with, in float64:
- the four side losses and the total (L2 + L3/2 + L4/4 + L5/8) of seeded logits against a soft
  mask, at epochs 0, 25 and 65 (band 13, 9, 1), and the gradients of the total w.r.t. the logits;
- the KD loss of the same logits against a teacher map, with its gradients;
- three Momentum steps (lr 0.05, momentum 0.9, weight decay 5e-4) on three parameters: plain, with a
  0.1 learning-rate multiplier, and with its own L2Decay(0.0) regulariser;
- the learning rate of the paper's schedule at sampled iterations (warm-up, switch, cosine).
"""

import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import paddle

OUT = Path(__file__).resolve().parents[2] / "data" / "train" / "authors_training.json"


def load_authors():
    root = Path(os.environ["KDSCFNET_DIR"])
    sys.path.insert(0, str(root))
    for name in ("visualdl", "lib", "lib.dataset"):
        mod = types.ModuleType(name)
        mod.LogWriter = object
        sys.modules[name] = mod
    sys.modules["lib"].dataset = sys.modules["lib.dataset"]
    sys.argv = [sys.argv[0]]
    import train_FS  # noqa: E402
    import train_KD  # noqa: E402

    return train_FS, train_KD


def flat(t):
    return [float(v) for v in np.asarray(t).reshape(-1)]


def main():
    paddle.set_device("cpu")
    paddle.set_default_dtype("float64")
    fs, kd = load_authors()
    rng = np.random.default_rng(7)
    shape = (2, 1, 24, 20)
    logits = [rng.normal(0, 2, shape) for _ in range(4)]
    yy, xx = np.mgrid[0:24, 0:20]
    blob = 1 / (1 + np.exp(((yy - 11) ** 2 / 40 + (xx - 9) ** 2 / 30 - 1) * 6))
    mask = np.stack([blob, np.roll(blob, 3, axis=1)])[:, None]
    teacher = rng.normal(0, 3, shape)
    out = dict(generator="tests/reference/train/authors_training.py", paddle=paddle.__version__, shape=list(shape),
               logits=[flat(l) for l in logits], mask=flat(mask), teacher=flat(teacher), supervised=[])
    for epoch in (0, 25, 65):
        ps = [paddle.to_tensor(l, stop_gradient=False) for l in logits]
        m = paddle.to_tensor(mask)
        parts = [fs.dice_loss(p, m) + 1 * fs.boundary_dice_loss(p, m, epoch) for p in ps]
        total = parts[0] + parts[1] / 2 + parts[2] / 4 + parts[3] / 8
        total.backward()
        out["supervised"].append(dict(epoch=epoch, parts=[float(p) for p in parts], total=float(total),
                                      grads=[flat(p.grad) for p in ps]))
    ps = [paddle.to_tensor(l, stop_gradient=False) for l in logits]
    t = paddle.to_tensor(teacher)
    parts = [kd.dice_loss(p, t) for p in ps]
    total = parts[0] + parts[1] / 2 + parts[2] / 4 + parts[3] / 8
    total.backward()
    out["kd"] = dict(parts=[float(p) for p in parts], total=float(total), grads=[flat(p.grad) for p in ps])

    # Momentum: three parameters, one with a learning-rate multiplier, one opting out of decay.
    init = [rng.normal(0, 1, (3, 2)) for _ in range(3)]
    coeffs = [rng.normal(0, 1, (3, 2)) for _ in range(3)]
    attrs = [paddle.ParamAttr(), paddle.ParamAttr(learning_rate=0.1),
             paddle.ParamAttr(regularizer=paddle.regularizer.L2Decay(0.0))]
    params = []
    for w, attr in zip(init, attrs):
        p = paddle.create_parameter(list(w.shape), "float64", attr=attr)
        p.set_value(w)
        params.append(p)
    opt = paddle.optimizer.Momentum(learning_rate=0.05, momentum=0.9, parameters=params, weight_decay=5e-4)
    history = []
    for step in range(3):
        loss = sum(((p * paddle.to_tensor(c)) * (step + 1) + (p * p) * 0.5).sum() for p, c in zip(params, coeffs))
        loss.backward()
        opt.step()
        opt.clear_grad()
        history.append([flat(p.numpy()) for p in params])
    out["momentum"] = dict(lr=0.05, momentum=0.9, weight_decay=5e-4, lr_mult=[1.0, 0.1, 1.0], decay=[True, True, False],
                           init=[flat(w) for w in init], coeffs=[flat(c) for c in coeffs], after=history)

    # The schedule, driven exactly as train_FS.train does (lr_decay reads, then steps, the cosine).
    fs.cag.Max_LR, fs.cag.Min_LR, fs.cag.top_epoch, fs.cag.epoch, fs.cag.train_bs = 0.064, 0.00064, 5, 69, 128
    iters = math.ceil(10553 / 128)
    sched = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=0.064, T_max=iters * 64, eta_min=0.00064)
    lrs = {}
    sample = set([0, 1, 100, 416, 417, 418, 419, 420, 1000, 3000, 5000, 5700, 5728] + list(range(0, 5729, 331)))
    for g in range(iters * 69):
        lr = fs.lr_decay(g, sched)
        if g in sample:
            lrs[g] = float(lr)
    out["schedule"] = dict(samples=10553, batch=128, epochs=69, lr=[[g, v] for g, v in sorted(lrs.items())])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"-> {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
