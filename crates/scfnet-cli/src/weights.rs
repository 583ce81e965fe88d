//! The weights arguments of `scfnet predict` and `scfnet export`; the choice itself is
//! `scfnet_predict::weights`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::Device;
use scfnet_model::ModelKind;
use scfnet_predict::weights::{Chosen, WeightsRequest};

/// Which network, and its weights.
#[derive(clap::Args, Debug, Clone)]
pub struct WeightsArgs {
    /// Which network: student, r50 or swinb (default: what the weights say of themselves, in a
    /// weights folder's config.json or a file's metadata as scfnet writes it; else student).
    #[arg(long)]
    pub model: Option<ModelKind>,
    /// Weights as a local safetensors file (our names; see docs/model.md), or a folder written
    /// by `scfnet convert --hub-dir` (model.safetensors + config.json).
    #[arg(long, value_name = "PATH|DIR", conflicts_with_all = ["hub", "random_weights"])]
    pub weights: Option<PathBuf>,
    /// Weights from the Hugging Face hub: REPO_ID[@REVISION][:FILE] (cache first; HF_HUB_OFFLINE).
    #[arg(long, value_name = "REPO_ID[:FILE]", conflicts_with = "random_weights")]
    pub hub: Option<String>,
    /// Untrained synthetic weights (for trying the pipeline; the maps are meaningless).
    #[arg(long)]
    pub random_weights: bool,
}

/// The weights of `args`, checked name by name against the network first; the library's
/// errors about the choice itself get the flags that make it.
pub fn choose(args: &WeightsArgs, dev: &Device) -> Result<Chosen> {
    let request = WeightsRequest {
        model: args.model,
        weights: args.weights.clone(),
        hub: args.hub.clone(),
        random: args.random_weights,
    };
    match scfnet_predict::weights::choose(&request, dev) {
        Err(scfnet_predict::Error::NoWeights) => {
            bail!("no weights: pass --weights PATH|DIR, --hub REPO_ID[:FILE], or --random-weights")
        }
        Err(scfnet_predict::Error::ModelMismatch {
            asked,
            found,
            source_label,
        }) => bail!(
            "--model {asked}, but {source_label} holds weights for {found} (its {})",
            scfnet_model::CONFIG_FILE
        ),
        other => Ok(other?),
    }
}
