//! `scfnet check-device`: does a device (a CUDA GPU) compute what the CPU computes, and how fast?
//!
//! Every op of `scfnet-ops` (output and input gradients, f32) and, for each network, one
//! training step in f64 (loss and every tensor's update: equal up to rounding) and in f32 (the
//! eval-mode map, within one grey level), on the device and on the CPU; with `--bench`, the
//! student's images/s and training-step times on the device.
//! Writes one JSON report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use scfnet_model::{InputSide, ModelKind, Scfnet};
use scfnet_ops::check::{evaluate, max_relative_difference, op_cases};
use scfnet_train::cross_device::{max_differences, record_step, StepLoss};
use scfnet_train::{Target, TrainConfig, Trainer};
use serde_json::{json, Value};

use crate::atomic::write_atomic;
use crate::device::{device, DeviceArg};

/// `scfnet check-device`.
#[derive(Args, Debug, Clone)]
pub struct CheckDeviceArgs {
    /// The device to check against the CPU: cuda, cuda:N (cpu checks the harness itself).
    #[arg(long, default_value = "cuda", value_parser = DeviceArg::parse)]
    pub device: DeviceArg,
    /// Input side of the network checks (a multiple of 32; 64 or more exercises Swin's shifted
    /// windows).
    #[arg(long, default_value = "96")]
    pub side: InputSide,
    /// Largest accepted relative difference of an op (f32) or of a training step (f64).
    #[arg(long, default_value_t = 1e-4)]
    pub tolerance: f64,
    /// Also time the networks on the device (inference images/s and training steps).
    #[arg(long)]
    pub bench: bool,
    /// Input side of the timings.
    #[arg(long, default_value = "352")]
    pub bench_size: InputSide,
    /// Batch sizes of the student's inference timing.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub infer_batches: Vec<usize>,
    /// Training-step timings as MODEL:BATCH pairs.
    #[arg(long, value_delimiter = ',', default_value = "student:128,r50:32")]
    pub train: Vec<String>,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Skip the networks (ops only).
    #[arg(long)]
    pub ops_only: bool,
    /// Write the report here (JSON).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Runs `scfnet check-device`: exit 0 when every comparison is within tolerance.
pub fn run(args: CheckDeviceArgs) -> Result<ExitCode> {
    let dev = device(args.device)?;
    let mut failures = Vec::new();
    let mut ops = Vec::new();
    for case in op_cases() {
        // An error on the device is a failed check, not the end of the report.
        let both = evaluate(&case, &Device::Cpu, DType::F32)
            .and_then(|cpu| Ok((cpu, evaluate(&case, &dev, DType::F32)?)));
        let (cpu, on_dev) = match both {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!("op {}: {e}", case.name);
                failures.push(format!("op {}: {e}", case.name));
                ops.push(json!({"op": case.name, "error": e.to_string(), "ok": false}));
                continue;
            }
        };
        let (err, at) = max_relative_difference(&cpu, &on_dev);
        let ok = err <= args.tolerance;
        if !ok {
            failures.push(format!("op {}: {at} differs by {err:.2e}", case.name));
        }
        tracing::info!("op {:<50} max rel diff {err:.2e} ({at})", case.name);
        ops.push(json!({"op": case.name, "max_rel_diff": err, "where": at, "ok": ok}));
    }
    let mut networks = Vec::new();
    if !args.ops_only {
        for kind in ModelKind::ALL {
            let t = Instant::now();
            // f64: the step itself (any difference beyond rounding is a wrong kernel); f32: the
            // eval map in grey levels and the step as users run it.
            let mut per_dtype = Vec::new();
            for dtype in [DType::F64, DType::F32] {
                let step = |d: &Device| {
                    record_step(
                        kind,
                        StepLoss::Supervised,
                        d,
                        dtype,
                        args.side.get(),
                        2,
                        0.01,
                    )
                    .with_context(|| format!("{} {dtype:?} step on {d:?}", kind.name()))
                };
                match step(&Device::Cpu).and_then(|cpu| Ok(max_differences(&cpu, &step(&dev)?))) {
                    Ok(d) => per_dtype.push(d),
                    Err(e) => {
                        tracing::error!("{e:#}");
                        failures.push(format!("{e:#}"));
                        networks.push(json!({"model": kind.name(), "dtype": format!("{dtype:?}"),
                                             "error": format!("{e:#}"), "ok": false}));
                    }
                }
            }
            if per_dtype.len() < 2 {
                continue;
            }
            let (loss64, _, update64, worst64) = per_dtype[0].clone();
            let (loss32, map32, update32, worst32) = per_dtype[1].clone();
            let grey = map32 * 255.0;
            let ok = loss64 <= args.tolerance && update64 <= args.tolerance && grey <= 1.0;
            if !ok {
                failures.push(format!(
                    "{}: f64 loss {loss64:.2e}, f64 update {update64:.2e} ({worst64}), f32 map {grey:.2} grey levels",
                    kind.name()
                ));
            }
            tracing::info!(
                "{:<8} f64 step: loss {loss64:.1e}, update {update64:.1e}; f32: map {grey:.3} grey levels, loss {loss32:.1e}, update {update32:.1e}",
                kind.name()
            );
            networks.push(json!({
                "model": kind.name(), "side": args.side.get(), "batch": 2,
                "f64_loss_rel_diff": loss64, "f64_update_max_rel_diff": update64,
                "f64_worst_tensor": worst64,
                "f32_map_max_diff_grey_levels": grey, "f32_loss_rel_diff": loss32,
                "f32_update_max_rel_diff": update32, "f32_worst_tensor": worst32,
                "ok": ok, "seconds": t.elapsed().as_secs_f64(),
            }));
        }
    }
    let bench = if args.bench {
        match bench(&args, &dev) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!("bench: {e:#}");
                failures.push(format!("bench: {e:#}"));
                Some(json!({"error": format!("{e:#}")}))
            }
        }
    } else {
        None
    };
    let report = json!({
        "device": args.device.to_string(),
        "tolerance": args.tolerance,
        "ops": ops,
        "networks": networks,
        "bench": bench,
        "failures": failures,
    });
    let text = serde_json::to_string_pretty(&report)?;
    match &args.json {
        Some(path) => write_atomic(path, text.as_bytes())?,
        None => println!("{text}"),
    }
    if failures.is_empty() {
        tracing::info!("{}: every comparison within tolerance", args.device);
        Ok(ExitCode::SUCCESS)
    } else {
        for f in &failures {
            tracing::error!("{f}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Best of `repeat` timings of `f` after one warm-up, with the device synchronised.
fn best_seconds(dev: &Device, repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for i in 0..=repeat {
        dev.synchronize()?;
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(best)
}

/// The student's inference images/s at batch `b` (maps brought to the host).
fn bench_inference(args: &CheckDeviceArgs, dev: &Device, net: &Scfnet, b: usize) -> Result<Value> {
    let s = args.bench_size.get();
    let x = Tensor::randn(0f32, 1.0, (b, 3, s, s), dev)?;
    let secs = best_seconds(dev, args.repeat, || {
        let p = candle_nn::ops::sigmoid(&net.side_outputs(&x, false)?.p2)?;
        p.to_device(&Device::Cpu)?;
        Ok(())
    })?;
    tracing::info!("student inference b{b}: {:.1} images/s", b as f64 / secs);
    Ok(json!({"model": "student", "batch": b, "size": s,
              "seconds": secs, "images_per_s": b as f64 / secs}))
}

/// The time of one training step for a `MODEL:BATCH` spec.
fn bench_train_step(args: &CheckDeviceArgs, dev: &Device, spec: &str) -> Result<Value> {
    let s = args.bench_size.get();
    let (model, batch) = spec
        .split_once(':')
        .with_context(|| format!("--train {spec}: expected MODEL:BATCH"))?;
    let kind: ModelKind = model.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let batch: usize = batch
        .parse()
        .with_context(|| format!("--train {spec}: batch"))?;
    let config = TrainConfig {
        batch,
        sizes: vec![args.bench_size],
        // Deterministic: no stochastic depth.
        drop_path: 0.0,
        ..TrainConfig::paper(kind)
    };
    let mut trainer = Trainer::fresh(config, dev, DType::F32)?;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, s, s), dev)?;
    let mask = Tensor::rand(0f32, 1.0, (batch, 1, s, s), dev)?
        .ge(0.5)?
        .to_dtype(DType::F32)?;
    let secs = best_seconds(dev, args.repeat, || {
        trainer.step(&x, Target::Mask(&mask), 0, 0, 1e-3)?;
        Ok(())
    })?;
    // Where the time goes: the train-mode forward alone, then with the loss; the rest of the
    // step is the backward pass and the update.
    let forward = best_seconds(dev, args.repeat, || {
        trainer.net().side_outputs(&x, true)?;
        Ok(())
    })?;
    let with_loss = best_seconds(dev, args.repeat, || {
        let out = trainer.net().side_outputs(&x, true)?;
        scfnet_train::supervised_loss(out.as_array(), &mask, 0)?;
        Ok(())
    })?;
    tracing::info!(
        "{} training step b{batch}: {:.1} ms (forward {:.1}, loss {:.1}, backward + update {:.1})",
        kind.name(),
        secs * 1e3,
        forward * 1e3,
        (with_loss - forward) * 1e3,
        (secs - with_loss) * 1e3
    );
    Ok(
        json!({"model": kind.name(), "batch": batch, "size": s, "seconds": secs,
              "forward_seconds": forward, "forward_and_loss_seconds": with_loss}),
    )
}

/// Every timing; one that fails is reported in place and the others still run.
fn bench(args: &CheckDeviceArgs, dev: &Device) -> Result<Value> {
    let or_error = |r: Result<Value>, what: String| match r {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("{what}: {e:#}");
            json!({"what": what, "error": format!("{e:#}")})
        }
    };
    let (vb, _) = scfnet_backbones::synthetic_var_builder(DType::F32, dev);
    let net = Scfnet::new(ModelKind::Student, vb)?;
    let infer: Vec<Value> = args
        .infer_batches
        .iter()
        .map(|&b| {
            or_error(
                bench_inference(args, dev, &net, b),
                format!("inference b{b}"),
            )
        })
        .collect();
    drop(net);
    let train: Vec<Value> = args
        .train
        .iter()
        .map(|spec| or_error(bench_train_step(args, dev, spec), format!("train {spec}")))
        .collect();
    Ok(json!({"inference": infer, "train_step": train}))
}
