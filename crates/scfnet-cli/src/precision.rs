//! `--precision f32|conv-tf32|tf32|bf16`: how f32 matrix products run on a CUDA GPU.

use anyhow::{bail, Result};
use candle_core::Device;
use scfnet_ops::ProductPrecision;

/// The arithmetic of the f32 matrix products on a GPU (the CPU always computes in full f32).
/// Weights, activations and gradients stay f32 in memory in every setting; only the factors of
/// the products are rounded, and the sums are f32.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Full f32 everywhere (strict; what the checks against the CPU use).
    F32,
    /// TF32 tensor cores (10-bit mantissa products, f32 sums) for the convolutions, full f32 for
    /// the other matrix products: PyTorch's defaults, and the default here on a GPU.
    ConvTf32,
    /// TF32 tensor cores for every f32 matrix product (convolutions, attention, linear layers).
    Tf32,
    /// bf16 tensor cores (factors rounded to bf16's 7-bit mantissa, f32 sums) for every f32
    /// matrix product, as PyTorch's bf16 autocast multiplies. No loss scaling: bf16 has f32's
    /// exponent range.
    Bf16,
}

impl Precision {
    /// The setting when `--precision` is not given: PyTorch's defaults on a GPU, f32 on the CPU.
    fn default_for(device: &Device) -> Self {
        if device.is_cuda() {
            Self::ConvTf32
        } else {
            Self::F32
        }
    }

    /// The name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::ConvTf32 => "conv-tf32",
            Self::Tf32 => "tf32",
            Self::Bf16 => "bf16",
        }
    }

    /// Sets this process's matrix products (candle's and the convolutions') to this precision,
    /// whatever the device (they act on CUDA only).
    pub fn set(self) {
        candle_core::cuda::set_gemm_reduced_precision_f32(self == Self::Tf32);
        candle_core::cuda::set_gemm_f32_bf16_products(self == Self::Bf16);
        scfnet_ops::set_convolution_products(self.convolutions());
    }

    /// How the convolutions' products multiply.
    fn convolutions(self) -> ProductPrecision {
        match self {
            Self::F32 => ProductPrecision::F32,
            Self::ConvTf32 | Self::Tf32 => ProductPrecision::Tf32,
            Self::Bf16 => ProductPrecision::Bf16,
        }
    }
}

/// Applies `chosen` (or the default for `device`) to this process's matrix products. Reduced
/// precision on a device other than a CUDA GPU is an error (the CPU has no tensor cores).
pub fn apply(device: &Device, chosen: Option<Precision>) -> Result<Precision> {
    let precision = chosen.unwrap_or_else(|| Precision::default_for(device));
    if precision != Precision::F32 && !device.is_cuda() {
        bail!(
            "--precision {}: TF32 and bf16 products exist only on CUDA GPUs (the CPU computes in full f32); use --precision f32 or --device cuda",
            precision.name()
        );
    }
    precision.set();
    if device.is_cuda() {
        tracing::info!("precision: {}", precision.name());
    }
    Ok(precision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_computes_in_f32_and_refuses_reduced_precision() {
        assert_eq!(apply(&Device::Cpu, None).unwrap(), Precision::F32);
        assert_eq!(
            apply(&Device::Cpu, Some(Precision::F32)).unwrap(),
            Precision::F32
        );
        assert_eq!(scfnet_ops::convolution_products(), ProductPrecision::F32);
        for p in [Precision::Tf32, Precision::ConvTf32, Precision::Bf16] {
            let e = apply(&Device::Cpu, Some(p)).unwrap_err().to_string();
            assert!(e.contains("only on CUDA GPUs"), "{e}");
            assert!(e.contains(p.name()), "{e}");
        }
        // A refusal changes nothing.
        assert_eq!(scfnet_ops::convolution_products(), ProductPrecision::F32);
    }

    #[test]
    fn each_setting_names_the_convolutions_products() {
        assert_eq!(Precision::F32.convolutions(), ProductPrecision::F32);
        assert_eq!(Precision::ConvTf32.convolutions(), ProductPrecision::Tf32);
        assert_eq!(Precision::Tf32.convolutions(), ProductPrecision::Tf32);
        assert_eq!(Precision::Bf16.convolutions(), ProductPrecision::Bf16);
    }
}
