//! Dataset-level aggregation: the accumulator and its summary.

use crate::error::Result;
use crate::gray::GrayMap;
use crate::image_scores::{ImageScores, Scorer};
use crate::pair::SaliencyPair;
use crate::sum::pairwise_mean;
use crate::threshold::Curves;

/// The scalar scores of one image kept by the [`Accumulator`] (curves are summed, not kept).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ImageSummary {
    /// Mean absolute error.
    pub mae: f64,
    /// S-measure.
    pub s_measure: f64,
    /// Weighted F-measure.
    pub weighted_f: f64,
    /// Adaptive F-measure.
    pub adaptive_f: f64,
    /// Adaptive E-measure.
    pub adaptive_e: f64,
    /// Maximum over thresholds of this image's F curve.
    pub max_f: f64,
    /// Maximum over thresholds of this image's E curve.
    pub max_e: f64,
    /// GT foreground pixel count.
    pub gt_foreground: usize,
}

impl From<&ImageScores> for ImageSummary {
    fn from(s: &ImageScores) -> Self {
        Self {
            mae: s.mae,
            s_measure: s.s_measure,
            weighted_f: s.weighted_f,
            adaptive_f: s.adaptive_f,
            adaptive_e: s.adaptive_e,
            max_f: s.max_f(),
            max_e: s.max_e(),
            gt_foreground: s.gt_foreground,
        }
    }
}

/// The dataset scores, aggregated exactly as pysodmetrics does.
///
/// Curves are averaged over images per threshold (running sum in image order, then divided by
/// the image count); `max_*` / `mean_*` are the maximum / mean of those mean curves — not the mean
/// of per-image maxima. Scalars (`mae`, `s_measure`, `weighted_f`, `adaptive_*`) are plain means
/// of the per-image values, so one `NaN` S-measure makes the dataset S-measure `NaN`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DatasetScores {
    /// Images aggregated.
    pub images: usize,
    /// Mean absolute error (MAE).
    pub mae: f64,
    /// maxF: maximum of the mean F curve (β² = 0.3).
    pub max_f: f64,
    /// meanF: mean of the mean F curve.
    pub mean_f: f64,
    /// adpF: mean of the per-image adaptive F-measures.
    pub adaptive_f: f64,
    /// Sm: mean S-measure (α = 0.5).
    pub s_measure: f64,
    /// maxE: maximum of the mean E curve.
    pub max_e: f64,
    /// meanE: mean of the mean E curve.
    pub mean_e: f64,
    /// adpE: mean of the per-image adaptive E-measures.
    pub adaptive_e: f64,
    /// wF: mean weighted F-measure (β² = 1).
    pub weighted_f: f64,
    /// Mean per-threshold curves (index t: `floor(p * 255) >= t`).
    pub curves: Curves,
    /// Images whose ground truth has no foreground (included unless excluded by the options).
    pub empty_gt: usize,
    /// Images left out because their GT was empty ([`AccumulatorOptions::exclude_empty_gt`]).
    pub excluded_empty_gt: usize,
    /// Images whose S-measure is `NaN`.
    pub nan_s_measure: usize,
}

/// How the [`Accumulator`] treats special images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccumulatorOptions {
    /// Leave images with an empty GT out of the dataset scores (the COD10K protocol); they are
    /// counted in [`DatasetScores::excluded_empty_gt`].
    pub exclude_empty_gt: bool,
}

/// Collects per-image scores and turns them into [`DatasetScores`].
///
/// Add images in dataset order: the aggregation is a running sum, so the result depends on
/// the order but never on how many threads computed the per-image scores.
///
/// ```
/// use sod_metrics::{Accumulator, GrayMap};
/// let gt = GrayMap::new(4, 1, vec![0, 0, 255, 255]).unwrap();
/// let pred = GrayMap::new(4, 1, vec![0, 30, 220, 255]).unwrap();
/// let mut acc = Accumulator::new();
/// acc.add(&pred, &gt).unwrap();
/// let scores = acc.finish();
/// assert!(scores.mae < 0.1 && scores.max_f > 0.99);
/// ```
#[derive(Default)]
pub struct Accumulator {
    options: AccumulatorOptions,
    scorer: Scorer,
    images: Vec<ImageSummary>,
    curve_sum: Option<Curves>,
    empty_gt: usize,
    excluded_empty_gt: usize,
}

impl Accumulator {
    /// An empty accumulator with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty accumulator with the given options.
    pub fn with_options(options: AccumulatorOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// Scores an 8-bit prediction against an 8-bit GT of the same size and adds it.
    pub fn add(&mut self, pred: &GrayMap, gt: &GrayMap) -> Result<ImageScores> {
        let pair = SaliencyPair::from_maps(pred, gt)?;
        Ok(self.add_pair(&pair))
    }

    /// Scores a `[0, 1]` float prediction against a binary mask and adds it.
    pub fn add_f32(
        &mut self,
        pred: &[f32],
        gt: &[bool],
        width: usize,
        height: usize,
    ) -> Result<ImageScores> {
        let pair = SaliencyPair::from_f32(pred, gt, width, height)?;
        Ok(self.add_pair(&pair))
    }

    /// Scores a prepared pair, adds it, and returns its per-image scores.
    pub fn add_pair(&mut self, pair: &SaliencyPair) -> ImageScores {
        let scores = self.scorer.score(pair);
        self.push(&scores);
        scores
    }

    /// Adds scores computed elsewhere (e.g. in parallel with [`crate::score_parallel`]).
    ///
    /// Returns false when the image was excluded by the options.
    pub fn push(&mut self, scores: &ImageScores) -> bool {
        if scores.gt_is_empty() {
            self.empty_gt += 1;
            if self.options.exclude_empty_gt {
                self.excluded_empty_gt += 1;
                return false;
            }
        }
        match &mut self.curve_sum {
            Some(sum) => sum.add_assign(&scores.curves),
            None => self.curve_sum = Some(scores.curves.clone()),
        }
        self.images.push(ImageSummary::from(scores));
        true
    }

    /// The per-image summaries added so far, in order.
    pub fn images(&self) -> &[ImageSummary] {
        &self.images
    }

    /// Number of images aggregated so far.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when no image has been aggregated.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The dataset scores. With no image every score is `NaN` (numpy's mean of nothing).
    pub fn finish(&self) -> DatasetScores {
        let n = self.images.len();
        let mean = |f: fn(&ImageSummary) -> f64| {
            pairwise_mean(&self.images.iter().map(f).collect::<Vec<_>>())
        };
        // numpy's mean over an empty axis is NaN: so is every curve point of an empty dataset.
        let mut curves = self.curve_sum.clone().unwrap_or_else(Curves::zeros);
        curves.scale(n as f64);
        let max = |c: &[f64]| c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (max_f, max_e) = if n > 0 {
            (max(&curves.f_measure), max(&curves.e_measure))
        } else {
            (f64::NAN, f64::NAN)
        };
        DatasetScores {
            images: n,
            mae: mean(|s| s.mae),
            max_f,
            mean_f: pairwise_mean(&curves.f_measure),
            adaptive_f: mean(|s| s.adaptive_f),
            s_measure: mean(|s| s.s_measure),
            max_e,
            mean_e: pairwise_mean(&curves.e_measure),
            adaptive_e: mean(|s| s.adaptive_e),
            weighted_f: mean(|s| s.weighted_f),
            curves,
            empty_gt: self.empty_gt,
            excluded_empty_gt: self.excluded_empty_gt,
            nan_s_measure: self.images.iter().filter(|s| s.s_measure.is_nan()).count(),
        }
    }
}
