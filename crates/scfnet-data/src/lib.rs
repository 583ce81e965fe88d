//! Data for KD-SCFNet training on candle.
//!
//! - [`SodDataset`]: the benchmark layout `NAME/image/*.jpg` + `NAME/mask/*.png` with an optional
//!   list file, and plain folders of unlabeled images for distillation;
//! - [`validate`]: every image and mask decodes and sizes agree, all problems reported together;
//! - [`Augment`]: the original augmentation chain (blur, contrast/brightness, normalisation, crop,
//!   flips) (test-time input: `scfnet_model::preprocess`, the one inference path);
//! - [`Loader`]: seeded, reproducible batches with the per-batch multi-scale resize, prepared by
//!   worker threads ahead of use, into the host memory of used batches that the consumer gives
//!   back ([`BatchBuffers`]), the next epoch started while the current one ends
//!   ([`Loader::epoch_preparing_next`]);
//! - [`synth`]: a synthetic SOD generator, the embedded default data (no download needed);
//! - [`walk`]: the one folder walker (links followed once, only regular files).

#![warn(missing_docs)]

mod augment;
mod error;
pub mod image_ops;
mod layout;
mod loader;
mod recycle;
mod rng;
pub mod synth;
mod validate;
pub mod walk;

pub use augment::{normalize, Augment, MEAN, STD};
pub use error::{DataError, Result};
pub use image_ops::{
    decode_image, decode_image_bytes, max_pixels, read_mask, read_rgb, resize_bilinear,
    resize_bilinear_chw_into, Planar, DEFAULT_MAX_PIXELS,
};
pub use layout::{Sample, SodDataset, IMAGE_EXTENSIONS};
pub use loader::{Batch, EpochBatches, Loader, LoaderConfig, OnError, PAPER_SIZES};
pub use recycle::BatchBuffers;
pub use rng::Rng;
pub use validate::{validate, ValidationReport};

/// The examples of the crate's README.md, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
