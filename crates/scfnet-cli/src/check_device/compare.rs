//! `check-device`'s comparisons with the CPU: each op case, each in-place update, and one
//! training step of each network.

use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Device};
use scfnet_model::ModelKind;
use scfnet_ops::check::{
    evaluate, max_labelled_difference, max_relative_difference, OpCase, UpdateCase,
};
use scfnet_ops::OpFamily;
use scfnet_train::cross_device::{
    eval_logits_difference, folded_logits_difference, max_differences, record_step, StepLoss,
    StepRecord,
};
use serde_json::{json, Value};

use super::CheckDeviceArgs;

/// Every `conv2d` case of `cases` compared again, named `… [label]`, under whatever setting
/// the caller turned on (cuDNN, the batch weight gradient).
pub(super) fn compare_convolutions_again(
    cases: &[OpCase],
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
pub(super) fn compare_op(
    case: &OpCase,
    name: &str,
    dev: &Device,
    tolerance: f64,
    failures: &mut Vec<String>,
) -> Value {
    let difference = evaluate(case, &Device::Cpu, DType::F32).and_then(|cpu| {
        let on_dev = evaluate(case, dev, DType::F32)?;
        Ok(max_relative_difference(&cpu, &on_dev))
    });
    let family = case.family.map(OpFamily::name);
    report(name, family, difference, tolerance, failures)
}

/// The update `case` (f32) on `dev` against the CPU: its JSON entry, failures as
/// [`compare_op`]'s.
pub(super) fn compare_update(
    case: &UpdateCase,
    dev: &Device,
    tolerance: f64,
    failures: &mut Vec<String>,
) -> Value {
    let difference = (case.run)(&Device::Cpu, DType::F32).and_then(|cpu| {
        let on_dev = (case.run)(dev, DType::F32)?;
        Ok(max_labelled_difference(&cpu, &on_dev))
    });
    report(
        &case.name,
        Some(case.family.name()),
        difference,
        tolerance,
        failures,
    )
}

/// The JSON entry (and log line) of a comparison: its largest difference and where, or its
/// error, and the family of kernels it runs (`SCFNET_GENERIC_OPS`'s name; null for an op
/// without CUDA kernels); a difference over `tolerance` or an error is added to `failures`.
fn report(
    name: &str,
    family: Option<&str>,
    difference: candle_core::Result<(f64, String)>,
    tolerance: f64,
    failures: &mut Vec<String>,
) -> Value {
    match difference {
        Ok((err, at)) => {
            let ok = err <= tolerance;
            if !ok {
                failures.push(format!("op {name}: {at} differs by {err:.2e}"));
            }
            tracing::info!("op {name:<50} max rel diff {err:.2e} ({at})");
            json!({"op": name, "family": family, "max_rel_diff": err, "where": at, "ok": ok})
        }
        Err(e) => {
            tracing::error!("op {name}: {e}");
            failures.push(format!("op {name}: {e}"));
            json!({"op": name, "family": family, "error": e.to_string(), "ok": false})
        }
    }
}

/// One training step of `kind` on `dev` against the CPU: in f64 (loss, every update and the
/// eval map equal up to rounding) and in f32 (the eval map within one grey level, or as accurate
/// as the CPU's on the whole); its JSON entries (one per dtype that failed to run, else one).
/// A difference over the tolerance, or an error, is added to `failures`.
pub(super) fn compare_network(
    kind: ModelKind,
    dev: &Device,
    args: &CheckDeviceArgs,
    failures: &mut Vec<String>,
) -> Vec<Value> {
    let mut networks = Vec::new();
    let t = Instant::now();
    // f64: the step itself (any difference beyond rounding is a wrong kernel); f32: the
    // eval map in grey levels and the step as users run it.
    let mut per_dtype = Vec::new();
    let mut records_of = Vec::new();
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
            let on_dev = step(dev)?;
            Ok((max_differences(&cpu, &on_dev), (cpu, on_dev)))
        }) {
            Ok((d, records)) => {
                per_dtype.push(d);
                records_of.push(records);
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
        return networks;
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
    let exact = &records_of[0].0.eval_map;
    let error = |m: &[f64]| {
        let d: Vec<f64> = m
            .iter()
            .zip(exact)
            .map(|(a, b)| 255.0 * (a - b).abs())
            .collect();
        let largest = d.iter().fold(0.0f64, |a, &b| a.max(b));
        (largest, d.iter().sum::<f64>() / d.len().max(1) as f64)
    };
    let (cpu_f32_grey, cpu_f32_mean) = error(&records_of[1].0.eval_map);
    let (dev_f32_grey, dev_f32_mean) = error(&records_of[1].1.eval_map);
    let mean_limit = 2.0 * cpu_f32_mean + 0.01;
    let eval = logits_check(
        kind,
        "eval mode, fresh",
        &records_of,
        args.tolerance,
        |a, b| Ok(eval_logits_difference(a, b)),
    );
    let folded = logits_check(
        kind,
        "folded, after the step",
        &records_of,
        args.tolerance,
        folded_logits_difference,
    );
    for check in [&eval, &folded] {
        if let Err(e) = &check.verdict {
            failures.push(format!("{}: {e}", kind.name()));
        }
    }
    let step_ok = loss64 <= args.tolerance
        && update64 <= args.tolerance
        && map64 * 255.0 <= 1e-6
        && (grey <= 1.0 || dev_f32_mean <= mean_limit);
    let ok = step_ok && eval.verdict.is_ok() && folded.verdict.is_ok();
    if !step_ok {
        failures.push(format!(
            "{}: f64 loss {loss64:.2e}, f64 update {update64:.2e} ({worst64}), f64 map {:.2e} grey levels, f32 map {grey:.2} grey levels from the CPU's, mean error from exact {dev_f32_mean:.4} (limit {mean_limit:.4})",
            kind.name(), map64 * 255.0
        ));
    }
    tracing::info!(
        "{:<8} f64 step: loss {loss64:.1e}, update {update64:.1e}, map {:.1e} grey levels; f32: map {grey:.3} grey levels from the CPU's (error from exact, largest / mean: device {dev_f32_grey:.3} / {dev_f32_mean:.4}, CPU {cpu_f32_grey:.3} / {cpu_f32_mean:.4}), loss {loss32:.1e}, update {update32:.1e}",
        kind.name(), map64 * 255.0
    );
    for check in [&eval, &folded] {
        if check.verdict.is_ok() {
            tracing::info!("{}", check.line);
        } else {
            tracing::error!("{}", check.line);
        }
    }
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
        "eval_logits": eval.json, "folded": folded.json,
        "ok": ok, "seconds": t.elapsed().as_secs_f64(),
    }));
    networks
}

/// What [`logits_check`] decided: its log line, its JSON entry and the reason for a failure.
struct LogitsCheck {
    line: String,
    json: Value,
    verdict: std::result::Result<(), String>,
}

/// One set of `p2` logits of the records (`what`: the fresh network in eval mode, or the
/// network after the step with its BatchNorms folded: the path of `scfnet predict` and of a
/// frozen teacher), from the `[(CPU, device)]` records of f64 then f32, compared by
/// `difference` relative to the largest logit (a fresh ResNet-50 in eval mode is far from
/// normalised: its probabilities are 0 or 1 everywhere and would agree whatever the kernels
/// compute): in f64 within `tolerance` of the CPU's; in f32 the device's distance from the
/// CPU's f64 logits at most 10× the CPU's own f32 distance plus 1e-4 (`generic_path_step.rs`'
/// rule).
fn logits_check(
    kind: ModelKind,
    what: &str,
    records: &[(StepRecord, StepRecord)],
    tolerance: f64,
    difference: impl Fn(&StepRecord, &StepRecord) -> Result<f64, String>,
) -> LogitsCheck {
    let run = || -> Result<(f64, f64, f64), String> {
        let f64_diff = difference(&records[0].0, &records[0].1)?;
        let cpu32 = difference(&records[0].0, &records[1].0)?;
        let dev32 = difference(&records[0].0, &records[1].1)?;
        Ok((f64_diff, cpu32, dev32))
    };
    match run() {
        Ok((f64_diff, cpu32, dev32)) => {
            let limit = 10.0 * cpu32 + 1e-4;
            let ok = f64_diff <= tolerance && dev32 <= limit;
            LogitsCheck {
                line: format!(
                    "{:<8} {what}: f64 logits {f64_diff:.1e} from the CPU's; f32 logits from the CPU's f64: device {dev32:.1e}, CPU {cpu32:.1e} (limit {limit:.1e})",
                    kind.name()
                ),
                json: json!({
                    "f64_logits_max_rel_diff": f64_diff,
                    "cpu_f32_logits_max_rel_error": cpu32,
                    "device_f32_logits_max_rel_error": dev32,
                    "f32_logits_max_rel_error_limit": limit, "ok": ok,
                }),
                verdict: if ok {
                    Ok(())
                } else {
                    Err(format!("{what} network: f64 logits {f64_diff:.2e} from the CPU's (tolerance {tolerance:.0e}), f32 logits {dev32:.2e} from the CPU's f64 (limit {limit:.2e})"))
                },
            }
        }
        Err(e) => LogitsCheck {
            line: format!("{:<8} {what}: {e}", kind.name()),
            json: json!({"error": e, "ok": false}),
            verdict: Err(e),
        },
    }
}
