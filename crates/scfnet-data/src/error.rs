//! Errors of the data crate: every one names the file or folder at fault.

use std::path::PathBuf;

/// What went wrong while finding, validating or loading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An image or mask could not be decoded.
    #[error("{path}: cannot decode image: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// An image larger than the pixel limit (`scfnet_base::max_pixels`), refused from its header
    /// or its encoded size before anything is decoded.
    #[error("{path}: cannot decode image: {message}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size and the limit.
        message: String,
    },
    /// An image could not be written.
    #[error("{path}: cannot write image: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the encoder said.
        message: String,
    },
    /// A dataset folder has no usable samples or a malformed layout.
    #[error("{path}: {message}")]
    Layout {
        /// The dataset root or list file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Up-front validation found problems; all of them are listed.
    #[error("{root}: {} problem(s) found before training:\n  {}", problems.len(), problems.join("\n  "))]
    Invalid {
        /// The dataset root.
        root: PathBuf,
        /// One line per problem, each naming its file.
        problems: Vec<String>,
    },
    /// A wrong argument (batch size 0, an empty size list, …).
    #[error("{0}")]
    Config(String),
    /// A tensor could not be built.
    #[error("building a batch tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The loader's worker threads stopped unexpectedly.
    #[error("the data loader's worker stopped: {0}")]
    Worker(String),
}

/// Result with a [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn layout(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Layout {
            path: path.into(),
            message: message.into(),
        }
    }
}
