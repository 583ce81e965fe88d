//! Checkpoints: weights (safetensors, BatchNorm running statistics included), optimiser velocities
//! (safetensors, by parameter name) and the run state (JSON: epoch, batch, step, settings).
//!
//! Each checkpoint is written into a temporary folder and renamed into place
//! (`OUT/checkpoints/step-NNNNNNNN`); `OUT/checkpoints/latest` names the newest and is replaced
//! atomically, so an interrupted write never damages the last good checkpoint. The newest weights
//! are also kept as `OUT/model.safetensors` for `scfnet predict`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use scfnet_base::files;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::engine::Trainer;
use crate::error::{Result, TrainError};
use crate::run_dir::RunDir;

/// Where a run stands (saved with every checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The epoch to run next (0-based).
    pub epoch: usize,
    /// The batch of that epoch to run next.
    pub batch: usize,
    /// Optimiser steps done so far.
    pub step: usize,
    /// Samples skipped so far because they failed to load.
    pub skipped: usize,
    /// The settings of the run.
    pub config: TrainConfig,
    /// `supervised` or `distill:<teacher>`.
    pub mode: String,
    /// The training data the run reads (absent in checkpoints of older versions).
    #[serde(default)]
    pub data: Option<DataIdentity>,
}

/// Which data set a run trains on: its folder (resolved) and its number of samples. A resumed
/// run must read the same, or its sample order and schedule would silently change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// The data set's folder, resolved (links, `..`).
    pub root: PathBuf,
    /// Its number of samples.
    pub samples: usize,
}

impl DataIdentity {
    /// The identity of `data`.
    pub fn of(data: &scfnet_data::SodDataset) -> Self {
        let root = data.root();
        Self {
            root: root.canonicalize().unwrap_or_else(|_| root.to_owned()),
            samples: data.len(),
        }
    }
}

impl std::fmt::Display for DataIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} samples)", self.root.display(), self.samples)
    }
}

const WEIGHTS: &str = "weights.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";
const LATEST: &str = "latest";
/// Checkpoints kept besides the newest.
const KEEP_OLDER: usize = 1;

/// Writes `bytes` to `path` atomically and durably ([`scfnet_base::files::write_bytes`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    files::write_bytes(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Writes the network's weights to `path`, describing themselves
/// ([`scfnet_model::weights_metadata`]): network, input side (the run's test side),
/// normalisation, the run's settings as `recipe` and its `mode`.
fn write_weights(trainer: &Trainer, state: &RunState, path: &Path) -> Result<()> {
    let tensors: HashMap<String, Tensor> = trainer
        .varmap()
        .data()
        .lock()
        .expect("the variables' lock")
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    let config = &state.config;
    let mut hub = scfnet_model::HubConfig::new(config.model, None);
    hub.input_size = config.test_size;
    let recipe = serde_json::to_string(config).expect("settings serialise");
    let metadata = scfnet_model::weights_metadata(&hub, Some((recipe, state.mode.clone())));
    scfnet_backbones::write_safetensors(path, &tensors, Some(metadata))
        .map_err(|e| TrainError::checkpoint(path, e.to_string()))
}

/// Copies the weights of checkpoint folder `dir` to `out/model.safetensors` (atomically), where
/// `scfnet predict --weights` expects the newest weights.
fn publish_model(out: &Path, dir: &Path) -> Result<()> {
    let model = RunDir::new(out).weights();
    files::write_with(&model, |tmp| {
        std::fs::copy(dir.join(WEIGHTS), tmp).map(|_| ())
    })
    .map_err(|e| TrainError::io(&model, e))
}

/// Flushes every file of checkpoint folder `dir`, then the folder itself.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        std::fs::File::open(&path)?.sync_all()?;
    }
    files::sync_dir(dir)
}

fn velocities_by_name(trainer: &Trainer) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for (names, vels) in trainer
        .param_names()
        .iter()
        .zip(trainer.optimizer().velocities())
    {
        for (name, v) in names.iter().zip(vels) {
            if let Some(v) = v {
                out.insert(name.clone(), v.clone());
            }
        }
    }
    out
}

/// Saves a checkpoint of `trainer` at `state` under `out`; returns its folder. Refuses
/// ([`TrainError::NonFiniteWeights`]) weights holding NaN or infinities.
pub fn save(out: &Path, trainer: &Trainer, state: &RunState) -> Result<PathBuf> {
    // Values leave here: never write NaN weights over a good checkpoint.
    let vars = crate::params::sorted_vars(trainer.varmap());
    let bad = scfnet_ops::non_finite_names(vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor())))?;
    if !bad.is_empty() {
        return Err(TrainError::NonFiniteWeights {
            step: state.step,
            names: bad,
        });
    }
    let root = RunDir::new(out).checkpoints();
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let name = format!("step-{:08}", state.step);
    let tmp = files::temp_path(&root.join(&name));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    write_weights(trainer, state, &tmp.join(WEIGHTS))?;
    let optimizer = tmp.join(OPTIMIZER);
    scfnet_backbones::write_safetensors(&optimizer, &velocities_by_name(trainer), None)
        .map_err(|e| TrainError::checkpoint(&optimizer, e.to_string()))?;
    let json = serde_json::to_vec_pretty(state).expect("state serialises");
    std::fs::write(tmp.join(STATE), json).map_err(|e| TrainError::io(tmp.join(STATE), e))?;
    // On disk before the folder gets its name, and the name before `latest` points at it: a
    // power cut leaves the previous checkpoint and `latest` intact.
    sync_tree(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let dir = root.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| TrainError::io(&dir, e))?;
    files::sync_dir(&root).map_err(|e| TrainError::io(&root, e))?;
    write_atomic(&root.join(LATEST), name.as_bytes())?;
    publish_model(out, &dir)?;
    prune(&root, &name)?;
    Ok(dir)
}

/// Removes all but the newest [`KEEP_OLDER`] + 1 checkpoints.
fn prune(root: &Path, newest: &str) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| TrainError::io(root, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-") && n.as_str() <= newest)
        .collect();
    names.sort();
    let drop = names.len().saturating_sub(KEEP_OLDER + 1);
    for n in &names[..drop] {
        let _ = std::fs::remove_dir_all(root.join(n));
    }
    Ok(())
}

/// Removes the checkpoints of step `step` and later (weights that turned out to give a
/// non-finite loss), points `latest` and `model.safetensors` back at the newest one left, or
/// removes them if none is left.
pub fn discard_from(out: &Path, step: usize) -> Result<()> {
    let root = RunDir::new(out).checkpoints();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(());
    };
    let mut kept: Vec<String> = Vec::new();
    for name in entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
    {
        let Some(n) = name
            .strip_prefix("step-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if n >= step {
            let dir = root.join(&name);
            std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
            tracing::warn!(
                "removed checkpoint {} (its weights diverged)",
                dir.display()
            );
        } else {
            kept.push(name);
        }
    }
    kept.sort();
    let model = RunDir::new(out).weights();
    match kept.last() {
        Some(newest) => {
            write_atomic(&root.join(LATEST), newest.as_bytes())?;
            publish_model(out, &root.join(newest))?;
        }
        None => {
            for p in [root.join(LATEST), model] {
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| TrainError::io(&p, e))?;
                }
            }
        }
    }
    Ok(())
}

/// The newest checkpoint folder under `out`, if any.
pub fn latest(out: &Path) -> Result<Option<PathBuf>> {
    let checkpoints = RunDir::new(out).checkpoints();
    let pointer = checkpoints.join(LATEST);
    if !pointer.exists() {
        return Ok(None);
    }
    let name = scfnet_base::read::read_text(&pointer).map_err(|e| TrainError::io(&pointer, e))?;
    let name = name.trim();
    // The pointer names a folder beside it, nothing else (not `..`, not a path elsewhere).
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && Path::new(name).is_relative();
    if !plain {
        return Err(TrainError::checkpoint(
            &pointer,
            format!("names {name:?}, which is not a checkpoint folder beside it"),
        ));
    }
    let dir = checkpoints.join(name);
    if !dir.join(STATE).is_file() {
        return Err(TrainError::checkpoint(
            &dir,
            format!("named by {} but incomplete", pointer.display()),
        ));
    }
    Ok(Some(dir))
}

/// Reads the run state of checkpoint folder `dir`.
pub fn read_state(dir: &Path) -> Result<RunState> {
    let path = dir.join(STATE);
    let text = scfnet_base::read::read_text(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(&path, format!("unreadable state: {e}")))
}

/// Restores weights, running statistics and optimiser velocities of checkpoint `dir` into
/// `trainer` (built for the same network).
pub fn restore(dir: &Path, trainer: &mut Trainer) -> Result<()> {
    let weights = dir.join(WEIGHTS);
    let saved = crate::params::read_safetensors(&weights)?;
    let mut problems = Vec::new();
    for (name, var) in crate::params::sorted_vars(trainer.varmap()) {
        match saved.get(&name) {
            Some(t) if t.dims() == var.dims() => {
                var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?
            }
            Some(t) => problems.push(format!(
                "{name}: shape {:?}, the network needs {:?}",
                t.dims(),
                var.dims()
            )),
            None => problems.push(format!("{name}: missing")),
        }
    }
    if !problems.is_empty() {
        return Err(TrainError::checkpoint(
            &weights,
            format!("does not fit the network:\n  {}", problems.join("\n  ")),
        ));
    }
    let optimizer = dir.join(OPTIMIZER);
    let vels = crate::params::read_safetensors(&optimizer)?;
    let device = trainer.device().clone();
    let names = trainer.param_names().to_vec();
    for (g, group) in names.iter().enumerate() {
        for (i, name) in group.iter().enumerate() {
            if let Some(v) = vels.get(name) {
                let var_dtype = trainer.optimizer().groups()[g].vars[i].dtype();
                trainer.optimizer_mut().set_velocity(
                    g,
                    i,
                    v.to_dtype(var_dtype)?.to_device(&device)?,
                )?;
            }
        }
    }
    Ok(())
}
