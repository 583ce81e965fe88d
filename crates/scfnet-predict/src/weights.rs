//! Choosing and checking the network's weights: a file (whose metadata, when scfnet wrote it,
//! names the network and input side), a weights folder or hub repository with its `config.json`
//! (which names them too), or synthetic weights.

use std::path::PathBuf;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scfnet_backbones::{resolve, synthetic_var_builder, HubOptions, WeightSource};
use scfnet_model::{HubConfig, InputSide, ModelKind, CONFIG_FILE, WEIGHTS_FILE};

use crate::error::{Error, Result};

/// Which network, and where its weights come from.
#[derive(Debug, Clone, Default)]
pub struct WeightsRequest {
    /// The network; default: the `config.json` of a weights folder or hub repository, else the
    /// student.
    pub model: Option<ModelKind>,
    /// A local safetensors file (our names), or a folder written by `scfnet convert --hub-dir`
    /// (`model.safetensors` + `config.json`).
    pub weights: Option<PathBuf>,
    /// A hub spec `REPO_ID[@REVISION][:FILE]` (the cache first; `HF_HUB_OFFLINE`).
    pub hub: Option<String>,
    /// Untrained synthetic weights (the maps are meaningless).
    pub random: bool,
}

/// The weights chosen by a [`WeightsRequest`].
pub struct Chosen {
    /// The network.
    pub model: ModelKind,
    /// The input side a `config.json` asks for, if any.
    pub size: Option<InputSide>,
    /// The checked weights.
    pub vb: VarBuilder<'static>,
    /// The weights file read (a hub's cached file included); `None` for synthetic weights.
    pub file: Option<PathBuf>,
    /// Where the weights came from, as errors name it (the folder, file or hub spec).
    pub label: String,
}

/// What the weights file at `path` says of itself (its `__metadata__`, when scfnet wrote it):
/// the network and input side, as a weights folder's `config.json` says them.
/// A file whose header cannot be read says nothing here: the weights check that follows
/// reports what is wrong with it.
fn described(path: &std::path::Path) -> Result<Option<HubConfig>> {
    match scfnet_backbones::read_header(path) {
        Ok(header) => Ok(scfnet_model::config_from_metadata(&header.metadata, path)?),
        Err(_) => Ok(None),
    }
}

/// The network asked for if any, else the config's network, else the student (a file of another
/// network is then refused by the name check); both given must agree.
fn network(args: &WeightsRequest, config: Option<&HubConfig>, what: &str) -> Result<ModelKind> {
    match (args.model, config) {
        (Some(m), Some(c)) if m != c.network => Err(Error::ModelMismatch {
            asked: m,
            found: c.network,
            source_label: what.to_owned(),
        }),
        (Some(m), _) => Ok(m),
        (None, Some(c)) => Ok(c.network),
        (None, None) => Ok(ModelKind::Student),
    }
}

/// The weights of `args`, checked name by name against the network first. A file wins over a
/// hub spec, which wins over synthetic weights.
pub fn choose(args: &WeightsRequest, dev: &Device) -> Result<Chosen> {
    let opts = HubOptions::from_env();
    let (path, label, config): (PathBuf, String, Option<HubConfig>) =
        match (&args.weights, &args.hub, args.random) {
            (Some(dir), _, _) if dir.is_dir() => {
                let config = HubConfig::read(&dir.join(CONFIG_FILE))?;
                (
                    dir.join(WEIGHTS_FILE),
                    dir.display().to_string(),
                    Some(config),
                )
            }
            (Some(path), _, _) => (path.clone(), path.display().to_string(), described(path)?),
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
                let path = resolve(&source, &opts)?;
                let config = match config {
                    Some(c) => Some(c),
                    None => described(&path)?,
                };
                (path, source.to_string(), config)
            }
            (None, None, true) => {
                tracing::warn!("untrained synthetic weights: the maps are meaningless");
                return Ok(Chosen {
                    model: args.model.unwrap_or(ModelKind::Student),
                    size: None,
                    vb: synthetic_var_builder(DType::F32, dev).0,
                    file: None,
                    label: "synthetic (untrained)".into(),
                });
            }
            (None, None, false) => return Err(Error::NoWeights),
        };
    let model = network(args, config.as_ref(), &label)?;
    Ok(Chosen {
        model,
        size: config.as_ref().map(|c| c.input_size),
        vb: scfnet_model::load_weights(model, &path, &label, dev)?,
        file: Some(path),
        label,
    })
}
