//! The rules every crate of scfnet shares, in one small crate at the bottom of the workspace
//! (pure Rust, no candle):
//!
//! - [`child`] — child processes that stop with their parent (signals passed on).
//! - [`files`] — atomic, durable file writes (temporary name, `fsync`, rename, folder sync) and
//!   the sweep of temporaries left by killed processes.
//! - [`read`] — bounded reads of regular files (no FIFO waits, no `/dev/zero` without end), and
//!   their SHA-256.
//! - [`normalisation`] — the RGB mean and standard deviation of every network's input.
//! - [`png_chunks`] — PNGs without their compressed ancillary chunks (no `iCCP` bombs).
//! - [`pixels`] — the pixel limit every image decoder checks from the file's header.

#![warn(missing_docs)]

pub mod child;
pub mod files;
pub mod normalisation;
pub mod pixels;
pub mod png_chunks;
pub mod read;

pub use pixels::{check_pixels, max_pixels, DEFAULT_MAX_PIXELS};

/// The examples of the crate's README.md, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
