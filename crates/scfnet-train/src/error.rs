//! Errors of training: each names the step, file or tensor at fault.

use std::path::PathBuf;

/// What stopped a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Data could not be found, validated or loaded.
    #[error(transparent)]
    Data(#[from] scfnet_data::DataError),
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint is missing, incomplete or does not fit the network.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite; the last good checkpoint is left intact.
    #[error("step {step} (epoch {epoch}): the loss part {part} is {value}; stopping (the last good checkpoint is kept)")]
    NonFinite {
        /// Global step (0-based).
        step: usize,
        /// Epoch (0-based).
        epoch: usize,
        /// Which part: `total`, `p2` … `p5`.
        part: String,
        /// The value.
        value: f64,
    },
    /// The weights became NaN or infinite (e.g. a learning rate far too large); nothing was
    /// written, the last good checkpoint is left intact.
    #[error("step {step}: {} tensor(s) hold NaN or infinite values after the update ({}); nothing written, the last good checkpoint is kept", names.len(), names.iter().take(5).cloned().collect::<Vec<_>>().join(", "))]
    NonFiniteWeights {
        /// Global step (the number of updates made).
        step: usize,
        /// The tensors.
        names: Vec<String>,
    },
    /// The network could not produce a map for an image.
    #[error("{path}: {source}")]
    Inference {
        /// The image.
        path: PathBuf,
        /// What went wrong.
        source: Box<scfnet_model::PredictError>,
    },
    /// A map or mask could not be scored.
    #[error("{path}: {source}")]
    Metrics {
        /// The image or mask.
        path: PathBuf,
        /// What the metrics said.
        source: sod_metrics::MetricsError,
    },
    /// An inconsistent setting.
    #[error("{0}")]
    Config(String),
    /// A new run was asked for in a folder that holds an earlier run's outputs (its log would be
    /// truncated and its weights replaced).
    #[error("{}: holds an earlier run ({})", dir.display(), found.join(", "))]
    EarlierRun {
        /// The run folder.
        dir: PathBuf,
        /// The earlier run's outputs found there.
        found: Vec<String>,
    },
    /// A resumed run was asked for in a folder with no checkpoint to continue from but with an
    /// earlier run's weights or log (starting afresh would replace them).
    #[error(
        "{}: no checkpoint to resume from, but it holds an earlier run's {}",
        dir.display(),
        found.join(", ")
    )]
    NothingToResume {
        /// The run folder.
        dir: PathBuf,
        /// The earlier run's outputs found there.
        found: Vec<String>,
    },
    /// A resumed run was given other training data than the run it continues (its sample order
    /// and schedule would silently change).
    #[error(
        "{}: this run trains on {trained_on}, not on {given}; resume it with the same data, or \
         start a new run",
        checkpoint.display()
    )]
    OtherData {
        /// The checkpoint that would be resumed.
        checkpoint: PathBuf,
        /// The data it was trained on.
        trained_on: String,
        /// The data given now.
        given: String,
    },
}

/// Result with a [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
