//! Weighted F-measure (Margolin et al. CVPR 2014) with β² = 1, as pysodmetrics 1.6.2.

use crate::edt::{distance_transform, DistanceTransform};
use crate::pair::SaliencyPair;
use crate::sum::sum_lanes;
use crate::EPS;

/// β² of the weighted F-measure.
pub const WF_BETA2: f64 = 1.0;

/// Half-size of the 7×7 Gaussian (MATLAB `fspecial('gaussian', 7, 5)`).
const RADIUS: usize = 3;
/// σ of that Gaussian.
const SIGMA: f64 = 5.0;
/// Squared distance within which a background pixel can fall in the 7×7 window of a
/// foreground pixel (Chebyshev distance ≤ 3).
const NEAR_BAND: u32 = 2 * (RADIUS * RADIUS) as u32;
/// Distances² below this have their importance weight cached (2 MiB at most).
const WEIGHT_CACHE: usize = 1 << 18;

/// Reusable buffers, so scoring many images does not allocate per image.
#[derive(Default)]
pub(crate) struct WfScratch {
    dt: DistanceTransform,
    /// `Et`: `E`, with the error of the nearest foreground pixel on the background.
    spread: Vec<f64>,
    /// `Et` filtered along rows.
    horizontal: Vec<f64>,
    /// `EA`: `Et` filtered along rows and columns.
    filtered: Vec<f64>,
    /// Importance weights of the squared distances `0..len` (grown on demand up to `WEIGHT_CACHE`).
    weight: Vec<f64>,
}

/// The normalised 1-D factor of the separable 7×7 kernel: `k(x) = exp(-x²/2σ²) / Σ`.
fn kernel_1d() -> [f64; 2 * RADIUS + 1] {
    let mut k = [0.0; 2 * RADIUS + 1];
    for (i, slot) in k.iter_mut().enumerate() {
        let x = i as f64 - RADIUS as f64;
        *slot = (-(x * x) / (2.0 * SIGMA * SIGMA)).exp();
    }
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// The pixel-importance weight `2 - exp(ln(0.5) / 5 · d)` of a background pixel at distance d.
fn importance(dist2: u32) -> f64 {
    2.0 - ((0.5f64).ln() / 5.0 * (dist2 as f64).sqrt()).exp()
}

/// Correlates every row of `src` with the 1-D Gaussian `k`, zero padding (first half of the
/// separable 7×7 `imfilter`; the column half is applied only where it is needed).
fn filter_rows(src: &[f64], width: usize, k: &[f64; 2 * RADIUS + 1], out: &mut Vec<f64>) {
    out.clear();
    out.resize(src.len(), 0.0);
    for (row, dst) in src.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        // Border pixels: only the taps that fall inside the row.
        let border = |c: usize| {
            let lo = c.saturating_sub(RADIUS);
            let hi = (c + RADIUS).min(width - 1);
            (lo..=hi)
                .map(|cc| k[cc + RADIUS - c] * row[cc])
                .sum::<f64>()
        };
        if width <= 2 * RADIUS {
            for (c, d) in dst.iter_mut().enumerate() {
                *d = border(c);
            }
            continue;
        }
        for c in (0..RADIUS).chain(width - RADIUS..width) {
            dst[c] = border(c);
        }
        // Interior: all seven taps, no bounds logic.
        for (d, win) in dst[RADIUS..width - RADIUS]
            .iter_mut()
            .zip(row.windows(2 * RADIUS + 1))
        {
            *d = k[0] * win[0]
                + k[1] * win[1]
                + k[2] * win[2]
                + k[3] * win[3]
                + k[4] * win[4]
                + k[5] * win[5]
                + k[6] * win[6];
        }
    }
}

/// Correlates every column of `src` (rows of `width`) with the 1-D Gaussian, zero padding.
fn filter_columns(src: &[f64], width: usize, k: &[f64; 2 * RADIUS + 1], out: &mut Vec<f64>) {
    let height = src.len() / width;
    out.clear();
    out.resize(src.len(), 0.0);
    for (r, dst) in out.chunks_exact_mut(width).enumerate() {
        let (lo, hi) = (r.saturating_sub(RADIUS), (r + RADIUS).min(height - 1));
        if lo + 2 * RADIUS == hi {
            // Interior row: all seven source rows, one pass.
            let rows: [&[f64]; 2 * RADIUS + 1] =
                std::array::from_fn(|j| &src[(lo + j) * width..(lo + j + 1) * width]);
            for (c, d) in dst.iter_mut().enumerate() {
                *d = k[0] * rows[0][c]
                    + k[1] * rows[1][c]
                    + k[2] * rows[2][c]
                    + k[3] * rows[3][c]
                    + k[4] * rows[4][c]
                    + k[5] * rows[5][c]
                    + k[6] * rows[6][c];
            }
        } else {
            for rr in lo..=hi {
                let weight = k[rr + RADIUS - r];
                for (d, s) in dst.iter_mut().zip(&src[rr * width..(rr + 1) * width]) {
                    *d += weight * s;
                }
            }
        }
    }
}

/// Half-open row and column ranges of a rectangle.
struct BoundingBox {
    rows: (usize, usize),
    cols: (usize, usize),
}

/// The bounding box of the foreground grown by the filter radius, clipped to the image.
fn foreground_box(gt: &[bool], w: usize, h: usize) -> BoundingBox {
    let (mut r0, mut r1, mut c0, mut c1) = (usize::MAX, 0, usize::MAX, 0);
    for (r, row) in gt.chunks_exact(w).enumerate() {
        if let Some(first) = row.iter().position(|&g| g) {
            let last = row.iter().rposition(|&g| g).unwrap_or(first);
            r0 = r0.min(r);
            r1 = r;
            c0 = c0.min(first);
            c1 = c1.max(last);
        }
    }
    BoundingBox {
        rows: (r0.saturating_sub(RADIUS), (r1 + RADIUS + 1).min(h)),
        cols: (c0.saturating_sub(RADIUS), (c1 + RADIUS + 1).min(w)),
    }
}

/// Weighted F-measure of one pair; 0 when the GT has no foreground (pysodmetrics' rule).
///
/// Allocates its buffers per call; [`crate::Scorer`] reuses them across images.
pub fn weighted_f_measure(pair: &SaliencyPair) -> f64 {
    weighted_f_with(pair, pair.foreground(), &mut WfScratch::default())
}

/// [`weighted_f_measure`] with a known foreground count and reusable buffers.
pub(crate) fn weighted_f_with(pair: &SaliencyPair, fg_count: usize, s: &mut WfScratch) -> f64 {
    let (w, h) = (pair.width, pair.height);
    if fg_count == 0 {
        return 0.0;
    }
    distance_transform(&pair.gt, w, h, &mut s.dt);

    // E = |p - gt|: 1 - p on the foreground, p on the background. Et copies, on the
    // background, the error of the nearest foreground pixel: Et = 1 - p[nearest]. EA (Et filtered
    // by the 7×7 Gaussian) is used on the foreground alone, so Et matters only within Chebyshev
    // distance 3 of the foreground (squared distance ≤ 18): compute Et and EA inside the
    // foreground's bounding box grown by 3, treating farther pixels as 0.
    let pred = &pair.pred;
    let gt = &pair.gt;
    let bbox = foreground_box(gt, w, h);
    let (bw, bh) = (bbox.cols.1 - bbox.cols.0, bbox.rows.1 - bbox.rows.0);
    s.spread.clear();
    s.spread.resize(bw * bh, 0.0);
    for (br, row) in s.spread.chunks_exact_mut(bw).enumerate() {
        let r = bbox.rows.0 + br;
        for (bc, et) in row.iter_mut().enumerate() {
            let c = bbox.cols.0 + bc;
            let d2 = s.dt.dist2[r * w + c];
            if d2 == 0 {
                *et = 1.0 - pred[r * w + c];
            } else if d2 <= NEAR_BAND {
                let (nr, nc) = s.dt.nearest(gt, r, c).expect("mask has foreground");
                *et = 1.0 - pred[nr * w + nc];
            }
        }
    }
    let k = kernel_1d();
    filter_rows(&s.spread, bw, &k, &mut s.horizontal);
    filter_columns(&s.horizontal, bw, &k, &mut s.filtered);

    // Foreground: Ew = EA where EA < E, else E (column half of the filter applied here).
    let mut sum_fg = 0.0;
    for br in 0..bh {
        let r = bbox.rows.0 + br;
        let base = r * w + bbox.cols.0;
        let (g_row, p_row) = (&gt[base..base + bw], &pred[base..base + bw]);
        let ea_row = &s.filtered[br * bw..(br + 1) * bw];
        let [row_fg] = sum_lanes(0..bw, |bc| {
            let e = 1.0 - p_row[bc];
            let ea = ea_row[bc];
            [g_row[bc] as u8 as f64 * if ea < e { ea } else { e }]
        });
        sum_fg += row_fg;
    }

    // Background: Ew = E · B with the importance weight B of the distance (E = p there; on the
    // foreground d² = 0 and the 0/1 factor removes the term exactly).
    let max_d2 = s.dt.dist2.iter().copied().max().unwrap_or(0) as usize;
    let cached = (max_d2 + 1).min(WEIGHT_CACHE);
    for d2 in s.weight.len()..cached {
        s.weight.push(importance(d2 as u32));
    }
    let weight = &s.weight;
    let dist2 = &s.dt.dist2;
    let [sum_bg] = sum_lanes(0..w * h, |i| {
        let d2 = dist2[i];
        let b = match weight.get(d2 as usize) {
            Some(&b) => b,
            None => importance(d2),
        };
        [(1.0 - gt[i] as u8 as f64) * (pred[i] * b)]
    });

    let fg = fg_count as f64;
    let tp_w = fg - sum_fg;
    let fp_w = sum_bg;
    let recall = 1.0 - sum_fg / fg;
    let precision = tp_w / (tp_w + fp_w + EPS);
    (1.0 + WF_BETA2) * recall * precision / (recall + WF_BETA2 * precision + EPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_2d_fspecial() {
        let k = kernel_1d();
        let mut h = [[0.0; 7]; 7];
        let mut sum = 0.0;
        for (y, row) in h.iter_mut().enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let (dx, dy) = (x as f64 - 3.0, y as f64 - 3.0);
                *v = (-(dx * dx + dy * dy) / 50.0).exp();
                sum += *v;
            }
        }
        for y in 0..7 {
            for x in 0..7 {
                assert!((k[y] * k[x] - h[y][x] / sum).abs() < 1e-17);
            }
        }
    }

    #[test]
    fn perfect_prediction_scores_one_and_empty_gt_zero() {
        let gt: Vec<u8> = (0..100).map(|i| if i % 10 > 4 { 255 } else { 0 }).collect();
        let pair = SaliencyPair::from_u8(&gt, &gt, 10, 10).unwrap();
        assert!((weighted_f_measure(&pair) - 1.0).abs() < 1e-12);
        let pair = SaliencyPair::from_u8(&gt, &[0; 100], 10, 10).unwrap();
        assert_eq!(weighted_f_measure(&pair), 0.0);
    }
}
