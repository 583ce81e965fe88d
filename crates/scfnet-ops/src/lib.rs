//! Differentiable operations the SCFNet networks need that candle 0.11 lacks or gets wrong.
//!
//! All are candle custom ops with a CPU implementation for `f32` and `f64` and a backward pass,
//! exposed as plain functions on [`candle_core::Tensor`]:
//!
//! - [`resize_bilinear`] — bilinear resize to any size, `align_corners` false (training, decoder)
//!   or true (final map at the original image size); candle's own has no backward.
//!   [`resize_bilinear_planes`] is the same arithmetic on plain slices, on the calling thread, and
//!   [`resize_bilinear_normalised_rgb`] on an 8-bit RGB image, normalised per channel.
//! - [`sigmoid_values`] — the logistic function on a slice, vectorised (inference's last step).
//! - [`max_pool2d`] — max-pooling with kernel ≠ stride and padding (ResNet stem 3×3/2 pad 1, the
//!   boundary loss's k×k/1 same padding); candle's backward needs kernel = stride.
//! - [`hard_swish`], [`hard_sigmoid`] / [`hard_sigmoid_paddle`] — MobileNetV3's activations with
//!   the Paddle slope (0.2) and offset (0.5).
//! - [`depthwise_conv2d`] — one filter per channel, 20× faster than candle's grouped
//!   convolution on MobileNetV3 (which runs one convolution per channel).
//! - [`conv2d_im2col`] — convolution through explicit columns and a matrix product, several
//!   times faster than candle's for the decoder's 16-channel and 1-channel layers.
//! - [`conv2d`] — a `candle_nn::Conv2d` through candle's kernel on the CPU and explicit columns
//!   elsewhere.
//! - [`add_bias_activate`] — per-channel bias and [`Activation`] in one in-place pass, the tail
//!   of an inference convolution with its BatchNorm folded in.
//! - [`BatchNorm`] — 2-D BatchNorm with fused statistics, normalisation and backward kernels,
//!   a drop-in for `candle_nn::BatchNorm` several times faster in training.
//! - [`bce_with_logits`] — binary cross-entropy with logits that stays finite for any logit.
//! - [`gelu_erf`] — the exact GELU with a backward in one kernel each way (Swin's MLP).
//! - [`layer_norm`] and [`softmax_last_dim`] — over the last axis, one fused kernel each way
//!   (candle-nn's fused versions have no backward; their compositions record a dozen and five
//!   nodes a call in Swin's training).
//! - [`sgd_momentum_update_all`] / [`sgd_momentum_update`] — SGD with momentum in place, on
//!   the CPU two fused passes per parameter, on CUDA one launch per 64 parameters, instead of
//!   seven candle operations per parameter; bit for bit the same values.
//! - [`qkv_heads`] — the queries, keys or values of a fused attention projection split into
//!   heads, one gather each way (candle's `get` backward zero-fills and concatenates).
//! - [`window_partition`] / [`window_merge`] — Swin's cut of a map into (shifted, padded)
//!   windows and its inverse, one gather each way (candle's rolls and their backward pass make a
//!   dozen passes).
//! - [`RowGather`] — rows of a table picked by a fixed index (Swin's relative-position bias),
//!   a product with a one-hot matrix off the CPU (candle's `index_add` backward is slow on CUDA).
//! - [`all_finite`] — the finiteness check used wherever values enter or leave the workspace.
//!
//! [`cpu`] shares the building blocks of the CPU kernels (the AVX2 check, per-thread scratch
//! buffers, the parallel output pointer) with kernels built on this crate. The inference
//! engine (fused convolutions with BatchNorm folded in) and the ONNX form of these ops live in
//! crates of their own, above this one.
//!
//! On the CPU each op runs a fused kernel of this crate. On CUDA (the `cuda` feature) the
//! max-pool, depthwise convolution, BatchNorm, hard-swish / hard-sigmoid, GELU, LayerNorm, softmax,
//! the windows, the attention heads and the columns of the convolutions run native kernels from `scfnet-kernels` (forward and backward), the same sums
//! as the CPU's; the resize and the BCE run compositions of candle primitives. On any other
//! device every op is such a composition (matrix products, strided views, element-wise
//! selections, all with correct backward passes). [`force_generic_path`] makes the CPU (and
//! CUDA) take the composed path, which is how the tests compare it with the kernels without a
//! GPU; [`set_generic_ops`] takes chosen families of ops ([`OpFamily`]) off their kernels in
//! the whole process (a kernel that fails on some GPU, or a family timed against its
//! composition), the others unchanged.
//!
//! Every backward is tested against central finite differences in `f64` and against values
//! computed by PyTorch (`tests/reference/ops/`).

#![warn(missing_docs)]

mod activation;
mod bands;
mod batch_norm;
mod bias_act;
pub mod check;
#[cfg(feature = "cuda")]
mod columns_conv;
mod constants;
pub mod cpu;
mod depthwise;
mod depthwise_lanes;
mod dispatch;
mod elem;
pub mod finite;
mod gather;
mod gelu;
mod generic_ops;
#[cfg(feature = "cuda")]
mod gpu;
mod heads;
mod im2col;
mod layer_norm;
mod linear;
mod loss;
pub mod macs;

mod out_ptr;
mod par_vec;
mod pool;
mod precision;
pub mod profile;
mod resize;
mod resize_add;
mod resize_columns;
mod resize_rgb;
mod running_stats;
mod scratch;
mod sgd;
mod sigmoid;
mod simd;
mod softmax;
mod views;
mod windows;

pub use activation::{
    hard_sigmoid, hard_sigmoid_paddle, hard_swish, Activation, PADDLE_HARDSIGMOID_SLOPE,
};
pub use batch_norm::{batch_norm, paddle_batch_norm, BatchNorm, RunningVariance};
pub use bias_act::add_bias_activate;
pub use constants::cached_constant;
pub use depthwise::{depthwise_conv2d, depthwise_conv2d_bias_act, DepthwiseConfig};
pub use dispatch::{
    force_generic_path, prepare_device, set_cuda_event_tracking, take_peak_device_memory,
    uses_cpu_kernels, uses_cuda_kernels, GenericPathGuard,
};
pub use finite::{all_finite, all_finite_values, non_finite_names};
pub use gather::RowGather;
pub use gelu::gelu_erf;
pub use generic_ops::{generic_ops, parse_op_families, set_generic_ops, OpFamily, UnknownOpFamily};
pub use heads::qkv_heads;
pub use im2col::{conv2d, conv2d_im2col, ConvGeometry};
pub use layer_norm::layer_norm;
pub use linear::linear;
pub use loss::{bce_with_logits, bce_with_logits_mean};
pub use pool::{max_pool2d, max_pool2d_same, Pool2d};
pub use precision::{
    batch_columns, convolution_products, cudnn_convolutions, cudnn_version, set_batch_columns,
    set_convolution_products, set_cudnn_convolutions, BatchColumns, ProductPrecision,
};
pub use resize::{resize_bilinear, resize_bilinear_planes, resize_like};
pub use resize_add::add_resized;
pub use resize_rgb::{resize_bilinear_normalised_rgb, resize_bilinear_normalised_rgb_into};
pub use sgd::{sgd_momentum_update, sgd_momentum_update_all, SgdParam, SgdSettings};
pub use sigmoid::sigmoid_values;
pub use softmax::softmax_last_dim;
pub use windows::{window_merge, window_partition};

/// The examples of the crate's README.md, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
