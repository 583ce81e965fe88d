//! `--convolutions columns|batch-wgrad|batch-columns|cudnn`: which implementation runs the dense
//! convolutions on a CUDA GPU (depthwise convolutions always run their own kernels).

use anyhow::{anyhow, bail, Result};
use candle_core::Device;
use scfnet_ops::BatchColumns;

/// The implementation of the dense convolutions on a GPU. The arithmetic of their products is
/// `--precision`'s in every setting; the CPU has one implementation and takes only the default.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Convolutions {
    /// Our columns kernel and cuBLAS, one product per image in every pass (the default until a
    /// GPU run has measured the others).
    #[default]
    Columns,
    /// The same, with the weight gradient as one product over the whole batch.
    BatchWgrad,
    /// The same, with every pass one product over the whole batch.
    BatchColumns,
    /// cuDNN 9's forward, backward-data and backward-filter passes, loaded at run time
    /// (`libcudnn.so.9` on the library path, e.g. a PyTorch cu130 install's, or
    /// `SCFNET_LIBCUDNN`); a missing cuDNN is an error, never a silent fallback.
    Cudnn,
}

impl Convolutions {
    /// The name as written on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Columns => "columns",
            Self::BatchWgrad => "batch-wgrad",
            Self::BatchColumns => "batch-columns",
            Self::Cudnn => "cudnn",
        }
    }

    /// Sets this process's dense convolutions to this implementation, whatever the device
    /// (the settings act on CUDA only). Loading cuDNN is [`apply`]'s check.
    pub fn set(self) {
        scfnet_ops::set_cudnn_convolutions(self == Self::Cudnn);
        scfnet_ops::set_batch_columns(match self {
            Self::BatchWgrad => BatchColumns::WeightGradient,
            Self::BatchColumns => BatchColumns::Every,
            Self::Columns | Self::Cudnn => BatchColumns::Off,
        });
    }
}

/// Applies `chosen` (default [`Convolutions::Columns`]) to this process's dense convolutions.
/// A choice other than the default on a device other than a CUDA GPU is an error, and so is
/// `cudnn` where cuDNN cannot be loaded (the message says what to install).
pub fn apply(device: &Device, chosen: Option<Convolutions>) -> Result<Convolutions> {
    let convolutions = chosen.unwrap_or_default();
    if convolutions != Convolutions::Columns && !device.is_cuda() {
        bail!(
            "--convolutions {}: an implementation for CUDA GPUs (the CPU has one); leave the option out or use --device cuda",
            convolutions.name()
        );
    }
    if convolutions == Convolutions::Cudnn {
        let version =
            scfnet_ops::cudnn_version().map_err(|why| anyhow!("--convolutions cudnn: {why}"))?;
        tracing::info!("convolutions: cuDNN {version}");
    }
    convolutions.set();
    Ok(convolutions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_takes_the_default_and_each_setting_sets_what_it_names() {
        assert_eq!(apply(&Device::Cpu, None).unwrap(), Convolutions::Columns);
        assert!(!scfnet_ops::cudnn_convolutions());
        for c in [
            Convolutions::BatchWgrad,
            Convolutions::BatchColumns,
            Convolutions::Cudnn,
        ] {
            let e = apply(&Device::Cpu, Some(c)).unwrap_err().to_string();
            assert!(e.contains("CUDA GPUs") && e.contains(c.name()), "{e}");
        }
        // A refusal changes nothing.
        assert!(!scfnet_ops::cudnn_convolutions());
        assert_eq!(scfnet_ops::batch_columns(), BatchColumns::Off);
        // Each setting sets what it names (one test: the settings are process-wide).
        for (c, cudnn, batch) in [
            (
                Convolutions::BatchWgrad,
                false,
                BatchColumns::WeightGradient,
            ),
            (Convolutions::BatchColumns, false, BatchColumns::Every),
            (Convolutions::Cudnn, true, BatchColumns::Off),
            (Convolutions::Columns, false, BatchColumns::Off),
        ] {
            c.set();
            assert_eq!(scfnet_ops::cudnn_convolutions(), cudnn, "{}", c.name());
            assert_eq!(scfnet_ops::batch_columns(), batch, "{}", c.name());
        }
    }
}
