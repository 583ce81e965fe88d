//! `results.md`, `results.tex` and `results.json`: each run's parameters, MACs and scores on every
//! test set, with the paper's numbers beside ours.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sod_metrics::ScoreRow;

use super::plan::Plan;

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// Run name.
    pub name: String,
    /// Network.
    pub model: String,
    /// Trainable parameters (ours, `scfnet info`).
    pub params: u64,
    /// Multiply-accumulates per image at the network's test size (ours).
    pub macs: u64,
    /// Training wall time in seconds (all invocations together), where recorded.
    pub train_seconds: Option<f64>,
    /// Our scores per test set (the rows `scfnet eval --json` wrote).
    pub scores: BTreeMap<String, ScoreRow>,
    /// The paper's label, parameters, MACs and MAE per test set.
    pub paper: Option<PaperRow>,
}

/// The paper's numbers of a run.
#[derive(Clone, Debug, Serialize)]
pub struct PaperRow {
    /// Label in the paper.
    pub label: String,
    /// As printed.
    pub params: Option<String>,
    /// As printed.
    pub macs: Option<String>,
    /// MAE per test set.
    pub mae: BTreeMap<String, f64>,
}

/// The rows of an `scfnet eval --json` file.
#[derive(Deserialize)]
struct EvalJson {
    results: Vec<ScoreRow>,
}

/// Reads `scfnet eval --json` output into (run, set) → scores.
pub fn read_scores(path: &Path) -> Result<BTreeMap<(String, String), ScoreRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: EvalJson =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(doc
        .results
        .into_iter()
        .map(|r| ((r.method.clone(), r.dataset.clone()), r))
        .collect())
}

/// The rows of the report.
pub fn rows(
    plan: &Plan,
    scores: &BTreeMap<(String, String), ScoreRow>,
    info: &BTreeMap<String, (u64, u64)>,
    timings: &BTreeMap<String, f64>,
) -> Vec<RunRow> {
    plan.runs
        .iter()
        .map(|r| {
            let (params, macs) = info.get(&r.model).copied().unwrap_or_default();
            RunRow {
                name: r.name.clone(),
                model: r.model.clone(),
                params,
                macs,
                train_seconds: timings.get(&format!("run {}", r.name)).copied(),
                scores: plan
                    .sweep
                    .test_sets
                    .iter()
                    .filter_map(|s| {
                        scores
                            .get(&(r.name.clone(), s.clone()))
                            .map(|x| (s.clone(), x.clone()))
                    })
                    .collect(),
                paper: r.paper.as_ref().map(|p| PaperRow {
                    label: p.label.clone().unwrap_or_else(|| r.name.clone()),
                    params: p.params.clone(),
                    macs: p.macs.clone(),
                    mae: p.mae.clone(),
                }),
            }
        })
        .collect()
}

/// A score with three decimals; `NaN` where the metric is undefined (`null` in the JSON).
fn three(v: Option<f64>) -> String {
    v.map_or_else(|| "NaN".into(), |v| format!("{v:.3}"))
}

fn millions(n: u64) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

fn giga(n: u64) -> String {
    format!("{:.2}G", n as f64 / 1e9)
}

fn duration(s: f64) -> String {
    // An empty sum is -0.0.
    let s = s.max(0.0).abs();
    if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

/// The paper's MAE of run `r` on `set`, where published.
fn paper_mae(r: &RunRow, set: &str) -> Option<f64> {
    r.paper.as_ref().and_then(|p| p.mae.get(set)).copied()
}

/// A Markdown section: a row per run, a column per test set, `cell` filling each.
fn per_set_table(
    title: &str,
    sets: &[String],
    rows: &[RunRow],
    cell: impl Fn(&RunRow, &str) -> String,
) -> String {
    let mut s = format!("\n## {title}\n\n| run |");
    for set in sets {
        s.push_str(&format!(" {set} |"));
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(sets.len()));
    s.push('\n');
    for r in rows {
        s.push_str(&format!("| {} |", r.name));
        for set in sets {
            s.push_str(&format!(" {} |", cell(r, set)));
        }
        s.push('\n');
    }
    s
}

/// The Markdown report.
pub fn markdown(plan: &Plan, rows: &[RunRow], stage_seconds: f64) -> String {
    let sets = &plan.sweep.test_sets;
    let mut s = format!("# Sweep: {}\n\n", plan.sweep.name);
    if let Some(n) = &plan.sweep.note {
        s.push_str(&format!("{n}\n\n"));
    }
    s.push_str(&format!(
        "Time of all stages, every invocation together: {} (a cluster may run some side by side).\n\n",
        duration(stage_seconds)
    ));
    s.push_str("## Networks\n\n| run | network | params (ours / paper) | MACs (ours / paper) | training time |\n|---|---|---:|---:|---:|\n");
    for r in rows {
        let (pp, pm) = r
            .paper
            .as_ref()
            .map(|p| {
                (
                    p.params.clone().unwrap_or("-".into()),
                    p.macs.clone().unwrap_or("-".into()),
                )
            })
            .unwrap_or(("-".into(), "-".into()));
        s.push_str(&format!(
            "| {} | {} | {} / {pp} | {} / {pm} | {} |\n",
            r.name,
            r.model,
            millions(r.params),
            giga(r.macs),
            r.train_seconds.map(duration).unwrap_or("-".into())
        ));
    }
    s.push_str(&per_set_table(
        "MAE (lower is better): ours / paper",
        sets,
        rows,
        |r, set| {
            let ours = r.scores.get(set).map(|x| three(x.mae));
            let paper = paper_mae(r, set).map(|m| format!("{m:.3}"));
            format!(
                "{} / {}",
                ours.unwrap_or("-".into()),
                paper.unwrap_or("-".into())
            )
        },
    ));
    s.push_str(&per_set_table(
        "maxF / Sm / meanE (ours, higher is better)",
        sets,
        rows,
        |r, set| {
            r.scores
                .get(set)
                .map(|x| {
                    format!(
                        "{} / {} / {}",
                        three(x.max_f),
                        three(x.s_measure),
                        three(x.mean_e)
                    )
                })
                .unwrap_or("-".into())
        },
    ));
    s
}

/// The LaTeX table (MAE ours / paper, and our maxF, Sm, meanE).
pub fn latex(plan: &Plan, rows: &[RunRow]) -> String {
    let sets = &plan.sweep.test_sets;
    let esc = |t: &str| {
        t.replace('_', "\\_")
            .replace('&', "\\&")
            .replace('%', "\\%")
    };
    let mut s = String::from("% Generated by scfnet sweep.\n\\begin{tabular}{ll");
    s.push_str(&"c".repeat(sets.len() * 4));
    s.push_str("}\n\\hline\nRun & Params / MACs");
    for set in sets {
        s.push_str(&format!(" & \\multicolumn{{4}}{{c}}{{{}}}", esc(set)));
    }
    s.push_str(" \\\\\n &");
    for _ in sets {
        s.push_str(" & MAE & paper & $F_{max}$ & $S_m$");
    }
    s.push_str(" \\\\\n\\hline\n");
    for r in rows {
        s.push_str(&format!(
            "{} & {} / {}",
            esc(&r.name),
            millions(r.params),
            giga(r.macs)
        ));
        for set in sets {
            let x = r.scores.get(set);
            let paper = paper_mae(r, set)
                .map(|m| format!("{m:.3}"))
                .unwrap_or("--".into());
            match x {
                Some(x) => s.push_str(&format!(
                    " & {} & {paper} & {} & {}",
                    three(x.mae),
                    three(x.max_f),
                    three(x.s_measure)
                )),
                None => s.push_str(&format!(" & -- & {paper} & -- & --")),
            }
        }
        s.push_str(" \\\\\n");
    }
    s.push_str("\\hline\n\\end{tabular}\n");
    s
}
