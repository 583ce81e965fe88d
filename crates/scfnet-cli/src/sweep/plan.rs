//! A sweep plan (`sweeps/*.toml`): data preparation, the training runs (each distillation after
//! its teacher), the test sets to predict and score, and the paper's numbers to print beside ours.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The whole plan.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Settings shared by every stage.
    pub sweep: Settings,
    /// Commands that make data before any run (skipped once their folder is complete).
    #[serde(default)]
    pub prepare: Vec<Prepare>,
    /// Training runs, in order.
    #[serde(rename = "run")]
    pub runs: Vec<Run>,
}

/// Settings shared by every stage.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Name printed in the report.
    pub name: String,
    /// Folder holding the datasets (`{root}` = the repository, `{out}` = the sweep's folder).
    pub data: String,
    /// Test sets under `data`, each `NAME/{image,mask}`.
    pub test_sets: Vec<String>,
    /// Device of every `scfnet` command (`cpu`, `cuda`, `cuda:N`); `--device` overrides it.
    #[serde(default = "cpu")]
    pub device: String,
    /// Input side of the predictions (default: the network's own, 352 or 384).
    pub predict_size: Option<usize>,
    /// Extra arguments of every `scfnet predict`.
    #[serde(default)]
    pub predict_args: Vec<String>,
    /// A note printed under the report's title.
    pub note: Option<String>,
}

fn cpu() -> String {
    "cpu".into()
}

/// One data-making command.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepare {
    /// Name (for `--only` and the logs).
    pub name: String,
    /// Arguments of `scfnet` (placeholders allowed).
    pub args: Vec<String>,
    /// The folder it makes.
    pub creates: String,
}

/// Which `scfnet` command a run is.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RunCommand {
    /// `scfnet train` (full supervision).
    Train,
    /// `scfnet distill` (from the teacher run's weights).
    Distill,
}

/// One training run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Name (its folder under `runs/`, its method name in the tables).
    pub name: String,
    /// `train` or `distill`.
    pub command: RunCommand,
    /// Network: `student`, `r50` or `swinb`.
    pub model: String,
    /// Training data folder (placeholders allowed).
    pub data: String,
    /// ImageNet weights of the backbone.
    pub backbone_weights: Option<String>,
    /// The run whose `model.safetensors` teaches this one (distillation).
    pub teacher: Option<String>,
    /// Extra arguments (the recipe's overrides).
    #[serde(default)]
    pub args: Vec<String>,
    /// Wall time asked of Slurm (`HH:MM:SS` or `D-HH:MM:SS`).
    pub time: Option<String>,
    /// The paper's numbers for this run.
    pub paper: Option<Paper>,
}

/// Numbers the paper publishes for a run.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    /// Label in the paper.
    pub label: Option<String>,
    /// Parameters as printed (e.g. `26.15M`).
    pub params: Option<String>,
    /// MACs as printed (e.g. `13.15G`).
    pub macs: Option<String>,
    /// MAE per test set.
    #[serde(default)]
    pub mae: BTreeMap<String, f64>,
}

impl Plan {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = scfnet_base::read::read_text(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let plan: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        plan.check()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(plan)
    }

    /// Names unique and plain, teachers declared before their students, models known.
    pub fn check(&self) -> Result<()> {
        let mut names: Vec<&str> = Vec::new();
        for p in &self.prepare {
            plain(&p.name)?;
            if names.contains(&p.name.as_str()) {
                bail!("{} is declared twice", p.name);
            }
            names.push(&p.name);
        }
        for (i, r) in self.runs.iter().enumerate() {
            plain(&r.name)?;
            if names.contains(&r.name.as_str()) {
                bail!("{} is declared twice", r.name);
            }
            names.push(&r.name);
            if !["student", "r50", "swinb"].contains(&r.model.as_str()) {
                bail!("run {}: unknown model {:?}", r.name, r.model);
            }
            match (r.command, &r.teacher) {
                (RunCommand::Distill, None) => {
                    bail!("run {}: a distillation needs a teacher", r.name)
                }
                (RunCommand::Train, Some(_)) => {
                    bail!("run {}: only a distillation has a teacher", r.name)
                }
                (RunCommand::Distill, Some(t)) if !self.runs[..i].iter().any(|e| &e.name == t) => {
                    bail!(
                        "run {}: its teacher {t} must be a run declared before it",
                        r.name
                    )
                }
                _ => {}
            }
        }
        if self.sweep.test_sets.is_empty() {
            bail!("no test sets");
        }
        for s in &self.sweep.test_sets {
            plain(s)?;
        }
        Ok(())
    }

    /// The run called `name`.
    pub fn run(&self, name: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.name == name)
    }
}

/// Names become folder and job names: letters, digits, `-`, `_`, `.` only.
fn plain(name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("{name:?} must be a plain name (letters, digits, - _ .)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_plans_are_valid() {
        let dir = crate::checkout::root().join("sweeps");
        let paper = Plan::load(&dir.join("paper.toml")).unwrap();
        let names: Vec<&str> = paper.runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "SCFNet-R50",
                "SCFNet-SwinB",
                "FS-SCFNet",
                "KD-SCFNet-R50",
                "KD-SCFNet-SwinB"
            ]
        );
        assert_eq!(paper.sweep.test_sets.len(), 5);
        Plan::load(&dir.join("tiny.toml")).unwrap();
    }

    #[test]
    fn a_student_before_its_teacher_is_refused() {
        let text = r#"
[sweep]
name = "x"
data = "d"
test_sets = ["T"]
[[run]]
name = "kd"
command = "distill"
model = "student"
data = "d/pool"
teacher = "t"
[[run]]
name = "t"
command = "train"
model = "r50"
data = "d/train"
"#;
        let plan: Plan = toml::from_str(text).unwrap();
        let e = plan.check().unwrap_err().to_string();
        assert!(e.contains("declared before"), "{e}");
    }
}
