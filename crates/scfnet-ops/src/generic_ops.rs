//! Ops whose kernels are turned off process-wide: each [`OpFamily`] named here runs composed of
//! candle primitives (the device-generic path that [`crate::force_generic_path`] forces for every
//! op on one thread), on the CPU and on CUDA, while every other op keeps its kernels.
//!
//! What it is for: on a GPU, to take one family of native kernels out of a run (a kernel that
//! fails or gives wrong values on some GPU, while the others keep their speed), and to time a
//! family's kernels against its composition in an otherwise unchanged step. The composition is
//! the same function (checked against the kernels by `scfnet_ops::check` and the generic-path
//! tests), slower, with more memory traffic.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

/// The families whose kernels are turned off ([`OpFamily::bit`] set).
static GENERIC: AtomicU32 = AtomicU32::new(0);

/// A family of ops sharing kernels (on CUDA, one `.cu` source of `scfnet-kernels` each; the
/// dense convolutions' columns and reductions together).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpFamily {
    /// ReLU from its output, hard-swish, hard-sigmoid (forward and gradient).
    Activation,
    /// BatchNorm in training and inference, fused with its activation or residual, and the
    /// running statistics' update.
    BatchNorm,
    /// The dense convolutions through columns (`conv2d` with groups 1, forward and backward).
    Convolution,
    /// The depthwise convolution (forward, input and weight gradients).
    Depthwise,
    /// GELU (erf form), forward and gradient.
    Gelu,
    /// Swin's split of the fused q·k·v projection into heads, and its inverse.
    Heads,
    /// LayerNorm over the last dimension, forward and gradients.
    LayerNorm,
    /// Max-pooling with padding, forward and gradient.
    MaxPool,
    /// The SGD-with-momentum update of the weights in place.
    Sgd,
    /// Softmax over the last dimension, forward and gradient.
    Softmax,
    /// Swin's window partition with its cyclic shift, and its inverse.
    Windows,
}

impl OpFamily {
    /// Every family, in the order of their names.
    pub const ALL: [Self; 11] = [
        Self::Activation,
        Self::BatchNorm,
        Self::Convolution,
        Self::Depthwise,
        Self::Gelu,
        Self::Heads,
        Self::LayerNorm,
        Self::MaxPool,
        Self::Sgd,
        Self::Softmax,
        Self::Windows,
    ];

    /// The family's name, as [`parse_op_families`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::BatchNorm => "batch_norm",
            Self::Convolution => "convolution",
            Self::Depthwise => "depthwise",
            Self::Gelu => "gelu",
            Self::Heads => "heads",
            Self::LayerNorm => "layer_norm",
            Self::MaxPool => "max_pool",
            Self::Sgd => "sgd",
            Self::Softmax => "softmax",
            Self::Windows => "windows",
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl fmt::Display for OpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no [`OpFamily`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown op family `{name}` (one of: all, {})", names())]
pub struct UnknownOpFamily {
    /// The name given.
    pub name: String,
}

fn names() -> String {
    OpFamily::ALL.map(OpFamily::name).join(", ")
}

impl FromStr for OpFamily {
    type Err = UnknownOpFamily;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        OpFamily::ALL
            .into_iter()
            .find(|f| f.name() == wanted)
            .ok_or_else(|| UnknownOpFamily { name: s.to_owned() })
    }
}

/// Families from a comma-separated list of names (`batch_norm,depthwise`; `all`: every one;
/// empty entries ignored), without repeats, in [`OpFamily::ALL`]'s order.
pub fn parse_op_families(list: &str) -> Result<Vec<OpFamily>, UnknownOpFamily> {
    let mut bits = 0;
    for name in list.split(',').filter(|n| !n.trim().is_empty()) {
        bits |= if name.trim().eq_ignore_ascii_case("all") {
            u32::MAX
        } else {
            name.parse::<OpFamily>()?.bit()
        };
    }
    Ok(families_of(bits))
}

fn families_of(bits: u32) -> Vec<OpFamily> {
    OpFamily::ALL
        .into_iter()
        .filter(|f| bits & f.bit() != 0)
        .collect()
}

/// From now on, in the whole process, the ops of `families` run composed of candle primitives
/// and those of every other family with their kernels (replacing an earlier setting; an empty
/// list restores every kernel). Set it before a network runs: an op already recorded for a
/// backward pass keeps the path it took.
pub fn set_generic_ops(families: &[OpFamily]) {
    let bits = families.iter().fold(0, |bits, f| bits | f.bit());
    GENERIC.store(bits, Ordering::Relaxed);
}

/// The families [`set_generic_ops`] turned to the composed path, in [`OpFamily::ALL`]'s order.
pub fn generic_ops() -> Vec<OpFamily> {
    families_of(GENERIC.load(Ordering::Relaxed))
}

/// Whether `family`'s kernels are turned off ([`set_generic_ops`]).
pub(crate) fn is_generic(family: OpFamily) -> bool {
    GENERIC.load(Ordering::Relaxed) & family.bit() != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_parse() {
        for f in OpFamily::ALL {
            assert_eq!(f.name().parse::<OpFamily>(), Ok(f));
            assert_eq!(f.to_string(), f.name());
        }
        assert_eq!("Batch-Norm".parse::<OpFamily>(), Ok(OpFamily::BatchNorm));
        assert_eq!(
            parse_op_families(" depthwise,batch_norm,,depthwise ").unwrap(),
            vec![OpFamily::BatchNorm, OpFamily::Depthwise]
        );
        assert_eq!(parse_op_families("").unwrap(), vec![]);
        assert_eq!(parse_op_families("ALL").unwrap(), OpFamily::ALL.to_vec());
        let err = parse_op_families("softmax,batchnorm").unwrap_err();
        assert_eq!(err.name, "batchnorm");
        assert!(err.to_string().contains("batch_norm, convolution"), "{err}");
    }

    #[test]
    fn bits_are_distinct() {
        let all = OpFamily::ALL.iter().fold(0u32, |a, f| {
            assert_eq!(a & f.bit(), 0, "{f}");
            a | f.bit()
        });
        assert_eq!(families_of(all), OpFamily::ALL.to_vec());
    }
}
