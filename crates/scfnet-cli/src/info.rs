//! `scfnet info`: parameter and MAC counts of a network.

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
}

/// Runs `scfnet info`.
pub fn run(args: InfoArgs) -> Result<ExitCode> {
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
