//! `cargo xtask`: project automation.
//!
//! - `bench-metrics`: throughput of the metrics crate on synthetic pairs, next to pysodmetrics.
//! - `bench-backbones`: forward time of ResNet-50, MobileNetV3-Large ×0.5 and Swin-B, next to PyTorch.
//! - `bench-models`: images/s of the student and the R50 teacher, next to PyTorch.
//! - `bench-loader`: one epoch of the training loader, next to the authors' data pipeline.
//! - `bench-predict`: `scfnet predict` on a folder of JPEGs against the network alone, same run.
//! - `bench-train`: one training step of the student and the R50 teacher, next to PyTorch.
//! - `demo-data`: regenerates the small demo set shipped in `data/demo`.
//! - `build-cuda`: builds the CUDA `scfnet` binary with a CUDA toolkit fetched from PyPI.
//! - `download`, `sweep`: aliases of `scfnet download` and `scfnet sweep` (built, then run with the
//!   same arguments).

mod alias;
mod bench_backbones;
mod bench_loader;
mod bench_metrics;
mod bench_models;
mod bench_predict;
mod bench_serve;
mod bench_train;
mod build_cuda;
mod demo_data;
mod onnx_models;
mod onnx_parity;
mod synthetic;
mod torch_timing;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps freed memory mapped (mimalloc's `purge_delay` = -1), as the `scfnet` binary does, so that
/// benchmarks measure what users run.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option of the allocator (15 = mi_option_purge_delay).
        unsafe { libmimalloc_sys::mi_option_set(15, -1) };
    }
}

/// The repository this xtask was built from.
pub fn repo_root() -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

#[derive(Parser)]
#[command(name = "cargo xtask", about = "scfnet-rs project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score synthetic 300x400 pairs single-threaded and on all threads; optionally time
    /// pysodmetrics on the same pairs in the same run.
    BenchMetrics(bench_metrics::Args),
    /// Forward time of the three backbones at 1x3xSxS on this CPU, optionally next to PyTorch.
    BenchBackbones(bench_backbones::Args),
    /// Images/s of the student and the ResNet-50 teacher (network + sigmoid) at batch 1 and 8,
    /// optionally next to a PyTorch eager re-creation in the same run.
    BenchModels(bench_models::Args),
    /// One epoch of the training loader (decoding, augmentation, the batch's resize; no
    /// network) on synthetic JPEGs, optionally next to the authors' own pipeline (their
    /// lib/dataset.py under Paddle's DataLoader) in the same run.
    BenchLoader(bench_loader::Args),
    /// Folder throughput of `scfnet predict` (decoding, network, maps, PNGs overlapped) against
    /// the network alone on the same images, alternately in the same run.
    BenchPredict(bench_predict::Args),
    /// `scfnet serve` under 1, 8 and 32 concurrent clients (img/s, p50, p99) beside `scfnet
    /// predict` at the same batch size, and its memory over many requests.
    BenchServe(bench_serve::Args),
    /// Time of one training step (student at batch 16, R50 at batch 4), optionally next to
    /// PyTorch in the same run.
    BenchTrain(bench_train::Args),
    /// Export the student and the R50 teacher to ONNX and compare ONNX Runtime's maps with ours
    /// (tests/reference/model/onnx_parity.py; needs onnx and onnxruntime).
    OnnxParity(onnx_parity::Args),
    /// Regenerate data/demo (synthetic GT masks and two methods' predictions).
    DemoData(demo_data::Args),
    /// Build the CUDA-enabled `scfnet` into target/cuda with the CUDA 13.0 toolkit fetched
    /// from PyPI (no GPU or system toolkit needed).
    BuildCuda(build_cuda::Args),
    /// Alias of `scfnet download` (builds the release scfnet, then runs it with these arguments).
    #[command(disable_help_flag = true)]
    Download(alias::Args),
    /// Alias of `scfnet sweep` (builds the release scfnet, with CUDA for `--device cuda`, then
    /// runs it with these arguments).
    #[command(disable_help_flag = true)]
    Sweep(alias::Args),
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    // The same thread count and candle pool settings as the `scfnet` binary, so benchmarks
    // measure what users run.
    scfnet_infer::runtime::configure(None);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::BenchMetrics(a) => bench_metrics::run(a),
        Command::OnnxParity(a) => onnx_parity::run(a),
        Command::BenchBackbones(a) => bench_backbones::run(a),
        Command::BenchModels(a) => bench_models::run(a),
        Command::BenchLoader(a) => bench_loader::run(a),
        Command::BenchPredict(a) => bench_predict::run(a),
        Command::BenchServe(a) => bench_serve::run(a),
        Command::BenchTrain(a) => bench_train::run(a),
        Command::DemoData(a) => demo_data::run(a),
        Command::BuildCuda(a) => build_cuda::run(a),
        Command::Download(a) => alias::run("download", a),
        Command::Sweep(a) => alias::run("sweep", a),
    }
}
