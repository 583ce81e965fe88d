//! Command-line arguments of `scfnet eval`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How to treat predictions whose size differs from their GT.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ResizeArg {
    /// Resize the prediction to the GT size (f64 bilinear, OpenCV geometry).
    Bilinear,
    /// Refuse the pair with an error.
    Refuse,
}

pub use crate::figures::PlotFormat;

/// `scfnet eval`: score saliency maps against GT masks.
///
/// One method on one dataset: `--pred DIR --gt DIR`. Several at once: repeat
/// `--method NAME=DIR` and `--dataset NAME=GT_DIR` (or use `--config FILE`); the predictions of
/// method M on dataset D are read from `DIR/D`, from `DIR` with `{dataset}` replaced by D, or from
/// `DIR` itself when there is a single dataset. Files match by name without extension, after the
/// prefix/suffix rules.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Prediction folder of a single method.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["methods", "config"])]
    pub pred: Option<PathBuf>,
    /// Ground-truth folder of a single dataset.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["datasets", "config"])]
    pub gt: Option<PathBuf>,
    /// A method and its prediction folder (repeatable); `{dataset}` in DIR is replaced by each
    /// dataset name.
    #[arg(long = "method", value_name = "NAME=DIR")]
    pub methods: Vec<String>,
    /// A dataset and its ground-truth folder (repeatable).
    #[arg(long = "dataset", value_name = "NAME=DIR")]
    pub datasets: Vec<String>,
    /// JSON file listing methods and datasets: {"methods": [{"name": .., "dir": ..}],
    /// "datasets": [{"name": .., "gt": ..}]}; relative paths are relative to the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Prefix of prediction file names, removed before matching.
    #[arg(long, default_value = "")]
    pub pred_prefix: String,
    /// Suffix of prediction file names (before the extension), removed before matching.
    #[arg(long, default_value = "")]
    pub pred_suffix: String,
    /// Prefix of GT file names, removed before matching.
    #[arg(long, default_value = "")]
    pub gt_prefix: String,
    /// Suffix of GT file names (before the extension), removed before matching.
    #[arg(long, default_value = "")]
    pub gt_suffix: String,
    /// Score the pairs that exist when some files are missing or unreadable (they are listed).
    #[arg(long)]
    pub allow_missing: bool,
    /// What to do when a prediction's size differs from its GT.
    #[arg(long, value_enum, default_value = "bilinear")]
    pub resize: ResizeArg,
    /// Leave images whose GT is empty out of the scores (they are counted).
    #[arg(long)]
    pub exclude_empty_gt: bool,
    /// Write the results as JSON (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the results as CSV (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write a Markdown table, best per column in bold, second underlined.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write a LaTeX table, best per column in bold, second underlined.
    #[arg(long, value_name = "FILE")]
    pub latex: Option<PathBuf>,
    /// Write per-image scores as CSV.
    #[arg(long, value_name = "FILE")]
    pub per_image: Option<PathBuf>,
    /// Write the 256-point precision, recall, F and E curves (`.csv` or `.json`).
    #[arg(long, value_name = "FILE")]
    pub curves: Option<PathBuf>,
    /// Draw PR and F-threshold curves of every dataset into this folder.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Image format of the plots.
    #[arg(long, value_enum, default_value = "png")]
    pub plot_format: PlotFormat,
    /// Do not print the terminal table.
    #[arg(long, short)]
    pub quiet: bool,
}
