//! S-measure (structure measure, Fan et al. ICCV 2017) with α = 0.5, as pysodmetrics 1.6.2.
//!
//! The formulas need a handful of sums (per GT class for the object part, per quadrant around
//! the GT centroid for the region part). They are gathered either pixel by pixel (any
//! prediction) or from 8-bit level histograms ([`crate::levels`]); both feed [`combine`].

use crate::levels::LevelHistograms;
use crate::pair::SaliencyPair;
pub(crate) use crate::s_inputs::{GtLayout, Moments, RegionSums, SInputs};
use crate::sum::{pairwise_mean, sum_lanes};
use crate::EPS;

/// Weight of the object-aware part (α); the region-aware part gets `1 - α`.
pub const S_ALPHA: f64 = 0.5;

/// `2m / (m² + 1 + σ + eps)` (σ: sample standard deviation, 0 for a single value).
fn object_similarity(m: &Moments) -> f64 {
    let std = if m.count > 1 {
        (m.squared_deviations / (m.count - 1) as f64).sqrt()
    } else {
        0.0
    };
    2.0 * m.mean / (m.mean * m.mean + 1.0 + std + EPS)
}

/// The SSIM-like score of one quadrant (NaN when it is empty, as numpy's mean of nothing).
///
/// With g ∈ {0, 1}: `Σ(g - y)² = n_fg (1 - y)² + n_bg y²` and
/// `Σ(p - x)(g - y) = (1 - y) Σ_fg(p - x) - y Σ_bg(p - x)`.
fn ssim(q: &RegionSums) -> f64 {
    let (x, y) = (q.mean, q.n_fg / q.n);
    let denom = q.n - 1.0 + EPS;
    let sigma_x = q.squared_deviations / denom;
    let sigma_y = (q.n_fg * (1.0 - y) * (1.0 - y) + (q.n - q.n_fg) * y * y) / denom;
    let sigma_xy = ((1.0 - y) * q.deviation_fg - y * q.deviation_bg) / denom;
    let alpha = 4.0 * x * y * sigma_xy;
    let beta = (x * x + y * y) * (sigma_x + sigma_y);
    if alpha != 0.0 {
        alpha / (beta + EPS)
    } else if beta == 0.0 {
        1.0
    } else {
        0.0
    }
}

/// The S-measure from its inputs, in pysodmetrics' operation order.
pub(crate) fn combine(layout: &GtLayout, width: usize, height: usize, s: &SInputs) -> f64 {
    let n = width * height;
    if layout.fg == 0 {
        return 1.0 - s.mean;
    }
    if layout.fg == n {
        return s.mean;
    }
    let y = layout.fg as f64 / n as f64;
    let object = object_similarity(&s.object_fg) * y + object_similarity(&s.object_bg) * (1.0 - y);
    let area = n as f64;
    let (cy, cx, w, h) = (layout.cy, layout.cx, width, height);
    let w_lt = (cx * cy) as f64 / area;
    let w_rt = (cy * (w - cx)) as f64 / area;
    let w_lb = ((h - cy) * cx) as f64 / area;
    let w_rb = 1.0 - w_lt - w_rt - w_lb;
    let r = &s.regions;
    let region = ssim(&r[0]) * w_lt + ssim(&r[1]) * w_rt + ssim(&r[2]) * w_lb + ssim(&r[3]) * w_rb;
    let score = object * S_ALPHA + region * (1.0 - S_ALPHA);
    // np.maximum(0, s): clamps below and lets NaN through.
    if score < 0.0 {
        0.0
    } else {
        score
    }
}

/// Gathers the S-measure inputs pixel by pixel (two passes: means, then deviations).
pub(crate) fn inputs_from_pixels(pair: &SaliencyPair, layout: &GtLayout) -> SInputs {
    let (p, g, w) = (&pair.pred, &pair.gt, pair.width);
    let n = p.len();
    let mean = pairwise_mean(p);
    let (fg, bg) = (layout.fg, n - layout.fg);
    // The mask enters as an exact 0/1 factor: the sums equal the branchy ones.
    let [sum_fg, sum_bg] = sum_lanes(0..n, |i| {
        let m = g[i] as u8 as f64;
        [m * p[i], (1.0 - m) * (1.0 - p[i])]
    });
    let (mean_fg, mean_bg) = (sum_fg / fg as f64, sum_bg / bg as f64);
    let [ss_fg, ss_bg] = sum_lanes(0..n, |i| {
        let m = g[i] as u8 as f64;
        let (d_fg, d_bg) = (p[i] - mean_fg, 1.0 - p[i] - mean_bg);
        [m * (d_fg * d_fg), (1.0 - m) * (d_bg * d_bg)]
    });
    let quadrant_sums =
        |rows: (usize, usize), cols: (usize, usize), f: &dyn Fn(usize) -> [f64; 3]| {
            let mut total = [0.0; 3];
            for r in rows.0..rows.1 {
                let row = sum_lanes(r * w + cols.0..r * w + cols.1, f);
                for k in 0..3 {
                    total[k] += row[k];
                }
            }
            total
        };
    let regions = layout.quadrants(w, pair.height).map(|(rows, cols)| {
        let n = ((rows.1 - rows.0) * (cols.1 - cols.0)) as f64;
        let [sum_p, n_fg, _] = quadrant_sums(rows, cols, &|i| [p[i], g[i] as u8 as f64, 0.0]);
        let x = sum_p / n;
        let [ss, dev_fg, dev_bg] = quadrant_sums(rows, cols, &|i| {
            let (d, m) = (p[i] - x, g[i] as u8 as f64);
            [d * d, m * d, (1.0 - m) * d]
        });
        RegionSums {
            n,
            n_fg,
            mean: x,
            squared_deviations: ss,
            deviation_fg: dev_fg,
            deviation_bg: dev_bg,
        }
    });
    SInputs {
        mean,
        object_fg: Moments {
            count: fg,
            mean: mean_fg,
            squared_deviations: ss_fg,
        },
        object_bg: Moments {
            count: bg,
            mean: mean_bg,
            squared_deviations: ss_bg,
        },
        regions,
    }
}

/// S-measure of one pair. `NaN` when the GT centroid falls on the last row or column (two
/// quadrants are empty), exactly as pysodmetrics reports it.
pub fn s_measure(pair: &SaliencyPair) -> f64 {
    let layout = GtLayout::of(&pair.gt, pair.width, pair.height);
    let inputs = match pair.levels() {
        Some((codes, table)) => LevelHistograms::build(codes, table, pair, &layout).s_inputs(),
        None => inputs_from_pixels(pair, &layout),
    };
    combine(&layout, pair.width, pair.height, &inputs)
}
