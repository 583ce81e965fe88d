//! The error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or scoring a prediction / ground-truth pair.
///
/// Errors about files carry the path, so a caller can report exactly which file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A buffer does not hold `width * height` values.
    #[error("{what} buffer has {len} values, expected {width}x{height} = {}", width * height)]
    BufferSize {
        /// Which buffer ("prediction" or "ground truth").
        what: &'static str,
        /// Its length.
        len: usize,
        /// Declared width.
        width: usize,
        /// Declared height.
        height: usize,
    },
    /// A map with fewer than 2 pixels (none to score, or one: the E-measure divides by N − 1,
    /// which pysodmetrics turns into ~1e15).
    #[error(
        "{what} map of {width}x{height} pixels cannot be scored: at least 2 pixels are needed"
    )]
    EmptyMap {
        /// Which map.
        what: &'static str,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
    /// A map larger than the metrics support.
    #[error("map of {width}x{height} is too large: at most {max} pixels a side")]
    TooLarge {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// The largest side supported.
        max: usize,
    },
    /// Prediction and ground truth differ in size and resizing was refused.
    #[error("size mismatch: prediction is {pred_w}x{pred_h}, ground truth is {gt_w}x{gt_h}")]
    SizeMismatch {
        /// Prediction width.
        pred_w: usize,
        /// Prediction height.
        pred_h: usize,
        /// Ground-truth width.
        gt_w: usize,
        /// Ground-truth height.
        gt_h: usize,
    },
    /// A floating-point prediction value outside `[0, 1]` or not finite.
    #[error("prediction value {value} at pixel {index} is outside [0, 1]")]
    ValueOutOfRange {
        /// Flat index of the offending pixel.
        index: usize,
        /// The value found there.
        value: f64,
    },
    /// The file could not be read.
    #[error("{}: cannot read file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file could not be decoded as an image (corrupt, truncated or not an image).
    #[error("{}: cannot decode image: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The image has a pixel format the metrics refuse (16-bit, floating point).
    #[error("{}: unsupported pixel format {format}: {hint}", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The pixel format found.
        format: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// An error about one file of a pair, with the file named.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: Box<MetricsError>,
    },
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, MetricsError>;
