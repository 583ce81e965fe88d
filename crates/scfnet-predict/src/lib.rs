//! Saliency maps for image files, the way `scfnet predict` makes them, as a library: where the
//! weights come from ([`weights`]), which images ([`collect_inputs`]), and the batched pipeline
//! ([`run`]) that decodes, runs the network, encodes and writes with the stages overlapped on
//! every core, writing each map as an 8-bit PNG at the image's size (and optionally the RGBA
//! cutout) atomically. The network itself and its preprocessing are `scfnet_model::Predictor`'s,
//! the one inference path of the workspace, so the maps are the same bytes whoever calls it.
//!
//! ```no_run
//! use std::path::Path;
//! use candle_core::{DType, Device};
//! use scfnet_model::{Predictor, Scfnet};
//! use scfnet_predict::{collect_inputs, run, weights, RunOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dev = Device::Cpu;
//! let request = weights::WeightsRequest { weights: Some("weights/student".into()), ..Default::default() };
//! let chosen = weights::choose(&request, &dev)?;
//! let size = chosen.size.unwrap_or(chosen.model.default_size());
//! let predictor = Predictor::new(Scfnet::new(chosen.model, chosen.vb)?, size, &dev, DType::F32)?;
//! let inputs = collect_inputs(Path::new("photos"))?;
//! let options = RunOptions { output: Path::new("maps"), batch: 1, cutout: false };
//! let (failures, _profile) = run(&predictor, &inputs, options, &|_done| {})?;
//! assert!(failures.is_empty(), "{failures:?}");
//! # Ok(())
//! # }
//! ```
//!
//! Library errors ([`Error`]) name files and causes, never command-line flags.

#![warn(missing_docs)]

mod background;
pub mod batcher;
pub mod cpu_clock;
mod error;
mod inputs;
mod pipeline;
pub mod priority;
pub mod sink;
pub mod weights;

pub use batcher::{BatchOptions, Batcher, Job, Served, Submit};
pub use error::{Error, Result};
pub use inputs::{collect_inputs, decode, decode_bytes, Decoded};
pub use pipeline::{network_only, prefers_small_pages, run, Profile, RunOptions};
