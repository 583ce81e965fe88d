//! `check-device`'s timing modes: the process-wide settings each one turns on.

use candle_core::Device;

use crate::convolutions::Convolutions;
use crate::precision::Precision;

/// The setting of one round of timings.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// Full f32 matrix products, native kernels.
    F32,
    /// TF32 tensor cores for f32 matrix products
    /// (`candle_core::cuda::set_gemm_reduced_precision_f32`), native kernels.
    Tf32,
    /// TF32 for the convolutions, full f32 for the other matrix products (PyTorch's defaults).
    ConvTf32,
    /// Full f32, every op composed of candle primitives (`scfnet_ops::force_generic_path`).
    F32Generic,
    /// Full f32, native kernels, with cudarc's per-buffer event tracking on (its default).
    F32Events,
    /// conv-tf32 with the dense convolutions through cuDNN.
    Cudnn,
    /// conv-tf32 with the columns convolution's weight gradient as one product over the batch
    /// (`scfnet_ops::BatchColumns::WeightGradient`).
    BatchWgrad,
    /// conv-tf32 with every pass of the columns convolution one product over the batch
    /// (`scfnet_ops::BatchColumns::Every`).
    BatchColumns,
    /// Every f32 matrix product (convolutions and candle's) on bf16 tensor cores, f32 sums
    /// (`--precision bf16`).
    Bf16,
}

impl BenchMode {
    /// The mode's name, as `--bench-modes` takes it and the JSON report keys it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Tf32 => "tf32",
            Self::ConvTf32 => "conv-tf32",
            Self::F32Generic => "f32-generic",
            Self::F32Events => "f32-events",
            Self::Cudnn => "cudnn",
            Self::BatchWgrad => "batch-wgrad",
            Self::BatchColumns => "batch-columns",
            Self::Bf16 => "bf16",
        }
    }

    /// The matrix products' arithmetic of this mode (what `--precision` would set).
    fn precision(self) -> Precision {
        match self {
            Self::F32 | Self::F32Generic | Self::F32Events => Precision::F32,
            Self::ConvTf32 | Self::Cudnn | Self::BatchWgrad | Self::BatchColumns => {
                Precision::ConvTf32
            }
            Self::Tf32 => Precision::Tf32,
            Self::Bf16 => Precision::Bf16,
        }
    }

    /// The dense convolutions' implementation of this mode (what `--convolutions` would set).
    fn convolutions(self) -> Convolutions {
        match self {
            Self::Cudnn => Convolutions::Cudnn,
            Self::BatchWgrad => Convolutions::BatchWgrad,
            Self::BatchColumns => Convolutions::BatchColumns,
            _ => Convolutions::Columns,
        }
    }

    /// Turns on this mode's settings for what runs next (the process-wide precision, cuDNN,
    /// batch columns; cudarc's event tracking for buffers allocated from here on). The composed
    /// path of `f32-generic` is the caller's guard. `F32` is the setting of `check-device`'s
    /// comparisons: strict f32, no cuDNN, one product per image, no per-buffer events.
    pub(super) fn apply(self, dev: &Device) {
        self.precision().set();
        self.convolutions().set();
        scfnet_ops::set_cuda_event_tracking(dev, self == Self::F32Events);
    }
}
