//! Multi-scale backbones for SCFNet on candle: ResNet-50, Swin-B and MobileNetV3-Large ×0.5.
//!
//! Each backbone returns the five feature maps `x1 … x5` the SCFNet decoder consumes (strides
//! 2, 4, 8, 16, 32; `x1` is unused by the decoder), runs its BatchNorms in training or eval mode
//! ([`candle_nn::ModuleT`]), and loads weights through [`candle_nn::VarBuilder`] with the
//! checkpoint names of the reference implementation.

#![warn(missing_docs)]

pub mod blocks;
mod error;
mod features;

pub mod hub;
/// MAC counting (moved to `scfnet_ops::macs`, where the ops count themselves).
pub use scfnet_ops::macs;
mod mobilenetv3;
pub mod paddle;
pub mod pass;
#[cfg(feature = "reference")]
pub mod reference;
mod resnet;
pub mod safetensors_file;
mod swin;
pub mod synthetic;

pub use error::WeightsError;
pub use features::{Backbone, Features};
pub use hub::{check_safetensors, resolve, HubOptions, WeightSource};
pub use mobilenetv3::{make_divisible, MobileNetV3};
pub use resnet::ResNet50;
pub use safetensors_file::{read_header, write_safetensors, SafetensorsHeader, TensorEntry};
pub use swin::{SwinConfig, SwinTransformer};
pub use synthetic::{synthetic_image, synthetic_values, synthetic_var_builder, SyntheticWeights};

/// The examples of the crate's README.md, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
