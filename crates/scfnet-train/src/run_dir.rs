//! The folder of one training or distillation run: the names of what a run writes there, and
//! how a new run treats what an earlier one left.
//!
//! ```text
//! OUT/
//!   model.safetensors      the newest weights (what `predict --weights OUT` reads)
//!   log.jsonl              one line per step and per validation
//!   checkpoints/
//!     latest               the name of the newest checkpoint
//!     step-00000120/       weights, optimiser state, run state
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// The newest weights of a run, in its folder.
pub use scfnet_model::WEIGHTS_FILE;
/// The run's log, one JSON object a line.
pub const LOG_FILE: &str = "log.jsonl";
/// The folder of the run's checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// What a run does with an earlier run's outputs in its folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Start a new run; refuse a folder that holds an earlier run.
    New,
    /// Continue the earlier run from its newest checkpoint (if any).
    Resume,
    /// Start a new run after removing the earlier run's outputs (and nothing else).
    Overwrite,
}

/// The folder of one run (it need not exist yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/model.safetensors`: the newest weights.
    pub fn weights(&self) -> PathBuf {
        self.root.join(WEIGHTS_FILE)
    }

    /// `ROOT/log.jsonl`.
    pub fn log(&self) -> PathBuf {
        self.root.join(LOG_FILE)
    }

    /// `ROOT/checkpoints`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS_DIR)
    }

    /// The names of an earlier run's outputs present in the folder.
    pub fn earlier_outputs(&self) -> Vec<&'static str> {
        [LOG_FILE, WEIGHTS_FILE, CHECKPOINTS_DIR]
            .into_iter()
            .filter(|n| self.root.join(n).exists())
            .collect()
    }

    /// Claims the folder for this process until the returned lock is dropped: a second run in
    /// the same folder (another `train`, a restarted sweep's) is refused with the first one's
    /// PID instead of both writing there. A lock left by a killed run is taken over.
    pub fn lock(&self) -> Result<scfnet_base::files::FolderLock> {
        scfnet_base::files::FolderLock::acquire(&self.root)
            .map_err(|e| TrainError::io(&self.root, e))
    }

    /// Which of the earlier run's outputs holds `path` (is it, or contains it), if any: an input
    /// there would be deleted by [`Start::Overwrite`]. Paths are compared once resolved (links,
    /// `..`); a path that does not exist is held by nothing.
    pub fn output_holding(&self, path: &Path) -> Option<&'static str> {
        let path = std::fs::canonicalize(path).ok()?;
        self.earlier_outputs().into_iter().find(|name| {
            std::fs::canonicalize(self.root.join(name)).is_ok_and(|out| path.starts_with(out))
        })
    }

    /// Makes the folder ready for a run started as `start`: [`Start::New`] fails with
    /// [`TrainError::EarlierRun`] when an earlier run's outputs are there, [`Start::Overwrite`]
    /// removes them, [`Start::Resume`] leaves them, and fails with
    /// [`TrainError::NothingToResume`] when there is no checkpoint to continue from but an
    /// earlier run's weights or log (a fresh start would replace them). Returns the names
    /// removed.
    pub fn prepare(&self, start: Start) -> Result<Vec<&'static str>> {
        let found = self.earlier_outputs();
        match start {
            Start::Resume if crate::checkpoint::latest(&self.root)?.is_none() => {
                let kept: Vec<String> = [WEIGHTS_FILE, LOG_FILE]
                    .into_iter()
                    .filter(|n| self.root.join(n).exists())
                    .map(str::to_string)
                    .collect();
                if kept.is_empty() {
                    Ok(Vec::new())
                } else {
                    Err(TrainError::NothingToResume {
                        dir: self.root.clone(),
                        found: kept,
                    })
                }
            }
            Start::Resume => Ok(Vec::new()),
            Start::New if found.is_empty() => Ok(Vec::new()),
            Start::New => Err(TrainError::EarlierRun {
                dir: self.root.clone(),
                found: found.iter().map(|s| s.to_string()).collect(),
            }),
            Start::Overwrite => {
                for name in &found {
                    let p = self.root.join(name);
                    if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    }
                    .map_err(|e| TrainError::io(&p, e))?;
                }
                Ok(found)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_refuses_an_earlier_one_and_overwrite_removes_only_its_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.prepare(Start::New).unwrap(), Vec::<&str>::new());
        std::fs::write(run.log(), "{}\n").unwrap();
        std::fs::create_dir_all(run.checkpoints().join("step-00000001")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = run.prepare(Start::New).unwrap_err();
        assert!(
            matches!(&err, TrainError::EarlierRun { found, .. } if found == &["log.jsonl", "checkpoints"]),
            "{err}"
        );
        // A log but no checkpoint: nothing to continue, and a fresh start would replace it.
        let err = run.prepare(Start::Resume).unwrap_err();
        assert!(
            matches!(&err, TrainError::NothingToResume { found, .. } if found == &["log.jsonl"]),
            "{err}"
        );
        assert!(run.log().exists());
        assert_eq!(
            run.prepare(Start::Overwrite).unwrap(),
            vec![LOG_FILE, CHECKPOINTS_DIR]
        );
        assert!(!run.log().exists() && !run.checkpoints().exists());
        assert!(dir.path().join("notes.txt").exists());
        assert_eq!(run.weights(), dir.path().join("model.safetensors"));
        // Inputs inside the outputs are found, resolved; others are not.
        std::fs::create_dir_all(run.checkpoints().join("step-00000002")).unwrap();
        std::fs::write(run.checkpoints().join("step-00000002/w"), "x").unwrap();
        std::fs::write(run.weights(), "w").unwrap();
        let odd = dir.path().join("checkpoints/../model.safetensors");
        assert_eq!(run.output_holding(&odd), Some(WEIGHTS_FILE));
        let inner = run.checkpoints().join("step-00000002/w");
        assert_eq!(run.output_holding(&inner), Some(CHECKPOINTS_DIR));
        assert_eq!(run.output_holding(&dir.path().join("notes.txt")), None);
        assert_eq!(run.output_holding(&dir.path().join("absent")), None);
        run.prepare(Start::Overwrite).unwrap();
        // An empty folder (or one with unrelated files) resumes as a fresh start.
        assert_eq!(run.prepare(Start::Resume).unwrap(), Vec::<&str>::new());
    }
}
