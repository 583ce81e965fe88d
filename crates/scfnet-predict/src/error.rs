//! What can go wrong in a prediction run, before or around the per-image failures (which are
//! reported as lines, one per image, and do not stop the run).

use std::path::PathBuf;

/// An error of a prediction run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is neither a file nor a folder.
    #[error("{}: no such file or folder", .0.display())]
    NoInput(PathBuf),
    /// A folder without images.
    #[error("{}: no images found (looked for {extensions})", dir.display())]
    NoImages {
        /// The folder.
        dir: PathBuf,
        /// The extensions looked for.
        extensions: String,
    },
    /// Finding or decoding an image failed.
    #[error(transparent)]
    Data(#[from] scfnet_data::DataError),
    /// No source of weights was given.
    #[error("no weights given: a weights file or folder, a hub repository, or synthetic weights")]
    NoWeights,
    /// The network asked for is not the one the weights name (a folder's `config.json`, or a
    /// file's metadata).
    #[error(
        "network {asked} asked for, but {source_label} holds weights for {found} (as its {} or \
         the file's metadata says)",
        scfnet_model::CONFIG_FILE
    )]
    ModelMismatch {
        /// The network asked for.
        asked: scfnet_model::ModelKind,
        /// The network of the weights.
        found: scfnet_model::ModelKind,
        /// The weights' folder or repository.
        source_label: String,
    },
    /// A weights folder's or repository's `config.json` is unusable.
    #[error(transparent)]
    Config(#[from] scfnet_model::HubConfigError),
    /// The weights could not be found, read, or do not fit the network.
    #[error(transparent)]
    Weights(#[from] scfnet_backbones::WeightsError),
    /// Building or running the network failed.
    #[error(transparent)]
    Predict(#[from] scfnet_model::PredictError),
    /// An internal inconsistency (a bug).
    #[error("{0} (a bug)")]
    Internal(String),
}

/// Result with an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
