//! `scfnet sweep --estimate`: the projected time of each run on this machine and device, from a
//! few timed steps of the run's own command (its data, network, batch and device), before a
//! night or a week is committed to it.
//!
//! Each training or distillation runs with `--max-steps N` into `OUT/estimate/RUN` (removed
//! afterwards); the run's log gives the steps of the whole run (its `plan` line) and the pace of
//! the steps after the first two (compilation, allocation and the loader's first batches), from
//! the loop's wall clock, so that waiting for data counts. A distillation takes its teacher's
//! estimate run as its teacher (the timing does not depend on the weights). Prepare steps that
//! are missing run first: the steps need their data.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::stages::{with_overrides, Kind, State};
use super::{run_logged, StageFailed, Sweep};

/// Steps at the start of a timing run that are not counted.
const WARMUP_STEPS: usize = 2;

/// What the timing of one run gave.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunEstimate {
    /// The run's name.
    pub run: String,
    /// Steps of the whole run (epochs × batches per epoch).
    pub steps: Option<usize>,
    /// Median seconds between consecutive timed steps (loader waits included).
    pub secs_per_step: Option<f64>,
    /// Median seconds of the steps themselves (upload, forward, backward, update): next to
    /// `secs_per_step`, whether the data loader keeps up (their ratio near 1).
    pub step_only_secs: Option<f64>,
    /// Projected seconds of the whole run.
    pub projected_secs: Option<f64>,
    /// The plan's time limit for the run (Slurm), if any.
    pub time_limit: Option<String>,
    /// Why there is no number, or that the run is already done.
    pub note: Option<String>,
}

/// What a timing run's `log.jsonl` holds: the steps of the whole run, and each step's end on the
/// loop's clock (`wall`) and its own duration (`secs`).
#[derive(Debug, PartialEq)]
struct Timed {
    steps: usize,
    walls: Vec<f64>,
    secs: Vec<f64>,
}

/// Reads a timing run's `log.jsonl`.
fn read_log(path: &Path) -> Result<Timed> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut steps = None;
    let mut walls = Vec::new();
    let mut secs = Vec::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(p) = v.get("plan") {
            steps = p.get("steps").and_then(|s| s.as_u64()).map(|s| s as usize);
        } else if v.get("loss").is_some() {
            if let (Some(w), Some(s)) = (
                v.get("wall").and_then(|w| w.as_f64()),
                v.get("secs").and_then(|s| s.as_f64()),
            ) {
                walls.push(w);
                secs.push(s);
            }
        }
    }
    match steps {
        Some(steps) => Ok(Timed { steps, walls, secs }),
        None => bail!("{} has no plan line", path.display()),
    }
}

/// The median gap between consecutive walls after the first [`WARMUP_STEPS`] steps.
fn pace(walls: &[f64]) -> Option<f64> {
    median(
        walls
            .windows(2)
            .skip(WARMUP_STEPS.saturating_sub(1))
            .map(|w| w[1] - w[0])
            .collect(),
    )
}

/// The median of the finite, non-negative values of `v`.
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite() && *x >= 0.0);
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Hours and minutes, for the table.
pub fn human(secs: f64) -> String {
    if secs >= 48.0 * 3600.0 {
        format!("{:.1} d", secs / 86400.0)
    } else if secs >= 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else {
        format!("{:.0} min", (secs / 60.0).max(1.0))
    }
}

impl Sweep {
    /// Times `steps` steps of every selected run that is not finished and projects each run's
    /// time; missing prepare steps run first. `steps` must exceed the warm-up (2).
    pub fn estimate(
        &self,
        scfnet: &Path,
        only: &[String],
        steps: usize,
    ) -> Result<Vec<RunEstimate>> {
        if steps <= WARMUP_STEPS + 1 {
            bail!(
                "an estimate needs more than {} timed steps",
                WARMUP_STEPS + 1
            );
        }
        self.claim_out_dir()?;
        let dir = self.paths.out.join("estimate");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let prepare: Vec<String> = self
            .stages
            .iter()
            .filter(|s| s.kind == Kind::Prepare && s.state(&self.stages) != State::Complete)
            .map(|s| s.owner.clone())
            .collect();
        if !prepare.is_empty() {
            println!("preparing the data first: {}", prepare.join(", "));
            self.execute(scfnet, &prepare)?;
        }
        let mut out = Vec::new();
        for s in self
            .selected(only)?
            .into_iter()
            .filter(|s| s.kind == Kind::Train)
        {
            let run = self.plan.run(&s.owner).expect("a run's stage");
            let mut e = RunEstimate {
                run: run.name.clone(),
                steps: None,
                secs_per_step: None,
                step_only_secs: None,
                projected_secs: None,
                time_limit: run.time.clone(),
                note: None,
            };
            if s.state(&self.stages) == State::Complete {
                e.note = Some("done".into());
                out.push(e);
                continue;
            }
            let run_dir = dir.join(&run.name);
            let mut extra: Vec<String> = [
                "--out",
                &run_dir.to_string_lossy(),
                "--max-steps",
                &steps.to_string(),
                "--overwrite",
                "--quiet",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            if let Some(teacher) = &run.teacher {
                let weights = scfnet_train::RunDir::new(dir.join(teacher)).weights();
                if !weights.is_file() {
                    e.note = Some(format!(
                        "not timed: its teacher {teacher} was not timed (it needs the teacher's \
                         timing run)"
                    ));
                    out.push(e);
                    continue;
                }
                extra.extend([
                    "--teacher-weights".into(),
                    weights.to_string_lossy().into_owned(),
                ]);
            }
            let args = with_overrides(s.args.clone(), &extra);
            println!("timing {} ({steps} steps)", run.name);
            let log = dir.join(format!("{}.log", run.name));
            match run_logged(scfnet, &args, &log)
                .and_then(|()| read_log(&scfnet_train::RunDir::new(&run_dir).log()))
            {
                Ok(t) => {
                    e.steps = Some(t.steps);
                    e.secs_per_step = pace(&t.walls);
                    e.step_only_secs = median(t.secs.iter().skip(WARMUP_STEPS).copied().collect());
                    e.projected_secs = e.secs_per_step.map(|p| p * t.steps as f64);
                    if e.secs_per_step.is_none() {
                        e.note = Some(format!("only {} steps ran", t.walls.len()));
                    }
                }
                Err(err) => {
                    let why = match err.downcast_ref::<StageFailed>() {
                        Some(failed) => failed.reason(),
                        None => format!("{err:#}"),
                    };
                    e.note = Some(format!("not timed: {why} (log: {})", log.display()));
                }
            }
            out.push(e);
        }
        // The timing runs' weights and checkpoints are of no use; the logs of the failed ones
        // are named in the table and kept.
        for e in &out {
            let d: PathBuf = dir.join(&e.run);
            if d.exists() {
                std::fs::remove_dir_all(&d).ok();
            }
            if e.note
                .as_deref()
                .is_none_or(|n| !n.starts_with("not timed"))
            {
                std::fs::remove_file(dir.join(format!("{}.log", e.run))).ok();
            }
        }
        Ok(out)
    }
}

/// The table `--estimate` prints.
pub fn table(device: &str, estimates: &[RunEstimate]) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<20} {:>10} {:>9} {:>8} {:>11}  {}",
        "run", "steps", "s/step", "in step", "projected", "plan's limit"
    )];
    let mut total = 0.0;
    for e in estimates {
        let num = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        lines.push(format!(
            "{:<20} {:>10} {:>9} {:>8} {:>11}  {}{}",
            e.run,
            num(e.steps.map(|s| s.to_string())),
            num(e.secs_per_step.map(|p| format!("{p:.3}"))),
            num(e
                .step_only_secs
                .zip(e.secs_per_step)
                .filter(|(_, p)| *p > 0.0)
                .map(|(s, p)| format!("{:.0} %", 100.0 * (s / p).min(1.0)))),
            num(e.projected_secs.map(human)),
            e.time_limit.as_deref().unwrap_or("-"),
            e.note
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        ));
        total += e.projected_secs.unwrap_or(0.0);
    }
    lines.push(format!(
        "total on {device}: {} of training (predictions and scores add minutes){}",
        human(total),
        if estimates.iter().any(|e| e
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("not timed")))
        {
            "; runs not timed are left out"
        } else {
            ""
        }
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_is_the_median_gap_after_the_warmup() {
        // The first gap (warm-up) is slow and left out; the median of the rest.
        assert_eq!(pace(&[5.0, 9.0, 10.0, 11.0, 12.5, 13.5]), Some(1.0));
        assert_eq!(pace(&[5.0, 9.0, 10.0, 12.0]), Some(1.5));
        assert_eq!(pace(&[5.0, 9.0]), None);
        assert_eq!(pace(&[]), None);
    }

    #[test]
    fn logs_give_the_steps_of_the_whole_run() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log.jsonl");
        std::fs::write(
            &p,
            "{\"plan\":{\"epochs\":3,\"batches_per_epoch\":4,\"steps\":12,\"samples\":60,\"first_step\":0}}\n\
             {\"step\":0,\"loss\":1.0,\"secs\":2.0,\"wall\":2.5}\n\
             {\"epoch\":0,\"step\":1,\"validation\":\"a\",\"mae\":0.3}\n\
             {\"step\":1,\"loss\":0.9,\"secs\":1.0,\"wall\":3.5}\n",
        )
        .unwrap();
        assert_eq!(
            read_log(&p).unwrap(),
            Timed {
                steps: 12,
                walls: vec![2.5, 3.5],
                secs: vec![2.0, 1.0]
            }
        );
        std::fs::write(&p, "{\"step\":0,\"loss\":1.0,\"secs\":2.0,\"wall\":2.5}\n").unwrap();
        assert!(read_log(&p)
            .unwrap_err()
            .to_string()
            .contains("no plan line"));
    }

    #[test]
    fn times_read_as_minutes_hours_or_days() {
        assert_eq!(human(10.0), "1 min");
        assert_eq!(human(1800.0), "30 min");
        assert_eq!(human(5400.0), "1.5 h");
        assert_eq!(human(3.0 * 86400.0), "3.0 d");
    }
}
