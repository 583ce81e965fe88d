//! `--device cpu|cuda|cuda:N`, shared by the commands that run a network.

#[cfg(feature = "cuda")]
use anyhow::Context as _;
use anyhow::{bail, Result};
use candle_core::Device;

/// Where the network runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU (always available).
    Cpu,
    /// CUDA GPU number `N` (`cuda` is `cuda:0`); needs a build with `--features cuda`.
    Cuda(usize),
}

impl DeviceArg {
    /// Parses `cpu`, `cuda` or `cuda:N` (clap value parser).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(format!(
                    "unknown device `{s}`: use cpu, cuda or cuda:N (N = GPU number, from 0)"
                )),
            },
        }
    }
}

impl std::fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The environment variable naming families of ops that run composed of candle primitives
/// instead of their kernels, for the whole run (`scfnet_ops::set_generic_ops`; docs/cuda.md).
pub const GENERIC_OPS_VAR: &str = "SCFNET_GENERIC_OPS";

/// Opens the device `arg` names, with the families of ops that [`GENERIC_OPS_VAR`] names off
/// their kernels. Never falls back to the CPU: a binary built without CUDA, or a machine where
/// the GPU cannot be opened, is an error that says which and why.
pub fn device(arg: DeviceArg) -> Result<Device> {
    apply_generic_ops(std::env::var_os(GENERIC_OPS_VAR).as_deref())?;
    match arg {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda(n) => open_cuda(n),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(n: usize) -> Result<Device> {
    // cudarc panics (rather than returning an error) when the driver library cannot be loaded
    // or lacks a symbol; turn that into an error too.
    let opened = std::panic::catch_unwind(|| Device::new_cuda(n));
    match opened {
        Ok(Ok(device)) => {
            scfnet_ops::prepare_device(&device)
                .with_context(|| format!("--device cuda:{n}: preparing GPU {n}"))?;
            Ok(device)
        }
        Ok(Err(e)) => {
            // candle appends a backtrace when RUST_BACKTRACE is set: keep the message.
            let e = e.to_string();
            let why = e.lines().next().unwrap_or_default();
            bail!(
                "--device cuda:{n}: cannot open CUDA GPU {n}: {why}. Check that an NVIDIA GPU and \
                 driver are present (`nvidia-smi`) and that N is below the number of GPUs."
            )
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the CUDA driver could not be loaded");
            bail!(
                "--device cuda:{n}: no usable CUDA driver on this machine ({why}). An NVIDIA GPU \
                 with its driver (libcuda.so.1) is needed; use --device cpu otherwise."
            )
        }
    }
}

/// Turns the families of ops that `value` (of [`GENERIC_OPS_VAR`]; unset or empty: none) names
/// off their kernels, and says so once.
fn apply_generic_ops(value: Option<&std::ffi::OsStr>) -> Result<()> {
    let Some(value) = value else {
        return Ok(());
    };
    let Some(text) = value.to_str() else {
        bail!("{GENERIC_OPS_VAR}: not valid UTF-8");
    };
    let families = scfnet_ops::parse_op_families(text)
        .map_err(|e| anyhow::anyhow!("{GENERIC_OPS_VAR}={text}: {e}"))?;
    if families != scfnet_ops::generic_ops() {
        scfnet_ops::set_generic_ops(&families);
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        tracing::warn!(
            "{GENERIC_OPS_VAR}: {} composed of candle primitives instead of their kernels \
             (slower; the CPU's inference engine is not affected)",
            names.join(", ")
        );
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(n: usize) -> Result<Device> {
    bail!(
        "--device cuda:{n}: this scfnet was built without CUDA support; build one with \
         `cargo xtask build-cuda` (see docs/cuda.md), or use --device cpu"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceArg::parse("cpu"), Ok(DeviceArg::Cpu));
        assert_eq!(DeviceArg::parse("cuda"), Ok(DeviceArg::Cuda(0)));
        assert_eq!(DeviceArg::parse("CUDA:3"), Ok(DeviceArg::Cuda(3)));
        assert!(DeviceArg::parse("cuda:x").is_err());
        assert!(DeviceArg::parse("metal").is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_an_error() {
        let e = device(DeviceArg::Cuda(1)).unwrap_err().to_string();
        assert!(e.contains("built without CUDA"), "{e}");
    }
}
