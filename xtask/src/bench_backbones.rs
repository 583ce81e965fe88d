//! `cargo xtask bench-backbones`: forward time of each backbone, next to PyTorch in the same run.

use std::time::Instant;

use crate::torch_timing::torch_timings;
use anyhow::Result;
use candle_core::{DType, Device};
use scfnet_backbones::{
    synthetic_image, synthetic_var_builder, Backbone, MobileNetV3, ResNet50, SwinTransformer,
};

/// Arguments of `bench-backbones`.
#[derive(clap::Args)]
pub struct Args {
    /// Input side for ResNet-50 and MobileNetV3 (Swin-B always runs at 384, its native size).
    #[arg(long, default_value_t = 352)]
    size: usize,
    /// Timed repetitions (after one warm-up); the best is reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Also time PyTorch (timm) with tests/reference/backbones/bench_torch.py on as many threads.
    #[arg(long)]
    python: bool,
}

/// Best wall time in ms of `repeat` eval forward passes of `net` at `1 × 3 × size × size`.
fn time_backbone(net: &dyn Backbone, size: usize, repeat: usize) -> Result<f64> {
    let x = synthetic_image("bench", &[1, 3, size, size], DType::F32, &Device::Cpu)?;
    net.features(&x, false)?;
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        net.features(&x, false)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// Runs the benchmark.
pub fn run(args: Args) -> Result<()> {
    let threads = candle_core::utils::get_num_threads();
    let dev = Device::Cpu;
    let mut ours = Vec::new();
    let (vb, _) = synthetic_var_builder(DType::F32, &dev);
    ours.push((
        "resnet50",
        args.size,
        time_backbone(&ResNet50::new(vb)?, args.size, args.repeat)?,
    ));
    let (vb, _) = synthetic_var_builder(DType::F32, &dev);
    ours.push((
        "mobilenetv3",
        args.size,
        time_backbone(&MobileNetV3::large_x0_5(vb)?, args.size, args.repeat)?,
    ));
    let (vb, _) = synthetic_var_builder(DType::F32, &dev);
    ours.push((
        "swin-b",
        384,
        time_backbone(&SwinTransformer::base(vb)?, 384, args.repeat)?,
    ));
    let torch: Vec<(String, f64)> = if args.python {
        torch_timings("backbones/bench_torch.py", threads, args.size, args.repeat)?
    } else {
        Vec::new()
    };
    println!(
        "backbone forward, eval, batch 1, {threads} threads (best of {})",
        args.repeat
    );
    println!(
        "{:<12} {:>6} {:>12} {:>12} {:>8}",
        "backbone", "input", "candle ms", "torch ms", "ratio"
    );
    for (name, size, ms) in ours {
        let t = torch.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
        let (ts, ratio) = match t {
            Some(t) => (format!("{t:.1}"), format!("{:.2}x", ms / t)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{name:<12} {:>6} {ms:>12.1} {ts:>12} {ratio:>8}",
            format!("{size}²")
        );
    }
    Ok(())
}
