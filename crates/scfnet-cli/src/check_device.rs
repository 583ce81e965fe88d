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
use scfnet_ops::ProductPrecision;
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
    /// Batch sizes of the student's inference timing (0: none).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub infer_batches: Vec<usize>,
    /// Training-step timings as MODEL:BATCH or MODEL:BATCH@SIDE (default side: --bench-size); an
    /// empty value: none.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "student:128,r50:32,swinb:8@384"
    )]
    pub train: Vec<String>,
    /// How to run the timings: f32 (strict matrix products), tf32 (TF32 tensor cores for f32
    /// matrix products and the convolutions), conv-tf32 (TF32 for the convolutions only:
    /// PyTorch's defaults and `--precision`'s default), f32-generic (f32 with every op
    /// composed of candle primitives instead of the native kernels: the before of an A/B),
    /// f32-events (f32 with cudarc's per-buffer CUDA events, its default, which `scfnet` turns
    /// off: the before of that A/B), cudnn (conv-tf32 with the dense convolutions through cuDNN
    /// instead of columns + cuBLAS), batch-wgrad (conv-tf32 with each convolution's weight
    /// gradient one product over the batch instead of one per image summed), batch-columns
    /// (batch-wgrad with the forward pass and input gradient one product over the batch too),
    /// bf16 (every f32 matrix product on bf16 tensor cores: `--precision bf16`). The default
    /// runs the modes that decide a default first, in case the run is stopped early.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "conv-tf32,f32,cudnn,batch-columns,batch-wgrad,bf16,tf32,f32-events"
    )]
    pub bench_modes: Vec<BenchMode>,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Skip the networks (ops only).
    #[arg(long)]
    pub ops_only: bool,
    /// Only the timings: no comparison with the CPU (implies --bench). For a profiler run.
    #[arg(long)]
    pub bench_only: bool,
    /// Time whole training steps only: no forward / loss split and no per-op profile run.
    #[arg(long)]
    pub no_breakdown: bool,
    /// Write the report here (JSON): after the comparisons, after each timing mode, and at the
    /// end (`"complete": true` only then).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The setting of one round of timings.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchMode {
    /// Full f32 matrix products, native kernels.
    F32,
    /// TF32 tensor cores for f32 matrix products
    /// (`candle_core::cuda::set_gemm_reduced_precision_f32`), native kernels.
    Tf32,
    /// TF32 for the convolutions, full f32 for the other matrix products (PyTorch's defaults).
    ConvTf32,
    /// Full f32, every op composed of candle primitives (`scfnet_ops::force_generic_path`).
    F32Generic,
    /// Full f32, native kernels, with cudarc's per-buffer event tracking on (its default).
    F32Events,
    /// conv-tf32 with the dense convolutions through cuDNN.
    Cudnn,
    /// conv-tf32 with the columns convolution's weight gradient as one product over the batch
    /// (`scfnet_ops::BatchColumns::WeightGradient`).
    BatchWgrad,
    /// conv-tf32 with every pass of the columns convolution one product over the batch
    /// (`scfnet_ops::BatchColumns::Every`).
    BatchColumns,
    /// Every f32 matrix product (convolutions and candle's) on bf16 tensor cores, f32 sums
    /// (`--precision bf16`).
    Bf16,
}

impl BenchMode {
    fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Tf32 => "tf32",
            Self::ConvTf32 => "conv-tf32",
            Self::F32Generic => "f32-generic",
            Self::F32Events => "f32-events",
            Self::Cudnn => "cudnn",
            Self::BatchWgrad => "batch-wgrad",
            Self::BatchColumns => "batch-columns",
            Self::Bf16 => "bf16",
        }
    }
}

/// Runs `scfnet check-device`: exit 0 when every comparison is within tolerance.
pub fn run(args: CheckDeviceArgs) -> Result<ExitCode> {
    let dev = device(args.device)?;
    let mut failures = Vec::new();
    let mut ops = Vec::new();
    let cases = if args.bench_only {
        Vec::new()
    } else {
        op_cases()
    };
    for case in &cases {
        ops.push(compare_op(
            case,
            &case.name,
            &dev,
            args.tolerance,
            &mut failures,
        ));
    }
    // The dense convolutions again through cuDNN (strict f32), where it can be loaded.
    let cudnn = if args.bench_only || !dev.is_cuda() {
        Value::Null
    } else {
        match scfnet_ops::cudnn_version() {
            Ok(version) => {
                scfnet_ops::set_cudnn_convolutions(true);
                compare_convolutions_again(
                    &cases,
                    "cudnn",
                    &dev,
                    args.tolerance,
                    &mut ops,
                    &mut failures,
                );
                scfnet_ops::set_cudnn_convolutions(false);
                json!({"available": true, "version": version})
            }
            Err(why) => {
                tracing::warn!("cuDNN: {why}");
                json!({"available": false, "why": why})
            }
        }
    };
    // The dense convolutions again with every pass one product over the batch (the weight
    // gradient's code is the same as in batch-wgrad's timings).
    if !args.bench_only && dev.is_cuda() {
        scfnet_ops::set_batch_columns(scfnet_ops::BatchColumns::Every);
        compare_convolutions_again(
            &cases,
            "batch-columns",
            &dev,
            args.tolerance,
            &mut ops,
            &mut failures,
        );
        scfnet_ops::set_batch_columns(scfnet_ops::BatchColumns::Off);
    }
    let mut networks = Vec::new();
    if !args.ops_only && !args.bench_only {
        for kind in ModelKind::ALL {
            let t = Instant::now();
            // f64: the step itself (any difference beyond rounding is a wrong kernel); f32: the
            // eval map in grey levels and the step as users run it.
            let mut per_dtype = Vec::new();
            let mut cpu_maps = Vec::new();
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
                match step(&Device::Cpu).and_then(|cpu| {
                    let on_dev = step(&dev)?;
                    Ok((
                        max_differences(&cpu, &on_dev),
                        cpu.eval_map,
                        on_dev.eval_map,
                    ))
                }) {
                    Ok((d, cpu_map, dev_map)) => {
                        per_dtype.push(d);
                        cpu_maps.push((cpu_map, dev_map));
                    }
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
            let (loss64, map64, update64, worst64) = per_dtype[0].clone();
            let (loss32, map32, update32, worst32) = per_dtype[1].clone();
            let grey = map32 * 255.0;
            // Each device's own f32 error on this map (its f32 map against the exact f64 one):
            // a fresh network in eval mode is not normalised (running statistics 0 and 1), so
            // f32 rounding grows through its layers, and a few pixels move by grey levels (the
            // CPU's own largest error is ~1.7 grey levels at 96×96) while the rest stay put.
            // The device passes when its f32 map is within one grey level of the CPU's, or when
            // its mean error is at most twice the CPU's (plus 0.01 grey levels): as accurate as
            // the CPU on the map as a whole. The largest errors are reported beside. The f64
            // maps must agree (1e-6 grey levels): the computation itself is the CPU's.
            let exact = &cpu_maps[0].0;
            let error = |m: &[f64]| {
                let d: Vec<f64> = m
                    .iter()
                    .zip(exact)
                    .map(|(a, b)| 255.0 * (a - b).abs())
                    .collect();
                let largest = d.iter().fold(0.0f64, |a, &b| a.max(b));
                (largest, d.iter().sum::<f64>() / d.len().max(1) as f64)
            };
            let (cpu_f32_grey, cpu_f32_mean) = error(&cpu_maps[1].0);
            let (dev_f32_grey, dev_f32_mean) = error(&cpu_maps[1].1);
            let mean_limit = 2.0 * cpu_f32_mean + 0.01;
            let ok = loss64 <= args.tolerance
                && update64 <= args.tolerance
                && map64 * 255.0 <= 1e-6
                && (grey <= 1.0 || dev_f32_mean <= mean_limit);
            if !ok {
                failures.push(format!(
                    "{}: f64 loss {loss64:.2e}, f64 update {update64:.2e} ({worst64}), f64 map {:.2e} grey levels, f32 map {grey:.2} grey levels from the CPU's, mean error from exact {dev_f32_mean:.4} (limit {mean_limit:.4})",
                    kind.name(), map64 * 255.0
                ));
            }
            tracing::info!(
                "{:<8} f64 step: loss {loss64:.1e}, update {update64:.1e}, map {:.1e} grey levels; f32: map {grey:.3} grey levels from the CPU's (error from exact, largest / mean: device {dev_f32_grey:.3} / {dev_f32_mean:.4}, CPU {cpu_f32_grey:.3} / {cpu_f32_mean:.4}), loss {loss32:.1e}, update {update32:.1e}",
                kind.name(), map64 * 255.0
            );
            networks.push(json!({
                "model": kind.name(), "side": args.side.get(), "batch": 2,
                "f64_loss_rel_diff": loss64, "f64_update_max_rel_diff": update64,
                "f64_worst_tensor": worst64, "f64_map_max_diff_grey_levels": map64 * 255.0,
                "f32_map_max_diff_grey_levels": grey,
                "cpu_f32_map_error_grey_levels": cpu_f32_grey,
                "device_f32_map_error_grey_levels": dev_f32_grey,
                "cpu_f32_map_mean_error_grey_levels": cpu_f32_mean,
                "device_f32_map_mean_error_grey_levels": dev_f32_mean,
                "f32_map_mean_error_limit_grey_levels": mean_limit, "f32_loss_rel_diff": loss32,
                "f32_update_max_rel_diff": update32, "f32_worst_tensor": worst32,
                "ok": ok, "seconds": t.elapsed().as_secs_f64(),
            }));
        }
    }
    // Written now and after each timing mode, so that a run stopped from outside (check.sh's
    // time budget) still leaves what it measured, marked `"complete": false`.
    let partial = |bench: Option<&Value>| -> Result<()> {
        match &args.json {
            Some(path) => {
                let r = report(&args, (&ops, &cudnn, &networks), bench, &failures, false);
                write_atomic(path, serde_json::to_string_pretty(&r)?.as_bytes())
            }
            None => Ok(()),
        }
    };
    partial(None)?;
    let bench = if args.bench || args.bench_only {
        match bench(&args, &dev, &|so_far| partial(Some(so_far))) {
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
    let report = report(
        &args,
        (&ops, &cudnn, &networks),
        bench.as_ref(),
        &failures,
        true,
    );
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

/// The JSON report: the comparisons (`ops`, cuDNN's availability, `networks`), the timings so
/// far, the failures, and whether the run got to its end (`complete`).
fn report(
    args: &CheckDeviceArgs,
    (ops, cudnn, networks): (&[Value], &Value, &[Value]),
    bench: Option<&Value>,
    failures: &[String],
    complete: bool,
) -> Value {
    json!({
        "device": args.device.to_string(),
        "tolerance": args.tolerance,
        "ops": ops,
        "cudnn": cudnn,
        "networks": networks,
        "bench": bench,
        "failures": failures,
        "complete": complete,
    })
}

/// Every `conv2d` case of `cases` compared again, named `… [label]`, under whatever setting
/// the caller turned on (cuDNN, the batch weight gradient).
fn compare_convolutions_again(
    cases: &[scfnet_ops::check::OpCase],
    label: &str,
    dev: &Device,
    tolerance: f64,
    ops: &mut Vec<Value>,
    failures: &mut Vec<String>,
) {
    for case in cases.iter().filter(|c| c.name.starts_with("conv2d")) {
        let name = format!("{} [{label}]", case.name);
        ops.push(compare_op(case, &name, dev, tolerance, failures));
    }
}

/// `case` (f32) on `dev` against the CPU, reported as `name`: its JSON entry; a difference over
/// `tolerance`, or an error on the device, is added to `failures` (not the end of the report).
fn compare_op(
    case: &scfnet_ops::check::OpCase,
    name: &str,
    dev: &Device,
    tolerance: f64,
    failures: &mut Vec<String>,
) -> Value {
    let both = evaluate(case, &Device::Cpu, DType::F32)
        .and_then(|cpu| Ok((cpu, evaluate(case, dev, DType::F32)?)));
    match both {
        Ok((cpu, on_dev)) => {
            let (err, at) = max_relative_difference(&cpu, &on_dev);
            let ok = err <= tolerance;
            if !ok {
                failures.push(format!("op {name}: {at} differs by {err:.2e}"));
            }
            tracing::info!("op {name:<50} max rel diff {err:.2e} ({at})");
            json!({"op": name, "max_rel_diff": err, "where": at, "ok": ok})
        }
        Err(e) => {
            tracing::error!("op {name}: {e}");
            failures.push(format!("op {name}: {e}"));
            json!({"op": name, "error": e.to_string(), "ok": false})
        }
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

/// One run of `f` with [`scfnet_ops::profile`] recording: the run's time (slowed by the
/// synchronisations around each op), each native op's share, and the rest (candle's kernels).
fn profiled(dev: &Device, f: impl FnOnce() -> Result<()>) -> Result<Value> {
    dev.synchronize()?;
    scfnet_ops::profile::start();
    let t = Instant::now();
    let run = f().and_then(|()| Ok(dev.synchronize()?));
    let total = t.elapsed().as_secs_f64();
    let ops = scfnet_ops::profile::finish();
    run?;
    let listed: f64 = ops.iter().map(|o| o.seconds).sum();
    let ops: Vec<Value> = ops
        .iter()
        .map(|o| json!({"op": o.op, "ms": o.seconds * 1e3, "calls": o.calls}))
        .collect();
    Ok(json!({"total_ms": total * 1e3, "unlisted_ms": (total - listed) * 1e3, "ops": ops}))
}

/// The student's inference images/s at batch `b` (maps brought to the host).
fn bench_inference(args: &CheckDeviceArgs, dev: &Device, net: &Scfnet, b: usize) -> Result<Value> {
    let s = args.bench_size.get();
    let x = Tensor::randn(0f32, 1.0, (b, 3, s, s), dev)?;
    let mut run = || {
        let p = candle_nn::ops::sigmoid(&net.side_outputs(&x, false)?.p2)?;
        p.to_device(&Device::Cpu)?;
        Ok(())
    };
    let secs = best_seconds(dev, args.repeat, &mut run)?;
    tracing::info!("student inference b{b}: {:.1} images/s", b as f64 / secs);
    let profile = if args.no_breakdown {
        Value::Null
    } else {
        profiled(dev, run)?
    };
    Ok(json!({"model": "student", "batch": b, "size": s,
              "seconds": secs, "images_per_s": b as f64 / secs, "profile": profile}))
}

/// A `--train` spec, `MODEL:BATCH` or `MODEL:BATCH@SIDE` (default side: `default_side`).
fn parse_train_spec(spec: &str, default_side: InputSide) -> Result<(ModelKind, usize, InputSide)> {
    let (model, rest) = spec
        .split_once(':')
        .with_context(|| format!("--train {spec}: expected MODEL:BATCH[@SIDE]"))?;
    let (batch, side) = match rest.split_once('@') {
        Some((b, side)) => (
            b,
            side.parse::<InputSide>()
                .map_err(|e| anyhow::anyhow!("--train {spec}: side: {e}"))?,
        ),
        None => (rest, default_side),
    };
    let kind: ModelKind = model
        .parse()
        .map_err(|e| anyhow::anyhow!("--train {spec}: {e}"))?;
    let batch: usize = batch
        .parse()
        .with_context(|| format!("--train {spec}: batch"))?;
    Ok((kind, batch, side))
}

/// A batch that is the same in every timing mode: images `(B, 3, S, S)` of a fixed wave in
/// `[-2, 2]` and masks `(B, 1, S, S)` of stripes, about a third ones, each image's wave shifted.
fn fixed_batch(dev: &Device, batch: usize, side: usize) -> Result<(Tensor, Tensor)> {
    // `sin(i·step + b·0.37)`: the indices `i` of one image only, so that each is exact in f32.
    let wave = |channels: usize, step: f64| -> Result<Tensor> {
        let n = (channels * side * side) as u32;
        let phase = Tensor::arange(0u32, n, dev)?
            .to_dtype(DType::F32)?
            .affine(step, 0.0)?
            .reshape((1, channels, side, side))?;
        let shifts = Tensor::arange(0u32, batch as u32, dev)?
            .to_dtype(DType::F32)?
            .affine(0.37, 0.0)?
            .reshape((batch, 1, 1, 1))?;
        Ok(phase.broadcast_add(&shifts)?.sin()?)
    };
    let x = wave(3, 0.7131)?.affine(2.0, 0.0)?;
    let mask = wave(1, 0.0123)?.ge(0.5)?.to_dtype(DType::F32)?;
    Ok((x, mask))
}

/// The time of one training step of `kind` at `batch` and `side`.
fn bench_train_step(
    args: &CheckDeviceArgs,
    dev: &Device,
    (kind, batch, side): (ModelKind, usize, InputSide),
) -> Result<Value> {
    let s = side.get();
    let config = TrainConfig {
        batch,
        sizes: vec![side],
        // Deterministic: no stochastic depth.
        drop_path: 0.0,
        ..TrainConfig::paper(kind)
    };
    let mut trainer = Trainer::fresh(config, dev, DType::F32)?;
    let (x, mask) = fixed_batch(dev, batch, s)?;
    // The same weights and batch in every mode: the first step's loss shows what the mode's
    // arithmetic does to the forward pass (e.g. bf16 against f32).
    let mut first_loss = None;
    let secs = best_seconds(dev, args.repeat, || {
        let outcome = trainer.step(&x, Target::Mask(&mask), 0, 0, 1e-3)?;
        first_loss.get_or_insert(outcome.loss);
        Ok(())
    })?;
    if args.no_breakdown {
        tracing::info!(
            "{} training step b{batch}: {:.1} ms",
            kind.name(),
            secs * 1e3
        );
        return Ok(
            json!({"model": kind.name(), "batch": batch, "size": s, "seconds": secs,
                  "first_loss": first_loss}),
        );
    }
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
    let profile = profiled(dev, || {
        trainer.step(&x, Target::Mask(&mask), 0, 0, 1e-3)?;
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
              "first_loss": first_loss,
              "forward_seconds": forward, "forward_and_loss_seconds": with_loss,
              "profile": profile}),
    )
}

/// Every timing; one that fails is reported in place and the others still run. `so_far` gets
/// the timings after each mode.
fn bench(
    args: &CheckDeviceArgs,
    dev: &Device,
    so_far: &dyn Fn(&Value) -> Result<()>,
) -> Result<Value> {
    let or_error = |r: Result<Value>, what: String| match r {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("{what}: {e:#}");
            json!({"what": what, "error": format!("{e:#}")})
        }
    };
    // Every spec is checked before anything is timed.
    let texts: Vec<&String> = args.train.iter().filter(|t| !t.is_empty()).collect();
    let specs = texts
        .iter()
        .map(|t| parse_train_spec(t, args.bench_size))
        .collect::<Result<Vec<_>>>()?;
    let args = &CheckDeviceArgs {
        train: texts.into_iter().cloned().collect(),
        ..args.clone()
    };
    let mut report = serde_json::Map::new();
    for &mode in &args.bench_modes {
        candle_core::cuda::set_gemm_reduced_precision_f32(mode == BenchMode::Tf32);
        candle_core::cuda::set_gemm_f32_bf16_products(mode == BenchMode::Bf16);
        scfnet_ops::set_convolution_products(match mode {
            BenchMode::Tf32
            | BenchMode::ConvTf32
            | BenchMode::Cudnn
            | BenchMode::BatchWgrad
            | BenchMode::BatchColumns => ProductPrecision::Tf32,
            BenchMode::Bf16 => ProductPrecision::Bf16,
            BenchMode::F32 | BenchMode::F32Generic | BenchMode::F32Events => ProductPrecision::F32,
        });
        scfnet_ops::set_cudnn_convolutions(mode == BenchMode::Cudnn);
        scfnet_ops::set_batch_columns(match mode {
            BenchMode::BatchWgrad => scfnet_ops::BatchColumns::WeightGradient,
            BenchMode::BatchColumns => scfnet_ops::BatchColumns::Every,
            _ => scfnet_ops::BatchColumns::Off,
        });
        let _generic = (mode == BenchMode::F32Generic).then(scfnet_ops::force_generic_path);
        // Buffers allocated from here on (the mode's networks and activations).
        scfnet_ops::set_cuda_event_tracking(dev, mode == BenchMode::F32Events);
        let p = mode.name();
        tracing::info!("timings: {p}");
        let args = &CheckDeviceArgs {
            // The composed path is the slow reference: fewer rounds.
            repeat: if mode == BenchMode::F32Generic {
                args.repeat.min(2)
            } else {
                args.repeat
            },
            ..args.clone()
        };
        let (vb, _) = scfnet_backbones::synthetic_var_builder(DType::F32, dev);
        let net = Scfnet::new(ModelKind::Student, vb)?;
        let infer: Vec<Value> = args
            .infer_batches
            .iter()
            .filter(|&&b| b > 0)
            .map(|&b| {
                or_error(
                    bench_inference(args, dev, &net, b),
                    format!("{p} inference b{b}"),
                )
            })
            .collect();
        drop(net);
        let train: Vec<Value> = specs
            .iter()
            .zip(&args.train)
            .map(|(&spec, text)| {
                or_error(
                    bench_train_step(args, dev, spec),
                    format!("{p} train {text}"),
                )
            })
            .collect();
        report.insert(p.into(), json!({"inference": infer, "train_step": train}));
        so_far(&Value::Object(report.clone()))?;
    }
    candle_core::cuda::set_gemm_reduced_precision_f32(false);
    candle_core::cuda::set_gemm_f32_bf16_products(false);
    scfnet_ops::set_convolution_products(ProductPrecision::F32);
    scfnet_ops::set_cuda_event_tracking(dev, false);
    scfnet_ops::set_cudnn_convolutions(false);
    scfnet_ops::set_batch_columns(scfnet_ops::BatchColumns::Off);
    Ok(Value::Object(report))
}
