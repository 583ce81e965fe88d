//! Comparing feature maps with the summaries the reference scripts of `tests/reference/` wrote
//! (feature `reference`; used by the parity tests of this crate and of `scfnet-model`).

use std::path::Path;

use candle_core::{DType, Tensor};
use serde::Deserialize;

/// What a reference script stored about one map: shape, statistics and a strided sample.
#[derive(Clone, Debug, Deserialize)]
pub struct MapSummary {
    /// Shape.
    pub shape: Vec<usize>,
    /// Mean of all values.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
    /// Largest |value|.
    pub absmax: f64,
    /// Stride of the sample in the flattened map.
    pub step: usize,
    /// `flat[k · step]` for k = 0, 1, …
    pub sample: Vec<f64>,
}

/// One forward pass of a reference: input stream, shape, mode, precision and output summaries.
#[derive(Clone, Debug, Deserialize)]
pub struct Run {
    /// Synthetic input name (`"input:BxCxHxW"`).
    pub input: String,
    /// Input shape.
    pub shape: Vec<usize>,
    /// Train mode (batch statistics).
    pub train: bool,
    /// `"float32"` or `"float64"`.
    pub dtype: String,
    /// Summaries of the outputs, in order.
    pub maps: Vec<MapSummary>,
}

impl Run {
    /// The run's dtype.
    pub fn dtype(&self) -> DType {
        if self.dtype == "float64" {
            DType::F64
        } else {
            DType::F32
        }
    }

    /// Tolerance on the max relative error: 1e-4 in f32, 1e-10 in f64.
    pub fn tolerance(&self) -> f64 {
        if self.dtype() == DType::F64 {
            1e-10
        } else {
            1e-4
        }
    }
}

/// Reads `tests/data/<relative>` of the repository (`manifest_dir` = the calling crate's).
pub fn read<T: for<'de> Deserialize<'de>>(manifest_dir: &str, relative: &str) -> T {
    let path = Path::new(manifest_dir)
        .join("../../tests/data")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares a map with its summary: shape exactly; the sampled values, mean and std within `tol`
/// relative to the map's largest |value|. Panics with `what` on failure; returns the error.
pub fn compare(what: &str, got: &Tensor, want: &MapSummary, tol: f64) -> f64 {
    assert_eq!(got.dims(), want.shape.as_slice(), "{what}: shape");
    let flat = got
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .expect("readable tensor");
    let scale = want.absmax.max(1e-12);
    let mut worst = 0.0f64;
    for (k, &w) in want.sample.iter().enumerate() {
        worst = worst.max((flat[k * want.step] - w).abs() / scale);
    }
    let n = flat.len() as f64;
    let mean = flat.iter().sum::<f64>() / n;
    let std = (flat.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    worst = worst
        .max((mean - want.mean).abs() / scale)
        .max((std - want.std).abs() / scale);
    assert!(
        worst <= tol,
        "{what}: max relative error {worst:.2e} > {tol:.0e}"
    );
    worst
}
