//! The training loop shared by full supervision and distillation: epochs of batches from the
//! seeded loader around one loop, with its pieces apart — resume ([`resume_state`]), the log
//! ([`crate::run_log`]), validation ([`validate_epoch`]), checkpoints ([`crate::checkpoint`]) and
//! progress events ([`crate::progress`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use scfnet_data::{validate, Augment, Loader, LoaderConfig, OnError, SodDataset};

use crate::checkpoint::{self, DataIdentity, RunState};
use crate::config::TrainConfig;
use crate::engine::{Target, Teacher, Trainer};
use crate::error::{Result, TrainError};
use crate::evaluate::evaluate;
use crate::feed::FedBatch;
use crate::progress::{FitEvent, ProgressCallback, Reporter};
use crate::run_dir::RunDir;
use crate::run_log::{PlanLine, RunLog, StepLine};

/// How to run [`fit`].
pub struct FitOptions {
    /// Output folder: `checkpoints/`, `model.safetensors`, `log.jsonl`.
    pub out: PathBuf,
    /// Continue from the newest checkpoint in `out` (its settings win).
    pub resume: bool,
    /// Labeled benchmark folders scored after every `validate_every`-th epoch and the last one
    /// (MAE, maxF, Sm, meanE).
    pub validation: Vec<(String, SodDataset)>,
    /// Score the validation sets after every this many epochs (and after the last); 1: every
    /// epoch. A run of many one-step epochs (few images) validates less often this way.
    pub validate_every: usize,
    /// Stop (with a checkpoint) after this many epochs of this invocation; the schedule still
    /// spans all epochs, so a later `resume` continues it.
    pub stop_after_epochs: Option<usize>,
    /// Stop (with a checkpoint and `model.safetensors`) after this many optimiser steps of this
    /// invocation, wherever in an epoch; a later `resume` continues from there.
    pub max_steps: Option<usize>,
    /// Receives progress events (the CLI draws a bar from them); `None`: notes go to `tracing`.
    pub progress: Option<ProgressCallback>,
    /// Loader threads decoding and augmenting ahead of the network (at least 1).
    pub workers: usize,
    /// Also checkpoint every this many steps (0: only at the end of each epoch).
    pub checkpoint_every: usize,
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

/// Removes temporaries of a killed earlier run (half-written checkpoints, weights) from `out`.
fn clean_stale(out: &Path) -> Result<()> {
    let mut stale = 0;
    for dir in [out.to_owned(), RunDir::new(out).checkpoints()] {
        stale += scfnet_base::files::remove_stale_temporaries(&dir)
            .map_err(|e| TrainError::io(&dir, e))?;
    }
    if stale > 0 {
        tracing::info!("removed {stale} temporary file(s) left by an interrupted run");
    }
    Ok(())
}

/// The state a run on `data` starts from: the newest checkpoint of `out` when resuming (restored
/// into `trainer`, which must have been built with its settings; the checkpoint must have been
/// written by a run on the same data), else step 0. Returns whether it resumed.
pub fn resume_state(
    trainer: &mut Trainer,
    out: &Path,
    mode: &str,
    resume: bool,
    data: &DataIdentity,
) -> Result<(RunState, bool)> {
    let fresh = RunState {
        epoch: 0,
        batch: 0,
        step: 0,
        skipped: 0,
        config: trainer.config().clone(),
        mode: mode.to_owned(),
        data: Some(data.clone()),
    };
    if !resume {
        return Ok((fresh, false));
    }
    let Some(dir) = checkpoint::latest(out)? else {
        tracing::warn!(
            "resume: no checkpoint in {}; starting afresh",
            out.display()
        );
        return Ok((fresh, false));
    };
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
    match &saved.data {
        Some(trained_on) if trained_on != data => {
            return Err(TrainError::OtherData {
                checkpoint: dir,
                trained_on: trained_on.to_string(),
                given: data.to_string(),
            })
        }
        _ => {}
    }
    checkpoint::restore(&dir, trainer)?;
    tracing::info!(
        "resuming from {} (epoch {}, batch {}, step {})",
        dir.display(),
        saved.epoch + 1,
        saved.batch,
        saved.step
    );
    Ok((saved, true))
}

/// The seeded loader of `data` for `config`, with `workers` threads.
fn build_loader(data: SodDataset, config: &TrainConfig, workers: usize) -> Result<Loader> {
    Ok(Loader::new(
        data,
        LoaderConfig {
            batch: config.batch,
            sizes: config.sizes.iter().map(|s| s.get()).collect(),
            shuffle: true,
            drop_last: false,
            seed: config.seed,
            workers: workers.max(1),
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
    )?)
}

/// Scores the network of `trainer` on every validation set after `epoch`.
pub fn validate_epoch(
    trainer: &Trainer,
    sets: &[(String, SodDataset)],
    epoch: usize,
    dtype: DType,
) -> Result<Vec<EpochScores>> {
    let device: &Device = trainer.device();
    sets.iter()
        .map(|(name, set)| {
            let s = evaluate(
                trainer.net(),
                set,
                trainer.config().test_size,
                device,
                dtype,
                |_, _| Ok(()),
            )?;
            Ok(EpochScores {
                epoch,
                dataset: name.clone(),
                mae: s.mae,
                max_f: s.max_f,
                s_measure: s.s_measure,
                mean_e: s.mean_e,
            })
        })
        .collect()
}

/// Trains `trainer` on `data` (masks for full supervision; with a `teacher`, images only and the
/// teacher's maps as targets) following `trainer.config()`.
pub fn fit(
    trainer: &mut Trainer,
    data: SodDataset,
    teacher: Option<&Teacher>,
    options: &mut FitOptions,
) -> Result<FitSummary> {
    let out = options.out.clone();
    let out = out.as_path();
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    clean_stale(out)?;
    let mode = mode_name(teacher);
    let identity = DataIdentity::of(&data);
    let (mut state, resumed) = resume_state(trainer, out, &mode, options.resume, &identity)?;
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
    let loader = build_loader(data, &config, options.workers)?;
    let schedule = config.schedule(samples);
    let per_epoch = loader.batches_per_epoch();
    let mut log = RunLog::open(out, resumed.then_some(state.step))?;
    log.plan(&PlanLine {
        epochs: config.epochs,
        batches_per_epoch: per_epoch,
        samples,
        first_step: state.step,
        loader_threads: loader.config().workers,
    })?;
    let mut progress = Reporter::new(options.progress.as_mut());
    progress.emit(FitEvent::Start {
        position: state.epoch * per_epoch + state.batch,
        total: config.epochs * per_epoch,
    });
    let dtype = crate::params::var_dtype(trainer.varmap());
    let device = trainer.device().clone();
    let mut validation = Vec::new();
    let mut last_epoch_loss = f64::NAN;
    let mut checkpoint_dir = checkpoint::latest(out)?.unwrap_or_default();
    let (first_epoch, first_step) = (state.epoch, state.step);
    let step_limit_reached =
        |step: usize| options.max_steps.is_some_and(|n| step >= first_step + n);
    let loop_start = Instant::now();
    while state.epoch < config.epochs {
        if options
            .stop_after_epochs
            .is_some_and(|n| state.epoch >= first_epoch + n)
            || step_limit_reached(state.step)
        {
            break;
        }
        let epoch = state.epoch;
        progress.emit(FitEvent::Epoch {
            epoch,
            epochs: config.epochs,
        });
        let (mut loss_sum, mut loss_n) = (0.0, 0usize);
        // When this run goes on to the next epoch, its loading starts as soon as this epoch's
        // loader threads are done, overlapping the last steps, validation and the checkpoint.
        let steps_left_here = per_epoch - state.batch;
        let goes_on = epoch + 1 < config.epochs
            && options
                .stop_after_epochs
                .is_none_or(|n| epoch + 1 < first_epoch + n)
            && options
                .max_steps
                .is_none_or(|n| first_step + n > state.step + steps_left_here);
        let batches = if goes_on {
            loader.epoch_preparing_next(epoch, state.batch)
        } else {
            loader.epoch(epoch, state.batch)
        };
        if batches.was_prepared() {
            tracing::debug!("epoch {epoch}: loading started during the previous one");
        }
        for fed in crate::feed::feed(batches, &device, dtype)? {
            let FedBatch { batch, tensors } = fed?;
            state.skipped += batch.skipped.len();
            state.batch = batch.index + 1;
            let lr = schedule.lr(state.step);
            let mut loss = None;
            if let Some((images, masks)) = tensors {
                let t0 = Instant::now();
                let stepped = match teacher {
                    Some(t) => {
                        let p2 = t.p2(&images)?;
                        trainer.step(&images, Target::Teacher(&p2), epoch, state.step, lr)
                    }
                    None => {
                        let masks = masks.expect("labeled data has masks");
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
                log.step(&StepLine {
                    step: state.step,
                    epoch,
                    batch: batch.index,
                    size: batch.size,
                    images: batch.len(),
                    lr,
                    loss: outcome.loss,
                    parts: outcome.parts,
                    secs: t0.elapsed().as_secs_f64(),
                    wall: loop_start.elapsed().as_secs_f64(),
                })?;
                state.step += 1;
                loss_sum += outcome.loss;
                loss_n += 1;
                loss = Some(outcome.loss);
            }
            progress.emit(FitEvent::Step {
                position: epoch * per_epoch + state.batch,
                loss,
                lr,
            });
            if step_limit_reached(state.step) && state.batch < per_epoch {
                break;
            }
            if options.checkpoint_every > 0
                && state.step % options.checkpoint_every == 0
                && state.batch < per_epoch
            {
                checkpoint::save(out, trainer, &state)?;
            }
        }
        last_epoch_loss = loss_sum / loss_n.max(1) as f64;
        if step_limit_reached(state.step) && state.batch < per_epoch {
            // Stopped inside the epoch: checkpoint there (resume continues with the next batch).
            checkpoint_dir = checkpoint::save(out, trainer, &state)?;
            progress.note(format!("stopped after {} steps", state.step - first_step));
            break;
        }
        let validate =
            (epoch + 1) % options.validate_every.max(1) == 0 || epoch + 1 == config.epochs;
        let sets = if validate {
            &options.validation[..]
        } else {
            &[]
        };
        for scores in validate_epoch(trainer, sets, epoch, dtype)? {
            progress.note(format!(
                "epoch {} {}: MAE {:.4} maxF {:.4} Sm {:.4} meanE {:.4}",
                epoch + 1,
                scores.dataset,
                scores.mae,
                scores.max_f,
                scores.s_measure,
                scores.mean_e
            ));
            log.validation(state.step, &scores)?;
            validation.push(scores);
        }
        state.epoch += 1;
        state.batch = 0;
        checkpoint_dir = checkpoint::save(out, trainer, &state)?;
        progress.note(format!(
            "epoch {}/{} done: mean loss {last_epoch_loss:.4}{}",
            epoch + 1,
            config.epochs,
            peak_memory_text(&device)
        ));
    }
    progress.emit(FitEvent::End);
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

/// `", peak GPU memory N GiB"` (or `MiB` under 1 GiB): the most device memory the run's buffers
/// took at once since the last call (this epoch, with its validation and checkpoint), or nothing
/// where the device keeps no count (the CPU) or the driver would not say (logged, never fatal).
fn peak_memory_text(device: &Device) -> String {
    match scfnet_ops::take_peak_device_memory(device) {
        Ok(Some(bytes)) if bytes < 1 << 30 => format!(
            ", peak GPU memory {:.0} MiB",
            bytes as f64 / (1u64 << 20) as f64
        ),
        Ok(Some(bytes)) => format!(
            ", peak GPU memory {:.1} GiB",
            bytes as f64 / (1u64 << 30) as f64
        ),
        Ok(None) => String::new(),
        Err(e) => {
            tracing::debug!("peak GPU memory: {e}");
            String::new()
        }
    }
}
