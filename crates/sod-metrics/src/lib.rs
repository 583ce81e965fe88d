//! Salient object detection metrics, numerically identical to pysodmetrics 1.6.2.
//!
//! `sod-metrics` scores grey saliency maps against binary ground-truth masks with the
//! community-standard definitions used by PySODEvalToolkit (pysodmetrics): MAE, F-measure
//! (max / mean / adaptive, β² = 0.3, 256 thresholds), S-measure (α = 0.5), E-measure
//! (max / mean / adaptive), weighted F-measure (β² = 1), and the 256-point precision, recall,
//! F and E curves. Per-image values agree with pysodmetrics to ≤ 1e-12 (MAE, F, E, curves) and
//! ≤ 1e-9 (S, weighted F); see `docs/metrics.md` in the repository for every convention.
//!
//! The crate is pure Rust (no deep-learning framework) and can be used on its own:
//!
//! ```
//! use sod_metrics::{Accumulator, GrayMap};
//!
//! let gt = GrayMap::new(3, 2, vec![0, 255, 255, 0, 255, 0]).unwrap();
//! let pred = GrayMap::new(3, 2, vec![10, 240, 200, 0, 180, 30]).unwrap();
//! let mut acc = Accumulator::new();
//! let image = acc.add(&pred, &gt).unwrap();      // per-image scores
//! let dataset = acc.finish();                     // dataset scores
//! println!("MAE {:.4} maxF {:.4} Sm {:.4}", dataset.mae, dataset.max_f, dataset.s_measure);
//! assert_eq!(image.mae, dataset.mae);
//! ```
//!
//! Inputs: 8-bit maps ([`GrayMap`], normalised like pysodmetrics' `prepare_data`: prediction
//! divided by 255 and min-max stretched unless constant, GT foreground where `> 128`) or float
//! maps in `[0, 1]` with a boolean mask ([`SaliencyPair::from_f32`], used as they are).
//! With the default `io` feature, [`load_gray`] and [`load_pair`] decode image files and resize a
//! prediction to its GT's size when they differ ([`ResizeMode`]). [`score_parallel`] scores many
//! pairs on all cores; the dataset result does not depend on the thread count.

#![warn(missing_docs)]

mod dataset;
mod edt;
mod error;
mod gray;
mod image_scores;
#[cfg(feature = "io")]
mod io;
mod levels;
mod pair;
mod parallel;
mod resize;
mod s_inputs;
#[cfg(feature = "serde")]
mod score_row;
mod smeasure;
pub mod sum;
mod threshold;
mod wfmeasure;

pub use dataset::{Accumulator, AccumulatorOptions, DatasetScores, ImageSummary};
pub use edt::{distance_transform, DistanceTransform};
pub use error::{MetricsError, Result};
pub use gray::GrayMap;
pub use image_scores::{score_pair, ImageScores, Scorer};
#[cfg(feature = "io")]
pub use io::{
    check_pixels, decode_upright, load_gray, load_pair, max_pixels, GraySource, LoadedGray,
    LoadedPair, DEFAULT_MAX_PIXELS,
};
pub use pair::{SaliencyPair, GT_THRESHOLD};
pub use parallel::score_parallel;
pub use resize::{resize_bilinear, ResizeMode};
#[cfg(feature = "serde")]
pub use score_row::ScoreRow;
pub use smeasure::{s_measure, S_ALPHA};
pub use threshold::{f_from_pr, Confusion, Curves, F_BETA2, THRESHOLDS};
pub use wfmeasure::{weighted_f_measure, WF_BETA2};

/// The ε of every formula: `np.spacing(1)` = MATLAB `eps` = 2.220446049250313e-16.
pub const EPS: f64 = f64::EPSILON;

/// The examples of the crate's README.md, compiled and run by `cargo test --doc` (one of them
/// reads files, so they need the `io` feature).
#[cfg(all(doctest, feature = "io"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
