//! The JSONL log of a run (`OUT/log.jsonl`): one line per step and one per validation, kept
//! consistent with the checkpoint a run resumes from.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::checkpoint;
use crate::error::{Result, TrainError};
use crate::fit::EpochScores;

/// What one optimiser step logs.
#[derive(Clone, Debug)]
pub struct StepLine {
    /// Global step (0-based).
    pub step: usize,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Batch within the epoch.
    pub batch: usize,
    /// Input side of the batch.
    pub size: usize,
    /// Images in the batch.
    pub images: usize,
    /// Learning rate.
    pub lr: f64,
    /// Total loss.
    pub loss: f64,
    /// Side losses `p2 … p5`.
    pub parts: [f64; 4],
    /// Seconds the step took (upload, forward, backward, update).
    pub secs: f64,
    /// Seconds since this invocation's training loop started, at the end of the step (waiting
    /// for the loader included): the loop's pace, next to `secs`.
    pub wall: f64,
}

/// What a run is set to do, logged once per invocation.
#[derive(Clone, Copy, Debug)]
pub struct PlanLine {
    /// Epochs of the whole run.
    pub epochs: usize,
    /// Batches (steps) in one epoch.
    pub batches_per_epoch: usize,
    /// Training samples.
    pub samples: usize,
    /// The global step this invocation starts from (0, or a resumed checkpoint's).
    pub first_step: usize,
    /// Threads of the data loader.
    pub loader_threads: usize,
}

/// An open `log.jsonl`, appended to.
pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
}

impl RunLog {
    /// Opens `out/log.jsonl`: a new run starts it empty; a resumed one (`resume_step`) keeps the
    /// step lines before the checkpoint's step and the validations that ended at it.
    pub fn open(out: &Path, resume_step: Option<usize>) -> Result<Self> {
        let path = crate::RunDir::new(out).log();
        let kept = match resume_step {
            Some(step) if path.exists() => std::fs::read_to_string(&path)
                .map_err(|e| TrainError::io(&path, e))?
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .is_some_and(|v| {
                            let s =
                                v.get("step").and_then(|s| s.as_u64()).unwrap_or(u64::MAX) as usize;
                            s < step || (s == step && v.get("validation").is_some())
                        })
                })
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
            _ => String::new(),
        };
        checkpoint::write_atomic(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { path, file })
    }

    fn write(&mut self, line: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{line}").map_err(|e| TrainError::io(&self.path, e))
    }

    /// Logs one step.
    pub fn step(&mut self, s: &StepLine) -> Result<()> {
        self.write(json!({
            "step": s.step, "epoch": s.epoch, "batch": s.batch, "size": s.size,
            "images": s.images, "lr": s.lr, "loss": s.loss,
            "p2": s.parts[0], "p3": s.parts[1], "p4": s.parts[2], "p5": s.parts[3],
            "secs": s.secs, "wall": s.wall,
        }))
    }

    /// Logs what this invocation is set to do, before its first step: `{"plan": …}` with the
    /// epochs, the batches of an epoch, the steps of the whole run, the samples, the step it
    /// starts from and the loader's threads (readers of steps and validations skip it: it has
    /// no `step`).
    pub fn plan(&mut self, p: &PlanLine) -> Result<()> {
        self.write(json!({
            "plan": {
                "epochs": p.epochs, "batches_per_epoch": p.batches_per_epoch,
                "steps": p.epochs * p.batches_per_epoch, "samples": p.samples,
                "first_step": p.first_step, "loader_threads": p.loader_threads,
            }
        }))
    }

    /// Logs one validation, at global step `step`.
    pub fn validation(&mut self, step: usize, s: &EpochScores) -> Result<()> {
        self.write(json!({
            "epoch": s.epoch, "step": step, "validation": s.dataset, "mae": s.mae,
            "max_f": s.max_f, "s_measure": s.s_measure, "mean_e": s.mean_e,
        }))
    }
}
