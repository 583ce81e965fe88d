//! `cargo xtask bench-loader`: epochs of the training loader (decoding, the paper's
//! augmentation, the batch's resize; no network) under the `scfnet` binary's allocator, next to
//! the authors' own pipeline (their `lib/dataset.py` under Paddle's `DataLoader`,
//! `tests/reference/loader/authors_loader.py`) on the same files, rounds alternated. With
//! `--step-ms`, a training loop instead: a consumer taking that long per batch (a GPU's step)
//! over several epochs, with and without the next epoch prepared ahead.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use scfnet_data::synth::{generate, SynthConfig};
use scfnet_data::{Loader, LoaderConfig, SodDataset, PAPER_SIZES};

use crate::torch_timing::python_timings;

/// Arguments of `bench-loader`.
#[derive(clap::Args)]
pub struct Args {
    /// Synthetic training images (JPEGs of 300–400 px a side, PNG masks).
    #[arg(long, default_value_t = 1024)]
    images: usize,
    /// Loader threads (ours) and worker processes (the authors').
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// The side of every batch (one of the paper's 224, 256, 288, 320, 352).
    #[arg(long, default_value_t = 352)]
    side: usize,
    /// Rounds, each loader timed once per round in turn; medians reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also time the authors' pipeline in the same run (needs KDSCFNET_DIR and python3 with
    /// paddlepaddle, opencv-python-headless, numpy and pillow: see tests/reference/loader).
    #[arg(long)]
    python: bool,
    /// Instead: a consumer that takes this many milliseconds per batch (a training step on a
    /// GPU), over `--epochs` epochs, timed with and without the next epoch prepared ahead
    /// (at most a minute).
    #[arg(long, conflicts_with = "python", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    step_ms: Option<u64>,
    /// With `--step-ms`: epochs of each timed loop.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// With `--step-ms`: milliseconds between epochs with no batch asked for (validation,
    /// checkpoint; at most a minute).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pause_ms: u64,
}

/// Our loader over `data`, as `scfnet train` builds it for these settings.
fn our_loader(data: &Path, args: &Args) -> Result<Loader> {
    let config = LoaderConfig {
        batch: args.batch,
        sizes: vec![args.side],
        workers: args.workers,
        ..LoaderConfig::paper(0)
    };
    Ok(Loader::new(SodDataset::labeled(data, None)?, config)?)
}

/// Images and seconds of epoch `epoch` of `loader`, each batch's memory given back as the
/// training loop does.
fn time_ours(loader: &Loader, epoch: usize) -> Result<(usize, f64)> {
    let start = Instant::now();
    let batches = loader.epoch(epoch, 0);
    let buffers = batches.buffers();
    let mut images = 0;
    for batch in batches {
        let mut batch = batch?;
        images += batch.len();
        buffers.give_back(&mut batch);
    }
    Ok((images, start.elapsed().as_secs_f64()))
}

/// Images and seconds of one epoch of the authors' pipeline over `data`.
fn time_authors(data: &Path, args: &Args) -> Result<(usize, f64)> {
    let extra = [
        "--data".to_string(),
        data.display().to_string(),
        "--workers".into(),
        args.workers.to_string(),
        "--batch".into(),
        args.batch.to_string(),
        "--side".into(),
        args.side.to_string(),
    ];
    let found = python_timings(
        "loader/authors_loader.py",
        "authors",
        1,
        args.side,
        1,
        &extra,
    )?;
    let value = |label: &str| {
        found
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| *v)
            .with_context(|| format!("authors_loader.py printed no `authors {label}: …` line"))
    };
    // The images its DataLoader delivered, as counted for ours.
    Ok((value("images")? as usize, value("epoch")? / 1e3))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `bench-loader`.
pub fn run(args: Args) -> Result<()> {
    if !PAPER_SIZES.contains(&args.side) {
        bail!("--side must be one of {PAPER_SIZES:?} (the sides the authors' collate draws)");
    }
    if args.images == 0
        || args.batch == 0
        || args.workers == 0
        || args.rounds == 0
        || args.epochs == 0
    {
        bail!("--images, --batch, --workers, --rounds and --epochs must be at least 1");
    }
    let data: PathBuf =
        std::env::temp_dir().join(format!("scfnet-bench-loader-{}", std::process::id()));
    if data.symlink_metadata().is_ok() {
        // Not ours: it is removed at the end, so it must be what this run made.
        bail!("{} already exists: remove it, or run again", data.display());
    }
    let config = SynthConfig {
        count: args.images,
        seed: 0,
        side: (300, 400),
        test_fraction: 0.0,
        clutter: 0,
    };
    println!(
        "writing {} synthetic images to {}",
        args.images,
        data.display()
    );
    let result = generate(&data, &config, || {})
        .map_err(anyhow::Error::from)
        .and_then(|_| read_all(&data))
        .and_then(|()| match args.step_ms {
            Some(step_ms) => overlap_rounds(&data, &args, step_ms),
            None => rounds(&data, &args),
        });
    // Removed whether or not the benchmark got through.
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// Reads every file of the set once, so that both loaders find them in the page cache.
fn read_all(data: &Path) -> Result<()> {
    for entry in std::fs::read_dir(data.join("image"))?.chain(std::fs::read_dir(data.join("mask"))?)
    {
        std::fs::read(entry?.path())?;
    }
    Ok(())
}

fn rounds(data: &Path, args: &Args) -> Result<()> {
    println!(
        "one epoch, batch {} at {}x{}, {} workers; img/s per round",
        args.batch, args.side, args.side, args.workers
    );
    // One loader for every round, as one training run has for its epochs; its first epoch
    // (memory first mapped) is not timed. The authors' DataLoader starts its worker processes
    // at every epoch, as it does in their training: that is in their times.
    let loader = our_loader(data, args)?;
    time_ours(&loader, 0)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let (n, s) = time_ours(&loader, round)?;
        ours.push(n as f64 / s);
        let mut line = format!("  round {round}: scfnet {:.0} img/s", n as f64 / s);
        if args.python {
            let (n, s) = time_authors(data, args)?;
            theirs.push(n as f64 / s);
            line += &format!(", authors' pipeline {:.0} img/s", n as f64 / s);
        }
        println!("{line}");
    }
    let ours = median(ours);
    println!(
        "scfnet: {ours:.0} img/s ({:.0} per worker)",
        ours / args.workers as f64
    );
    if !theirs.is_empty() {
        let theirs = median(theirs);
        println!(
            "authors' pipeline (Paddle DataLoader, {} worker processes): {theirs:.0} img/s; \
             scfnet {:.1}x its images/s",
            args.workers,
            ours / theirs
        );
    }
    Ok(())
}

/// Seconds of `epochs` epochs of `loader` from epoch `first`, each batch held for `step` and
/// given back, `pause` between epochs; with `ahead`, each epoch but the last prepares the next
/// (as `scfnet train` does). Also the batches consumed.
fn time_loop(
    loader: &Loader,
    first: usize,
    epochs: usize,
    step: Duration,
    pause: Duration,
    ahead: bool,
) -> Result<(usize, f64)> {
    let start = Instant::now();
    let mut consumed = 0;
    for epoch in first..first + epochs {
        let batches = if ahead && epoch + 1 < first + epochs {
            loader.epoch_preparing_next(epoch, 0)
        } else {
            loader.epoch(epoch, 0)
        };
        let buffers = batches.buffers();
        for batch in batches {
            let mut batch = batch?;
            std::thread::sleep(step);
            buffers.give_back(&mut batch);
            consumed += 1;
        }
        std::thread::sleep(pause);
    }
    Ok((consumed, start.elapsed().as_secs_f64()))
}

/// `--step-ms`: the training loop's wall time against the consumer's own (steps and pauses),
/// with and without the next epoch prepared ahead, alternated.
fn overlap_rounds(data: &Path, args: &Args, step_ms: u64) -> Result<()> {
    let (step, pause) = (
        Duration::from_millis(step_ms),
        Duration::from_millis(args.pause_ms),
    );
    println!(
        "{} epochs, batch {} at {}x{}, {} workers, a consumer taking {step_ms} ms a batch and \
         {} ms between epochs; share of the wall time that is the consumer's, per round",
        args.epochs, args.batch, args.side, args.side, args.workers, args.pause_ms
    );
    let loader = our_loader(data, args)?;
    time_ours(&loader, 0)?; // memory first mapped: not timed
    let (mut plain, mut ahead) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let mut line = format!("  round {round}:");
        for (prepared, shares) in [(false, &mut plain), (true, &mut ahead)] {
            let first = (2 * round + usize::from(prepared)) * args.epochs;
            let (batches, wall) = time_loop(&loader, first, args.epochs, step, pause, prepared)?;
            let busy = (step * batches as u32 + pause * args.epochs as u32).as_secs_f64();
            shares.push(busy / wall);
            let label = if prepared { "prepared ahead" } else { "plain" };
            line += &format!(" {label} {wall:.2} s ({:.1} %)", 100.0 * busy / wall);
        }
        println!("{line}");
    }
    let (plain, ahead) = (median(plain), median(ahead));
    println!(
        "the consumer's share of the wall time: {:.1} % plain, {:.1} % with the next epoch \
         prepared ahead (medians)",
        100.0 * plain,
        100.0 * ahead
    );
    Ok(())
}
