//! `scfnet predict`: saliency maps for images or folders of images.

//!
//! The pipeline is `scfnet-predict`'s; this command checks its arguments, draws the progress bar
//! and prints the summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use scfnet_model::{InputSide, Predictor, Scfnet};
use scfnet_predict::sink::output_paths;
use scfnet_predict::{collect_inputs, RunOptions};

use crate::convolutions::{self, Convolutions};
use crate::device::{device, DeviceArg};
use crate::paths::{ensure_distinct, ensure_outside};
use crate::precision::{self, Precision};
use crate::weights::{self, WeightsArgs};

/// `scfnet predict`: one 8-bit PNG saliency map per image, at the image's size.
#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    #[command(flatten)]
    pub weights: WeightsArgs,
    /// An image, or a folder searched recursively for jpg/png/bmp/webp files.
    #[arg(long, value_name = "FILE|DIR")]
    pub input: PathBuf,
    /// Output folder; the input folder's tree is kept.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Network input side, a multiple of 32 (default: the side the weights say they were
    /// tested at, in a weights folder's config.json or a file's metadata; else 352, 384 for swinb).
    #[arg(long)]
    pub size: Option<InputSide>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Also write `NAME_cutout.png`: the image with the map as alpha channel.
    #[arg(long)]
    pub cutout: bool,
    /// Where to run the network.
    #[arg(long, default_value = "cpu", value_parser = DeviceArg::parse)]
    pub device: DeviceArg,
    /// Matrix products on a GPU: f32 (strict), conv-tf32 (TF32 convolutions, f32 otherwise:
    /// PyTorch's defaults; the default on a GPU), tf32 (every product) or bf16 (every product
    /// on bf16 tensor cores, f32 sums). The CPU: f32 only.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Dense convolutions on a GPU: columns (our columns kernel and cuBLAS, one product per
    /// image; the default), batch-wgrad (the weight gradient one product over the batch),
    /// batch-columns (every pass so) or cudnn (cuDNN 9, loaded at run time). The CPU: the
    /// default only.
    #[arg(long, value_enum)]
    pub convolutions: Option<Convolutions>,
    /// For benchmarks: decode every image first, then run only the network over them in
    /// batches, timing its calls, and log its throughput; writes nothing. What `cargo xtask
    /// bench-predict` compares the folder's throughput with, in a process started the same way.
    #[arg(long, hide = true)]
    pub network_only: bool,
}

/// Runs `scfnet predict`.
pub fn run(args: PredictArgs) -> Result<ExitCode> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let inputs = collect_inputs(&args.input)?;
    // Nothing may be written over an input, into the input folder, or twice.
    ensure_outside(&args.output, &args.input, "--output")?;
    let plan: Vec<(PathBuf, Vec<PathBuf>)> = inputs
        .iter()
        .map(|(path, rel)| (path.clone(), output_paths(&args.output, rel, args.cutout)))
        .collect();
    ensure_distinct(&plan)?;
    if scfnet_predict::prefers_small_pages(inputs.len()) {
        crate::memory::small_pages();
    }
    let dev = device(args.device)?;
    precision::apply(&dev, args.precision)?;
    convolutions::apply(&dev, args.convolutions)?;
    let chosen = weights::choose(&args.weights, &dev)?;
    let model = chosen.model;
    let size = args.size.or(chosen.size).unwrap_or(model.default_size());
    let predictor = Predictor::new(
        Scfnet::new(model, chosen.vb).context("building the network")?,
        size,
        &dev,
        DType::F32,
    )?;
    tracing::info!(
        "{} images, model {}, input {size}x{size}",
        inputs.len(),
        model
    );

    if args.network_only {
        let computing = scfnet_predict::network_only(&predictor, &inputs, args.batch)?;
        tracing::info!(
            "network alone: {} images in {:.2} s ({:.1} images/s)",
            inputs.len(),
            computing.as_secs_f64(),
            inputs.len() as f64 / computing.as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }

    let pb = ProgressBar::new(inputs.len() as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} predicting [{bar:40}] {pos}/{len} images, {per_sec}, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let options = RunOptions {
        output: &args.output,
        batch: args.batch,
        cutout: args.cutout,
    };
    let (failures, time) = match scfnet_predict::run(&predictor, &inputs, options, &|n| pb.inc(n)) {
        Ok(done) => done,
        Err(e @ scfnet_predict::Error::Predict(_)) => {
            return Err(anyhow::Error::new(e).context("the network failed"))
        }
        Err(e) => return Err(e.into()),
    };
    let wall = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let written = inputs.len() - failures.len();
    tracing::info!(
        "wrote {written} maps to {} in {wall:.2} s ({:.1} images/s)",
        args.output.display(),
        inputs.len() as f64 / wall
    );
    tracing::info!(
        "the network ran {:.2} s ({:.0} % of the time); it waited {:.2} s for decoded images",
        time.computing.as_secs_f64(),
        100.0 * time.computing.as_secs_f64() / wall,
        time.waiting_for_input.as_secs_f64(),
    );
    if let Some(line) = time.cpu_line(inputs.len()) {
        tracing::info!("{line}");
    }
    if failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} images failed (the others were written):",
            failures.len()
        );
        for f in &failures {
            eprintln!("  {f}");
        }
        Ok(ExitCode::FAILURE)
    }
}
