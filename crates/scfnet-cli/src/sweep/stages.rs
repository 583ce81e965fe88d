//! The stages of a sweep, in order, with their commands and their on-disk state: data
//! preparation, each run's training, its predictions on every test set, the scoring, the report.

use std::path::{Path, PathBuf};

use scfnet_train::RunDir;

use super::plan::{Plan, RunCommand};

/// The file a finished stage leaves in its output folder.
pub const MARKER: &str = ".sweep-complete";
/// The file the sweep writes into a stage's output folder before it runs the stage: a folder
/// without it (or [`MARKER`]) was not made by the sweep, and the sweep does not touch it.
pub const STARTED: &str = ".sweep-started";
/// The file that marks the sweep's own folder (`--out`).
pub const SWEEP_DIR_MARK: &str = ".scfnet-sweep";

/// Where a sweep's paths point.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The repository.
    pub root: PathBuf,
    /// The sweep's own folder (`runs/`, `maps/`, `logs/`, scores, report).
    pub out: PathBuf,
}

impl Paths {
    /// `text` with `{root}`, `{out}` and `{data}` replaced (`{data}` by the plan's data folder).
    pub fn expand(&self, plan: &Plan, text: &str) -> String {
        let base = |t: &str| {
            t.replace("{root}", &self.root.to_string_lossy())
                .replace("{out}", &self.out.to_string_lossy())
        };
        base(&text.replace("{data}", &plan.sweep.data))
    }

    /// The data folder.
    pub fn data(&self, plan: &Plan) -> PathBuf {
        PathBuf::from(self.expand(plan, "{data}"))
    }

    /// A run's folder.
    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.out.join("runs").join(name)
    }

    /// A run's maps of one test set.
    pub fn maps_dir(&self, run: &str, set: &str) -> PathBuf {
        self.out.join("maps").join(run).join(set)
    }

    /// The scores of every run on every test set.
    pub fn scores(&self) -> PathBuf {
        self.out.join("scores.json")
    }
}

/// What a stage is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Makes data (`scfnet synth`, …).
    Prepare,
    /// Trains or distills a network.
    Train,
    /// Predicts one test set with one run's weights.
    Predict,
    /// Scores every run on every test set.
    Score,
}

/// One stage.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Shown in logs (`run SCFNet-R50`, `predict SCFNet-R50 on ECSSD`).
    pub label: String,
    /// The prepare step or run it belongs to (`score` for the scoring).
    pub owner: String,
    /// What it is.
    pub kind: Kind,
    /// Its output folder (the marker goes there) or file.
    pub output: PathBuf,
    /// Arguments of `scfnet`.
    pub args: Vec<String>,
    /// Markers that must exist before it starts (the teacher's run, the run it predicts with).
    pub needs: Vec<PathBuf>,
}

/// Where a stage stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Finished: skipped.
    Complete,
    /// Started and not finished: resumed (training) or redone.
    Partial,
    /// Not started.
    Missing,
    /// The output exists but the sweep did not make it (no [`STARTED`] or [`MARKER`] in it):
    /// refused, never removed or written into.
    Foreign,
}

impl Stage {
    /// The stage's state on disk. The scores are complete when newer than every prediction.
    pub fn state(&self, all: &[Stage]) -> State {
        match self.kind {
            Kind::Score => {
                let Ok(scored) = std::fs::metadata(&self.output).and_then(|m| m.modified()) else {
                    return State::Missing;
                };
                let newer = all.iter().filter(|s| s.kind == Kind::Predict).any(|s| {
                    std::fs::metadata(s.output.join(MARKER))
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t > scored)
                });
                if newer {
                    State::Partial
                } else {
                    State::Complete
                }
            }
            _ if self.output.join(MARKER).is_file() => State::Complete,
            _ if self.output.join(STARTED).is_file() => State::Partial,
            _ if self.output.exists() => State::Foreign,
            _ => State::Missing,
        }
    }

    /// The arguments to run now: a partial training resumes from its checkpoints (or starts over
    /// where none was written yet).
    pub fn args_now(&self, state: State) -> Vec<String> {
        let mut args = self.args.clone();
        if self.kind == Kind::Train && state == State::Partial {
            let has_checkpoint = std::fs::read_dir(RunDir::new(&self.output).checkpoints())
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            args.push(
                if has_checkpoint {
                    "--resume"
                } else {
                    "--overwrite"
                }
                .into(),
            );
        }
        args
    }
}

/// The options of a command line, `(start, end)` token ranges: `--flag`, `--flag VALUE` (a
/// next token that is not itself an option) or `--flag=VALUE`; other tokens stand alone.
fn option_spans(args: &[String]) -> Vec<(usize, usize)> {
    let is_option = |t: &str| t.starts_with("--");
    let mut spans = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let takes_value = is_option(&args[i])
            && !args[i].contains('=')
            && args.get(i + 1).is_some_and(|n| !is_option(n));
        let end = i + if takes_value { 2 } else { 1 };
        spans.push((i, end));
        i = end;
    }
    spans
}

/// The option name of the span starting at `token` (`--epochs` of `--epochs=3`), if an option.
fn option_name(token: &str) -> Option<&str> {
    token
        .starts_with("--")
        .then(|| token.split_once('=').map_or(token, |(k, _)| k))
}

/// `base` with `extra` appended, an option of `extra` replacing the same option (and its value)
/// in `base`: `--run-args 'RUN=--epochs 10'` overrides a plan's `--epochs 3` instead of giving
/// the command the option twice.
pub(super) fn with_overrides(base: Vec<String>, extra: &[String]) -> Vec<String> {
    let replaced: Vec<&str> = option_spans(extra)
        .iter()
        .filter_map(|&(s, _)| option_name(&extra[s]))
        .collect();
    let mut out = Vec::with_capacity(base.len() + extra.len());
    for (s, e) in option_spans(&base) {
        if option_name(&base[s]).is_some_and(|n| replaced.contains(&n)) {
            continue;
        }
        out.extend_from_slice(&base[s..e]);
    }
    out.extend_from_slice(extra);
    out
}

/// Every stage of `plan`, in the order they run. `device` and `run_args` (per run name) are the
/// command line's overrides.
pub fn stages(
    plan: &Plan,
    paths: &Paths,
    device: &str,
    run_args: &[(String, Vec<String>)],
) -> Vec<Stage> {
    let mut out = Vec::new();
    for p in &plan.prepare {
        out.push(Stage {
            label: format!("prepare {}", p.name),
            owner: p.name.clone(),
            kind: Kind::Prepare,
            output: PathBuf::from(paths.expand(plan, &p.creates)),
            args: p.args.iter().map(|a| paths.expand(plan, a)).collect(),
            needs: Vec::new(),
        });
    }
    let data = paths.data(plan);
    for r in &plan.runs {
        let dir = paths.run_dir(&r.name);
        let mut args: Vec<String> = Vec::new();
        let mut needs = Vec::new();
        match r.command {
            RunCommand::Train => {
                args.extend(["train".into(), "--model".into(), r.model.clone()]);
            }
            RunCommand::Distill => {
                let t = plan
                    .run(r.teacher.as_deref().expect("checked by the plan"))
                    .expect("checked by the plan");
                let weights = RunDir::new(paths.run_dir(&t.name)).weights();
                needs.push(paths.run_dir(&t.name).join(MARKER));
                args.extend([
                    "distill".into(),
                    "--teacher".into(),
                    t.model.clone(),
                    "--teacher-weights".into(),
                    weights.to_string_lossy().into_owned(),
                    "--model".into(),
                    r.model.clone(),
                ]);
            }
        }
        args.extend([
            "--data".into(),
            paths.expand(plan, &r.data),
            "--out".into(),
            dir.to_string_lossy().into_owned(),
            "--device".into(),
            device.into(),
        ]);
        if let Some(w) = &r.backbone_weights {
            args.extend(["--backbone-weights".into(), paths.expand(plan, w)]);
        }
        args.extend(r.args.iter().map(|a| paths.expand(plan, a)));
        for (name, extra) in run_args {
            if name == &r.name {
                args = with_overrides(args, extra);
            }
        }
        out.push(Stage {
            label: format!("run {}", r.name),
            owner: r.name.clone(),
            kind: Kind::Train,
            output: dir.clone(),
            args,
            needs,
        });
        let weights = RunDir::new(&dir).weights();
        for set in &plan.sweep.test_sets {
            let mut args = vec![
                "predict".into(),
                "--weights".into(),
                weights.to_string_lossy().into_owned(),
                "--model".into(),
                r.model.clone(),
                "--input".into(),
                data.join(set).join("image").to_string_lossy().into_owned(),
                "--output".into(),
                paths.maps_dir(&r.name, set).to_string_lossy().into_owned(),
                "--device".into(),
                device.into(),
            ];
            if let Some(s) = plan.sweep.predict_size {
                args.extend(["--size".into(), s.to_string()]);
            }
            args.extend(
                plan.sweep
                    .predict_args
                    .iter()
                    .map(|a| paths.expand(plan, a)),
            );
            out.push(Stage {
                label: format!("predict {} on {set}", r.name),
                owner: r.name.clone(),
                kind: Kind::Predict,
                output: paths.maps_dir(&r.name, set),
                args,
                needs: vec![dir.join(MARKER)],
            });
        }
    }
    let mut args = vec!["eval".to_string()];
    for r in &plan.runs {
        args.extend([
            "--method".into(),
            format!(
                "{}={}",
                r.name,
                paths.out.join("maps").join(&r.name).display()
            ),
        ]);
    }
    for set in &plan.sweep.test_sets {
        args.extend([
            "--dataset".into(),
            format!("{set}={}", data.join(set).join("mask").display()),
        ]);
    }
    args.extend([
        "--json".into(),
        paths.scores().to_string_lossy().into_owned(),
        "--markdown".into(),
        paths.out.join("scores.md").to_string_lossy().into_owned(),
        "--quiet".into(),
    ]);
    out.push(Stage {
        label: "score".into(),
        owner: "score".into(),
        kind: Kind::Score,
        output: paths.scores(),
        args,
        needs: Vec::new(),
    });
    out
}

/// `args` as one shell line (single-quoted where needed).
pub fn shell_line(program: &Path, args: &[String]) -> String {
    std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One shell word.
pub fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}
