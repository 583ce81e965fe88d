//! The RGB normalisation every network of the workspace was trained with, shared by the
//! training pipeline and the inference path.

/// Per-channel mean of the RGB normalisation (`[0, 255]` scale), the authors' `Normalize`.
pub const MEAN: [f32; 3] = [124.55, 118.90, 102.94];
/// Per-channel standard deviation of the RGB normalisation.
pub const STD: [f32; 3] = [56.77, 55.97, 57.50];
