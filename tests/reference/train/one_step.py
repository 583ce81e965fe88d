"""One full training step of the authors' own SCFNet, loss and optimiser (run by hand).

    pip install paddlepaddle==3.3.1 numpy==2.3.4
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/train/one_step.py          # small cases
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/train/one_step.py --full   # teachers, full size

Builds the authors' `SCFNet` (net.py; student `M3_0.5`, teachers `R50` and `ST`) with the synthetic weights of
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
  logits, weights 1, 1/2, 1/4, 1/8;
- case "fs_r50_small": the R50 teacher trained like "fs" (same input, mask and epoch);
- with --full, cases "fs_r50" (R50 on input:2x3x352x352, mask:2x1x352x352) and "fs_swinb" (Swin-B on
  input:1x3x384x384, mask:1x1x384x384; stochastic depth off: every DropPath's drop_prob set to 0,
  since the authors' rate 0.5 draws a random mask that no other implementation can reproduce).

For each case it writes the loss and the four side losses (before the step) and, for every trainable
parameter (our names), the learning-rate multiplier and weight decay the optimiser applies to it and
a summary of `w_after - w_before` (the summary format of tests/reference/backbones/common.py, with
32 samples instead of 512 and std 0 for one element); and the same summary
(32 samples) of the change of every BatchNorm running statistic (`running_stats`).
Output: tests/data/train/one_step.json, with --full tests/data/train/one_step_full.json.
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
from authors_scfnet import SWIN_LINEAR, build, load_authors_net, scfnet_our_name  # noqa: E402

DATA = HERE.parents[1] / "data" / "train"
LR = 0.01
EPOCH = 0
SAMPLES = 32
SHAPE = (2, 3, 64, 64)


def summary(a, samples=None):
    """summarise_array with fewer samples (std 0 for a single element instead of NaN)."""
    samples = samples or SAMPLES
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


def paddle_linear(name):
    """Whether `name` is a Linear weight of the authors' Swin (stored [in, out])."""
    return name.startswith("bkbone.layers.") and name.endswith(SWIN_LINEAR)


def running_stats(model):
    """Our name -> value of every BatchNorm running statistic (Paddle `_mean` / `_variance`)."""
    return {scfnet_our_name(k): v.numpy().copy() for k, v in model.state_dict().items()
            if k.endswith(("._mean", "._variance"))}


def step(fs, model, loss_fn):
    """One iteration; returns loss, parts, per-parameter records, running-statistic changes and a
    consistency check."""
    opt = optimiser(fs, model)
    params = trainable(model)
    before = {k: p.numpy().copy() for k, p in params}
    stats_before = running_stats(model)
    parts = loss_fn(model)
    loss = parts[0] + parts[1] / 2 + parts[2] / 4 + parts[3] / 8
    loss.backward()
    grads = {k: (None if p.grad is None else p.grad.numpy().copy()) for k, p in params}
    opt.step()
    records, worst, no_grad = {}, 0.0, []
    for k, p in params:
        ours = scfnet_our_name(k)
        if ours is None:
            continue  # Swin's final norm: never applied, not built by us
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
        if paddle_linear(k):
            delta = delta.T  # Paddle Linear [in, out] -> our (timm's) [out, in]
        records[ours] = dict(lr_mult=lr_mult, weight_decay=wd, delta=summary(delta),
                             _grad_absmax=float(np.abs(g).max()))
    stats = {k: summary(v - stats_before[k], 32) for k, v in running_stats(model).items()}
    return float(loss), [float(x) for x in parts], records, stats, worst, no_grad


def no_drop_path(model):
    """Stochastic depth off (the authors' Swin-B trains with drop_path_rate 0.5)."""
    n = 0
    for layer in model.sublayers():
        if hasattr(layer, "drop_prob"):
            layer.drop_prob = 0.0
            n += 1
    return n


def main():
    full = "--full" in sys.argv[1:]
    paddle.set_device("cpu")
    paddle.set_default_dtype("float64")
    net = load_authors_net()
    fs, kd = load_losses()
    out = dict(generator="tests/reference/train/one_step.py" + (" --full" if full else ""),
               paddle=paddle.__version__, lr=LR, momentum=float(fs.cag.momen),
               weight_decay=float(fs.cag.decay), cases={})

    def batch(shape):
        n, _, h, w = shape
        name, mask_name = "input:" + "x".join(map(str, shape)), f"mask:{n}x1x{h}x{w}"
        x = paddle.to_tensor(synthetic.image(name, shape).astype("float64"))
        m = paddle.to_tensor(((synthetic.image(mask_name, (n, 1, h, w)) + 2) / 4).astype("float64"))
        return name, mask_name, x, m

    def fs_loss(x, mask):
        return lambda model: [fs.dice_loss(p, mask) + 1 * fs.boundary_dice_loss(p, mask, EPOCH) for p in model(x)]

    if full:
        plan = [("fs_r50", "R50", (2, 3, 352, 352)), ("fs_swinb", "ST", (1, 3, 384, 384))]
    else:
        plan = [("fs", "M3_0.5", SHAPE), ("kd", "M3_0.5", SHAPE), ("fs_r50_small", "R50", SHAPE)]
    for case, model_type, shape in plan:
        name, mask_name, x, mask = batch(shape)
        entry = dict(input=name, shape=list(shape))
        if case == "kd":
            teacher, _ = build(net, "R50", "float64")
            for p in teacher.parameters():
                p.stop_gradient = True
            teacher.eval()
            t2 = teacher(x)[0]
            loss_fn = lambda model, t2=t2: [kd.dice_loss(p, t2) for p in model(x)]  # noqa: E731
        else:
            entry.update(mask=mask_name, epoch=EPOCH)
            loss_fn = fs_loss(x, mask)
        model, _ = build(net, model_type, "float64")
        model.train()
        if model_type == "ST":
            # `model.to(dtype=float64)` also converts the integer index buffers.
            for layer in model.sublayers():
                if hasattr(layer, "relative_position_index"):
                    layer.relative_position_index = layer.relative_position_index.astype("int64")
            print(f"[{case}] stochastic depth off in {no_drop_path(model)} DropPath layers")
        loss, parts, records, stats, worst, no_grad = step(fs, model, loss_fn)
        entry.update(loss=loss, parts=parts)
        if case == "kd":
            entry.update(teacher="r50", teacher_p2=summarise_array(t2.numpy()))
        report(case, loss, parts, records, worst, no_grad)
        for r in records.values():
            del r["_grad_absmax"]
        entry["params"] = records
        entry["running_stats"] = stats
        out["cases"][case] = entry
        del model
    path = DATA / ("one_step_full.json" if full else "one_step.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, separators=(",", ":"), allow_nan=False) + "\n")
    print(f"-> {path} ({path.stat().st_size} bytes)")


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
