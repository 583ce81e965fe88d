//! `scfnet convert`: the authors' Paddle checkpoints to safetensors with our names.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use scfnet_model::{convert_paddle_checkpoint, ModelKind};

/// Checkpoint formats `scfnet convert` reads.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum FromFormat {
    /// PaddlePaddle `.pdparams` (the KD-SCFNet release).
    Paddle,
}

/// `scfnet convert --from paddle IN.pdparams OUT.safetensors --model student|r50|swinb`.
#[derive(Args, Debug, Clone)]
pub struct ConvertArgs {
    /// Format of the input checkpoint.
    #[arg(long, value_enum, default_value = "paddle")]
    pub from: FromFormat,
    /// Which network the checkpoint holds (FS-SCFNet and KD-SCFNet are `student`).
    #[arg(long)]
    pub model: ModelKind,
    /// The checkpoint to read.
    pub input: PathBuf,
    /// The safetensors file to write (atomically).
    pub output: PathBuf,
}

/// Runs `scfnet convert`.
pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    let FromFormat::Paddle = args.from;
    crate::paths::ensure_distinct(&[(args.input.clone(), vec![args.output.clone()])])?;
    let report = convert_paddle_checkpoint(args.model, &args.input, &args.output)?;
    println!(
        "{} tensors written to {} ({} dropped, {} Linear weights transposed)",
        report.written,
        args.output.display(),
        report.dropped.len(),
        report.transposed.len()
    );
    Ok(ExitCode::SUCCESS)
}
