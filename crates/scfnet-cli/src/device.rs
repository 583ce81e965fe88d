//! `--device cpu|cuda`, shared by the commands that run a network.

#[cfg(not(feature = "cuda"))]
use anyhow::bail;
#[cfg(feature = "cuda")]
use anyhow::Context;
use anyhow::Result;
use candle_core::Device;
use clap::ValueEnum;

/// Where the network runs.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// The first CUDA GPU (needs a build with `--features cuda`).
    Cuda,
}

/// Opens the device `arg` names, with a clear error when CUDA is not compiled in.
pub fn device(arg: DeviceArg) -> Result<Device> {
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => Device::new_cuda(0).context("cannot open CUDA device 0"),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => bail!("--device cuda: this scfnet was built without CUDA support; rebuild with `cargo build --release -p scfnet-cli --features cuda`"),
    }
}
