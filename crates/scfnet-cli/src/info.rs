//! `scfnet info`: parameter and MAC counts of a network, or what a weights file says of itself.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use scfnet_model::{model_info, InputSide, ModelKind};

/// `scfnet info --model student|r50|swinb [--size N] [--json]`.
#[derive(Args, Debug, Clone)]
pub struct InfoArgs {
    /// Which network: student, r50 or swinb.
    #[arg(long, default_value = "student")]
    pub model: ModelKind,
    /// Input side for the MAC count (default: 352, or 384 for swinb).
    #[arg(long)]
    pub size: Option<InputSide>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Instead: describe this safetensors file from its header alone (its metadata: network,
    /// input side, normalisation, recipe or source; and its tensors).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["model", "size"])]
    pub weights: Option<std::path::PathBuf>,
}

/// `scfnet info --weights FILE`.
fn describe_weights(path: &std::path::Path, json: bool) -> Result<ExitCode> {
    // Its errors name the file.
    let header = scfnet_backbones::read_header(path)?;
    let elements = |shape: &[usize]| shape.iter().product::<usize>();
    let total: usize = header.tensors.iter().map(|t| elements(&t.shape)).sum();
    if json {
        let tensors: Vec<serde_json::Value> = header
            .tensors
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype, "shape": t.shape}))
            .collect();
        let value = serde_json::json!({
            "file": path.display().to_string(),
            "bytes": header.file_bytes,
            "metadata": header.metadata,
            "elements": total,
            "tensors": tensors,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("file      {} ({} bytes)", path.display(), header.file_bytes);
    if header.metadata.is_empty() {
        println!("metadata  none (not written by scfnet, or by a version before 0.1)");
    }
    for (key, value) in &header.metadata {
        println!("{key:<15} {value}");
    }
    println!(
        "tensors   {} ({} values, {:.2} M)",
        header.tensors.len(),
        total,
        total as f64 / 1e6
    );
    let width = header
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0);
    for t in &header.tensors {
        println!("  {:<width$}  {:<4}  {:?}", t.name, t.dtype, t.shape);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `scfnet info`.
pub fn run(args: InfoArgs) -> Result<ExitCode> {
    if let Some(path) = &args.weights {
        return describe_weights(path, args.json);
    }
    let size = args.size.unwrap_or(args.model.default_size()).get();
    let info = model_info(args.model, size)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("model                      {}", info.model);
        println!("input                      1x3x{size}x{size}");
        println!(
            "trainable parameters       {} ({:.2} M)",
            info.trainable_params,
            info.trainable_params as f64 / 1e6
        );
        println!("BN running statistics      {}", info.bn_statistics);
        println!(
            "parameters (paper, Paddle) {} ({:.2} M)",
            info.paddle_params,
            info.paddle_params as f64 / 1e6
        );
        println!(
            "MACs (paper \"FLOPs\")       {} ({:.3} G)",
            info.macs,
            info.macs as f64 / 1e9
        );
    }
    Ok(ExitCode::SUCCESS)
}
