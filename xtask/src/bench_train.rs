//! `cargo xtask bench-train`: one full training step, next to PyTorch in the same run.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device};
use scfnet_backbones::synthetic_image;
use scfnet_model::{InputSide, ModelKind};
use scfnet_train::{Target, TrainConfig, Trainer};

use crate::torch_timing::torch_timings;

/// Arguments of `bench-train`.
#[derive(clap::Args)]
pub struct Args {
    /// Input side.
    #[arg(long, default_value = "352")]
    size: InputSide,
    /// Timed steps (after one warm-up); the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also time the PyTorch re-creation (tests/reference/train/bench_torch_step.py).
    #[arg(long)]
    python: bool,
}

/// Best ms of one `Trainer::step` (the step `scfnet train` runs: train-mode forward, the
/// deep-supervision loss, backward and the SGD update with the recipe's parameter groups) on
/// synthetic images and masks, from fresh weights.
fn time_step(kind: ModelKind, batch: usize, side: InputSide, repeat: usize) -> Result<f64> {
    let size = side.get();
    let dev = Device::Cpu;
    let config = TrainConfig {
        batch,
        sizes: vec![side],
        // Deterministic: no stochastic depth.
        drop_path: 0.0,
        ..TrainConfig::paper(kind)
    };
    let mut trainer = Trainer::fresh(config, &dev, DType::F32)?;
    let x = synthetic_image("x", &[batch, 3, size, size], DType::F32, &dev)?;
    let mask = synthetic_image("m", &[batch, 1, size, size], DType::F32, &dev)?
        .ge(0.0)?
        .to_dtype(DType::F32)?;
    let mut best = f64::INFINITY;
    for i in 0..=repeat.max(1) {
        let t = Instant::now();
        trainer.step(&x, Target::Mask(&mask), 0, 0, 0.01)?;
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(best)
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let threads = candle_core::utils::get_num_threads();
    let ours = [
        (
            "student",
            16,
            time_step(ModelKind::Student, 16, args.size, args.repeat)?,
        ),
        (
            "r50",
            4,
            time_step(ModelKind::R50, 4, args.size, args.repeat)?,
        ),
    ];
    let torch = if args.python {
        torch_timings(
            "train/bench_torch_step.py",
            threads,
            args.size.get(),
            args.repeat,
        )?
    } else {
        Vec::new()
    };
    println!(
        "training step (forward, loss, backward, SGD), {s}x{s}, {threads} threads (best of {})",
        args.repeat,
        s = args.size
    );
    println!(
        "{:<8} {:>5} {:>12} {:>12} {:>8}",
        "model", "batch", "candle s", "torch s", "ratio"
    );
    for (name, batch, ms) in ours {
        let t = torch
            .iter()
            .find(|(l, _)| *l == format!("{name} b{batch}"))
            .map(|(_, t)| *t);
        let (ts, ratio) = match t {
            Some(t) => (format!("{:.2}", t / 1e3), format!("{:.2}x", ms / t)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{name:<8} {batch:>5} {:>12.2} {ts:>12} {ratio:>8}",
            ms / 1e3
        );
    }
    Ok(())
}
