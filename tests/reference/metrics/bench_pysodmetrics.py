"""Time pysodmetrics 1.6.2 on a folder of pairs (the reference for `cargo xtask bench-metrics`).

    python3 tests/reference/metrics/bench_pysodmetrics.py DIR

DIR holds pred/NAME.png and gt/NAME.png (`cargo xtask bench-metrics --dump DIR` writes 500
synthetic 300x400 pairs there; `--python` runs this script itself in the same run). All pairs are
decoded first; the timed part is one pass of the five metric classes (Fmeasure, Emeasure,
Smeasure, MAE, WeightedFmeasure) over every pair plus get_results, on one thread.
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import py_sod_metrics as psm  # noqa: E402

warnings.filterwarnings("ignore")
cv2.setNumThreads(1)


def main():
    root = Path(sys.argv[1])
    names = sorted(p.name for p in (root / "gt").glob("*.png"))
    pairs = [
        (cv2.imread(str(root / "pred" / n), cv2.IMREAD_GRAYSCALE), cv2.imread(str(root / "gt" / n), cv2.IMREAD_GRAYSCALE))
        for n in names
    ]
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
    print(f"pysodmetrics 1.6.2: {len(pairs)} pairs in {elapsed:.2f} s = {len(pairs) / elapsed:.1f} images/s")
    print(
        f"  dataset: maxF {f['curve'].max():.4f} meanF {f['curve'].mean():.4f} adpF {f['adp']:.4f} Sm {s:.4f} "
        f"maxE {e['curve'].max():.4f} meanE {e['curve'].mean():.4f} adpE {e['adp']:.4f} wF {w:.4f} MAE {m:.4f}"
    )


if __name__ == "__main__":
    main()
