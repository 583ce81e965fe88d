//! `check-device`'s timings: the student's inference and training steps in each mode, with a
//! per-op profile and the first step's loss.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use scfnet_model::{InputSide, ModelKind, Scfnet};
use scfnet_train::{Target, TrainConfig, Trainer};
use serde_json::{json, Value};

use super::{BenchMode, CheckDeviceArgs};

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

/// The most MiB of device memory in use at once since the last call ([`scfnet_ops::take_peak_device_memory`]);
/// `None` where the device keeps no count (the CPU) or the driver would not say (a warning: the
/// timings do not depend on it).
fn take_peak_mib(dev: &Device) -> Option<f64> {
    match scfnet_ops::take_peak_device_memory(dev) {
        Ok(bytes) => bytes.map(|b| b as f64 / (1u64 << 20) as f64),
        Err(e) => {
            tracing::warn!("peak device memory: {e}");
            None
        }
    }
}

/// `", peak N MiB"` for a log line, or nothing.
fn peak_text(peak_mib: Option<f64>) -> String {
    peak_mib.map_or(String::new(), |m| format!(", peak {m:.0} MiB"))
}

/// The student's inference images/s at batch `b` (maps brought to the host).
fn bench_inference(args: &CheckDeviceArgs, dev: &Device, net: &Scfnet, b: usize) -> Result<Value> {
    let s = args.bench_size.get();
    let x = Tensor::randn(0f32, 1.0, (b, 3, s, s), dev)?;
    take_peak_mib(dev);
    let mut run = || {
        let p = candle_nn::ops::sigmoid(&net.side_outputs(&x, false)?.p2)?;
        p.to_device(&Device::Cpu)?;
        Ok(())
    };
    let secs = best_seconds(dev, args.repeat, &mut run)?;
    let peak_mib = take_peak_mib(dev);
    tracing::info!(
        "student inference b{b}: {:.1} images/s{}",
        b as f64 / secs,
        peak_text(peak_mib)
    );
    let profile = if args.no_breakdown {
        Value::Null
    } else {
        profiled(dev, run)?
    };
    Ok(json!({"model": "student", "batch": b, "size": s,
              "seconds": secs, "images_per_s": b as f64 / secs, "peak_mib": peak_mib,
              "profile": profile}))
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
    // The step's peak includes the weights, the optimiser's state and the batch.
    take_peak_mib(dev);
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
    let peak_mib = take_peak_mib(dev);
    if args.no_breakdown {
        tracing::info!(
            "{} training step b{batch}: {:.1} ms{}",
            kind.name(),
            secs * 1e3,
            peak_text(peak_mib)
        );
        return Ok(
            json!({"model": kind.name(), "batch": batch, "size": s, "seconds": secs,
                  "first_loss": first_loss, "peak_mib": peak_mib}),
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
        "{} training step b{batch}: {:.1} ms (forward {:.1}, loss {:.1}, backward + update {:.1}){}",
        kind.name(),
        secs * 1e3,
        forward * 1e3,
        (with_loss - forward) * 1e3,
        (secs - with_loss) * 1e3,
        peak_text(peak_mib)
    );
    Ok(
        json!({"model": kind.name(), "batch": batch, "size": s, "seconds": secs,
              "first_loss": first_loss, "peak_mib": peak_mib,
              "forward_seconds": forward, "forward_and_loss_seconds": with_loss,
              "profile": profile}),
    )
}

/// Every timing; one that fails is reported in place and the others still run. `so_far` gets
/// the timings after each mode.
pub(super) fn bench(
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
        mode.apply(dev);
        let _generic = (mode == BenchMode::F32Generic).then(scfnet_ops::force_generic_path);
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
    // Back to the comparisons' strict setting.
    BenchMode::F32.apply(dev);
    Ok(Value::Object(report))
}
