"""Time pysodmetrics 1.6.2 on a folder of pairs (the reference for `cargo xtask bench-metrics`).

    python3 tests/reference/metrics/bench_pysodmetrics.py DIR

DIR holds pred/NAME.png and gt/NAME.png with matching names (`cargo xtask bench-metrics --dump DIR`
writes 500 synthetic 300x400 pairs there; `--python` runs this script itself in the same run).

All pairs are decoded first (cv2.IMREAD_GRAYSCALE, as PySODEvalToolkit does) and are not timed. The
timed part is one pass of the five metric classes (Fmeasure, Emeasure, Smeasure, MAE,
WeightedFmeasure): `step` on every pair, then `get_results`, on one thread. The output is

    pysodmetrics 1.6.2: N pairs in X s = Y images/s
      dataset: maxF .. meanF .. adpF .. Sm .. maxE .. meanE .. adpE .. wF .. MAE ..

The first line is parsed by xtask (the number after " = "); the second uses the same format as the
Rust benchmark's dataset line, so the two can be compared by eye.
"""

import os

# One thread for every numeric backend; this must happen before numpy is imported.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import py_sod_metrics as psm  # noqa: E402

# Fmeasure warns that it is deprecated in favour of FmeasureV2; NaN S-measures warn too.
warnings.filterwarnings("ignore")
cv2.setNumThreads(1)


def load_pairs(root):
    """Decode every (pred, gt) pair whose name appears in both folders, in sorted name order."""
    gt_names = {p.name for p in (root / "gt").glob("*.png")}
    pred_names = {p.name for p in (root / "pred").glob("*.png")}
    unmatched = gt_names ^ pred_names
    if unmatched:
        print(f"warning: {len(unmatched)} files without a partner are skipped", file=sys.stderr)
    pairs = []
    for name in sorted(gt_names & pred_names):
        pred = cv2.imread(str(root / "pred" / name), cv2.IMREAD_GRAYSCALE)
        gt = cv2.imread(str(root / "gt" / name), cv2.IMREAD_GRAYSCALE)
        if pred is None or gt is None:
            sys.exit(f"cannot decode {name}")
        pairs.append((pred, gt))
    return pairs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    pairs = load_pairs(Path(sys.argv[1]))
    if not pairs:
        sys.exit(f"no pred/gt pairs under {sys.argv[1]}")

    fm, em, sm, mae, wfm = psm.Fmeasure(), psm.Emeasure(), psm.Smeasure(), psm.MAE(), psm.WeightedFmeasure()
    start = time.perf_counter()
    for pred, gt in pairs:
        for metric in (fm, em, sm, mae, wfm):
            metric.step(pred, gt)
    f = fm.get_results()["fm"]
    e = em.get_results()["em"]
    s = sm.get_results()["sm"]
    m = mae.get_results()["mae"]
    w = wfm.get_results()["wfm"]
    elapsed = time.perf_counter() - start

    version = metadata.version("pysodmetrics")
    print(f"pysodmetrics {version}: {len(pairs)} pairs in {elapsed:.2f} s = {len(pairs) / elapsed:.1f} images/s")
    # maxF / meanF (maxE / meanE): max and mean over the 256 points of the per-threshold mean curve.
    print(
        f"  dataset: maxF {f['curve'].max():.4f} meanF {f['curve'].mean():.4f} adpF {f['adp']:.4f} Sm {s:.4f} "
        f"maxE {e['curve'].max():.4f} meanE {e['curve'].mean():.4f} adpE {e['adp']:.4f} wF {w:.4f} MAE {m:.4f}"
    )


if __name__ == "__main__":
    main()
