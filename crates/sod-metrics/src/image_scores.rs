//! Every metric of one image, computed in one call.

use crate::levels::LevelHistograms;
use crate::pair::SaliencyPair;
use crate::smeasure::{combine, inputs_from_pixels, GtLayout, SInputs};
use crate::sum::pairwise_sum_by;
use crate::threshold::{Confusion, Curves, THRESHOLDS};
use crate::wfmeasure::{weighted_f_with, WfScratch};

/// The scores of one prediction against its ground truth.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ImageScores {
    /// Mean absolute error.
    pub mae: f64,
    /// S-measure (α = 0.5); `NaN` when the GT centroid falls on the last row or column.
    pub s_measure: f64,
    /// Weighted F-measure (β² = 1); 0 for an empty GT.
    pub weighted_f: f64,
    /// F-measure (β² = 0.3) at the adaptive threshold `min(2 · mean(p), 1)`.
    pub adaptive_f: f64,
    /// E-measure at the adaptive threshold.
    pub adaptive_e: f64,
    /// Per-threshold precision, recall, F and E of this image.
    pub curves: Curves,
    /// GT foreground pixel count (0 = empty GT).
    pub gt_foreground: usize,
    /// Pixel count `H * W`.
    pub pixels: usize,
}

impl ImageScores {
    /// Largest F-measure over the 256 thresholds of this image.
    pub fn max_f(&self) -> f64 {
        self.curves
            .f_measure
            .iter()
            .copied()
            .fold(f64::NAN, f64::max)
    }

    /// Largest E-measure over the 256 thresholds of this image.
    pub fn max_e(&self) -> f64 {
        self.curves
            .e_measure
            .iter()
            .copied()
            .fold(f64::NAN, f64::max)
    }

    /// True when the ground truth has no foreground pixel.
    pub fn gt_is_empty(&self) -> bool {
        self.gt_foreground == 0
    }
}

/// Scores pairs, reusing its buffers from one image to the next.
///
/// Keep one per thread when scoring many images; [`score_pair`] makes a fresh one per call.
#[derive(Default)]
pub struct Scorer {
    wf: WfScratch,
}

impl Scorer {
    /// A scorer with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Computes every metric of `pair`.
    pub fn score(&mut self, pair: &SaliencyPair) -> ImageScores {
        let n = pair.pred.len();
        let layout = GtLayout::of(&pair.gt, pair.width, pair.height);
        let fg = layout.fg as u64;
        let gathered = match pair.levels() {
            Some((codes, table)) => {
                from_levels(&LevelHistograms::build(codes, table, pair, &layout))
            }
            None => from_pixels(pair, &layout),
        };
        // Adaptive threshold min(2 · mean(p), 1) on the unquantised map, for adaptive F and E.
        let adaptive = Confusion {
            tp: gathered.above.0,
            fp: gathered.above.1,
            fg,
            n: n as u64,
        };
        let adaptive_f = if adaptive.tp == 0 {
            0.0
        } else {
            adaptive.f_measure()
        };
        ImageScores {
            mae: gathered.mae,
            s_measure: combine(&layout, pair.width, pair.height, &gathered.s_inputs),
            weighted_f: weighted_f_with(pair, layout.fg, &mut self.wf),
            adaptive_f,
            adaptive_e: adaptive.e_measure(),
            curves: Curves::from_histograms(&gathered.quantised.0, &gathered.quantised.1),
            gt_foreground: layout.fg,
            pixels: n,
        }
    }
}

/// What the threshold metrics, MAE and the S-measure need, gathered in one go.
struct Gathered {
    /// Histograms of `floor(p · 255)` on the GT foreground and background.
    quantised: ([u64; THRESHOLDS], [u64; THRESHOLDS]),
    /// `(TP, FP)` at the adaptive threshold.
    above: (u64, u64),
    mae: f64,
    s_inputs: SInputs,
}

/// The adaptive threshold `min(2 · mean(p), 1)`.
fn adaptive_threshold(mean: f64) -> f64 {
    (2.0 * mean).min(1.0)
}

/// From the byte-level histograms of an 8-bit prediction.
fn from_levels(levels: &LevelHistograms) -> Gathered {
    Gathered {
        quantised: levels.quantised(),
        above: levels.above(adaptive_threshold(levels.mean())),
        mae: levels.mae(),
        s_inputs: levels.s_inputs(),
    }
}

/// Pixel by pixel, for any prediction.
fn from_pixels(pair: &SaliencyPair, layout: &GtLayout) -> Gathered {
    let (pred, gt) = (&pair.pred, &pair.gt);
    let n = pred.len();
    let mut fg_hist = [0u64; THRESHOLDS];
    let mut bg_hist = [0u64; THRESHOLDS];
    for (&p, &g) in pred.iter().zip(gt) {
        let q = (p * 255.0) as u8 as usize;
        if g {
            fg_hist[q] += 1;
        } else {
            bg_hist[q] += 1;
        }
    }
    let s_inputs = inputs_from_pixels(pair, layout);
    let threshold = adaptive_threshold(s_inputs.mean);
    let (mut tp, mut fp) = (0u64, 0u64);
    for (&p, &g) in pred.iter().zip(gt) {
        if p >= threshold {
            tp += g as u64;
            fp += !g as u64;
        }
    }
    let mae =
        pairwise_sum_by(0, n, &|i| (pred[i] - if gt[i] { 1.0 } else { 0.0 }).abs()) / n as f64;
    Gathered {
        quantised: (fg_hist, bg_hist),
        above: (tp, fp),
        mae,
        s_inputs,
    }
}

/// Computes every metric of one pair (allocates fresh buffers; see [`Scorer`] for many images).
pub fn score_pair(pair: &SaliencyPair) -> ImageScores {
    Scorer::new().score(pair)
}
