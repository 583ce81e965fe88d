"""Generate the metric parity corpus and pysodmetrics' expected values.

Run by hand from the repository root (CI never runs it):

    pip install -r tests/reference/metrics/requirements.txt
    python3 tests/reference/metrics/make_reference.py

It
  (a) builds a small deterministic corpus of 8-bit greyscale PNG pairs with numpy (fixed seeds) and
      writes them to tests/data/metrics/corpus/{pred,gt}/NAME.png (Pillow, mode "L");
  (b) reads the PNGs back from disk (cv2.IMREAD_GRAYSCALE, as PySODEvalToolkit does), scores them with
      pysodmetrics 1.6.2 (Fmeasure, Emeasure, Smeasure, MAE, WeightedFmeasure, `step(pred_u8, gt_u8)`
      with the default normalize=True) and writes tests/data/metrics/expected.json, which
      crates/sod-metrics/tests/parity.rs compares against.

Conventions are those of docs/metrics.md (the metric spec). In particular:
  * curves are stored with index t = threshold, i.e. the value for the binary map floor(p*255) >= t
    (pysodmetrics keeps them the other way round: index 0 = threshold 255);
  * NaN is written as JSON null;
  * a prediction whose size differs from its GT is resized to the GT size with the spec's f64 bilinear
    (section 4, implemented below in plain Python, not cv2) before scoring, because pysodmetrics
    refuses mismatched sizes. The resized 8-bit map is stored as well ("resized_pred").
The script asserts the properties each edge case is meant to exercise (see check_case) so that a
change to a generator cannot silently turn a case into something else.
"""

import json
import math
import platform
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as psm
import scipy
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "tests" / "data" / "metrics"
CORPUS = OUT / "corpus"
MAX_OUTPUT_BYTES = 1_000_000  # the corpus plus expected.json must stay well under this

# The three non-resized cases that are also scored as float32 maps with normalize=False.
F32_CASES = ("blob_soft", "two_blobs_noise", "ring_lines")


# --------------------------------------------------------------------------- shapes


def grid(h, w):
    """Row and column coordinates (float64) of an h x w image."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y, x


def ellipse(h, w, cy, cx, ry, rx):
    """Boolean filled ellipse centred at (cy, cx) with radii (ry, rx)."""
    y, x = grid(h, w)
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def soft_blob(h, w, cy, cx, ry, rx, softness):
    """A logistic blob in [0, 1]: 0.5 on the ellipse (cy, cx, ry, rx), smaller `softness` = sharper."""
    y, x = grid(h, w)
    r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return 1.0 / (1.0 + np.exp((r - 1.0) / softness))


def to_u8(v):
    """[0, 1] float map -> 8-bit map (rounded)."""
    return np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)


def mask_u8(m):
    """Boolean mask -> 0/255 8-bit map."""
    return np.where(m, 255, 0).astype(np.uint8)


# --------------------------------------------------------------------------- the spec's resize


def bilinear_resize(src, out_h, out_w):
    """Resize an 8-bit map with the f64 bilinear of the metric spec (section 4).

    OpenCV geometry (half-pixel centres, no antialiasing), f64 arithmetic in exactly the written
    operation order, edge clamping as written, and out = min(255, floor(v + 0.5)).
    """
    src = src.astype(np.float64)
    sh, sw = src.shape

    def taps(src_len, dst_len):
        """(i0, i1, f) for every output index along one axis."""
        scale = src_len / dst_len  # Python float division = f64
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
            a, b = float(src[y0, x0]), float(src[y0, x1])
            c, d = float(src[y1, x0]), float(src[y1, x1])
            top = a * (1 - fx) + b * fx
            bot = c * (1 - fx) + d * fx
            v = top * (1 - fy) + bot * fy
            out[oy, ox] = min(255, math.floor(v + 0.5))
    return out


# --------------------------------------------------------------------------- the corpus


def cases():
    """Yield (name, pred_u8, gt_u8, description); pred and gt may differ in size.

    Sizes are (rows, columns) in the code and W x H in the descriptions. All randomness comes from
    seeded generators, so the corpus is identical on every run.
    """
    rng = np.random.default_rng(20221023)

    # --- ordinary maps -------------------------------------------------------------------------
    h, w = 64, 80
    gt = mask_u8(ellipse(h, w, 30, 42, 18, 24))
    pred = to_u8(soft_blob(h, w, 32, 40, 20, 26, 0.15))
    yield "blob_soft", pred, gt, "soft gaussian-like blob vs elliptical GT"

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
    yield "ring_lines", pred, gt, "thin structures: ring and one-/three-pixel lines"

    h, w = 45, 52
    gt = mask_u8(rng.uniform(0, 1, (h, w)) < 0.04)
    pred = rng.integers(0, 256, (h, w), dtype=np.uint8)
    yield "salt_random", pred, gt, "random salt GT, random prediction (many distance-transform ties)"

    h, w = 120, 30
    gt = mask_u8(ellipse(h, w, 70, 14, 35, 9))
    pred = to_u8(soft_blob(h, w, 66, 15, 38, 10, 0.25))
    yield "tall", pred, gt, "tall non-square image (30 x 120)"

    # --- exact and empty / full GT ---------------------------------------------------------------
    h, w = 40, 50
    gt = mask_u8(ellipse(h, w, 20, 26, 11, 15))
    yield "pred_equals_gt", gt.copy(), gt, "binary 0/255 prediction equal to the GT"

    h, w = 36, 44
    pred = to_u8(soft_blob(h, w, 18, 20, 8, 10, 0.3))
    yield "gt_empty", pred, np.zeros((h, w), np.uint8), "GT all black, varied prediction"

    h, w = 30, 33
    yield "gt_empty_pred_zero", np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8), "GT and prediction all 0"

    h, w = 35, 41
    pred = to_u8(np.clip(0.6 + 0.4 * soft_blob(h, w, 17, 20, 10, 12, 0.3) - rng.uniform(0, 0.3, (h, w)), 0, 1))
    yield "gt_full", pred, np.full((h, w), 255, np.uint8), "GT all white, varied prediction"

    # --- constant predictions (not stretched: p = c / 255) ---------------------------------------
    h, w = 50, 60
    gt = mask_u8(ellipse(h, w, 24, 29, 14, 17))
    # The GT centroid lies inside the blob, so all four S-measure quadrants hold both classes:
    # this avoids the numpy summation-order quirk of spec section 5 (checked in check_case).
    yield "constant_200", np.full((h, w), 200, np.uint8), gt, "constant prediction 200, every quadrant mixed"
    yield "constant_0", np.zeros((h, w), np.uint8), gt, "constant prediction 0"
    yield "constant_255", np.full((h, w), 255, np.uint8), gt, "constant prediction 255"

    # --- GT binarisation: gt > 128 -------------------------------------------------------------
    h, w = 42, 48
    gt = np.zeros((h, w), np.uint8)
    gt[8:30, 6:20] = 128  # background!
    gt[12:34, 22:40] = 129  # foreground
    pred = to_u8(soft_blob(h, w, 20, 24, 12, 14, 0.2))
    yield "gt_128_129", pred, gt, "GT values 128 (background) and 129 (foreground)"

    gt01 = mask_u8(ellipse(h, w, 20, 24, 10, 12)) // 255
    yield "gt_zero_one", pred, gt01.astype(np.uint8), "GT stored as 0/1 (all background)"

    # --- S-measure geometry ----------------------------------------------------------------------
    h, w = 31, 37
    gt = np.zeros((h, w), np.uint8)
    gt[13, 17] = 255
    pred = to_u8(soft_blob(h, w, 13, 17, 3, 3, 0.3))
    yield "single_pixel", pred, gt, "one GT foreground pixel (object std with one element = 0)"

    h, w = 34, 40
    gt = np.zeros((h, w), np.uint8)
    gt[5:25, w - 1] = 255
    pred = to_u8(soft_blob(h, w, 15, w - 2, 10, 3, 0.3))
    yield "last_column", pred, gt, "GT only in the last column (cx = W: S-measure NaN)"

    gt = np.zeros((h, w), np.uint8)
    gt[h - 1, 8:30] = 255
    pred = to_u8(soft_blob(h, w, h - 2, 19, 3, 11, 0.3))
    yield "last_row", pred, gt, "GT only in the last row (cy = H: S-measure NaN)"

    h, w = 40, 46
    gt = np.zeros((h, w), np.uint8)
    # A blob symmetric about row 10.5 and column 20.5: the 0-based mean row / column are exactly
    # 10.5 / 20.5, which numpy rounds half to even (10, 20) and MATLAB away from zero (11, 21).
    gt[10:12, 20:22] = 255
    gt[9:13, 19:23] = np.maximum(gt[9:13, 19:23], mask_u8(ellipse(4, 4, 1.5, 1.5, 1.6, 1.6)))
    pred = to_u8(soft_blob(h, w, 10.5, 20.5, 4, 4, 0.3))
    yield "centroid_tie", pred, gt, "centroid exactly k+0.5 with k even (round half to even)"

    # --- normalisation and the adaptive threshold ------------------------------------------------
    h, w = 44, 52
    gt = mask_u8(ellipse(h, w, 20, 30, 14, 17))
    # A prediction saturated at 255 on ~70 % of the image. Min-max stretching keeps the 255 pixels at
    # exactly 1 and maps the minimum (79) to 0, and the stretched mean is still ~0.9, so the adaptive
    # threshold 2 * mean(p) is clipped to 1 and only pixels with p == 1 count. (A map that is merely
    # bright but not saturated, e.g. 192..255, would be stretched back to a normal mean.)
    bright_rng = np.random.default_rng(7)
    p = 1.7 * soft_blob(h, w, 24, 23, 21, 27, 0.3) + bright_rng.uniform(0, 0.15, (h, w))
    pred = to_u8(np.clip(p, 0, 1))
    yield "bright", pred, gt, "saturated prediction: 2*mean(p) > 1, adaptive threshold clipped to 1"

    h, w = 48, 56
    gt = mask_u8(ellipse(h, w, 24, 28, 13, 15))
    pred = (100 + np.round(40 * soft_blob(h, w, 24, 28, 14, 16, 0.3))).astype(np.uint8)
    yield "narrow_range", pred, gt, "prediction values 100..140: min-max stretching and truncation"

    # --- size mismatch (resized with the spec's bilinear) ----------------------------------------
    gh, gw = 60, 80
    gt = mask_u8(ellipse(gh, gw, 28, 41, 16, 22))
    pred = to_u8(soft_blob(29, 37, 13.5, 19, 8, 10, 0.2))
    yield "upsample", pred, gt, "prediction 37x29 resized up to the GT size 80x60"

    gh, gw = 33, 41
    gt = mask_u8(ellipse(gh, gw, 16, 20, 9, 12))
    pred = to_u8(np.clip(soft_blob(90, 100, 44, 49, 25, 30, 0.2) + rng.uniform(0, 0.1, (90, 100)), 0, 1))
    yield "downsample", pred, gt, "prediction 100x90 resized down to the GT size 41x33"


# --------------------------------------------------------------------------- self-checks


def normalised(pred_u8):
    """pysodmetrics' prepare_data for the prediction: /255, then min-max unless constant."""
    p = pred_u8 / 255
    if p.max() != p.min():
        p = (p - p.min()) / (p.max() - p.min())
    return p


def centroid_quadrants(gt):
    """The four S-measure quadrants of a boolean GT around pysodmetrics' centroid (spec 3.2)."""
    rows, cols = np.nonzero(gt)
    cy = int(np.round(rows.mean())) + 1
    cx = int(np.round(cols.mean())) + 1
    return [gt[:cy, :cx], gt[:cy, cx:], gt[cy:, :cx], gt[cy:, cx:]]


def check_case(name, pred_src, pred, gt_u8, entry):
    """Assert the property each case exists for. pred_src is the PNG as read, pred the scored map."""
    for h, w in (pred_src.shape, gt_u8.shape):
        assert 20 <= h <= 130 and 20 <= w <= 130, f"{name}: size {w}x{h} outside 20..130"
    gt = gt_u8 > 128
    p = normalised(pred)
    if name == "pred_equals_gt":
        assert np.array_equal(pred, gt_u8) and set(np.unique(gt_u8)) == {0, 255}
    if name in ("gt_empty", "gt_empty_pred_zero", "gt_zero_one"):
        assert not gt.any(), name
    if name == "gt_empty":
        assert pred.min() != pred.max()
    if name == "gt_empty_pred_zero":
        assert not pred.any()
    if name == "gt_full":
        assert gt.all() and pred.min() != pred.max()
    if name.startswith("constant_"):
        value = int(name.split("_")[1])
        assert (pred == value).all() and 0 < gt.sum() < gt.size, name
    if name == "constant_200":
        for q in centroid_quadrants(gt):
            assert q.any() and not q.all(), "constant_200: a quadrant lacks fg or bg"
    if name == "gt_128_129":
        assert {128, 129} <= set(np.unique(gt_u8).tolist())
    if name == "gt_zero_one":
        assert set(np.unique(gt_u8).tolist()) == {0, 1}
    if name == "single_pixel":
        assert gt.sum() == 1
    if name == "last_column":
        assert gt.any() and not gt[:, :-1].any() and entry["sm"] is None
    if name == "last_row":
        assert gt.any() and not gt[:-1, :].any() and entry["sm"] is None
    if name == "centroid_tie":
        rows, cols = np.nonzero(gt)
        for mean in (rows.mean(), cols.mean()):
            k = math.floor(mean)
            assert mean == k + 0.5 and k % 2 == 0, f"centroid_tie: mean {mean} is not a k+0.5 tie with k even"
    if name == "bright":
        assert 2 * p.mean() > 1, "bright: 2*mean(p) must exceed 1"
        assert ((p >= 1) & ~gt).any() and (gt & (p < 1)).any(), "bright: clipped map should be imperfect"
    if name == "narrow_range":
        assert 100 <= pred.min() and pred.max() <= 140 and pred.min() != pred.max()
    if name == "upsample":
        assert pred_src.shape == (29, 37) and gt_u8.shape == (60, 80)
    if name == "downsample":
        assert pred_src.shape == (90, 100) and gt_u8.shape == (33, 41)
    # Curves never hold NaN in pysodmetrics; the Rust side reads them as plain floats.
    for key in ("precision", "recall", "f_curve", "e_curve"):
        assert len(entry[key]) == 256 and None not in entry[key], f"{name}: bad {key}"


# --------------------------------------------------------------------------- scoring


def new_metrics():
    """Fresh pysodmetrics objects (default parameters: beta^2 = 0.3, alpha = 0.5)."""
    return dict(
        fm=psm.Fmeasure(),
        em=psm.Emeasure(),
        sm=psm.Smeasure(),
        mae=psm.MAE(),
        wfm=psm.WeightedFmeasure(),
    )


def num(v):
    """A JSON-safe float: NaN becomes null. json writes floats with repr, which round-trips."""
    v = float(v)
    return None if math.isnan(v) else v


def curve(a):
    """pysodmetrics stores index 0 = threshold 255: flip so that index t means floor(p*255) >= t."""
    return [num(v) for v in np.asarray(a, np.float64)[::-1]]


def score_one(pred, gt, normalize=True):
    """Per-image values: step fresh metric objects once and read the values they stored."""
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
    """Dataset values from pysodmetrics' own get_results() after stepping through `pairs` in order."""
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
        # max / mean over the 256 points of the per-threshold mean curve (order does not matter).
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
    """Decode a PNG exactly as PySODEvalToolkit does."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img


def write_png(arr, path):
    """Save a 2-D uint8 array as an 8-bit greyscale ("L") PNG."""
    assert arr.dtype == np.uint8 and arr.ndim == 2
    img = Image.fromarray(arr)
    assert img.mode == "L"
    img.save(path)


def folder_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main():
    # Start from empty corpus folders so that a renamed case leaves no stale PNG behind.
    for sub in ("pred", "gt"):
        (CORPUS / sub).mkdir(parents=True, exist_ok=True)
        for old in (CORPUS / sub).glob("*.png"):
            old.unlink()

    images, loaded = [], []
    for name, pred, gt, what in cases():
        # (a) write the pair, (b) score what is actually on disk.
        write_png(pred, CORPUS / "pred" / f"{name}.png")
        write_png(gt, CORPUS / "gt" / f"{name}.png")
        pred_src = read_gray(CORPUS / "pred" / f"{name}.png")
        gt = read_gray(CORPUS / "gt" / f"{name}.png")
        entry = dict(name=name, description=what, pred=f"pred/{name}.png", gt=f"gt/{name}.png",
                     width=int(gt.shape[1]), height=int(gt.shape[0]), resized=pred_src.shape != gt.shape)
        pred = pred_src
        if entry["resized"]:
            resized = bilinear_resize(pred_src, gt.shape[0], gt.shape[1])
            # For information only: the spec's bilinear is not cv2's fixed-point INTER_LINEAR.
            cv = cv2.resize(pred_src, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            diff = np.abs(resized.astype(int) - cv.astype(int))
            print(f"{name}: spec bilinear vs cv2 INTER_LINEAR: {np.count_nonzero(diff)} of {diff.size} "
                  f"pixels differ ({100 * np.count_nonzero(diff) / diff.size:.1f} %), max {diff.max()}")
            entry["resized_pred"] = [int(v) for v in resized.ravel()]  # row-major
            pred = resized
        entry.update(score_one(pred, gt))
        check_case(name, pred_src, pred, gt, entry)
        images.append(entry)
        loaded.append((name, pred, gt))

    # Only the two last-row / last-column cases may give a NaN S-measure.
    nan_cases = [e["name"] for e in images if e["sm"] is None]
    assert nan_cases == ["last_column", "last_row"], nan_cases
    assert metadata.version("pysodmetrics") == "1.6.2", "the reference is pysodmetrics 1.6.2"

    # Datasets: fresh metric objects stepped through the images in corpus order.
    all_names = [n for n, _, _ in loaded]
    no_nan = [e["name"] for e in images if e["sm"] is not None]
    datasets = {}
    for label, names in (("all", all_names), ("no_nan", no_nan)):
        pairs = [(p, g) for n, p, g in loaded if n in names]
        datasets[label] = dict(names=names, **score_dataset(pairs))

    # Float inputs (normalize=False): a float32 map built in float32 arithmetic, passed as float64.
    f32_cases = []
    for name in F32_CASES:
        _, pred, gt = next(c for c in loaded if c[0] == name)
        assert pred.shape == gt.shape
        p32 = (pred.astype(np.float32) / np.float32(255.0)) ** 2
        assert p32.dtype == np.float32
        f32_cases.append(dict(name=name, **score_one(p32.astype(np.float64), gt > 128, normalize=False)))

    doc = dict(
        generator="tests/reference/metrics/make_reference.py",
        versions=dict(pysodmetrics=metadata.version("pysodmetrics"),
                      numpy=np.__version__, scipy=scipy.__version__, opencv=cv2.__version__,
                      python=platform.python_version()),
        curve_order="index t = 0..255 ascending; value for the binary map floor(p*255) >= t",
        images=images,
        datasets=datasets,
        f32_cases=f32_cases,
    )
    # allow_nan=False: any NaN that escaped num() is an error, never a bare NaN token.
    (OUT / "expected.json").write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n")

    total = folder_bytes(OUT)
    assert total < MAX_OUTPUT_BYTES, f"outputs are {total} bytes"
    print(f"{len(images)} cases, outputs {total} bytes; NaN S-measure: {nan_cases}")
    for e in images:
        print(f"  {e['name']:<20} {e['width']:>3}x{e['height']:<3} {e['description']}")
    for label in ("all", "no_nan"):
        scalars = {k: v for k, v in datasets[label].items() if not isinstance(v, list)}
        print(f"dataset {label}: {scalars}")


if __name__ == "__main__":
    main()
