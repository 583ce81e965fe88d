//! The training loop shared by full supervision and distillation: epochs of batches from the
//! seeded loader, the per-iteration schedule, checkpoints, resume, per-epoch validation, a
//! progress bar and a JSONL log of every step.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scfnet_data::{validate, Augment, Loader, LoaderConfig, OnError, SodDataset};
use serde_json::json;

use crate::checkpoint::{self, RunState};
use crate::engine::{Target, Teacher, Trainer};
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;

/// How to run [`fit`].
pub struct FitOptions {
    /// Output folder: `checkpoints/`, `model.safetensors`, `log.jsonl`.
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out` (its settings win).
    pub resume: bool,
    /// Labeled benchmark folders scored after every epoch (MAE, maxF, Sm, meanE).
    pub validation: Vec<(String, SodDataset)>,
    /// Stop (with a checkpoint) after this many epochs of this invocation; the schedule still
    /// spans all epochs, so a later `resume` continues it.
    pub stop_after_epochs: Option<usize>,
    /// Stop (with a checkpoint and `model.safetensors`) after this many optimiser steps of this
    /// invocation, wherever in an epoch; a later `resume` continues from there.
    pub max_steps: Option<usize>,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

/// Validation scores of one epoch on one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochScores {
    /// 0-based epoch.
    pub epoch: usize,
    /// Dataset name.
    pub dataset: String,
    /// Mean absolute error.
    pub mae: f64,
    /// Max F-measure.
    pub max_f: f64,
    /// S-measure.
    pub s_measure: f64,
    /// Mean E-measure.
    pub mean_e: f64,
}

/// What a [`fit`] call did.
#[derive(Clone, Debug)]
pub struct FitSummary {
    /// Global steps done when it returned.
    pub steps: usize,
    /// Epochs completed when it returned.
    pub epochs_done: usize,
    /// Mean loss of the last epoch run.
    pub last_epoch_loss: f64,
    /// Samples skipped because they failed to load.
    pub skipped: usize,
    /// Validation scores, epoch by epoch.
    pub validation: Vec<EpochScores>,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
}

fn mode_name(teacher: Option<&Teacher>) -> String {
    match teacher {
        Some(t) => format!("distill:{}", t.kind()),
        None => "supervised".into(),
    }
}

/// Opens `out/log.jsonl` for appending; on resume keeps only the lines of steps before `step`.
fn open_log(out: &std::path::Path, resume_step: Option<usize>) -> Result<std::fs::File> {
    let path = out.join("log.jsonl");
    let kept = match resume_step {
        Some(step) if path.exists() => std::fs::read_to_string(&path)
            .map_err(|e| TrainError::io(&path, e))?
            .lines()
            .filter(|l| {
                // Step lines before the checkpoint, and the validations that ended at it.
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .is_some_and(|v| {
                        let s = v.get("step").and_then(|s| s.as_u64()).unwrap_or(u64::MAX) as usize;
                        s < step || (s == step && v.get("validation").is_some())
                    })
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
        _ => String::new(),
    };
    checkpoint::write_atomic(&path, kept.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| TrainError::io(&path, e))
}

/// Trains `trainer` on `data` (masks for full supervision; with a `teacher`, images only and the
/// teacher's maps as targets) following `trainer.config()`.
pub fn fit(
    trainer: &mut Trainer,
    data: SodDataset,
    teacher: Option<&Teacher>,
    options: &FitOptions,
) -> Result<FitSummary> {
    let out = &options.out;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    // Temporaries of a killed earlier run (half-written checkpoints, weights) go first.
    let mut stale = 0;
    for dir in [out.clone(), out.join("checkpoints")] {
        stale += scfnet_backbones::files::remove_stale_temporaries(&dir)
            .map_err(|e| TrainError::io(&dir, e))?;
    }
    if stale > 0 {
        tracing::info!("removed {stale} temporary file(s) left by an interrupted run");
    }
    let mode = mode_name(teacher);
    let mut state = RunState {
        epoch: 0,
        batch: 0,
        step: 0,
        skipped: 0,
        config: trainer.config().clone(),
        mode: mode.clone(),
    };
    let mut resumed = false;
    if options.resume {
        match checkpoint::latest(out)? {
            Some(dir) => {
                let saved = checkpoint::read_state(&dir)?;
                if saved.config != *trainer.config() || saved.mode != mode {
                    return Err(TrainError::checkpoint(
                        &dir,
                        format!(
                            "was written by a different run ({} {:?}); build the trainer from its saved settings",
                            saved.mode, saved.config.model
                        ),
                    ));
                }
                checkpoint::restore(&dir, trainer)?;
                tracing::info!(
                    "resuming from {} (epoch {}, batch {}, step {})",
                    dir.display(),
                    saved.epoch + 1,
                    saved.batch,
                    saved.step
                );
                state = saved;
                resumed = true;
            }
            None => tracing::warn!(
                "--resume: no checkpoint in {}; starting afresh",
                out.display()
            ),
        }
    }
    let config = trainer.config().clone();
    config.check().map_err(TrainError::Config)?;
    if teacher.is_none() && !data.is_labeled() {
        return Err(TrainError::Config(format!(
            "{}: full supervision needs masks (ROOT/mask/*.png)",
            data.root().display()
        )));
    }
    if !resumed {
        let report = validate(&data)?;
        tracing::info!(
            "{}: {} samples checked (widths {}–{}, heights {}–{})",
            data.root().display(),
            report.samples,
            report.width.0,
            report.width.1,
            report.height.0,
            report.height.1
        );
    }
    let samples = data.len();
    let loader = Loader::new(
        data,
        LoaderConfig {
            batch: config.batch,
            sizes: config.sizes.clone(),
            shuffle: true,
            drop_last: false,
            seed: config.seed,
            workers: config.workers.max(1),
            prefetch: 2,
            augment: if config.augment {
                Augment::paper()
            } else {
                Augment::none()
            },
            on_error: if config.skip_bad_samples {
                OnError::Skip
            } else {
                OnError::Fail
            },
        },
    )?;
    let schedule = config.schedule(samples);
    let per_epoch = loader.batches_per_epoch();
    let mut log = open_log(out, resumed.then_some(state.step))?;
    let log_path = out.join("log.jsonl");
    let pb = if options.progress {
        ProgressBar::with_draw_target(
            Some((config.epochs * per_epoch) as u64),
            ProgressDrawTarget::stderr(),
        )
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} steps, {msg}, {elapsed} elapsed, ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_position((state.epoch * per_epoch + state.batch) as u64);
    let dtype = crate::params::var_dtype(trainer.varmap());
    let device = trainer.device().clone();
    let mut validation = Vec::new();
    let mut last_epoch_loss = f64::NAN;
    let mut checkpoint_dir = checkpoint::latest(out)?.unwrap_or_default();
    let first_epoch = state.epoch;
    let first_step = state.step;
    let step_limit_reached =
        |step: usize| options.max_steps.is_some_and(|n| step >= first_step + n);
    while state.epoch < config.epochs {
        if options
            .stop_after_epochs
            .is_some_and(|n| state.epoch >= first_epoch + n)
            || step_limit_reached(state.step)
        {
            break;
        }
        let epoch = state.epoch;
        pb.set_prefix(format!("epoch {}/{}", epoch + 1, config.epochs));
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        for batch in loader.epoch(epoch, state.batch) {
            let batch = batch?;
            state.skipped += batch.skipped.len();
            state.batch = batch.index + 1;
            if !batch.is_empty() {
                let t0 = Instant::now();
                let images = batch.images_tensor(&device)?.to_dtype(dtype)?;
                let lr = schedule.lr(state.step);
                let stepped = match teacher {
                    Some(t) => {
                        let p2 = t.p2(&images)?;
                        trainer.step(&images, Target::Teacher(&p2), epoch, state.step, lr)
                    }
                    None => {
                        let masks = batch
                            .masks_tensor(&device)?
                            .expect("labeled data has masks")
                            .to_dtype(dtype)?;
                        trainer.step(&images, Target::Mask(&masks), epoch, state.step, lr)
                    }
                };
                let outcome = match stepped {
                    Err(e @ TrainError::NonFinite { .. }) => {
                        // The weights of this step gave a non-finite loss: a checkpoint written
                        // with them is not a good one.
                        checkpoint::discard_from(out, state.step)?;
                        return Err(e);
                    }
                    other => other?,
                };
                let line = json!({
                    "step": state.step, "epoch": epoch, "batch": batch.index, "size": batch.size,
                    "images": batch.len(), "lr": lr, "loss": outcome.loss,
                    "p2": outcome.parts[0], "p3": outcome.parts[1], "p4": outcome.parts[2],
                    "p5": outcome.parts[3], "secs": t0.elapsed().as_secs_f64(),
                });
                writeln!(log, "{line}").map_err(|e| TrainError::io(&log_path, e))?;
                state.step += 1;
                loss_sum += outcome.loss;
                loss_n += 1;
                pb.set_message(format!("loss {:.4}, lr {lr:.2e}", outcome.loss));
            }
            pb.inc(1);
            if step_limit_reached(state.step) && state.batch < per_epoch {
                break;
            }
            if config.checkpoint_every > 0
                && state.step % config.checkpoint_every == 0
                && state.batch < per_epoch
            {
                checkpoint::save(out, trainer, &state)?;
            }
        }
        if step_limit_reached(state.step) && state.batch < per_epoch {
            // Stopped inside the epoch: checkpoint there (resume continues with the next batch).
            last_epoch_loss = loss_sum / loss_n.max(1) as f64;
            checkpoint_dir = checkpoint::save(out, trainer, &state)?;
            pb.suspend(|| tracing::info!("stopped after {} steps", state.step - first_step));
            break;
        }
        last_epoch_loss = loss_sum / loss_n.max(1) as f64;
        for (name, set) in &options.validation {
            let s = evaluate(
                trainer.net(),
                set,
                config.test_size,
                &device,
                dtype,
                |_, _| Ok(()),
            )?;
            let scores = EpochScores {
                epoch,
                dataset: name.clone(),
                mae: s.mae,
                max_f: s.max_f,
                s_measure: s.s_measure,
                mean_e: s.mean_e,
            };
            pb.suspend(|| {
                tracing::info!(
                    "epoch {} {name}: MAE {:.4} maxF {:.4} Sm {:.4} meanE {:.4}",
                    epoch + 1,
                    s.mae,
                    s.max_f,
                    s.s_measure,
                    s.mean_e
                )
            });
            let line = json!({
                "epoch": epoch, "step": state.step, "validation": name, "mae": s.mae,
                "max_f": s.max_f, "s_measure": s.s_measure, "mean_e": s.mean_e,
            });
            writeln!(log, "{line}").map_err(|e| TrainError::io(&log_path, e))?;
            validation.push(scores);
        }
        state.epoch += 1;
        state.batch = 0;
        checkpoint_dir = checkpoint::save(out, trainer, &state)?;
        pb.suspend(|| {
            tracing::info!(
                "epoch {}/{} done: mean loss {last_epoch_loss:.4}",
                epoch + 1,
                config.epochs
            )
        });
    }
    pb.finish_and_clear();
    if state.skipped > 0 {
        tracing::warn!(
            "{} samples were skipped because they failed to load",
            state.skipped
        );
    }
    Ok(FitSummary {
        steps: state.step,
        epochs_done: state.epoch,
        last_epoch_loss,
        skipped: state.skipped,
        validation,
        checkpoint: checkpoint_dir,
    })
}
