"""Generate the metric parity corpus and pysodmetrics' expected values.

Run by hand from the repository root (CI never runs it):

    pip install -r tests/reference/metrics/requirements.txt
    python3 tests/reference/metrics/make_reference.py

Writes 8-bit greyscale PNG pairs to tests/data/metrics/corpus/{pred,gt}/NAME.png, reads them back
from disk, scores them with pysodmetrics 1.6.2 and writes tests/data/metrics/expected.json, which
crates/sod-metrics/tests/parity.rs compares against.
"""

import json
import math
import platform
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as psm
import scipy
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "tests" / "data" / "metrics"
CORPUS = OUT / "corpus"


# --------------------------------------------------------------------------- shapes


def grid(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y, x


def ellipse(h, w, cy, cx, ry, rx):
    y, x = grid(h, w)
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def soft_blob(h, w, cy, cx, ry, rx, softness):
    y, x = grid(h, w)
    r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return 1.0 / (1.0 + np.exp((r - 1.0) / softness))


def to_u8(v):
    return np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)


def mask_u8(m):
    return np.where(m, 255, 0).astype(np.uint8)


# --------------------------------------------------------------------------- the spec's resize


def bilinear_resize(src, out_h, out_w):
    """Resize an 8-bit map with the f64 bilinear of docs/metrics.md (OpenCV geometry)."""
    src = src.astype(np.float64)
    sh, sw = src.shape

    def taps(src_len, dst_len):
        scale = src_len / dst_len
        out = []
        for d in range(dst_len):
            s = (d + 0.5) * scale - 0.5
            i0 = math.floor(s)
            f = s - i0
            if i0 < 0:
                i0, f = 0, 0.0
            if i0 >= src_len - 1:
                i0, f = src_len - 1, 0.0
            out.append((i0, min(i0 + 1, src_len - 1), f))
        return out

    ys, xs = taps(sh, out_h), taps(sw, out_w)
    out = np.empty((out_h, out_w), np.uint8)
    for oy, (y0, y1, fy) in enumerate(ys):
        for ox, (x0, x1, fx) in enumerate(xs):
            a, b, c, d = src[y0, x0], src[y0, x1], src[y1, x0], src[y1, x1]
            top = a * (1 - fx) + b * fx
            bot = c * (1 - fx) + d * fx
            v = top * (1 - fy) + bot * fy
            out[oy, ox] = min(255, math.floor(v + 0.5))
    return out


# --------------------------------------------------------------------------- the corpus


def cases():
    """Yield (name, pred_u8, gt_u8, description); pred and gt may differ in size."""
    rng = np.random.default_rng(20221023)

    h, w = 64, 80
    gt = mask_u8(ellipse(h, w, 30, 42, 18, 24))
    pred = to_u8(soft_blob(h, w, 32, 40, 20, 26, 0.15))
    yield "blob_soft", pred, gt, "soft blob vs elliptical GT"

    h, w = 70, 90
    gt = mask_u8(ellipse(h, w, 20, 25, 12, 14) | ellipse(h, w, 48, 64, 14, 18))
    p = 0.9 * soft_blob(h, w, 21, 27, 13, 15, 0.2) + 0.7 * soft_blob(h, w, 46, 60, 12, 16, 0.3)
    pred = to_u8(np.clip(p + rng.normal(0, 0.08, (h, w)), 0, 1))
    yield "two_blobs_noise", pred, gt, "two objects, noisy prediction"

    h, w = 57, 83
    y, x = grid(h, w)
    r = np.sqrt((y - 28) ** 2 + (x - 41) ** 2)
    ring = (r > 14) & (r < 20)
    lines = (np.abs(x - 10) < 1) | (np.abs(y - 50) < 1.5)
    gt = mask_u8(ring | lines)
    pred = to_u8(np.clip(0.8 * np.exp(-((r - 17) ** 2) / 30) + 0.3 * lines + rng.uniform(0, 0.2, (h, w)), 0, 1))
    yield "ring_lines", pred, gt, "thin structures: ring and lines"

    h, w = 45, 52
    gt = mask_u8(rng.uniform(0, 1, (h, w)) < 0.04)
    pred = rng.integers(0, 256, (h, w), dtype=np.uint8)
    yield "salt_random", pred, gt, "random salt GT, random prediction (distance-transform ties)"

    h, w = 120, 30
    gt = mask_u8(ellipse(h, w, 70, 14, 35, 9))
    pred = to_u8(soft_blob(h, w, 66, 15, 38, 10, 0.25))
    yield "tall", pred, gt, "tall non-square image"

    h, w = 40, 50
    gt = mask_u8(ellipse(h, w, 20, 26, 11, 15))
    yield "pred_equals_gt", gt.copy(), gt, "binary prediction equal to the GT"

    h, w = 36, 44
    pred = to_u8(soft_blob(h, w, 18, 20, 8, 10, 0.3))
    yield "gt_empty", pred, np.zeros((h, w), np.uint8), "GT all black, varied prediction"

    h, w = 30, 33
    yield "gt_empty_pred_zero", np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8), "GT and prediction all 0"

    h, w = 35, 41
    pred = to_u8(np.clip(0.6 + 0.4 * soft_blob(h, w, 17, 20, 10, 12, 0.3) - rng.uniform(0, 0.3, (h, w)), 0, 1))
    yield "gt_full", pred, np.full((h, w), 255, np.uint8), "GT all white"

    h, w = 50, 60
    gt = mask_u8(ellipse(h, w, 24, 29, 14, 17))
    # The centroid sits inside the blob, so every quadrant holds both classes (no numpy
    # summation-order quirk, spec section 5).
    yield "constant_200", np.full((h, w), 200, np.uint8), gt, "constant prediction 200"
    yield "constant_0", np.zeros((h, w), np.uint8), gt, "constant prediction 0"
    yield "constant_255", np.full((h, w), 255, np.uint8), gt, "constant prediction 255"

    h, w = 42, 48
    gt = np.zeros((h, w), np.uint8)
    gt[8:30, 6:20] = 128  # background!
    gt[12:34, 22:40] = 129  # foreground
    pred = to_u8(soft_blob(h, w, 20, 24, 12, 14, 0.2))
    yield "gt_128_129", pred, gt, "GT values 128 (background) and 129 (foreground)"

    gt01 = mask_u8(ellipse(h, w, 20, 24, 10, 12)) // 255
    yield "gt_zero_one", pred, gt01.astype(np.uint8), "GT stored as 0/1 (all background)"

    h, w = 31, 37
    gt = np.zeros((h, w), np.uint8)
    gt[13, 17] = 255
    pred = to_u8(soft_blob(h, w, 13, 17, 3, 3, 0.3))
    yield "single_pixel", pred, gt, "one GT foreground pixel"

    h, w = 34, 40
    gt = np.zeros((h, w), np.uint8)
    gt[5:25, w - 1] = 255
    pred = to_u8(soft_blob(h, w, 15, w - 2, 10, 3, 0.3))
    yield "last_column", pred, gt, "GT only in the last column (S-measure NaN)"

    gt = np.zeros((h, w), np.uint8)
    gt[h - 1, 8:30] = 255
    pred = to_u8(soft_blob(h, w, h - 2, 19, 3, 11, 0.3))
    yield "last_row", pred, gt, "GT only in the last row (S-measure NaN)"

    h, w = 40, 46
    gt = np.zeros((h, w), np.uint8)
    # Rows 10..11 and columns 20..21: 0-based mean row 10.5 and column 20.5, ties rounded to
    # even (10, 20) by numpy; MATLAB would round them away from zero.
    gt[10:12, 20:22] = 255
    gt[9:13, 19:23] = np.maximum(gt[9:13, 19:23], mask_u8(ellipse(4, 4, 1.5, 1.5, 1.6, 1.6)))
    pred = to_u8(soft_blob(h, w, 10.5, 20.5, 4, 4, 0.3))
    yield "centroid_tie", pred, gt, "centroid exactly k+0.5 with k even"

    h, w = 44, 52
    gt = mask_u8(ellipse(h, w, 22, 26, 16, 20))
    pred = to_u8(np.clip(0.75 + 0.25 * soft_blob(h, w, 22, 26, 16, 20, 0.2), 0, 1))
    yield "bright", pred, gt, "bright prediction: 2*mean(p) > 1, threshold clipped to 1"

    h, w = 48, 56
    gt = mask_u8(ellipse(h, w, 24, 28, 13, 15))
    pred = (100 + np.round(40 * soft_blob(h, w, 24, 28, 14, 16, 0.3))).astype(np.uint8)
    yield "narrow_range", pred, gt, "prediction values 100..140: stretching and truncation"

    gh, gw = 60, 80
    gt = mask_u8(ellipse(gh, gw, 28, 41, 16, 22))
    pred = to_u8(soft_blob(29, 37, 13.5, 19, 8, 10, 0.2))
    yield "upsample", pred, gt, "prediction 37x29 resized up to GT 80x60"

    gh, gw = 33, 41
    gt = mask_u8(ellipse(gh, gw, 16, 20, 9, 12))
    pred = to_u8(np.clip(soft_blob(90, 100, 44, 49, 25, 30, 0.2) + rng.uniform(0, 0.1, (90, 100)), 0, 1))
    yield "downsample", pred, gt, "prediction 100x90 resized down to GT 41x33"


# --------------------------------------------------------------------------- scoring


def new_metrics():
    return dict(
        fm=psm.Fmeasure(),
        em=psm.Emeasure(),
        sm=psm.Smeasure(),
        mae=psm.MAE(),
        wfm=psm.WeightedFmeasure(),
    )


def num(v):
    """A JSON-safe float: NaN becomes null."""
    v = float(v)
    return None if math.isnan(v) else v


def curve(a):
    # pysodmetrics stores index 0 = threshold 255: flip so index t means q >= t.
    return [num(v) for v in np.asarray(a, np.float64)[::-1]]


def score_one(pred, gt, normalize=True):
    m = new_metrics()
    for metric in m.values():
        metric.step(pred, gt, normalize=normalize)
    return dict(
        mae=num(m["mae"].maes[-1]),
        sm=num(m["sm"].sms[-1]),
        wfm=num(m["wfm"].weighted_fms[-1]),
        adp_f=num(m["fm"].adaptive_fms[-1]),
        adp_e=num(m["em"].adaptive_ems[-1]),
        precision=curve(m["fm"].precisions[-1]),
        recall=curve(m["fm"].recalls[-1]),
        f_curve=curve(m["fm"].changeable_fms[-1]),
        e_curve=curve(m["em"].changeable_ems[-1]),
    )


def score_dataset(pairs):
    m = new_metrics()
    for pred, gt in pairs:
        for metric in m.values():
            metric.step(pred, gt)
    fm = m["fm"].get_results()
    em = m["em"].get_results()["em"]
    f_curve = np.asarray(fm["fm"]["curve"], np.float64)
    e_curve = np.asarray(em["curve"], np.float64)
    return dict(
        mae=num(m["mae"].get_results()["mae"]),
        sm=num(m["sm"].get_results()["sm"]),
        wfm=num(m["wfm"].get_results()["wfm"]),
        adp_f=num(fm["fm"]["adp"]),
        adp_e=num(em["adp"]),
        max_f=num(f_curve.max()),
        mean_f=num(f_curve.mean()),
        max_e=num(e_curve.max()),
        mean_e=num(e_curve.mean()),
        precision=curve(fm["pr"]["p"]),
        recall=curve(fm["pr"]["r"]),
        f_curve=curve(f_curve),
        e_curve=curve(e_curve),
    )


def read_gray(path):
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img


def main():
    for sub in ("pred", "gt"):
        (CORPUS / sub).mkdir(parents=True, exist_ok=True)
        for old in (CORPUS / sub).glob("*.png"):
            old.unlink()

    images, loaded = [], []
    for name, pred, gt, what in cases():
        Image.fromarray(pred, mode="L").save(CORPUS / "pred" / f"{name}.png")
        Image.fromarray(gt, mode="L").save(CORPUS / "gt" / f"{name}.png")
        pred = read_gray(CORPUS / "pred" / f"{name}.png")
        gt = read_gray(CORPUS / "gt" / f"{name}.png")
        entry = dict(name=name, description=what, pred=f"pred/{name}.png", gt=f"gt/{name}.png",
                     width=int(gt.shape[1]), height=int(gt.shape[0]), resized=pred.shape != gt.shape)
        if pred.shape != gt.shape:
            resized = bilinear_resize(pred, gt.shape[0], gt.shape[1])
            cv = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            diff = np.abs(resized.astype(int) - cv.astype(int))
            print(f"{name}: spec bilinear vs cv2 INTER_LINEAR: {np.count_nonzero(diff)} of {diff.size} "
                  f"pixels differ, max {diff.max()}")
            entry["resized_pred"] = [int(v) for v in resized.ravel()]
            pred = resized
        entry.update(score_one(pred, gt))
        images.append(entry)
        loaded.append((name, pred, gt))

    all_names = [n for n, _, _ in loaded]
    no_nan = [e["name"] for e in images if e["sm"] is not None]
    datasets = {}
    for label, names in (("all", all_names), ("no_nan", no_nan)):
        pairs = [(p, g) for n, p, g in loaded if n in names]
        datasets[label] = dict(names=names, **score_dataset(pairs))

    f32_cases = []
    for name in ("blob_soft", "two_blobs_noise", "ring_lines"):
        _, pred, gt = next(c for c in loaded if c[0] == name)
        p32 = (pred.astype(np.float32) / np.float32(255.0)) ** 2
        assert p32.dtype == np.float32
        f32_cases.append(dict(name=name, **score_one(p32.astype(np.float64), gt > 128, normalize=False)))

    doc = dict(
        generator="tests/reference/metrics/make_reference.py",
        versions=dict(pysodmetrics="1.6.2", numpy=np.__version__, scipy=scipy.__version__,
                      opencv=cv2.__version__, python=platform.python_version()),
        curve_order="index t = 0..255 ascending; value for the binary map floor(p*255) >= t",
        images=images,
        datasets=datasets,
        f32_cases=f32_cases,
    )
    (OUT / "expected.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    nan = [e["name"] for e in images if e["sm"] is None]
    print(f"{len(images)} cases; NaN S-measure: {nan}")
    print("dataset all:", {k: v for k, v in datasets["all"].items() if not isinstance(v, list)})
    print("dataset no_nan:", {k: v for k, v in datasets["no_nan"].items() if not isinstance(v, list)})


if __name__ == "__main__":
    main()
