//! `scfnet`: the command line of scfnet-rs.

// The doc comments of the arguments are clap's --help text, where `REPO_ID[:FILE]` is literal.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::{Parser, Subcommand};

mod atomic;
mod check_device;
mod checkout;
mod convert;
mod convolutions;
mod demo;
mod device;
mod download;
mod eval;
mod export;
mod figures;
mod info;
mod memory;
mod model_card;
mod paths;
mod precision;
mod predict;
mod progress;
mod serve;
mod sweep;
mod synth;
mod train;
mod weights;

/// Salient object detection with SCFNet / KD-SCFNet in Rust.
#[derive(Parser, Debug)]
#[command(name = "scfnet", version, about, long_about = None)]
struct Cli {
    /// Worker threads (default: all cores; 1 to 1024).
    #[arg(long, global = true, value_parser = parse_threads)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Score saliency maps against ground-truth masks (MAE, F, S, E, weighted F, curves).
    Eval(Box<eval::EvalArgs>),
    /// Parameters and multiply-accumulates of a network (the paper's convention and the plain one).
    Info(info::InfoArgs),
    /// Convert the authors' checkpoints (Paddle `.pdparams`) to safetensors with our names.
    Convert(convert::ConvertArgs),
    /// Saliency maps for images or folders (one 8-bit PNG per image, at the image's size).
    Predict(Box<predict::PredictArgs>),
    /// Saliency maps over HTTP: dynamic batching, metrics and a web page (docs/serve.md).
    Serve(Box<serve::ServeArgs>),
    /// Write a network as an ONNX model (opset 17, dynamic batch and size), for ONNX Runtime.
    Export(Box<export::ExportArgs>),
    /// Train a network with full supervision on images and masks (the paper's recipe by default).
    Train(Box<train::TrainArgs>),
    /// Distill a frozen teacher into the student on unlabeled images.
    Distill(Box<train::DistillArgs>),
    /// Generate a synthetic salient-object dataset (the embedded default data).
    Synth(synth::SynthArgs),
    /// The whole method on embedded synthetic data: train a teacher and the student, distill a
    /// second student, predict and score all three against a baseline (about 5 minutes on 2 cores
    /// after the build).
    Demo(Box<demo::DemoArgs>),
    /// Compare a GPU with the CPU (every op, each network's map and training step) and time it;
    /// writes a JSON report.
    CheckDevice(Box<check_device::CheckDeviceArgs>),
    /// Download the benchmarks and the ImageNet backbones of `data/manifest.toml`, verified and
    /// laid out (alias: `cargo xtask download`).
    Download(Box<download::Args>),
    /// Run a plan's whole experiment (`sweeps/*.toml`) as resumable stages, and its report
    /// (alias: `cargo xtask sweep`).
    Sweep(Box<sweep::Args>),
}

/// Most worker threads `--threads` accepts: above any machine this runs on, and few enough that
/// starting them takes no time (100,000 took a minute to fail).
const MAX_THREADS: usize = 1024;

/// `--threads`: a whole number from 1 to [`MAX_THREADS`], checked when parsed.
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(format!("{s}: a whole number from 1 to {MAX_THREADS}")),
    }
}

fn main() -> std::process::ExitCode {
    memory::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
    let cli = Cli::parse();
    // Before any other thread exists: thread count and candle's pool (see the function's doc).
    scfnet_infer::runtime::configure(cli.threads);
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Eval(args) => eval::run(*args),
        Command::Info(args) => info::run(args),
        Command::Predict(args) => predict::run(*args),
        Command::Serve(args) => serve::run(*args),
        Command::Convert(args) => convert::run(args),
        Command::Export(args) => export::run(*args),
        Command::Train(args) => train::run_train(*args),
        Command::Distill(args) => train::run_distill(*args),
        Command::Synth(args) => synth::run(args),
        Command::Demo(args) => demo::run(*args),
        Command::CheckDevice(args) => check_device::run(*args),
        Command::Download(args) => download::run(*args).map(|()| std::process::ExitCode::SUCCESS),
        Command::Sweep(args) => sweep::run(*args).map(|()| std::process::ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
