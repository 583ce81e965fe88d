//! `scfnet check-device`: does a device (a CUDA GPU) compute what the CPU computes, and how fast?
//!
//! Every op of `scfnet-ops` (output and input gradients, f32) and, for each network, one
//! training step in f64 (loss and every tensor's update: equal up to rounding) and in f32 (the
//! eval-mode map, within one grey level), and the logits of the stepped network with its
//! BatchNorms folded (the path of `predict` and of a frozen teacher), on the device and on the
//! CPU; with `--bench`, the student's images/s and training-step times on the device.
//! Writes one JSON report.

mod bench;
mod compare;
mod modes;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use scfnet_model::{InputSide, ModelKind};
use scfnet_ops::check::{op_cases, update_cases};
use serde_json::{json, Value};

use crate::atomic::write_atomic;
use crate::device::{device, DeviceArg};
use bench::bench;
use compare::{compare_convolutions_again, compare_network, compare_op, compare_update};
pub use modes::BenchMode;

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
    if !args.bench_only {
        for case in &update_cases() {
            ops.push(compare_update(case, &dev, args.tolerance, &mut failures));
        }
    }
    // The dense convolutions again through cuDNN (strict f32), where it can be loaded.
    let cudnn = if args.bench_only || !dev.is_cuda() {
        Value::Null
    } else {
        match scfnet_ops::cudnn_version() {
            Ok(version) => {
                crate::convolutions::Convolutions::Cudnn.set();
                compare_convolutions_again(
                    &cases,
                    "cudnn",
                    &dev,
                    args.tolerance,
                    &mut ops,
                    &mut failures,
                );
                crate::convolutions::Convolutions::Columns.set();
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
        crate::convolutions::Convolutions::BatchColumns.set();
        compare_convolutions_again(
            &cases,
            "batch-columns",
            &dev,
            args.tolerance,
            &mut ops,
            &mut failures,
        );
        crate::convolutions::Convolutions::Columns.set();
    }
    let networks = if args.ops_only || args.bench_only {
        Vec::new()
    } else {
        ModelKind::ALL
            .into_iter()
            .flat_map(|kind| compare_network(kind, &dev, &args, &mut failures))
            .collect()
    };
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

/// The JSON report: the families of ops run composed (`generic_ops`, from `SCFNET_GENERIC_OPS`),
/// the comparisons (`ops`, cuDNN's availability, `networks`), the timings so far, the failures,
/// and whether the run got to its end (`complete`).
fn report(
    args: &CheckDeviceArgs,
    (ops, cudnn, networks): (&[Value], &Value, &[Value]),
    bench: Option<&Value>,
    failures: &[String],
    complete: bool,
) -> Value {
    let generic_ops: Vec<&str> = scfnet_ops::generic_ops()
        .into_iter()
        .map(|f| f.name())
        .collect();
    json!({
        "device": args.device.to_string(),
        "tolerance": args.tolerance,
        "generic_ops": generic_ops,
        "ops": ops,
        "cudnn": cudnn,
        "networks": networks,
        "bench": bench,
        "failures": failures,
        "complete": complete,
    })
}
