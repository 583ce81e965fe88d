//! Choosing and checking the network's weights (`scfnet predict` and `scfnet export`): a file, a
//! weights folder or hub repository with its `config.json` (which names the network and input
//! side), or synthetic weights.

use std::path::PathBuf;

use anyhow::{bail, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scfnet_backbones::{resolve, synthetic_var_builder, HubOptions, WeightSource};
use scfnet_model::{HubConfig, ModelKind, CONFIG_FILE, WEIGHTS_FILE};

/// Which network, and its weights.
#[derive(clap::Args, Debug, Clone)]
pub struct WeightsArgs {
    /// Which network: student, r50 or swinb (default: the config.json of a weights folder or hub
    /// repository; else student).
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

/// The weights chosen by the arguments.
pub struct Chosen {
    /// The network.
    pub model: ModelKind,
    /// The input side a `config.json` asks for, if any.
    pub size: Option<usize>,
    /// The checked weights.
    pub vb: VarBuilder<'static>,
}

/// `--model` if given, else the config's network, else the student (a file of another network
/// is then refused by the name check); both given must agree.
fn network(args: &WeightsArgs, config: Option<&HubConfig>, what: &str) -> Result<ModelKind> {
    match (args.model, config) {
        (Some(m), Some(c)) if m != c.network => bail!(
            "--model {m}, but {what} holds weights for {} (its {CONFIG_FILE})",
            c.network
        ),
        (Some(m), _) => Ok(m),
        (None, Some(c)) => Ok(c.network),
        (None, None) => Ok(ModelKind::Student),
    }
}

/// The weights of `args`, checked name by name against the network first.
pub fn choose(args: &WeightsArgs, dev: &Device) -> Result<Chosen> {
    let opts = HubOptions::from_env();
    let (path, label, config): (PathBuf, String, Option<HubConfig>) = match (
        &args.weights,
        &args.hub,
        args.random_weights,
    ) {
        (Some(dir), _, _) if dir.is_dir() => {
            let config = HubConfig::read(&dir.join(CONFIG_FILE))?;
            (
                dir.join(WEIGHTS_FILE),
                dir.display().to_string(),
                Some(config),
            )
        }
        (Some(path), _, _) => (path.clone(), path.display().to_string(), None),
        (None, Some(hub), _) => {
            let source = WeightSource::parse(hub, WEIGHTS_FILE);
            // A repository laid out by `scfnet convert --hub-dir` has a config.json.
            let config = match &source {
                WeightSource::Hub { repo, revision, .. } => {
                    let cfg = WeightSource::Hub {
                        repo: repo.clone(),
                        revision: revision.clone(),
                        file: CONFIG_FILE.into(),
                    };
                    match resolve(&cfg, &opts) {
                        Ok(p) => Some(HubConfig::read(&p)?),
                        Err(e) => {
                            tracing::debug!("no {CONFIG_FILE} in {hub}: {e}");
                            None
                        }
                    }
                }
                WeightSource::File(_) => None,
            };
            (resolve(&source, &opts)?, source.to_string(), config)
        }
        (None, None, true) => {
            tracing::warn!(
                "--random-weights: untrained synthetic weights, the maps are meaningless"
            );
            return Ok(Chosen {
                model: args.model.unwrap_or(ModelKind::Student),
                size: None,
                vb: synthetic_var_builder(DType::F32, dev).0,
            });
        }
        (None, None, false) => {
            bail!("no weights: pass --weights PATH|DIR, --hub REPO_ID[:FILE], or --random-weights")
        }
    };
    let model = network(args, config.as_ref(), &label)?;
    Ok(Chosen {
        model,
        size: config.as_ref().map(|c| c.input_size),
        vb: scfnet_model::load_weights(model, &path, &label, dev)?,
    })
}
