//! `scfnet train` (full supervision on masks) and `scfnet distill` (the student learns from a
//! frozen teacher's maps on unlabeled images). Defaults are the paper's recipe.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use clap::Args;
use scfnet_backbones::{resolve, HubOptions, WeightSource};
use scfnet_base::files::FolderLock;
use scfnet_data::SodDataset;
use scfnet_model::WEIGHTS_FILE;
use scfnet_model::{InputSide, ModelKind, Scfnet};
use scfnet_train::{
    checkpoint, fit, load_backbone, load_weights, FitOptions, FitSummary, RunDir, Start, Teacher,
    TrainConfig, TrainError, Trainer,
};

use crate::convolutions::{self, Convolutions};
use crate::device::{device, DeviceArg};
use crate::precision::{self, Precision};

/// Options shared by `train` and `distill`.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Output folder: checkpoints/, model.safetensors (newest weights), log.jsonl (every step).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Epochs (paper: 69).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size (paper: 128).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Input sides, one drawn per batch (paper: 224,256,288,320,352).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<InputSide>>,
    /// Peak learning rate after warm-up (paper: 0.064).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning rate at the start of warm-up and the end of the cosine (paper: 0.00064).
    #[arg(long)]
    pub min_lr: Option<f64>,
    /// Warm-up length in epochs (paper: 5).
    #[arg(long)]
    pub warmup_epochs: Option<f64>,
    /// Stochastic depth in the backbone (swinb only; paper: 0.5, the authors' SwinT.py). 0 turns
    /// it off, which makes a training step deterministic.
    #[arg(long, value_name = "RATE")]
    pub drop_path: Option<f64>,
    /// Seed of data order, augmentation and fresh weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backbone ImageNet weights: a safetensors file or REPO_ID[@REV][:FILE] on the Hugging Face
    /// hub (cache first). Without it the backbone starts from random weights.
    #[arg(long, value_name = "PATH|REPO_ID[:FILE]")]
    pub backbone_weights: Option<String>,
    /// Start the whole network from these weights (our names, e.g. the authors' checkpoint
    /// converted by `scfnet convert`, or an earlier run's model.safetensors) instead of fresh
    /// ones: a safetensors file or REPO_ID[@REV][:FILE]. Checked name by name first.
    #[arg(long, value_name = "PATH|REPO_ID[:FILE]", conflicts_with_all = ["backbone_weights", "resume"])]
    pub init_weights: Option<String>,
    /// Labeled benchmark folders (ROOT/image, ROOT/mask, optional test.txt) scored after every
    /// epoch: NAME=DIR, repeatable.
    #[arg(long = "val", value_name = "NAME=DIR")]
    pub val: Vec<String>,
    /// Score the --val sets after every N epochs (and after the last) instead of every epoch.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub val_every: u64,
    /// Continue from the newest checkpoint in --out (its saved settings are used).
    #[arg(long)]
    pub resume: bool,
    /// Start a new run in an --out folder that holds an earlier run: its log.jsonl, checkpoints/
    /// and model.safetensors are deleted first. Without it that is refused.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Also checkpoint every N steps (default: every epoch only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: usize,
    /// Stop after N epochs of this invocation (with a checkpoint); --resume continues the schedule.
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Stop after N optimiser steps of this invocation, with a checkpoint and model.safetensors
    /// (a smoke test of a set-up, or a short fine-tune); --resume continues.
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Turn augmentation off (normalisation and resize only).
    #[arg(long)]
    pub no_augment: bool,
    /// Stop on a sample that fails to load instead of skipping and counting it.
    #[arg(long)]
    pub fail_on_bad_sample: bool,
    /// Loader worker threads (default: 2 on the CPU, whose cores the network uses; on a GPU the
    /// machine's cores less two, from 2 to 8).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Side of the validation input (default 352; 384 for swinb).
    #[arg(long)]
    pub test_size: Option<InputSide>,
    /// Where to train.
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
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `scfnet train`: full supervision.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Which network: student, r50 or swinb.
    #[arg(long, default_value = "student")]
    pub model: ModelKind,
    /// Training set in the benchmark layout (ROOT/image/*.jpg, ROOT/mask/*.png).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// List of stems under --data (default: train.txt if present, else every image).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `scfnet distill`: knowledge distillation into the student.
#[derive(Args, Debug, Clone)]
pub struct DistillArgs {
    /// The frozen teacher: r50 or swinb (or student).
    #[arg(long, default_value = "r50")]
    pub teacher: ModelKind,
    /// The teacher's trained weights: a safetensors file (e.g. OUT/model.safetensors of
    /// `scfnet train`) or REPO_ID[@REV][:FILE] on the hub.
    #[arg(long, value_name = "PATH|REPO_ID[:FILE]")]
    pub teacher_weights: String,
    /// Unlabeled images: ROOT/image (+ train.txt) or any folder of images, searched recursively.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The network distilled into (the paper's: student).
    #[arg(long, default_value = "student")]
    pub model: ModelKind,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The settings of a new run from the paper's recipe and the overrides of `args`.
fn config(model: ModelKind, args: &CommonArgs) -> TrainConfig {
    let paper = TrainConfig::paper(model);
    TrainConfig {
        epochs: args.epochs.unwrap_or(paper.epochs),
        batch: args.batch.unwrap_or(paper.batch),
        sizes: args.sizes.clone().unwrap_or(paper.sizes.clone()),
        max_lr: args.lr.unwrap_or(paper.max_lr),
        min_lr: args.min_lr.unwrap_or(paper.min_lr),
        warmup_epochs: args.warmup_epochs.unwrap_or(paper.warmup_epochs),
        drop_path: args.drop_path.unwrap_or(paper.drop_path),
        seed: args.seed,
        augment: !args.no_augment,
        test_size: args.test_size.unwrap_or(paper.test_size),
        skip_bad_samples: !args.fail_on_bad_sample,
        ..paper
    }
}

/// Checks a `train …` or `distill …` command line (from the subcommand on) as those commands
/// would parse it, and the settings it gives ([`TrainConfig::check`]), without running anything:
/// the sweep checks every run of a plan before its first stage.
pub fn check_command_line(args: &[String]) -> Result<()> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true)]
    enum Command {
        Train(TrainArgs),
        Distill(DistillArgs),
    }
    let command = <Command as clap::Parser>::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        anyhow::anyhow!(
            "{}",
            text.lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ")
        )
    })?;
    let (model, common) = match &command {
        Command::Train(a) => (a.model, &a.common),
        Command::Distill(a) => (a.model, &a.common),
    };
    config(model, common)
        .check()
        .map_err(|e| anyhow::anyhow!(e))
}

/// `NAME=DIR` validation sets (each with its test.txt if present).
fn validation_sets(specs: &[String]) -> Result<Vec<(String, SodDataset)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, dir) = spec
                .split_once('=')
                .with_context(|| format!("--val {spec:?}: expected NAME=DIR"))?;
            let dir = Path::new(dir);
            let list = dir.join("test.txt");
            let ds = SodDataset::labeled(dir, list.is_file().then_some(list.as_path()))
                .with_context(|| format!("--val {name}"))?;
            Ok((name.to_string(), ds))
        })
        .collect()
}

/// A local path for a file or hub spec.
fn weight_file(spec: &str) -> Result<PathBuf> {
    let source = if Path::new(spec).exists() {
        WeightSource::File(spec.into())
    } else {
        WeightSource::parse(spec, WEIGHTS_FILE)
    };
    Ok(resolve(&source, &HubOptions::from_env())?)
}

/// Refuses to start a new run in a folder that holds an earlier run's outputs (its log would be
/// truncated and its weights replaced), unless `--overwrite`; and refuses an `--overwrite` that
/// would delete one of the run's own inputs (`inputs`: each flag with its value).
fn ensure_new_run_folder(args: &CommonArgs, inputs: &[(&str, &str)]) -> Result<()> {
    let start = match (args.resume, args.overwrite) {
        (true, _) => Start::Resume,
        (false, true) => Start::Overwrite,
        (false, false) => Start::New,
    };
    let run = RunDir::new(&args.out);
    if start == Start::Overwrite {
        for (flag, spec) in inputs {
            if let Some(output) = run.output_holding(Path::new(spec)) {
                bail!(
                    "{flag} {spec} is part of the earlier run's {output} in {}, which --overwrite \
                     would delete before reading it; copy it elsewhere first, or choose another --out",
                    args.out.display()
                );
            }
        }
    }
    match run.prepare(start) {
        Ok(removed) => {
            if !removed.is_empty() {
                tracing::warn!(
                    "--overwrite: removed the earlier run's {} in {}",
                    removed.join(", "),
                    args.out.display()
                );
            }
            Ok(())
        }
        Err(e @ TrainError::EarlierRun { .. }) => bail!(
            "{e}; pass --resume to continue it, --overwrite to start over there, or choose \
             another --out"
        ),
        Err(e @ TrainError::NothingToResume { .. }) => bail!(
            "--resume: {e}; pass --overwrite (without --resume) to start over there, or choose \
             another --out"
        ),
        Err(e) => Err(e).context("cannot remove the earlier run's outputs"),
    }
}

/// The trainer of a run: the saved settings when resuming, else `fresh` (+ backbone weights),
/// and the run folder's lock, held until the run ends (taken before anything in the folder is
/// looked at or removed). `teacher`: a distillation's `--teacher-weights`, an input the run
/// folder must keep too.
fn trainer(
    fresh: TrainConfig,
    args: &CommonArgs,
    teacher: Option<&str>,
) -> Result<(Trainer, FolderLock)> {
    fresh
        .check()
        .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
    // A run that would stop before its first step would report weights it never wrote.
    if args.max_steps == Some(0) {
        bail!("--max-steps must be at least 1");
    }
    if args.stop_after_epochs == Some(0) {
        bail!("--stop-after-epochs must be at least 1");
    }
    let lock = RunDir::new(&args.out).lock()?;
    let mut inputs = Vec::new();
    if let Some(spec) = &args.init_weights {
        inputs.push(("--init-weights", spec.as_str()));
    }
    if let Some(spec) = &args.backbone_weights {
        inputs.push(("--backbone-weights", spec.as_str()));
    }
    if let Some(spec) = teacher {
        inputs.push(("--teacher-weights", spec));
    }
    ensure_new_run_folder(args, &inputs)?;
    let dev = device(args.device)?;
    precision::apply(&dev, args.precision)?;
    convolutions::apply(&dev, args.convolutions)?;
    let config = match args
        .resume
        .then(|| checkpoint::latest(&args.out))
        .transpose()?
        .flatten()
    {
        Some(dir) => {
            let saved = checkpoint::read_state(&dir)?.config;
            if saved != fresh {
                tracing::info!("--resume: using the settings saved in {}", dir.display());
            }
            saved
        }
        None => fresh,
    };
    let t = Trainer::fresh(config, &dev, DType::F32)?;
    if let Some(spec) = &args.init_weights {
        let path = weight_file(spec)?;
        let n = load_weights(t.varmap(), &path)?;
        tracing::info!("initial weights: {n} tensors from {}", path.display());
    } else if !args.resume {
        match &args.backbone_weights {
            Some(spec) => {
                let path = weight_file(spec)?;
                let n = load_backbone(t.varmap(), &path)?;
                tracing::info!("backbone: {n} tensors from {}", path.display());
            }
            None => tracing::warn!(
                "no --backbone-weights: the {} backbone starts from random weights (the paper starts from ImageNet)",
                t.config().model
            ),
        }
    }
    Ok((t, lock))
}

fn options(args: &CommonArgs) -> Result<FitOptions> {
    Ok(FitOptions {
        out: args.out.clone(),
        resume: args.resume,
        validation: validation_sets(&args.val)?,
        validate_every: args.val_every as usize,
        stop_after_epochs: args.stop_after_epochs,
        max_steps: args.max_steps,
        progress: Some(crate::progress::training_bar(args.quiet)),
        workers: args.workers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            default_workers(args.device, cores)
        }),
        checkpoint_every: args.checkpoint_every,
    })
}

/// Loader threads when none are asked for. On the CPU the network's kernels use every core, so
/// two threads decode and augment beside them. On a GPU the cores are free but for the training
/// thread and the staging thread: one loader thread prepares about 400 images a second at side 352
/// (2-core EPYC), and the student's step at batch 128 consumes about 850 at PyTorch's pace, so
/// two could fall behind; more than 8 only hold more batches in memory (up to three of 253 MB
/// each per thread at batch 128).
fn default_workers(device: DeviceArg, cores: usize) -> usize {
    match device {
        DeviceArg::Cpu => 2,
        DeviceArg::Cuda(_) => cores.saturating_sub(2).clamp(2, 8),
    }
}

fn report(summary: &FitSummary, out: &Path) {
    tracing::info!(
        "{} steps, {} epochs done, last epoch's mean loss {:.4}; weights: {}",
        summary.steps,
        summary.epochs_done,
        summary.last_epoch_loss,
        RunDir::new(out).weights().display()
    );
}

/// Runs `scfnet train`.
pub fn run_train(args: TrainArgs) -> Result<ExitCode> {
    let list = args.list.clone().or_else(|| {
        let t = args.data.join("train.txt");
        t.is_file().then_some(t)
    });
    let data = SodDataset::labeled(&args.data, list.as_deref())?;
    let (mut t, _lock) = trainer(config(args.model, &args.common), &args.common, None)?;
    tracing::info!(
        "training {} on {} ({} samples), {} epochs of batch {}",
        t.config().model,
        args.data.display(),
        data.len(),
        t.config().epochs,
        t.config().batch
    );
    let summary = fit(&mut t, data, None, &mut options(&args.common)?)?;
    report(&summary, &args.common.out);
    Ok(ExitCode::SUCCESS)
}

/// The frozen teacher from a weight file, checked name by name first.
pub fn load_teacher(kind: ModelKind, spec: &str, dev: &candle_core::Device) -> Result<Teacher> {
    let path = weight_file(spec)?;
    let vb = scfnet_model::load_weights(kind, &path, &path.display().to_string(), dev)?;
    Ok(Teacher::new(Scfnet::new(kind, vb)?)?)
}

/// Runs `scfnet distill`.
pub fn run_distill(args: DistillArgs) -> Result<ExitCode> {
    let teacher = args.teacher.spec();
    let side = teacher.input_side;
    if teacher.fixed_side
        && args
            .common
            .sizes
            .as_ref()
            .is_none_or(|s| s.iter().any(|&v| v != side))
    {
        bail!(
            "the {} teacher takes {side}x{side} input only: add --sizes {side}",
            teacher.name
        );
    }
    let data = SodDataset::unlabeled(&args.data)?;
    let dev = device(args.common.device)?;
    precision::apply(&dev, args.common.precision)?;
    convolutions::apply(&dev, args.common.convolutions)?;
    let teacher = load_teacher(args.teacher, &args.teacher_weights, &dev)?;
    let (mut t, _lock) = trainer(
        config(args.model, &args.common),
        &args.common,
        Some(&args.teacher_weights),
    )?;
    tracing::info!(
        "distilling {} into {} on {} unlabeled images, {} epochs of batch {}",
        args.teacher,
        t.config().model,
        data.len(),
        t.config().epochs,
        t.config().batch
    );
    let summary = fit(&mut t, data, Some(&teacher), &mut options(&args.common)?)?;
    report(&summary, &args.common.out);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_threads_follow_the_device_and_the_cores() {
        assert_eq!(default_workers(DeviceArg::Cpu, 64), 2);
        assert_eq!(default_workers(DeviceArg::Cuda(0), 16), 8);
        assert_eq!(default_workers(DeviceArg::Cuda(0), 6), 4);
        assert_eq!(default_workers(DeviceArg::Cuda(1), 2), 2);
        assert_eq!(default_workers(DeviceArg::Cuda(0), 1), 2);
    }
}
