//! `scfnet sweep` (alias `cargo xtask sweep`): a plan's whole experiment (data, trainings, distillations, predictions,
//! scores, report) as `scfnet` commands, each stage skipped when complete and resumed when
//! partial, so a killed sweep started again loses at most one checkpoint interval.

mod estimate;
mod figures;
mod plan;
mod report;
mod slurm;
mod stages;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use scfnet_base::files::FolderLock;

use plan::Plan;
use stages::{shell_line, stages, Kind, Paths, Stage, State, MARKER, STARTED, SWEEP_DIR_MARK};

/// Arguments of `sweep`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plan (default: sweeps/paper.toml).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// The sweep's folder (runs/, maps/, logs/, scores, results.*); default out/sweep-PLAN.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Only these prepare steps / runs (with their predictions), or `score` (scores and report);
    /// comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print every command of the plan with its state, and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Device of every command (`cpu`, `cuda`, `cuda:N`), instead of the plan's.
    #[arg(long)]
    device: Option<String>,
    /// Extra arguments for one run, e.g. `--run-args 'SCFNet-R50=--epochs 10 --batch 32'`.
    #[arg(long = "run-args", value_name = "RUN=ARGS")]
    run_args: Vec<String>,
    /// The `scfnet` binary the stages run (default: this one; a GPU device needs the CUDA
    /// build).
    #[arg(long, value_name = "PATH")]
    scfnet: Option<PathBuf>,
    /// Write one Slurm batch script per run and a submit.sh that chains them
    /// (`--emit slurm DIR`), and run nothing.
    #[arg(long, num_args = 2, value_names = ["slurm", "DIR"])]
    emit: Option<Vec<String>>,
    /// With --emit: also submit the chain with sbatch.
    #[arg(long, requires = "emit")]
    submit: bool,
    /// Time a few steps of every run that is not finished (its own command, data and device)
    /// and print each run's projected time next to the plan; runs missing prepare steps first,
    /// trains nothing else. The table is also written to OUT/estimate.json.
    #[arg(long, conflicts_with_all = ["dry_run", "emit"])]
    estimate: bool,
    /// With --estimate: steps timed per run (the first two are not counted).
    #[arg(long, default_value_t = 8, value_name = "N", requires = "estimate")]
    estimate_steps: usize,
    /// With --emit: the generic resources each run asks for ("" for none).
    #[arg(long, default_value = "gpu:1")]
    gres: String,
}

/// A resolved sweep.
pub struct Sweep {
    /// The plan.
    pub plan: Plan,
    /// Its plan file.
    pub plan_path: PathBuf,
    /// Where things go.
    pub paths: Paths,
    /// Its stages.
    pub stages: Vec<Stage>,
    /// The device of every command.
    pub device: String,
}

impl Sweep {
    /// Reads `plan_path` and lays the sweep out under `out`.
    pub fn new(
        root: &Path,
        plan_path: &Path,
        out: &Path,
        device: Option<&str>,
        run_args: &[String],
    ) -> Result<Self> {
        let plan = Plan::load(plan_path)?;
        let mut extra = Vec::new();
        for spec in run_args {
            let (name, args) = spec
                .split_once('=')
                .with_context(|| format!("--run-args {spec:?}: expected RUN=ARGS"))?;
            if plan.run(name).is_none() {
                bail!("--run-args: no run {name:?} in {}", plan_path.display());
            }
            extra.push((
                name.to_owned(),
                args.split_whitespace().map(str::to_owned).collect(),
            ));
        }
        let device = device.unwrap_or(&plan.sweep.device).to_owned();
        let paths = Paths {
            root: root.to_owned(),
            out: out.to_owned(),
        };
        let stages = stages(&plan, &paths, &device, &extra);
        // Every run's command line as its command would take it, before any stage runs: an
        // unknown option or an absurd setting fails now, not hours in.
        for s in stages.iter().filter(|s| s.kind == Kind::Train) {
            crate::train::check_command_line(&s.args)
                .with_context(|| format!("{} ({}): its arguments", s.label, plan_path.display()))?;
        }
        Ok(Self {
            plan,
            plan_path: plan_path.to_owned(),
            paths,
            stages,
            device,
        })
    }

    /// The stages `only` selects (all when empty); unknown names are an error.
    pub fn selected(&self, only: &[String]) -> Result<Vec<&Stage>> {
        for o in only {
            if !self.stages.iter().any(|s| &s.owner == o) {
                bail!(
                    "--only {o:?}: not a prepare step, a run or `score`; the plan has {}",
                    self.stages
                        .iter()
                        .map(|s| s.owner.as_str())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(self
            .stages
            .iter()
            .filter(|s| only.is_empty() || only.contains(&s.owner))
            .collect())
    }

    /// The commands with their states, one line each (`--dry-run`).
    pub fn plan_lines(&self, scfnet: &Path, only: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for s in self.selected(only)? {
            let state = s.state(&self.stages);
            let what = match (state, &s.kind) {
                (State::Complete, _) => "done, skipped",
                (State::Partial, Kind::Train) => "partial, resumed",
                (State::Partial, _) => "partial, redone",
                (State::Missing, _) => "to run",
                (State::Foreign, _) => "exists, not made by this sweep: refused",
            };
            out.push(format!("# {} ({what})", s.label));
            out.push(shell_line(scfnet, &s.args_now(state)));
        }
        if only.is_empty() || only.iter().any(|o| o == "score") {
            out.push(format!(
                "# report: {}",
                self.paths.out.join("results.{md,tex,json}").display()
            ));
        }
        Ok(out)
    }

    /// Claims stage `s` for this process: `OUT/.locks/LABEL/.scfnet-lock`, refused while another
    /// live process (a second sweep in another shell, a job left running) holds it.
    fn lock_stage(&self, s: &Stage) -> Result<FolderLock> {
        let dir = self
            .paths
            .out
            .join(STAGE_LOCKS)
            .join(s.label.replace([' ', '/'], "_"));
        FolderLock::acquire(&dir).map_err(|e| {
            anyhow::anyhow!(
                "{}: another sweep is running this stage ({e}); wait for it or stop it",
                s.label
            )
        })
    }

    /// Runs every selected stage that is not complete, then the report when everything is
    /// scored. Returns the seconds spent.
    pub fn execute(&self, scfnet: &Path, only: &[String]) -> Result<f64> {
        let start = Instant::now();
        self.claim_out_dir()?;
        let logs = self.paths.out.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let selected = self.selected(only)?;
        let total = selected.len();
        for (k, s) in selected.into_iter().enumerate() {
            // One sweep at a time per stage (jobs of one sweep run different stages side by
            // side): held from before the stage's state is looked at until it has ended.
            let _lock = self.lock_stage(s)?;
            let state = s.state(&self.stages);
            if state == State::Complete {
                println!("[{}/{total}] {}: done, skipped", k + 1, s.label);
                continue;
            }
            if state == State::Foreign {
                bail!(
                    "{}: {} exists but this sweep did not make it (no {STARTED} in it); the sweep \
                     neither deletes nor writes into it: move it away, or point the plan elsewhere",
                    s.label,
                    s.output.display()
                );
            }
            for need in &s.needs {
                if !need.is_file() {
                    bail!(
                        "{}: the run in {} has not finished (run the sweep without --only, or that run first)",
                        s.label,
                        need.parent().unwrap_or(need).display()
                    );
                }
            }
            if state == State::Partial && matches!(s.kind, Kind::Prepare | Kind::Predict) {
                std::fs::remove_dir_all(&s.output)
                    .with_context(|| format!("removing the partial {}", s.output.display()))?;
            }
            if s.kind != Kind::Score {
                std::fs::create_dir_all(&s.output)
                    .with_context(|| format!("creating {}", s.output.display()))?;
                std::fs::write(s.output.join(STARTED), "")
                    .with_context(|| format!("marking {}", s.output.display()))?;
            }
            let args = s.args_now(state);
            println!(
                "[{}/{total}] {}{}",
                k + 1,
                s.label,
                if state == State::Partial && s.kind == Kind::Train {
                    " (resuming)"
                } else {
                    ""
                }
            );
            let log = logs.join(format!("{}.log", s.label.replace(' ', "_")));
            let t = Instant::now();
            let result = run_logged(scfnet, &args, &log).with_context(|| s.label.clone());
            let secs = t.elapsed().as_secs_f64();
            // Failed and resumed attempts count too: the time is the stage's total.
            add_timing(&self.paths.out, &s.label, secs)?;
            result?;
            if s.kind != Kind::Score {
                std::fs::write(s.output.join(MARKER), format!("{secs:.1}\n"))
                    .with_context(|| format!("marking {}", s.output.display()))?;
            }
            println!("    {:.1} s", secs);
        }
        let wall = start.elapsed().as_secs_f64();
        let scored = self
            .stages
            .iter()
            .all(|s| s.state(&self.stages) == State::Complete);
        if scored {
            self.report(scfnet)?;
        } else if only.is_empty() {
            bail!("some stages are still incomplete; run the sweep again");
        }
        Ok(wall)
    }

    /// Takes `--out` for the sweep: a new or empty folder gets [`SWEEP_DIR_MARK`]; one that holds
    /// anything else without that mark is someone else's and is refused untouched.
    pub(crate) fn claim_out_dir(&self) -> Result<()> {
        let out = &self.paths.out;
        let mark = out.join(SWEEP_DIR_MARK);
        if mark.is_file() {
            return Ok(());
        }
        if out.exists() {
            let mut entries =
                std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
            if entries.next().is_some() {
                bail!(
                    "{} holds files and is not a sweep's folder (no {SWEEP_DIR_MARK}); the sweep \
                     writes only into a new or empty --out, or one it made",
                    out.display()
                );
            }
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(&mark, "").with_context(|| format!("marking {}", mark.display()))
    }

    /// Writes `results.md` (with `curves.png` and `examples-SET.png`), `results.tex`,
    /// `results.json`.
    pub fn report(&self, scfnet: &Path) -> Result<()> {
        let scores = report::read_scores(&self.paths.scores())?;
        let mut info = BTreeMap::new();
        for r in &self.plan.runs {
            if info.contains_key(&r.model) {
                continue;
            }
            let out = Command::new(scfnet)
                .args(["info", "--model", &r.model, "--json"])
                .output()
                .with_context(|| format!("running {} info", scfnet.display()))?;
            if !out.status.success() {
                bail!(
                    "scfnet info --model {} failed: {}",
                    r.model,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .context("parsing the output of scfnet info --json")?;
            info.insert(
                r.model.clone(),
                (
                    v["paddle_params"].as_u64().unwrap_or(0),
                    v["macs"].as_u64().unwrap_or(0),
                ),
            );
        }
        let timings = read_timings(&self.paths.out);
        let total: f64 = timings.values().sum();
        let rows = report::rows(&self.plan, &scores, &info, &timings);
        let write = |name: &str, text: String| -> Result<()> {
            let p = self.paths.out.join(name);
            scfnet_base::files::write_bytes(&p, text.as_bytes())
                .with_context(|| format!("writing {}", p.display()))
        };
        // The pictures are extras: one that cannot be drawn (an unreadable image in a test set)
        // is reported in the report and the log, and the tables are still written.
        let pictures = figures::write_figures(&self.plan, &self.paths).unwrap_or_else(|e| {
            tracing::warn!("the report's pictures were not drawn: {e:#}");
            format!("\n## Pictures\n\nNot drawn: {e:#}\n")
        });
        write(
            "results.md",
            report::markdown(&self.plan, &rows, total) + &pictures,
        )?;
        write("results.tex", report::latex(&self.plan, &rows))?;
        write(
            "results.json",
            serde_json::to_string_pretty(&serde_json::json!({
                "sweep": self.plan.sweep.name,
                "test_sets": self.plan.sweep.test_sets,
                "stage_seconds": timings,
                "stage_seconds_total": total,
                "runs": rows,
            }))?,
        )?;
        println!("report: {}", self.paths.out.join("results.md").display());
        Ok(())
    }
}

/// The folder under a sweep's `--out` that holds its stages' locks.
const STAGE_LOCKS: &str = ".locks";

/// A stage's command that did not succeed: its status and the last lines of its log.
#[derive(Debug)]
pub(crate) struct StageFailed {
    /// The command line.
    command: String,
    /// How it ended.
    status: std::process::ExitStatus,
    /// Its log file.
    log: PathBuf,
    /// The log's last lines (at most 15).
    tail: Vec<String>,
}

impl std::fmt::Display for StageFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed ({}); last lines of {}:\n{}",
            self.command,
            self.status,
            self.log.display(),
            self.tail.join("\n")
        )
    }
}

impl std::error::Error for StageFailed {}

impl StageFailed {
    /// How it ended and, where the log has one, its last error line: `exit status: 1: error: …`.
    pub(crate) fn reason(&self) -> String {
        match self.tail.iter().rev().find(|l| l.contains("error")) {
            Some(l) => format!("{}: {}", self.status, l.trim()),
            None => self.status.to_string(),
        }
    }
}

/// Runs `program args`, its output into `log`; an error ([`StageFailed`]) carries the log's last
/// lines.
fn run_logged(program: &Path, args: &[String], log: &Path) -> Result<()> {
    let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    // A SIGTERM to the sweep stops the stage too (not an orphan trainer in the run folder).
    let status = scfnet_base::child::status(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file),
    )
    .with_context(|| format!("starting {}", program.display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut tail: Vec<String> = text.lines().rev().take(15).map(str::to_owned).collect();
        tail.reverse();
        return Err(StageFailed {
            command: shell_line(program, args),
            status,
            log: log.to_owned(),
            tail,
        }
        .into());
    }
    Ok(())
}

/// Seconds per stage, all invocations together: one file per stage under `timings/` with a
/// line per attempt (jobs running side by side on a cluster never write the same file).
fn read_timings(out: &Path) -> BTreeMap<String, f64> {
    let mut t = BTreeMap::new();
    for e in std::fs::read_dir(out.join("timings"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(label) = name.strip_suffix(".txt") else {
            continue;
        };
        let secs: f64 = std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .sum();
        t.insert(label.replace('+', " "), secs);
    }
    t
}

fn add_timing(out: &Path, label: &str, secs: f64) -> Result<()> {
    use std::io::Write;
    let dir = out.join("timings");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.txt", label.replace(' ', "+")));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{secs:.3}").with_context(|| format!("writing {}", path.display()))
}

/// The `scfnet` binary the stages run: the one given, else this very binary. A GPU device
/// needs a binary built with CUDA: a clear error here rather than a failing first stage.
fn scfnet_binary(given: Option<PathBuf>, device: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    if device.starts_with("cuda") && !cfg!(feature = "cuda") {
        bail!(
            "device {device}: this scfnet was built without CUDA; run the sweep with the CUDA \
             build (`cargo xtask build-cuda`, then target/cuda/release/scfnet sweep ...), or name \
             one with --scfnet"
        );
    }
    std::env::current_exe().context("locating the scfnet binary")
}

/// Runs the command.
pub fn run(args: Args) -> Result<()> {
    let root = crate::checkout::root();
    let plan_path = args.plan.unwrap_or_else(|| root.join("sweeps/paper.toml"));
    let stem = plan_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".into());
    let out = args
        .out
        .unwrap_or_else(|| root.join("out").join(format!("sweep-{stem}")));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize()?;
    let sweep = Sweep::new(
        &root,
        &plan_path.canonicalize().unwrap_or(plan_path.clone()),
        &out,
        args.device.as_deref(),
        &args.run_args,
    )?;
    if let Some(emit) = &args.emit {
        if emit[0] != "slurm" {
            bail!("--emit {}: only `slurm` is known", emit[0]);
        }
        let scfnet = scfnet_binary(args.scfnet.clone(), &sweep.device)?;
        let dir = PathBuf::from(&emit[1]);
        let runner = std::env::current_exe().context("locating the scfnet binary")?;
        let written = slurm::emit(&sweep, &dir, &runner, &scfnet, &args.gres)?;
        println!(
            "wrote {} job scripts and {}",
            written,
            dir.join("submit.sh").display()
        );
        if args.submit {
            let status = Command::new("bash")
                .arg(dir.join("submit.sh"))
                .status()
                .context("running submit.sh")?;
            if !status.success() {
                bail!("submit.sh failed");
            }
        } else {
            println!("submit with: bash {}", dir.join("submit.sh").display());
        }
        return Ok(());
    }
    if args.estimate {
        let scfnet = scfnet_binary(args.scfnet, &sweep.device)?;
        let estimates = sweep.estimate(&scfnet, &args.only, args.estimate_steps)?;
        for l in estimate::table(&sweep.device, &estimates) {
            println!("{l}");
        }
        let path = sweep.paths.out.join("estimate.json");
        let json = serde_json::json!({
            "plan": sweep.plan_path,
            "device": sweep.device,
            "timed_steps": args.estimate_steps,
            "runs": estimates,
        });
        scfnet_base::files::write_bytes(&path, serde_json::to_string_pretty(&json)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("written to {}", path.display());
        return Ok(());
    }
    if args.dry_run {
        let scfnet = scfnet_binary(args.scfnet, &sweep.device)?;
        for l in sweep.plan_lines(&scfnet, &args.only)? {
            println!("{l}");
        }
        return Ok(());
    }
    let scfnet = scfnet_binary(args.scfnet, &sweep.device)?;
    let wall = sweep.execute(&scfnet, &args.only)?;
    println!("sweep finished in {wall:.0} s");
    Ok(())
}
