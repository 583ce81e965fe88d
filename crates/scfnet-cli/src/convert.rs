//! `scfnet convert`: the authors' Paddle checkpoints to safetensors with our names.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use scfnet_model::{
    convert_paddle_checkpoint, HubConfig, ModelKind, WeightsSource, CONFIG_FILE, WEIGHTS_FILE,
};

use crate::atomic::write_atomic;

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
    /// The safetensors file to write (atomically); optional with --hub-dir.
    #[arg(required_unless_present = "hub_dir")]
    pub output: Option<PathBuf>,
    /// Also write a folder that can be uploaded as a Hugging Face model repository as it is:
    /// model.safetensors, config.json (network, input side, normalisation, source file and its
    /// SHA-256) and a model card README.md. `scfnet predict --weights DIR` or `--hub ORG/REPO`
    /// then need no --model.
    #[arg(long, value_name = "DIR")]
    pub hub_dir: Option<PathBuf>,
}

/// Runs `scfnet convert`.
pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    let FromFormat::Paddle = args.from;
    let weights_in_dir = args.hub_dir.as_ref().map(|d| d.join(WEIGHTS_FILE));
    let outputs: Vec<PathBuf> = args.output.iter().chain(&weights_in_dir).cloned().collect();
    crate::paths::ensure_distinct(&[(args.input.clone(), outputs.clone())])?;
    let first = &outputs[0];
    // What the weights came from: written into their metadata and the folder's config.json.
    let source = WeightsSource {
        file: args
            .input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: scfnet_base::read::sha256_hex(&args.input)
            .with_context(|| format!("{}: cannot read", args.input.display()))?,
        format: "paddle".into(),
    };
    let report = convert_paddle_checkpoint(args.model, &args.input, first, source.clone())?;
    println!(
        "{} tensors written to {} ({} dropped, {} Linear weights transposed)",
        report.written,
        first.display(),
        report.dropped.len(),
        report.transposed.len()
    );
    if let Some(dir) = &args.hub_dir {
        let weights = dir.join(WEIGHTS_FILE);
        if &weights != first {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create folder", dir.display()))?;
            scfnet_base::files::write_with(&weights, |tmp| std::fs::copy(first, tmp).map(|_| ()))
                .with_context(|| format!("{}: cannot write", weights.display()))?;
        }
        let config = HubConfig::new(args.model, Some(source));
        write_atomic(&dir.join(CONFIG_FILE), config.to_json().as_bytes())?;
        write_atomic(
            &dir.join("README.md"),
            crate::model_card::render(&config).as_bytes(),
        )?;
        println!(
            "hub folder {}: {WEIGHTS_FILE}, {CONFIG_FILE}, README.md (upload it as it is)",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
