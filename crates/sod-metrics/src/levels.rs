//! The fast path for 8-bit predictions: per-quadrant histograms of the byte levels.
//!
//! A prediction read from an 8-bit file takes at most 256 distinct values (the normalisation
//! table maps byte → value). One integer pass counts, for each S-measure quadrant and each GT
//! class, how many pixels have each byte; every metric except the weighted F-measure then
//! follows from those 8 × 256 counts: the threshold curves, the adaptive threshold counts,
//! MAE, and all S-measure sums. Sums become `count × value` over 256 levels, so results agree
//! with the pixel-by-pixel path to rounding (well inside the parity tolerances).

use crate::pair::SaliencyPair;
use crate::s_inputs::{GtLayout, Moments, RegionSums, SInputs};
use crate::threshold::THRESHOLDS;

/// Byte-level counts per quadrant and GT class.
pub(crate) struct LevelHistograms<'a> {
    /// `counts[quadrant][gt as usize][byte]`, quadrants in [`GtLayout::quadrants`] order.
    counts: Box<[[[u32; 256]; 2]; 4]>,
    /// Byte → normalised prediction value.
    table: &'a [f64; 256],
    /// Pixel count.
    n: usize,
}

impl<'a> LevelHistograms<'a> {
    /// Counts the bytes of `codes` (the prediction before normalisation) per quadrant and class.
    pub fn build(
        codes: &[u8],
        table: &'a [f64; 256],
        pair: &SaliencyPair,
        layout: &GtLayout,
    ) -> Self {
        let mut counts = Box::new([[[0u32; 256]; 2]; 4]);
        let (w, h) = (pair.width, pair.height);
        for (q, (rows, cols)) in layout.quadrants(w, h).into_iter().enumerate() {
            let [bg, fg] = &mut counts[q];
            for r in rows.0..rows.1 {
                let span = r * w + cols.0..r * w + cols.1;
                for (&b, &g) in codes[span.clone()].iter().zip(&pair.gt[span]) {
                    if g {
                        fg[b as usize] += 1;
                    } else {
                        bg[b as usize] += 1;
                    }
                }
            }
        }
        Self {
            counts,
            table,
            n: w * h,
        }
    }

    /// Counts of one GT class over the whole image.
    fn class_total(&self, class: usize) -> [u64; 256] {
        let mut out = [0u64; 256];
        for quad in self.counts.iter() {
            for (o, &c) in out.iter_mut().zip(&quad[class]) {
                *o += c as u64;
            }
        }
        out
    }

    /// Histograms of the quantised level `floor(p · 255)` for GT foreground and background.
    pub fn quantised(&self) -> ([u64; THRESHOLDS], [u64; THRESHOLDS]) {
        let (fg, bg) = (self.class_total(1), self.class_total(0));
        let (mut qf, mut qb) = ([0u64; THRESHOLDS], [0u64; THRESHOLDS]);
        for b in 0..256 {
            let q = (self.table[b] * 255.0) as u8 as usize;
            qf[q] += fg[b];
            qb[q] += bg[b];
        }
        (qf, qb)
    }

    /// Mean prediction value.
    pub fn mean(&self) -> f64 {
        let (fg, bg) = (self.class_total(1), self.class_total(0));
        let sum: f64 = (0..256)
            .map(|b| (fg[b] + bg[b]) as f64 * self.table[b])
            .sum();
        sum / self.n as f64
    }

    /// `(TP, FP)` of the binary map `p >= threshold`.
    pub fn above(&self, threshold: f64) -> (u64, u64) {
        let (fg, bg) = (self.class_total(1), self.class_total(0));
        (0..256)
            .filter(|&b| self.table[b] >= threshold)
            .fold((0, 0), |(tp, fp), b| (tp + fg[b], fp + bg[b]))
    }

    /// Mean absolute error against the binary GT.
    pub fn mae(&self) -> f64 {
        let (fg, bg) = (self.class_total(1), self.class_total(0));
        let sum: f64 = (0..256)
            .map(|b| fg[b] as f64 * (self.table[b] - 1.0).abs() + bg[b] as f64 * self.table[b])
            .sum();
        sum / self.n as f64
    }

    /// The S-measure inputs.
    pub fn s_inputs(&self) -> SInputs {
        let t = self.table;
        let (fg, bg) = (self.class_total(1), self.class_total(0));
        let moments = |counts: &[u64; 256], value: &dyn Fn(f64) -> f64| {
            let count: u64 = counts.iter().sum();
            let mean = (0..256)
                .map(|b| counts[b] as f64 * value(t[b]))
                .sum::<f64>()
                / count as f64;
            let squared_deviations = (0..256)
                .map(|b| {
                    let d = value(t[b]) - mean;
                    counts[b] as f64 * (d * d)
                })
                .sum();
            Moments {
                count: count as usize,
                mean,
                squared_deviations,
            }
        };
        let regions = std::array::from_fn(|q| {
            let [qb, qf] = &self.counts[q];
            let n_fg: u64 = qf.iter().map(|&c| c as u64).sum();
            let n = n_fg + qb.iter().map(|&c| c as u64).sum::<u64>();
            let mean = (0..256).map(|b| (qf[b] + qb[b]) as f64 * t[b]).sum::<f64>() / n as f64;
            let (mut ss, mut dev_fg, mut dev_bg) = (0.0, 0.0, 0.0);
            for b in 0..256 {
                let d = t[b] - mean;
                ss += (qf[b] + qb[b]) as f64 * (d * d);
                dev_fg += qf[b] as f64 * d;
                dev_bg += qb[b] as f64 * d;
            }
            RegionSums {
                n: n as f64,
                n_fg: n_fg as f64,
                mean,
                squared_deviations: ss,
                deviation_fg: dev_fg,
                deviation_bg: dev_bg,
            }
        });
        SInputs {
            mean: self.mean(),
            object_fg: moments(&fg, &|p| p),
            object_bg: moments(&bg, &|p| 1.0 - p),
            regions,
        }
    }
}
