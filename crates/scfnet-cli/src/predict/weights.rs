//! Choosing and checking the network's weights.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scfnet_backbones::{
    check_safetensors, resolve, synthetic_var_builder, HubOptions, WeightSource,
};
use scfnet_model::Scfnet;

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
    // The names and shapes the network needs, from a dry build on recorded synthetic weights.
    let (probe, recorded) = synthetic_var_builder(DType::F32, &Device::Cpu);
    Scfnet::new(args.model, probe)?;
    check_safetensors(&path, &recorded.requested(), &source.to_string())?;
    // SAFETY: the weight file is memory-mapped read-only for the life of the process.
    unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, dev) }
        .with_context(|| format!("{}: cannot load weights", path.display()))
}
