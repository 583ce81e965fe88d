//! One row of a score table as scfnet's tools write and read it (`scfnet eval --json`, the
//! sweep's report): a method on a dataset, each metric under its usual abbreviation.

use serde::{Deserialize, Serialize};

use crate::dataset::DatasetScores;

/// The scores of one method on one dataset, as a serialisable row: the metrics under the
/// abbreviations of SOD papers (`MAE`, `maxF`, `Sm`, ...), `NaN` as `null` (JSON has no NaN),
/// and the counts of special images. A reader accepts rows with metrics or counts missing
/// (`None` / 0), so that every tool reads what any other wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// The dataset.
    pub dataset: String,
    /// The method (a folder of maps, a network, a run).
    pub method: String,
    /// Images scored.
    #[serde(default)]
    pub images: usize,
    /// [`DatasetScores::max_f`].
    #[serde(rename = "maxF", default)]
    pub max_f: Option<f64>,
    /// [`DatasetScores::mean_f`].
    #[serde(rename = "meanF", default)]
    pub mean_f: Option<f64>,
    /// [`DatasetScores::adaptive_f`].
    #[serde(rename = "adpF", default)]
    pub adaptive_f: Option<f64>,
    /// [`DatasetScores::s_measure`].
    #[serde(rename = "Sm", default)]
    pub s_measure: Option<f64>,
    /// [`DatasetScores::max_e`].
    #[serde(rename = "maxE", default)]
    pub max_e: Option<f64>,
    /// [`DatasetScores::mean_e`].
    #[serde(rename = "meanE", default)]
    pub mean_e: Option<f64>,
    /// [`DatasetScores::adaptive_e`].
    #[serde(rename = "adpE", default)]
    pub adaptive_e: Option<f64>,
    /// [`DatasetScores::weighted_f`].
    #[serde(rename = "wF", default)]
    pub weighted_f: Option<f64>,
    /// [`DatasetScores::mae`].
    #[serde(rename = "MAE", default)]
    pub mae: Option<f64>,
    /// [`DatasetScores::empty_gt`].
    #[serde(default)]
    pub empty_gt: usize,
    /// [`DatasetScores::excluded_empty_gt`].
    #[serde(default)]
    pub excluded_empty_gt: usize,
    /// [`DatasetScores::nan_s_measure`].
    #[serde(rename = "nan_sm", default)]
    pub nan_s_measure: usize,
    /// Pairs that could not be scored (unreadable, missing), left out of the scores.
    #[serde(default)]
    pub skipped: usize,
}

/// A finite value, or `None` for NaN and infinities.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

impl ScoreRow {
    /// The row of `scores` of `method` on `dataset`, with `skipped` pairs left out.
    pub fn new(dataset: &str, method: &str, scores: &DatasetScores, skipped: usize) -> Self {
        Self {
            dataset: dataset.to_owned(),
            method: method.to_owned(),
            images: scores.images,
            max_f: finite(scores.max_f),
            mean_f: finite(scores.mean_f),
            adaptive_f: finite(scores.adaptive_f),
            s_measure: finite(scores.s_measure),
            max_e: finite(scores.max_e),
            mean_e: finite(scores.mean_e),
            adaptive_e: finite(scores.adaptive_e),
            weighted_f: finite(scores.weighted_f),
            mae: finite(scores.mae),
            empty_gt: scores.empty_gt,
            excluded_empty_gt: scores.excluded_empty_gt,
            nan_s_measure: scores.nan_s_measure,
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_writes_nan_as_null_and_reads_rows_with_fields_missing() {
        let row = ScoreRow {
            dataset: "ECSSD".into(),
            method: "ours".into(),
            images: 2,
            mae: finite(0.25),
            s_measure: finite(f64::NAN),
            skipped: 1,
            ..ScoreRow::default()
        };
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["MAE"], 0.25);
        assert!(json["Sm"].is_null());
        assert_eq!(json["skipped"], 1);
        let back: ScoreRow = serde_json::from_value(json).unwrap();
        assert_eq!(back, row);
        let partial: ScoreRow =
            serde_json::from_str(r#"{"dataset":"a","method":"b","MAE":0.1}"#).unwrap();
        assert_eq!(
            (partial.mae, partial.max_f, partial.images),
            (Some(0.1), None, 0)
        );
    }
}
