#!/usr/bin/env python3
"""One training epoch of the authors' own data pipeline, timed: their `lib/dataset.py` `Data`
(cv2 decoding, their augmentation chain of `lib/transform.py`) and `collate` (cv2 resize of each
sample to the batch's side, stacking, mask averaging), driven by Paddle's `DataLoader` with
`num_workers` worker processes and `shuffle=True`, as `train_FS.py` builds it. Nothing else: no
network. Prints `authors epoch: X ms` (and `authors images: N`) for `cargo xtask bench-loader`.

    pip install paddlepaddle==3.3.1 numpy==2.3.4 opencv-python-headless==4.14.0.94 pillow==13.0.0
    KDSCFNET_DIR=/tmp/kd/SCFNet python3 tests/reference/loader/authors_loader.py \
        --data DIR --workers 2 --batch 128 --side 352

DIR is a labeled set in the benchmark layout with a `train.txt` (`scfnet synth` writes one).
`--side` fixes the side their `collate` draws from (224…352) so that both loaders resize to the
same side. The authors' modules are read from `KDSCFNET_DIR` (`git archive HEAD SCFNet/lib` of
zhangjinCV/KD-SCFNet); `matplotlib`, which `dataset.py` imports for its own demo, is stubbed.
"""

import argparse
import os
import sys
import time
import types

SIDES = [288, 256, 320, 352, 224]  # the order of their collate's list


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--side", type=int, default=352, choices=SIDES)
    # Accepted for the xtask's common command line; the loader has no use for them.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    root = os.environ.get("KDSCFNET_DIR")
    if not root or not os.path.isfile(os.path.join(root, "lib", "dataset.py")):
        sys.exit("KDSCFNET_DIR must name the authors' SCFNet folder (with lib/dataset.py)")
    matplotlib = types.ModuleType("matplotlib")
    matplotlib.use = lambda *a, **k: None
    sys.modules["matplotlib"] = matplotlib
    sys.path.insert(0, root)

    import numpy as np
    from paddle.io import DataLoader
    from lib import dataset

    # Their collate draws the side with np.random.randint(0, 5): answer with the asked one's
    # index (the draw happens in the worker processes, which inherit this module as it is).
    real_randint = np.random.randint

    def randint(low, high=None, *rest, **kw):
        if (low, high) == (0, 5) and not rest and not kw:
            return SIDES.index(args.side)
        return real_randint(low, high, *rest, **kw)

    dataset.np.random.randint = randint

    cfg = dataset.Config(mode="train", datapath=args.data, train_mode="fs")
    data = dataset.Data(cfg)
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        collate_fn=data.collate)
    start = time.perf_counter()
    images = 0
    for image, mask in loader:
        assert tuple(image.shape[1:]) == (3, args.side, args.side), image.shape
        images += image.shape[0]
    ms = (time.perf_counter() - start) * 1e3
    print(f"authors images: {images}")
    print(f"authors epoch: {ms:.1f} ms")


if __name__ == "__main__":
    main()
