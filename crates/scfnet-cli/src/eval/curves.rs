//! Exporting the 256-point curves.

use std::path::Path;

use serde::Serialize;

use super::report::EvalResult;

#[derive(Serialize)]
struct CurveSet<'a> {
    dataset: &'a str,
    method: &'a str,
    /// Threshold t of each point: the binary map is floor(p * 255) >= t.
    thresholds: Vec<u32>,
    precision: &'a [f64],
    recall: &'a [f64],
    f_measure: &'a [f64],
    e_measure: &'a [f64],
}

/// The curves of every result, as CSV (long format) or JSON depending on the file extension.
pub fn render(path: &Path, results: &[EvalResult]) -> String {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let sets: Vec<CurveSet> = results
            .iter()
            .map(|r| CurveSet {
                dataset: &r.dataset,
                method: &r.method,
                thresholds: (0..256).collect(),
                precision: &r.scores.curves.precision,
                recall: &r.scores.curves.recall,
                f_measure: &r.scores.curves.f_measure,
                e_measure: &r.scores.curves.e_measure,
            })
            .collect();
        // NaN (empty dataset) is not valid JSON: serde_json writes it as null.
        serde_json::to_string_pretty(&sets).expect("JSON of plain values") + "\n"
    } else {
        let mut out =
            String::from("dataset,method,threshold,precision,recall,f_measure,e_measure\n");
        for r in results {
            let c = &r.scores.curves;
            for t in 0..c.precision.len() {
                out += &format!(
                    "{},{},{t},{},{},{},{}\n",
                    r.dataset,
                    r.method,
                    c.precision[t],
                    c.recall[t],
                    c.f_measure[t],
                    c.e_measure[t]
                );
            }
        }
        out
    }
}
