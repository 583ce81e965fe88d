//! `scfnet export`: a network as an ONNX model, for ONNX Runtime, rembg's custom-model sessions
//! or the browser.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use scfnet_model::Scfnet;
use scfnet_onnx::encode_model;

use crate::atomic::write_atomic;
use crate::weights::{self, WeightsArgs};

/// `scfnet export`: the network in eval mode (BatchNorms folded) as an ONNX file (opset 17).
/// Input `image` `(batch, 3, height, width)`: RGB normalised per channel with the authors' mean
/// and standard deviation (written in the file's metadata), height and width multiples of 32
/// (Swin-B: 384×384 only).
/// Output `saliency` `(batch, 1, height, width)`: the probability map.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The ONNX file to write.
    #[arg(long, value_name = "FILE")]
    pub onnx: PathBuf,
    #[command(flatten)]
    pub weights: WeightsArgs,
}

/// Runs `scfnet export`.
pub fn run(args: ExportArgs) -> Result<ExitCode> {
    if let Some(w) = &args.weights.weights {
        // The weights read: the file itself, or a folder's weights and config.
        let read = if w.is_dir() {
            vec![w.join(scfnet_model::WEIGHTS_FILE), w.join("config.json")]
        } else {
            vec![w.clone()]
        };
        if let Some(r) = read
            .iter()
            .find(|r| scfnet_base::files::same_file(r, &args.onnx))
        {
            anyhow::bail!(
                "--onnx {} is the weights file {} this export reads; give another output path",
                args.onnx.display(),
                r.display()
            );
        }
    }
    let chosen = weights::choose(&args.weights, &Device::Cpu)?;
    let net = Scfnet::new(chosen.model, chosen.vb).context("building the network")?;
    let model = net
        .to_onnx()
        .with_context(|| format!("exporting {} to ONNX", chosen.model))?;
    if let Some(side) = net.onnx_input_side() {
        tracing::info!(
            "the {} graph takes {side}x{side} input only (its window layout is written for \
             that size); the batch stays dynamic",
            chosen.model
        );
    }
    let nodes = model.graph.as_ref().map_or(0, |g| g.node.len());
    let bytes = encode_model(&model);
    write_atomic(&args.onnx, &bytes)?;
    tracing::info!(
        "wrote {} ({} network, {nodes} nodes, {:.1} MB, opset {})",
        args.onnx.display(),
        chosen.model,
        bytes.len() as f64 / 1e6,
        scfnet_onnx::OPSET
    );
    Ok(ExitCode::SUCCESS)
}
