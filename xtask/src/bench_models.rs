//! `cargo xtask bench-models`: images/s of the SCFNet networks, next to PyTorch in the same run.

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device};
use candle_nn::ModuleT;
use scfnet_backbones::{synthetic_image, synthetic_var_builder};
use scfnet_model::{ModelKind, Scfnet};

use crate::torch_timing::torch_timings;

/// Arguments of `bench-models`.
#[derive(clap::Args)]
pub struct Args {
    /// Input side.
    #[arg(long, default_value_t = 352)]
    size: usize,
    /// Timed repetitions (after one warm-up); the best is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Networks to time (student, r50).
    #[arg(long, value_delimiter = ',', default_values_t = ["student".to_string(), "r50".to_string()])]
    models: Vec<String>,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8])]
    batches: Vec<usize>,
    /// Also time the PyTorch re-creation (tests/reference/model/bench_torch.py).
    #[arg(long)]
    python: bool,
}

/// Best ms of `repeat` eval passes (network + sigmoid of p2) on a `batch × 3 × size × size` input.
fn time_model(net: &Scfnet, batch: usize, size: usize, repeat: usize) -> Result<f64> {
    let x = synthetic_image("bench", &[batch, 3, size, size], DType::F32, &Device::Cpu)?;
    candle_nn::ops::sigmoid(&net.forward_t(&x, false)?)?;
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        candle_nn::ops::sigmoid(&net.forward_t(&x, false)?)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let threads = candle_core::utils::get_num_threads();
    let mut ours = Vec::new();
    for kind in [ModelKind::Student, ModelKind::R50] {
        if !args.models.iter().any(|m| m == kind.name()) {
            continue;
        }
        let (vb, _) = synthetic_var_builder(DType::F32, &Device::Cpu);
        let net = Scfnet::new(kind, vb)?;
        for &batch in &args.batches {
            ours.push((
                kind.name(),
                batch,
                time_model(&net, batch, args.size, args.repeat)?,
            ));
        }
    }
    // Labels are "NAME bBATCH".
    let torch: Vec<(String, usize, f64)> = if args.python {
        torch_timings("model/bench_torch.py", threads, args.size, args.repeat)?
            .into_iter()
            .filter_map(|(label, ms)| {
                let (name, b) = label.split_once(" b")?;
                Some((name.to_owned(), b.parse().ok()?, ms))
            })
            .collect()
    } else {
        Vec::new()
    };
    println!(
        "network forward + sigmoid, eval, {s}x{s}, {threads} threads (best of {})",
        args.repeat,
        s = args.size
    );
    println!(
        "{:<8} {:>5} {:>12} {:>12} {:>10}",
        "model", "batch", "candle img/s", "torch img/s", "ratio"
    );
    for (name, batch, ms) in ours {
        let ips = batch as f64 * 1e3 / ms;
        let t = torch
            .iter()
            .find(|(n, b, _)| n == name && *b == batch)
            .map(|(_, b, t)| *b as f64 * 1e3 / t);
        let (ts, ratio) = match t {
            Some(t) => (format!("{t:.1}"), format!("{:.2}x", ips / t)),
            None => ("-".into(), "-".into()),
        };
        println!("{name:<8} {batch:>5} {ips:>12.1} {ts:>12} {ratio:>10}");
    }
    Ok(())
}
