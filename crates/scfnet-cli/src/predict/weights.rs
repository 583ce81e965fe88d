//! Choosing and checking the network's weights.

use anyhow::{bail, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scfnet_backbones::{resolve, synthetic_var_builder, HubOptions, WeightSource};

use super::PredictArgs;

/// The weights of `args`: a local file, a hub file, or synthetic ones; files are checked name by
/// name against the network first.
pub fn var_builder(args: &PredictArgs, dev: &Device) -> Result<VarBuilder<'static>> {
    let source = match (&args.weights, &args.hub, args.random_weights) {
        (Some(path), _, _) => WeightSource::File(path.clone()),
        (None, Some(hub), _) => WeightSource::parse(hub, "model.safetensors"),
        (None, None, true) => {
            tracing::warn!(
                "--random-weights: untrained synthetic weights, the maps are meaningless"
            );
            return Ok(synthetic_var_builder(DType::F32, dev).0);
        }
        (None, None, false) => {
            bail!("no weights: pass --weights PATH, --hub REPO_ID[:FILE], or --random-weights")
        }
    };
    let path = resolve(&source, &HubOptions::from_env())?;
    Ok(scfnet_model::load_weights(
        args.model,
        &path,
        &source.to_string(),
        dev,
    )?)
}
