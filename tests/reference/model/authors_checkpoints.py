"""Checkpoints in the authors' format for `scfnet convert` (run by hand).

    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/model/authors_checkpoints.py

Writes with paddle.save, from the authors' own classes (pretrained loads stubbed):
- tests/data/model/authors_student_f16.pdparams: the student `SCFNet(M3_0.5)` state dict with the
  synthetic values of our names, stored as float16 to halve the file (real checkpoints are float32,
  which the backbone converter tests cover);
- tests/data/model/authors_swin_tiny.pdparams and authors_swin_tiny.json: the authors'
  `SwinTransformer` class (`SwinT.py`) at a tiny width (embed 8, depths 2-2-2-2, heads 1-2-2-4,
  window 12, input 384) with synthetic values (under the names our converter gives them), and
  summaries of its SCFNet taps (computed like its `forward_features`, with the reshapes written
  for any width) on a 1x3x384x384 synthetic input, eval mode, float32.
"""

import json
import sys
from pathlib import Path

import numpy as np
import paddle

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "backbones"))
sys.path.insert(0, str(HERE))
import synthetic  # noqa: E402
from authors_scfnet import build, load_authors_net, our_name  # noqa: E402
from common import summarise_array  # noqa: E402

OUT = HERE.parents[1] / "data" / "model"
TINY = dict(embed_dim=8, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=12, img_size=384)
LINEAR = ("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight", "reduction.weight")


def swin_our_name(name):
    """Our (timm) name of an authors' Swin parameter (None: dropped)."""
    if name.endswith(("relative_position_index", "attn_mask")) or name.startswith(("norm.", "head.")):
        return None
    parts = name.split(".")
    if parts[0] == "layers" and parts[2] == "downsample":
        parts[1] = str(int(parts[1]) + 1)
    return ".".join(parts)


def main():
    paddle.set_device("cpu")
    net = load_authors_net()
    model, state = build(net, "M3_0.5", "float32")
    f16 = {k: paddle.to_tensor(v.numpy().astype("float16")) for k, v in state.items()}
    paddle.save(f16, str(OUT / "authors_student_f16.pdparams"))

    from backbones.SwinT import SwinTransformer

    swin = SwinTransformer(**TINY)
    swin.eval()
    sd = {}
    for k, v in swin.state_dict().items():
        ours = swin_our_name(k)
        if ours is None:  # buffers (kept as built) and the unused final norm / head
            sd[k] = v
            continue
        shape = tuple(v.shape)
        if k.endswith(LINEAR) and len(shape) == 2:
            # Paddle Linear weights are [in, out]; ours (timm) are [out, in].
            a = synthetic.values(ours, (shape[1], shape[0])).T
        else:
            a = synthetic.values(ours, shape)
        sd[k] = paddle.to_tensor(np.ascontiguousarray(a).astype("float32"))
    swin.set_state_dict(sd)
    # The real checkpoint also holds every block's relative_position_index and attn_mask buffers
    # (dropped by the converter); keep one relative_position_index and no attn_mask (megabytes).
    saved = {k: v for k, v in swin.state_dict().items()
             if not k.endswith(("relative_position_index", "attn_mask"))
             or k == "layers.0.blocks.1.attn.relative_position_index"}
    paddle.save(saved, str(OUT / "authors_swin_tiny.pdparams"))
    print("buffers kept:", [k for k in saved if k.endswith(("relative_position_index", "attn_mask"))])

    x = paddle.to_tensor(synthetic.image("input:1x3x384x384", (1, 3, 384, 384)).astype("float32"))
    with paddle.no_grad():
        y = swin.pos_drop(swin.patch_embed(x))
        taps = []
        for layer in swin.layers:
            taps.append(y)
            y = layer(y)
        taps = taps[:3] + [y]
    maps = []
    for i, t in enumerate(taps):
        b, n, c = t.shape
        side = int(round(n ** 0.5))
        maps.append(t.reshape([b, side, side, c]).transpose([0, 3, 1, 2]).numpy())
    maps = [maps[0]] + maps
    (OUT / "authors_swin_tiny.json").write_text(json.dumps(dict(
        generator="tests/reference/model/authors_checkpoints.py", config=TINY,
        runs=[dict(input="input:1x3x384x384", shape=[1, 3, 384, 384], train=False, dtype="float32",
                   maps=[summarise_array(m) for m in maps])]), separators=(",", ":")) + "\n")
    for f in ("authors_student_f16.pdparams", "authors_swin_tiny.pdparams", "authors_swin_tiny.json"):
        print(f, (OUT / f).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
