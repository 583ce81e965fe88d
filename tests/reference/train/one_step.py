"""One full training step of the authors' own SCFNet, loss and optimiser (run by hand).

    pip install paddlepaddle==3.3.1 numpy==2.3.4
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/train/one_step.py

Builds the authors' `SCFNet` (net.py; student `M3_0.5`, teacher `R50`) with the synthetic weights of
tests/reference/model/authors_scfnet.py in float64, on the CPU, and runs one iteration exactly as the
authors' loops do (clear_grad, set_lr, forward, loss, backward, step), with the authors' optimiser:
`paddle.optimizer.Momentum(parameters=net.parameters(), learning_rate=cag.Max_LR, momentum=cag.momen,
weight_decay=cag.decay)` from train_FS.py (momentum 0.9, weight decay 5e-4), the backbone's
`optimize_attr['learning_rate'] /= 10` done by SCFNet.__init__, and the MobileNetV3 BN gamma/beta
carrying their own `L2Decay(0.0)`; the learning rate is set to 0.01 with `optimizer.set_lr`.

- case "fs": student in train mode, x = image("input:2x3x64x64"), soft mask
  m = (image("mask:2x1x64x64") + 2) / 4, loss of train_FS.py at epoch 0 (its `dice_loss` +
  `boundary_dice_loss`, band 13), total L2 + L3/2 + L4/4 + L5/8;
- case "kd": teacher R50 (eval, stop_gradient as train_KD.py sets it), student as above (same
  synthetic weights), the KD `dice_loss` of train_KD.py of each student side against the teacher's p2
  logits, weights 1, 1/2, 1/4, 1/8.

For each case it writes the loss and the four side losses (before the step) and, for every trainable
parameter (our names; BN running statistics are not trainable), the learning-rate multiplier and
weight decay the optimiser applies to it and a summary of `w_after - w_before` (the summary format of
tests/reference/backbones/common.py, with 64 samples instead of 512 and std 0 for one element).
Output: tests/data/train/one_step.json.
"""

import json
import sys
import types
from pathlib import Path

import numpy as np
import paddle

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "backbones"))
sys.path.insert(0, str(HERE.parent / "model"))
sys.path.insert(0, str(HERE))
import synthetic  # noqa: E402
from common import summarise_array  # noqa: E402
from authors_scfnet import build, load_authors_net, scfnet_our_name  # noqa: E402

OUT = HERE.parents[1] / "data" / "train" / "one_step.json"
LR = 0.01
EPOCH = 0
SAMPLES = 64
INPUT = "input:2x3x64x64"
MASK = "mask:2x1x64x64"
SHAPE = (2, 3, 64, 64)


def summary(a, samples=SAMPLES):
    """summarise_array with fewer samples (std 0 for a single element instead of NaN)."""
    flat = np.asarray(a, dtype=np.float64).reshape(-1)
    n = flat.size
    step = max(1, n // samples)
    return dict(shape=list(np.shape(a)), mean=float(flat.mean()), std=float(flat.std(ddof=1)) if n > 1 else 0.0,
                absmax=float(np.abs(flat).max()), step=step, sample=[float(v) for v in flat[::step][:samples]])


def load_losses():
    # train_FS.py / train_KD.py import cv2 at the top without using it in the loss code.
    try:
        import cv2  # noqa: F401
    except ImportError:
        sys.modules["cv2"] = types.ModuleType("cv2")
    from authors_training import load_authors

    return load_authors()


def optimiser(fs, model):
    """The authors' optimiser, exactly as train_FS.train (and train_KD.train) builds and drives it."""
    cag = fs.cag
    opt = paddle.optimizer.Momentum(parameters=model.parameters(), learning_rate=cag.Max_LR, momentum=cag.momen,
                                    weight_decay=cag.decay)
    opt.clear_grad()
    opt.set_lr(LR)
    return opt


def decay_of(opt, p):
    """The weight decay Momentum applies to p (mirrors Momentum._append_optimize_op in Paddle 3.3.1)."""
    coeff = opt._regularization_coeff if opt._regularization_method == "l2_decay" else 0.0
    reg = getattr(p, "regularizer", None)
    if isinstance(reg, paddle.regularizer.L2Decay):
        coeff = reg._coeff
    elif reg is not None:
        coeff = 0.0
    return float(coeff)


def trainable(model):
    return [(k, p) for k, p in model.named_parameters() if not p.stop_gradient]


def step(fs, model, loss_fn):
    """One iteration; returns loss, parts, per-parameter records and a consistency check."""
    opt = optimiser(fs, model)
    params = trainable(model)
    before = {k: p.numpy().copy() for k, p in params}
    parts = loss_fn(model)
    loss = parts[0] + parts[1] / 2 + parts[2] / 4 + parts[3] / 8
    loss.backward()
    grads = {k: (None if p.grad is None else p.grad.numpy().copy()) for k, p in params}
    opt.step()
    records, worst, no_grad = {}, 0.0, []
    for k, p in params:
        ours = scfnet_our_name(k)
        lr_mult = float(p.optimize_attr["learning_rate"])
        wd = decay_of(opt, p)
        delta = p.numpy() - before[k]
        g = grads[k]
        if g is None or not np.any(g):
            no_grad.append(ours)
            g = np.zeros_like(before[k])
        # First Momentum step (zero velocity): w -= lr * lr_mult * (g + wd * w).
        # Paddle keeps the decay coefficient (an op attribute) in float32.
        want = -LR * lr_mult * (g + float(np.float32(wd)) * before[k])
        err = float(np.abs(delta - want).max())
        worst = max(worst, err / max(float(np.abs(want).max()), 1e-300) if np.abs(want).max() > 1e-15 else 0.0)
        records[ours] = dict(lr_mult=lr_mult, weight_decay=wd, delta=summary(delta),
                             _grad_absmax=float(np.abs(g).max()))
    return float(loss), [float(x) for x in parts], records, worst, no_grad


def main():
    paddle.set_device("cpu")
    paddle.set_default_dtype("float64")
    net = load_authors_net()
    fs, kd = load_losses()
    x = paddle.to_tensor(synthetic.image(INPUT, SHAPE).astype("float64"))
    mask = paddle.to_tensor(((synthetic.image(MASK, (2, 1, 64, 64)) + 2) / 4).astype("float64"))
    out = dict(generator="tests/reference/train/one_step.py", paddle=paddle.__version__, lr=LR,
               momentum=float(fs.cag.momen), weight_decay=float(fs.cag.decay), cases={})

    def fs_loss(model):
        return [fs.dice_loss(p, mask) + 1 * fs.boundary_dice_loss(p, mask, EPOCH) for p in model(x)]

    teacher, _ = build(net, "R50", "float64")
    for p in teacher.parameters():
        p.stop_gradient = True
    teacher.eval()
    t2 = teacher(x)[0]

    def kd_loss(model):
        return [kd.dice_loss(p, t2) for p in model(x)]

    for case, loss_fn in (("fs", fs_loss), ("kd", kd_loss)):
        student, _ = build(net, "M3_0.5", "float64")
        student.train()
        loss, parts, records, worst, no_grad = step(fs, student, loss_fn)
        entry = dict(input=INPUT, shape=list(SHAPE))
        if case == "fs":
            entry.update(mask=MASK, epoch=EPOCH)
        entry.update(loss=loss, parts=parts)
        if case == "kd":
            entry.update(teacher="r50", teacher_p2=summarise_array(t2.numpy()))
        report(case, loss, parts, records, worst, no_grad)
        for r in records.values():
            del r["_grad_absmax"]
        entry["params"] = records
        out["cases"][case] = entry
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":"), allow_nan=False) + "\n")
    print(f"-> {OUT} ({OUT.stat().st_size} bytes)")


def report(case, loss, parts, records, worst, no_grad):
    bk = [r for k, r in records.items() if k.startswith("bkbone.")]
    de = [r for k, r in records.items() if not k.startswith("bkbone.")]
    med = lambda rs: float(np.median([r["delta"]["absmax"] for r in rs]))  # noqa: E731
    print(f"[{case}] loss {loss!r} parts {parts}")
    print(f"[{case}] {len(records)} trainable tensors: {len(bk)} backbone (lr_mult "
          f"{sorted({r['lr_mult'] for r in bk})}), {len(de)} decoder (lr_mult {sorted({r['lr_mult'] for r in de})})")
    print(f"[{case}] median |delta|max backbone {med(bk):.3e}, decoder {med(de):.3e}")
    nodecay = sorted(k for k, r in records.items() if r["weight_decay"] == 0.0)
    print(f"[{case}] weight_decay 0 on {len(nodecay)} tensors, all MobileNetV3 BN gamma/beta: "
          f"{all(k.startswith('bkbone.') and '.bn.' in k or k.startswith('bkbone.conv.bn') for k in nodecay)}; "
          f"values {sorted({r['weight_decay'] for r in records.values()})}")
    bn_all = sorted(k for k in records if k.startswith("bkbone.") and ".bn." in k)
    print(f"[{case}] MobileNetV3 BN gamma/beta: {len(bn_all)}, of which decay 0: "
          f"{sum(records[k]['weight_decay'] == 0.0 for k in bn_all)}")
    zero = sorted(k for k, r in records.items() if r["delta"]["absmax"] == 0.0)
    print(f"[{case}] zero delta: {zero}; zero gradient: {no_grad}")
    tiny = sorted(k for k, r in records.items() if r["_grad_absmax"] < 1e-12)
    print(f"[{case}] gradient < 1e-12 (delta = decay only): {len(tiny)} {tiny}")
    print(f"[{case}] max rel. error of delta vs -lr*mult*(g + wd*w): {worst:.3e}")


if __name__ == "__main__":
    main()
