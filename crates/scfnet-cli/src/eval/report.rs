//! Result tables: terminal, Markdown, LaTeX, CSV and JSON.

use sod_metrics::{DatasetScores, ImageSummary, ScoreRow};

/// The scores of one method on one dataset.
#[derive(Clone, Debug)]
pub struct EvalResult {
    /// Method name.
    pub method: String,
    /// Dataset name.
    pub dataset: String,
    /// Dataset scores.
    pub scores: DatasetScores,
    /// Pairs skipped because a file was missing or unreadable (`--allow-missing`).
    pub skipped: usize,
    /// Per-image scores, by image name, in dataset order.
    pub per_image: Vec<(String, ImageSummary)>,
}

/// A metric column: its label, whether higher is better, and how to read it.
pub struct Column {
    /// Label, naming the variant (maxF, meanF, …).
    pub label: &'static str,
    /// Higher is better (false for MAE).
    pub higher_is_better: bool,
    /// The value.
    pub get: fn(&DatasetScores) -> f64,
}

/// The nine columns of every table, in order.
pub const COLUMNS: [Column; 9] = [
    Column {
        label: "maxF",
        higher_is_better: true,
        get: |s| s.max_f,
    },
    Column {
        label: "meanF",
        higher_is_better: true,
        get: |s| s.mean_f,
    },
    Column {
        label: "adpF",
        higher_is_better: true,
        get: |s| s.adaptive_f,
    },
    Column {
        label: "Sm",
        higher_is_better: true,
        get: |s| s.s_measure,
    },
    Column {
        label: "maxE",
        higher_is_better: true,
        get: |s| s.max_e,
    },
    Column {
        label: "meanE",
        higher_is_better: true,
        get: |s| s.mean_e,
    },
    Column {
        label: "adpE",
        higher_is_better: true,
        get: |s| s.adaptive_e,
    },
    Column {
        label: "wF",
        higher_is_better: true,
        get: |s| s.weighted_f,
    },
    Column {
        label: "MAE",
        higher_is_better: false,
        get: |s| s.mae,
    },
];

/// One line stating every convention, printed under tables and stored in JSON.
pub const CONVENTIONS: &str = "pysodmetrics 1.6.2 conventions: pred /255 then min-max (constant kept), GT > 128; \
F: beta^2 = 0.3, 256 thresholds floor(p*255) >= t; maxF/meanF/maxE/meanE = max/mean of the per-threshold \
mean curve; adp = threshold min(2 mean(p), 1); Sm: alpha = 0.5; wF: beta^2 = 1; MAE lower is better";

/// Rank of a value within its dataset and column: 1 = best, 2 = second, 0 = neither.
fn rank(results: &[EvalResult], i: usize, col: &Column) -> u8 {
    let key = |r: &EvalResult| {
        let v = (col.get)(&r.scores);
        if col.higher_is_better {
            v
        } else {
            -v
        }
    };
    let mine = key(&results[i]);
    if mine.is_nan() {
        return 0;
    }
    let mut distinct: Vec<f64> = results
        .iter()
        .filter(|r| r.dataset == results[i].dataset)
        .map(key)
        .filter(|v| !v.is_nan())
        .collect();
    distinct.sort_by(|a, b| b.total_cmp(a));
    distinct.dedup();
    if results
        .iter()
        .filter(|r| r.dataset == results[i].dataset)
        .count()
        < 2
    {
        return 0;
    }
    match distinct.iter().position(|&v| v == mine) {
        Some(0) => 1,
        Some(1) => 2,
        _ => 0,
    }
}

fn fmt(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{v:.4}")
    }
}

/// The plain-text table printed to the terminal.
pub fn terminal(results: &[EvalResult]) -> String {
    let dw = results
        .iter()
        .map(|r| r.dataset.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let mw = results
        .iter()
        .map(|r| r.method.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!("{:<dw$}  {:<mw$}  {:>6}", "dataset", "method", "images");
    for c in &COLUMNS {
        out += &format!("  {:>7}", c.label);
    }
    out.push('\n');
    let width = out.trim_end().len();
    out += &"-".repeat(width);
    out.push('\n');
    for r in results {
        out += &format!(
            "{:<dw$}  {:<mw$}  {:>6}",
            r.dataset, r.method, r.scores.images
        );
        for c in &COLUMNS {
            out += &format!("  {:>7}", fmt((c.get)(&r.scores)));
        }
        out.push('\n');
    }
    out
}

fn marked(
    results: &[EvalResult],
    i: usize,
    c: &Column,
    best: (&str, &str),
    second: (&str, &str),
) -> String {
    let v = fmt((c.get)(&results[i].scores));
    match rank(results, i, c) {
        1 => format!("{}{v}{}", best.0, best.1),
        2 => format!("{}{v}{}", second.0, second.1),
        _ => v,
    }
}

/// A Markdown table; best per dataset and column in bold, second underlined.
pub fn markdown(results: &[EvalResult]) -> String {
    let mut out = String::from("| Dataset | Method | Images |");
    for c in &COLUMNS {
        out += &format!(
            " {}{} |",
            c.label,
            if c.higher_is_better { " ↑" } else { " ↓" }
        );
    }
    out += "\n|---|---|---:|";
    out += &"---:|".repeat(COLUMNS.len());
    out.push('\n');
    for (i, r) in results.iter().enumerate() {
        out += &format!("| {} | {} | {} |", r.dataset, r.method, r.scores.images);
        for c in &COLUMNS {
            out += &format!(
                " {} |",
                marked(results, i, c, ("**", "**"), ("<u>", "</u>"))
            );
        }
        out.push('\n');
    }
    out += &format!("\n{CONVENTIONS}. Best per dataset in bold, second underlined.\n");
    out
}

fn latex_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '_' | '&' | '%' | '$' | '#' | '{' | '}' => format!("\\{c}"),
            '~' => "\\textasciitilde{}".to_owned(),
            '^' => "\\textasciicircum{}".to_owned(),
            '\\' => "\\textbackslash{}".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A LaTeX `tabular`; best per dataset and column in bold, second underlined.
pub fn latex(results: &[EvalResult]) -> String {
    let mut out = format!(
        "% {CONVENTIONS}\n\\begin{{tabular}}{{ll{}}}\n\\hline\n",
        "r".repeat(COLUMNS.len())
    );
    out += "Dataset & Method";
    for c in &COLUMNS {
        out += &format!(
            " & {}$\\{}$",
            c.label,
            if c.higher_is_better {
                "uparrow"
            } else {
                "downarrow"
            }
        );
    }
    out += " \\\\\n\\hline\n";
    for (i, r) in results.iter().enumerate() {
        if i > 0 && results[i - 1].dataset != r.dataset {
            out += "\\hline\n";
        }
        out += &format!("{} & {}", latex_escape(&r.dataset), latex_escape(&r.method));
        for c in &COLUMNS {
            out += &format!(
                " & {}",
                marked(results, i, c, ("\\textbf{", "}"), ("\\underline{", "}"))
            );
        }
        out += " \\\\\n";
    }
    out += "\\hline\n\\end{tabular}\n";
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// CSV with one row per method and dataset (full precision).
pub fn csv(results: &[EvalResult]) -> String {
    let mut out = String::from("dataset,method,images");
    for c in &COLUMNS {
        out += &format!(",{}", c.label);
    }
    out += ",empty_gt,excluded_empty_gt,nan_sm,skipped\n";
    for r in results {
        out += &format!(
            "{},{},{}",
            csv_field(&r.dataset),
            csv_field(&r.method),
            r.scores.images
        );
        for c in &COLUMNS {
            out += &format!(",{}", (c.get)(&r.scores));
        }
        let s = &r.scores;
        out += &format!(
            ",{},{},{},{}\n",
            s.empty_gt, s.excluded_empty_gt, s.nan_s_measure, r.skipped
        );
    }
    out
}

/// Per-image scores as CSV: one row per image of every method and dataset.
pub fn per_image_csv(results: &[EvalResult]) -> String {
    let mut out =
        String::from("dataset,method,image,MAE,Sm,wF,adpF,adpE,maxF,maxE,gt_foreground\n");
    for r in results {
        for (name, s) in &r.per_image {
            out += &format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(&r.dataset),
                csv_field(&r.method),
                csv_field(name),
                s.mae,
                s.s_measure,
                s.weighted_f,
                s.adaptive_f,
                s.adaptive_e,
                s.max_f,
                s.max_e,
                s.gt_foreground
            );
        }
    }
    out
}

/// JSON: `{"conventions": ..., "results": [...]}`, NaN written as `null`.
pub fn json(results: &[EvalResult]) -> String {
    let rows: Vec<ScoreRow> = results
        .iter()
        .map(|r| ScoreRow::new(&r.dataset, &r.method, &r.scores, r.skipped))
        .collect();
    let doc = serde_json::json!({ "conventions": CONVENTIONS, "results": rows });
    serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use sod_metrics::{Accumulator, GrayMap};

    fn result(method: &str, dataset: &str, pred: Vec<u8>) -> EvalResult {
        let gt = GrayMap::new(4, 2, vec![0, 0, 255, 255, 0, 0, 255, 255]).unwrap();
        let mut acc = Accumulator::new();
        acc.add(&GrayMap::new(4, 2, pred).unwrap(), &gt).unwrap();
        EvalResult {
            method: method.into(),
            dataset: dataset.into(),
            scores: acc.finish(),
            skipped: 0,
            per_image: vec![("x".into(), acc.images()[0].clone())],
        }
    }

    fn sample() -> Vec<EvalResult> {
        vec![
            result("good", "D1", vec![0, 0, 255, 255, 0, 0, 255, 255]),
            result("fair", "D1", vec![0, 60, 200, 255, 30, 0, 180, 255]),
            result("poor", "D1", vec![255, 90, 20, 255, 30, 0, 180, 0]),
            result("poor", "D2", vec![255, 90, 20, 255, 30, 0, 180, 0]),
        ]
    }

    #[test]
    fn best_and_second_are_marked_per_dataset() {
        let md = markdown(&sample());
        let good = md.lines().find(|l| l.contains("| good |")).unwrap();
        let fair = md.lines().find(|l| l.contains("| fair |")).unwrap();
        assert!(good.contains("**0.0000**"), "{good}");
        assert!(fair.contains("<u>"), "{fair}");
        // A dataset with a single method marks nothing.
        let d2 = md.lines().find(|l| l.starts_with("| D2 |")).unwrap();
        assert!(!d2.contains("**") && !d2.contains("<u>"), "{d2}");
        let tex = latex(&sample());
        assert!(
            tex.contains("\\textbf{0.0000}") && tex.contains("\\underline{"),
            "{tex}"
        );
    }

    #[test]
    fn every_format_labels_every_variant() {
        let rs = sample();
        for text in [
            terminal(&rs),
            markdown(&rs),
            latex(&rs),
            csv(&rs),
            json(&rs),
        ] {
            for c in &COLUMNS {
                assert!(text.contains(c.label), "{} missing in {text}", c.label);
            }
        }
        let parsed: serde_json::Value = serde_json::from_str(&json(&rs)).unwrap();
        assert_eq!(parsed["results"][0]["MAE"], 0.0);
    }
}
