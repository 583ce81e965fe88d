//! How many training images a second the loader prepares on this machine: decoding, the paper's
//! augmentation chain and the resize, with no network behind it. A GPU step that consumes more
//! images a second than this waits for its data.
//!
//! ```sh
//! scfnet synth --out /tmp/synth --n 512 --min-side 300 --max-side 400 --test-fraction 0
//! cargo run --release -p scfnet-data --example loader_throughput -- /tmp/synth 2 128 352
//! ```
//!
//! Arguments: a labeled dataset folder (`image/`, `mask/`), then optionally the worker threads
//! (default: the machine's cores), the batch (128) and the input side (352). It reads every
//! image once before timing (so that the files come from the page cache, as during the later
//! epochs of a run), then times one epoch and prints images/s overall and per worker, and a
//! checksum of every value of the epoch's batches (the same for any number of workers, and the
//! same before and after a change that should not move any value). Like the training loop, it
//! gives each batch's host memory back to the loader when done with it. It allocates through
//! the system allocator; the `scfnet` binary uses mimalloc with freed memory kept mapped, which
//! is faster here: `cargo xtask bench-loader` times the loader under the binary's allocator.

use std::path::PathBuf;
use std::time::Instant;

use scfnet_data::{Loader, LoaderConfig, SodDataset};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: loader_throughput DATASET [WORKERS] [BATCH] [SIDE]";
    let root = PathBuf::from(args.next().ok_or(usage)?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut number = |default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        match args.next() {
            Some(a) => Ok(a.parse().map_err(|e| format!("{a}: {e} ({usage})"))?),
            None => Ok(default),
        }
    };
    let (workers, batch, side) = (number(cores)?, number(128)?, number(352)?);
    if workers == 0 || side == 0 {
        return Err(format!("WORKERS and SIDE must be at least 1 ({usage})").into());
    }
    let dataset = SodDataset::labeled(&root, None)?;
    for sample in dataset.samples() {
        std::fs::read(&sample.image).map_err(|e| format!("{}: {e}", sample.image.display()))?;
    }
    let config = LoaderConfig {
        batch,
        sizes: vec![side],
        workers,
        ..LoaderConfig::paper(0)
    };
    let loader = Loader::new(dataset, config)?;
    let start = Instant::now();
    let (mut images, mut checksum) = (0, 0xcbf2_9ce4_8422_2325u64);
    let epoch = loader.epoch(0, 0);
    let buffers = epoch.buffers();
    for batch in epoch {
        let mut batch = batch?;
        images += batch.len();
        // FNV-1a over the values' bits, images then masks.
        for v in batch.images.iter().chain(batch.masks.iter().flatten()) {
            checksum = (checksum ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3);
        }
        // As the training loop does once a batch is on the device.
        buffers.give_back(&mut batch);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{images} images at {side}x{side}, batch {batch}, {workers} workers: {:.1} s, {:.0} img/s ({:.1} img/s per worker, {:.2} ms per image and worker); checksum {checksum:016x}",
        seconds,
        images as f64 / seconds,
        images as f64 / seconds / workers as f64,
        1e3 * seconds * workers as f64 / images as f64
    );
    Ok(())
}
