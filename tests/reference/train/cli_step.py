"""What `scfnet train --init-weights W --no-augment --sizes S --batch 2 --max-steps 1` must write,
from the authors' own code (run by hand).

    pip install paddlepaddle==3.3.1 numpy==2.3.4 opencv-python-headless==4.14.0.94 pillow==13.0.0
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/train/cli_step.py          # student, R50 at 64
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/train/cli_step.py --full   # Swin-B at 384

For each network: two images and masks (stems `a`, `b`; see `sample`: a disc on colour ramps plus
noise from the synthetic stream of tests/reference/backbones/synthetic.py, the disc as mask) written
as PNG and read back the way the authors' loader
reads them (`cv2.imread(...)[:, :, ::-1].astype(np.float32)`, their `Normalize` from lib/transform.py,
then the lines of `Data.collate`: `cv2.resize(..., (S, S), INTER_LINEAR)`, stack, NCHW, mask
averaged over its channels, float32; with augmentation off nothing else runs). The network is the
authors' `SCFNet` with the synthetic weights in float32 (`W`, which the Rust test writes as
safetensors), in train mode; one iteration of train_FS.py's loop at global step 0 of epoch 0:
`lr = lr_decay(0, scheduler)` (the warm-up's first value, Min_LR = 6.4e-4), `clear_grad`, `set_lr`,
the four side losses with band 13, backward, `Momentum.step`. Swin-B runs with stochastic depth off
(every DropPath's drop_prob = 0; pass `--drop-path 0` to scfnet), since its random mask cannot be
reproduced.

The same iteration also runs in float64 from the float32 run's exact starting values: the gap between
the authors' float32 and float64 steps is the float32 noise that any float32 implementation has (with
synthetic weights it is large in the R50's last stage, up to ~70 % of a tensor's change), so the test
measures our float32 step against the float64 one, with the authors' float32 gap as the yardstick.

Output (tests/data/train/cli_step.json, or cli_step_full.json): per network the loss (float32 and
float64), the learning rate, and for every tensor of model.safetensors (our names) a summary of
`w_after - w_before` of the float32 run (float64 differences of the float32 values; 16 samples), the
float64 run's change at the same samples (`delta_f64`, `absmax_f64`), and the tensor's largest |w|,
from which the test derives the float32 rounding of the written weights.
"""

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import paddle

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "backbones"))
sys.path.insert(0, str(HERE.parent / "model"))
sys.path.insert(0, str(HERE))
import synthetic  # noqa: E402
from authors_scfnet import build, load_authors_net, scfnet_our_name  # noqa: E402
import one_step  # noqa: E402

DATA = HERE.parents[1] / "data" / "train"
STEMS = ("a", "b")
EPOCH = 0


def pixels(name, shape):
    """8-bit pixels from the synthetic stream: min(255, floor((v + 1) * 128))."""
    v = synthetic.uniform(name, int(np.prod(shape)))
    return np.minimum(255, np.floor((v + 1.0) * 128.0)).astype(np.uint8).reshape(shape)


def sample(stem, size):
    """Image (S, S, 3) and mask (S, S), 8-bit, integer arithmetic only: a disc (the object) on two
    colour ramps plus synthetic noise; the mask is the disc."""
    y, x = np.mgrid[0:size, 0:size]
    cx, cy, r = (3 * size // 8, size // 2, size // 4) if stem == "a" else (5 * size // 8, 3 * size // 8, size // 3)
    inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
    noise = pixels(f"cli-image:{stem}:{size}", (size, size, 3)).astype(np.int64) // 8
    base = np.stack([x * 255 // (size - 1), y * 255 // (size - 1), np.where(inside, 220, 40)], axis=-1)
    rgb = np.clip(base * 3 // 4 + noise, 0, 255).astype(np.uint8)
    return rgb, np.where(inside, 255, 0).astype(np.uint8)


def write_pngs(root, size):
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "mask").mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        rgb, mask = sample(stem, size)
        assert cv2.imwrite(str(root / "image" / f"{stem}.png"), rgb[:, :, ::-1].copy())  # cv2 writes BGR
        assert cv2.imwrite(str(root / "mask" / f"{stem}.png"), mask)


def authors_batch(root, size):
    """The batch as the authors' Data.__getitem__ (augmentation off) and Data.collate build it."""
    # lib/transform.py by path: authors_training.py stubs the module `lib` (their data loader).
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        "authors_transform", Path(os.environ["KDSCFNET_DIR"]) / "lib" / "transform.py")
    transform = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(transform)
    normalize = transform.Normalize()
    images, masks = [], []
    for stem in STEMS:
        image = cv2.imread(str(root / "image" / f"{stem}.png"))[:, :, ::-1].astype(np.float32)
        mask = cv2.imread(str(root / "mask" / f"{stem}.png"))[:, :, ::-1].astype(np.float32)
        image, mask = normalize(image, mask)
        images.append(cv2.resize(image, dsize=(size, size), interpolation=cv2.INTER_LINEAR))
        masks.append(cv2.resize(mask, dsize=(size, size), interpolation=cv2.INTER_LINEAR))
    image = np.stack(images, axis=0).transpose((0, 3, 1, 2))
    mask = np.stack(masks, axis=0).transpose((0, 3, 1, 2))
    mask = np.mean(mask, axis=1, keepdims=True).astype(np.float32)
    return paddle.to_tensor(image.astype(np.float32)), paddle.to_tensor(mask)


def one_iteration(fs, model, x, mask):
    """train_FS.py's loop body at global step 0 of epoch 0; returns (loss, lr)."""
    opt = one_step.optimiser(fs, model)
    lr = fs.lr_decay(0, None)  # global step 0: inside the warm-up, no scheduler call
    opt.clear_grad()
    opt.set_lr(lr)
    outs = model(x)
    parts = [fs.dice_loss(p, mask) + 1 * fs.boundary_dice_loss(p, mask, EPOCH) for p in outs]
    loss = parts[0] + parts[1] / 2 + parts[2] / 4 + parts[3] / 8
    loss.backward()
    opt.step()
    return float(loss), float(lr)


def state(model):
    """Our name -> float64 copy of every tensor (buffers and unused layers left out)."""
    return {scfnet_our_name(k): v.numpy().astype(np.float64) for k, v in model.state_dict().items()
            if scfnet_our_name(k) is not None}


def run(net, fs, kind, model_type, size):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_pngs(root, size)
        x, mask = authors_batch(root, size)
    runs = {}
    start = None
    for dtype in ("float32", "float64"):
        paddle.set_default_dtype(dtype)
        model, _ = build(net, model_type, dtype)
        if dtype == "float64":
            # The float32 run's exact starting values, so that only the arithmetic differs.
            # (integer buffers are the same in both; Swin's index buffer is restored below)
            model.set_state_dict({k: paddle.to_tensor(v.numpy().astype(np.float64))
                                  for k, v in f32_state.items() if v.dtype == paddle.float32})
            for layer in model.sublayers():
                if hasattr(layer, "relative_position_index"):
                    layer.relative_position_index = layer.relative_position_index.astype("int64")
        else:
            f32_state = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
        if model_type == "ST":
            print(f"[{kind} {dtype}] stochastic depth off in {one_step.no_drop_path(model)} DropPath layers")
        before = state(model)
        if start is None:
            start = before
        loss, lr = one_iteration(fs, model, x.astype(dtype), mask.astype(dtype))
        after = state(model)
        deltas = {}
        for k, b in before.items():
            d = after[k] - b
            if one_step.paddle_linear(k):
                d = d.T  # Paddle Linear [in, out] -> our (timm's) [out, in]
            deltas[k] = d
        runs[dtype] = (loss, lr, deltas)
        print(f"[{kind} {dtype}] loss {loss!r} lr {lr!r}")
    paddle.set_default_dtype("float32")
    loss, lr, d32 = runs["float32"]
    loss64, _, d64 = runs["float64"]
    tensors = {}
    for k, d in d32.items():
        s32 = one_step.summary(d, 16)
        s64 = one_step.summary(d64[k], 16)
        tensors[k] = dict(delta=s32, delta_f64=s64["sample"], absmax_f64=s64["absmax"],
                          absmax=float(np.abs(start[k]).max()) if start[k].size else 0.0)
    gap = sorted(float(np.abs(d32[k] - d64[k]).max() / max(np.abs(d64[k]).max(), 1e-300)) for k in d32)
    print(f"[{kind}] {len(tensors)} tensors; the authors' float32 step vs their float64 step: median "
          f"{gap[len(gap) // 2]:.1e}, worst {gap[-1]:.1e} of the tensor's largest change")
    return dict(model=kind, size=size, batch=len(STEMS), epoch=EPOCH, lr=lr, loss=loss, loss_f64=loss64,
                tensors=tensors)


def main():
    full = "--full" in sys.argv[1:]
    paddle.set_device("cpu")
    net = load_authors_net()
    fs, _ = one_step.load_losses()
    plan = [("swinb", "ST", 384)] if full else [("student", "M3_0.5", 64), ("r50", "R50", 64)]
    out = dict(generator="tests/reference/train/cli_step.py" + (" --full" if full else ""),
               paddle=paddle.__version__, opencv=cv2.__version__, networks={})
    for kind, model_type, size in plan:
        out["networks"][kind] = run(net, fs, kind, model_type, size)
    path = DATA / ("cli_step_full.json" if full else "cli_step.json")
    path.write_text(json.dumps(out, separators=(",", ":"), allow_nan=False) + "\n")
    print(f"-> {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
