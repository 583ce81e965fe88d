//! `scfnet demo`: the whole method on embedded synthetic data, end to end on a CPU — generate a
//! labeled set and an unlabeled pool, train a teacher (ResNet-50 SCFNet) and the student with full
//! supervision, distill a second student from the teacher on the unlabeled pool, then predict and
//! score all three and a centred-Gaussian baseline on the held-out split.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::Args;
use scfnet_data::synth::{generate, SynthConfig};
use scfnet_data::{read_mask, SodDataset};
use scfnet_model::{InputSide, ModelKind};
use scfnet_train::{evaluate, fit, FitOptions, Teacher, TrainConfig, Trainer};
use sod_metrics::{Accumulator, DatasetScores, GrayMap};

use crate::atomic::write_atomic;
use crate::device::{device, DeviceArg};
use crate::eval::report::{markdown, terminal, EvalResult};
use crate::figures::curves::{LearningCurves, RunLog, CURVES_SIZE};
use crate::figures::grid::{example_grid, Example, MapColumn};
use crate::figures::write_png;
use crate::precision::Precision;

/// `scfnet demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Output folder: data/, unlabeled/, teacher/, student/, kd-student/, maps/, results.md,
    /// curves.png, examples.png. A new or empty folder, or one an earlier demo made (its outputs
    /// are replaced, nothing else).
    #[arg(long, default_value = "out/demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Labeled synthetic images (a fifth held out for testing); the teacher learns from the rest.
    #[arg(long, default_value_t = 240)]
    pub images: usize,
    /// Labeled images the supervised student learns from (the first of the teacher's).
    #[arg(long, default_value_t = 16)]
    pub student_labels: usize,
    /// Extra unlabeled synthetic images for distillation (the KD-SOD80K stand-in); the teacher's
    /// training images join them without their masks.
    #[arg(long, default_value_t = 192)]
    pub unlabeled: usize,
    /// Most distractors per scene (muted shapes, small specks, shapes cut by the border: not
    /// salient); 0 gives plain scenes.
    #[arg(long, default_value_t = 4)]
    pub clutter: usize,
    /// Network input side for training and testing (the paper: 224–352 / 352).
    #[arg(long, default_value = "64")]
    pub size: InputSide,
    /// Teacher (ResNet-50) epochs over its labeled images (24: 288 steps; with 12 the teacher
    /// was not ahead of the supervised student at two of four seeds, docs/training.md).
    #[arg(long, default_value_t = 24)]
    pub teacher_epochs: usize,
    /// Optimiser steps of each student (the same for both: full supervision on its few labels,
    /// distillation on the larger unlabeled pool).
    #[arg(long, default_value_t = 480)]
    pub student_steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Seed of data, weights and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to train.
    #[arg(long, default_value = "cpu", value_parser = DeviceArg::parse)]
    pub device: DeviceArg,
    /// Matrix products on a GPU, as `train --precision`: f32, conv-tf32 (the default on a GPU),
    /// tf32 or bf16. The CPU: f32 only.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

/// Share of the labeled images held out for testing.
const TEST_FRACTION: f64 = 0.2;

/// Points on each learning curve (validations per run, about).
const CURVE_POINTS: usize = 24;

/// A centred Gaussian blob (σ = a quarter of each side): the trivial baseline.
fn gaussian_blob(width: usize, height: usize) -> Vec<u8> {
    let (sx, sy) = (width as f64 / 4.0, height as f64 / 4.0);
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let dx = (x as f64 + 0.5 - cx) / sx;
            let dy = (y as f64 + 0.5 - cy) / sy;
            out.push((255.0 * (-(dx * dx + dy * dy) / 2.0).exp()).round() as u8);
        }
    }
    out
}

fn baseline(test: &SodDataset) -> Result<DatasetScores> {
    let mut acc = Accumulator::new();
    for s in test.samples() {
        let path = s.mask.as_ref().context("test samples have masks")?;
        let m = read_mask(path)?;
        let gt = GrayMap::new(
            m.width,
            m.height,
            m.data.iter().map(|v| v.round() as u8).collect(),
        )?;
        let pred = GrayMap::new(m.width, m.height, gaussian_blob(m.width, m.height))?;
        acc.add(&pred, &gt)?;
    }
    Ok(acc.finish())
}

fn png(map: &GrayMap) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::write_buffer_with_format(
        &mut std::io::Cursor::new(&mut out),
        map.data(),
        map.width() as u32,
        map.height() as u32,
        image::ColorType::L8,
        image::ImageFormat::Png,
    )?;
    Ok(out)
}

fn train_config(model: ModelKind, args: &DemoArgs, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: args.batch,
        sizes: vec![args.size],
        warmup_epochs: 1.0,
        max_lr: 0.05,
        min_lr: 5e-4,
        // Random backbones (no ImageNet weights offline): train them at the decoder's rate.
        backbone_lr_mult: 1.0,
        test_size: args.size,
        seed: args.seed,
        ..TrainConfig::paper(model)
    }
}

/// A fresh network trained on `data` (with `teacher`: distilled) into `out`, scored on
/// `held_out` after every epoch (its learning curve), and the seconds it took.
fn train_timed(
    config: TrainConfig,
    dev: &Device,
    data: SodDataset,
    teacher: Option<&Teacher>,
    held_out: &SodDataset,
    out: PathBuf,
) -> Result<(Trainer, f64)> {
    let t0 = Instant::now();
    let validate_every = (config.epochs / CURVE_POINTS).max(1);
    let mut trainer = Trainer::fresh(config, dev, DType::F32)?;
    let mut options = FitOptions {
        out,
        resume: false,
        validation: vec![(HELD_OUT.to_string(), held_out.clone())],
        validate_every,
        stop_after_epochs: None,
        max_steps: None,
        progress: Some(crate::progress::training_bar(false)),
        workers: 2,
        checkpoint_every: 0,
    };
    fit(&mut trainer, data, teacher, &mut options)?;
    Ok((trainer, t0.elapsed().as_secs_f64()))
}

/// Predicts `test` with the network of `trainer`, writes the maps under `maps`, and scores them.
fn predict_and_score(
    trainer: &Trainer,
    test: &SodDataset,
    size: InputSide,
    maps: &Path,
) -> Result<DatasetScores> {
    Ok(evaluate(
        trainer.net(),
        test,
        size,
        trainer.device(),
        DType::F32,
        |stem, map| {
            let bytes = png(map).map_err(|e| scfnet_train::TrainError::Config(e.to_string()))?;
            write_atomic(&maps.join(format!("{stem}.png")), &bytes)
                .map_err(|e| scfnet_train::TrainError::Config(format!("{e:#}")))
        },
    )?)
}

/// Name of the held-out set in the logs and the table.
const HELD_OUT: &str = "synthetic-test";

/// What the demo writes into its folder; an earlier demo's are removed before a new one.
const DEMO_OUTPUTS: [&str; 9] = [
    "data",
    "unlabeled",
    "teacher",
    "student",
    "kd-student",
    "maps",
    "results.md",
    "curves.png",
    "examples.png",
];

/// Held-out images shown in `examples.png` (the first ones of the list: no picking).
const EXAMPLES: usize = 6;

/// Writes `curves.png` (held-out MAE and loss against steps of every run, from their
/// `log.jsonl`) and `examples.png` (held-out images, ground truth, every network's map).
fn write_figures(out: &Path, runs: &[(&str, &str)], test: &SodDataset, maps: &Path) -> Result<()> {
    let mut logs = Vec::new();
    for (label, dir) in runs {
        logs.push((
            label.to_string(),
            RunLog::read(&out.join(dir).join("log.jsonl"))?,
        ));
    }
    let curves = LearningCurves {
        title: "scfnet demo: learning curves",
        runs: &logs,
        smoothing: 10,
    };
    write_png(&out.join("curves.png"), &curves, CURVES_SIZE)?;
    let examples: Vec<Example> = test
        .samples()
        .iter()
        .take(EXAMPLES)
        .filter_map(|s| {
            s.mask.as_ref().map(|m| Example {
                image: s.image.clone(),
                mask: m.clone(),
            })
        })
        .collect();
    let columns: Vec<MapColumn> = runs
        .iter()
        .map(|(label, _)| MapColumn {
            title: label.to_string(),
            maps: maps.join(map_folder(label)),
        })
        .collect();
    write_atomic(
        &out.join("examples.png"),
        &example_grid(&examples, &columns)?,
    )
}

/// The maps folder of a network labelled `label` ("KD-SCFNet (student)" → "KD-SCFNet").
fn map_folder(label: &str) -> &str {
    label.split(' ').next().unwrap_or(label)
}

/// The mark of a folder the demo made.
const DEMO_MARK: &str = ".scfnet-demo";

/// Takes `out` for a demo: a new or empty folder is marked as the demo's; in one the demo made
/// (marked) the last demo's outputs are removed, and nothing else; any other folder with files
/// is refused untouched (a new demo would mix its files with what is there, and names alone
/// cannot tell a demo's folder from a user's).
fn claim_demo_dir(out: &Path) -> Result<()> {
    let mark = out.join(DEMO_MARK);
    if mark.is_file() {
        for name in DEMO_OUTPUTS {
            let p = out.join(name);
            if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else if p.exists() {
                std::fs::remove_file(&p)
            } else {
                Ok(())
            }
            .with_context(|| format!("removing the earlier demo's {}", p.display()))?;
        }
    } else if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
        if entries.next().is_some() {
            anyhow::bail!(
                "{} holds files and is not a demo's folder (no {DEMO_MARK}); the demo writes into \
                 a new or empty --out, or one it made (a demo folder of a scfnet before \
                 2026-12-04 has no mark: delete it, or choose another --out)",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(&mark, "").with_context(|| format!("marking {}", mark.display()))
}

/// Runs `scfnet demo`.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // The labeled split as `generate` makes it: a fifth held out, the rest for training.
    let n_train = args.images - (args.images as f64 * TEST_FRACTION).round() as usize;
    anyhow::ensure!(
        args.teacher_epochs >= 1 && args.student_steps >= 1,
        "the teacher needs at least 1 epoch and each student at least 1 step"
    );
    anyhow::ensure!(
        (1..=n_train).contains(&args.student_labels),
        "the supervised student's labeled images must be between 1 and the {n_train} training images, got {}",
        args.student_labels
    );
    let dev = device(args.device)?;
    let precision = crate::precision::apply(&dev, args.precision)?;
    let out = &args.out;
    claim_demo_dir(out)?;
    // One demo at a time in a folder.
    let _lock = scfnet_base::files::FolderLock::acquire(out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    let data_dir = out.join("data");
    let pool_dir = out.join("unlabeled");
    tracing::info!(
        "1/5 generating {} labeled and {} unlabeled synthetic images",
        args.images,
        args.unlabeled
    );
    let side = (64, 96);
    let synth = |count, seed, test_fraction| SynthConfig {
        count,
        seed,
        side,
        test_fraction,
        clutter: args.clutter,
    };
    generate(
        &data_dir,
        &synth(args.images, args.seed, TEST_FRACTION),
        || {},
    )?;
    generate(
        &pool_dir,
        &synth(args.unlabeled, args.seed + 1_000_003, 0.0),
        || {},
    )?;
    let train = SodDataset::labeled(&data_dir, Some(Path::new("train.txt")))?;
    let test = SodDataset::labeled(&data_dir, Some(Path::new("test.txt")))?;
    let pool = SodDataset::unlabeled(pool_dir.join("image"))?;
    let few = SodDataset::from_samples(&data_dir, train.samples()[..args.student_labels].to_vec());

    tracing::info!(
        "2/5 training the ResNet-50 teacher on {} labeled images ({} epochs)",
        train.len(),
        args.teacher_epochs
    );
    let (teacher, teacher_secs) = train_timed(
        train_config(ModelKind::R50, &args, args.teacher_epochs),
        &dev,
        train.clone(),
        None,
        &test,
        out.join("teacher"),
    )?;

    // Both students make the same number of optimiser steps.
    let epochs_for = |images: usize| {
        args.student_steps
            .div_ceil(images.div_ceil(args.batch))
            .max(1)
    };
    tracing::info!(
        "3/5 training the student with full supervision on {} labeled images ({} steps)",
        few.len(),
        args.student_steps
    );
    let (fs, fs_secs) = train_timed(
        train_config(ModelKind::Student, &args, epochs_for(few.len())),
        &dev,
        few,
        None,
        &test,
        out.join("student"),
    )?;

    // The unlabeled pool plus the teacher's training images without their masks.
    let mut samples = pool.samples().to_vec();
    samples.extend(train.samples().iter().map(|s| scfnet_data::Sample {
        mask: None,
        ..s.clone()
    }));
    let kd_data = SodDataset::from_samples(&pool_dir, samples);
    tracing::info!(
        "4/5 distilling the teacher into a fresh student on {} unlabeled images ({} steps)",
        kd_data.len(),
        args.student_steps
    );
    let frozen = crate::train::load_teacher(
        ModelKind::R50,
        &out.join("teacher/model.safetensors").display().to_string(),
        &dev,
    )?;
    let (kd, kd_secs) = train_timed(
        train_config(ModelKind::Student, &args, epochs_for(kd_data.len())),
        &dev,
        kd_data,
        Some(&frozen),
        &test,
        out.join("kd-student"),
    )?;

    tracing::info!(
        "5/5 predicting and scoring the {} held-out images",
        test.len()
    );
    let maps = out.join("maps");
    let mut results = Vec::new();
    let runs = [
        ("SCFNet-R50 (teacher)", "teacher"),
        ("FS-SCFNet (student)", "student"),
        ("KD-SCFNet (student)", "kd-student"),
    ];
    for ((name, _), trainer) in runs.iter().zip([&teacher, &fs, &kd]) {
        let dir = maps.join(map_folder(name));
        let scores = predict_and_score(trainer, &test, args.size, &dir)?;
        results.push(EvalResult {
            method: name.to_string(),
            dataset: HELD_OUT.into(),
            scores,
            skipped: 0,
            per_image: Vec::new(),
        });
    }
    results.push(EvalResult {
        method: "centred Gaussian".into(),
        dataset: HELD_OUT.into(),
        scores: baseline(&test)?,
        skipped: 0,
        per_image: Vec::new(),
    });
    let table = terminal(&results);
    println!("{table}");
    let (fs_s, kd_s, base) = (&results[1].scores, &results[2].scores, &results[3].scores);
    let teacher_s = &results[0].scores;
    let setting = format!(
        "setting: the teacher learned from {} labeled images, the FS student from {} of them, the KD student from the teacher's maps of {} images without labels; each student made {} steps",
        train.len(),
        args.student_labels,
        pool.len() + train.len(),
        args.student_steps
    );
    let teacher_line = if teacher_s.mae < fs_s.mae {
        format!(
            "the teacher is ahead of the FS student (MAE {:.4} vs {:.4}): there is knowledge to distil",
            teacher_s.mae, fs_s.mae
        )
    } else {
        format!(
            "the teacher is not ahead of the FS student (MAE {:.4} vs {:.4}): there is little to distil (more --teacher-epochs or fewer --student-labels)",
            teacher_s.mae, fs_s.mae
        )
    };
    let helped = kd_s.s_measure > fs_s.s_measure && kd_s.mae < fs_s.mae;
    let kd_line = format!(
        "distillation {}: KD student MAE {:.4}, Sm {:.4} vs FS student MAE {:.4}, Sm {:.4}{}",
        if helped {
            "helped"
        } else {
            "did not help on both MAE and Sm"
        },
        kd_s.mae,
        kd_s.s_measure,
        fs_s.mae,
        fs_s.s_measure,
        if helped {
            ""
        } else {
            " (the KD student learns less per step than the FS student, see curves.png; more --student-steps let it catch up: docs/training.md)"
        }
    );
    // On a GPU the products' precision changes the scores a little: say which it was.
    let place = if dev.is_cuda() {
        format!(" (GPU, precision {})", precision.name())
    } else {
        String::new()
    };
    let verdict = format!(
        "{setting}\nstudent vs baseline: MAE {:.4} vs {:.4}, Sm {:.4} vs {:.4}\n{teacher_line}\n{kd_line}\ntimes: teacher {teacher_secs:.0} s, student {fs_secs:.0} s, distillation {kd_secs:.0} s, total {:.0} s{place}",
        fs_s.mae,
        base.mae,
        fs_s.s_measure,
        base.s_measure,
        started.elapsed().as_secs_f64()
    );
    println!("{verdict}");
    write_figures(out, &runs, &test, &maps)?;
    write_atomic(
        &out.join("results.md"),
        format!(
            "{}\n```\n{verdict}\n```\n\n## Learning curves\n\nHeld-out MAE after every epoch and the training loss of each run:\n\n![learning curves](curves.png)\n\n## Examples\n\nThe first {EXAMPLES} held-out images, their ground truth and each network's map:\n\n![examples](examples.png)\n",
            markdown(&results)
        )
        .as_bytes(),
    )?;
    tracing::info!(
        "maps in {}, table in {}",
        maps.display(),
        out.join("results.md").display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_replaces_only_its_own_outputs_and_refuses_other_folders() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("demo");
        claim_demo_dir(&out).unwrap();
        assert!(out.join(DEMO_MARK).is_file());
        std::fs::create_dir_all(out.join("teacher")).unwrap();
        std::fs::write(out.join("teacher/log.jsonl"), "{}").unwrap();
        std::fs::write(out.join("results.md"), "old").unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        claim_demo_dir(&out).unwrap();
        assert!(!out.join("teacher").exists() && !out.join("results.md").exists());
        assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");

        // Someone else's folder: refused, untouched.
        let other = dir.path().join("other");
        std::fs::create_dir_all(other.join("data")).unwrap();
        std::fs::write(other.join("data/x.txt"), "mine").unwrap();
        let err = format!("{:#}", claim_demo_dir(&other).unwrap_err());
        assert!(err.contains("not a demo's folder"), "{err}");
        assert_eq!(std::fs::read(other.join("data/x.txt")).unwrap(), b"mine");
        assert!(!other.join(DEMO_MARK).exists());

        // Names alone do not make a demo's folder: without the mark it is refused untouched.
        let old = dir.path().join("old");
        std::fs::create_dir_all(old.join("teacher")).unwrap();
        std::fs::write(old.join("teacher/log.jsonl"), "{}").unwrap();
        std::fs::write(old.join("results.md"), "old").unwrap();
        assert!(claim_demo_dir(&old).is_err());
        assert!(old.join("results.md").is_file() && !old.join(DEMO_MARK).exists());
    }
}
