//! Errors of weight reading, conversion and download.

use std::path::PathBuf;

/// What can go wrong while reading, converting or fetching weights. Every variant names the
/// file (and the tensor or repository) at fault.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid (or supported) Python pickle.
    #[error("{}: not a readable Paddle checkpoint: {message} (at byte {offset})", path.display())]
    Pickle {
        /// The file.
        path: PathBuf,
        /// Byte offset where reading failed.
        offset: usize,
        /// What was wrong.
        message: String,
    },
    /// A safetensors file that cannot be used: unreadable header, cut short, unreadable tensor.
    #[error("{}: {message}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Tensors the model needs are absent from the file.
    #[error("{}: missing {} tensor(s): {}", path.display(), names.len(), names.join(", "))]
    Missing {
        /// The file.
        path: PathBuf,
        /// Our names of the missing tensors.
        names: Vec<String>,
    },
    /// The file has tensors the model does not use (and the mapping does not drop).
    #[error("{}: {} unexpected tensor(s): {}", path.display(), names.len(), names.join(", "))]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// Their names in the file.
        names: Vec<String>,
    },
    /// A tensor has the wrong shape.
    #[error("{}: tensor {name} has shape {found:?}, the model expects {expected:?}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor (our name).
        name: String,
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype we cannot convert.
    #[error("{}: tensor {name} has unsupported dtype {dtype}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The numpy dtype code.
        dtype: String,
    },
    /// Tensors hold NaN or infinite values.
    #[error("{}: {} tensor(s) hold NaN or infinite values: {}", path.display(), names.len(), names.join(", "))]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensors.
        names: Vec<String>,
    },
    /// A tensor's data is shorter or longer than its shape and dtype need.
    #[error("{}: tensor {name} of shape {shape:?} ({dtype}) needs {expected} bytes, the file holds {found}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The numpy dtype code.
        dtype: String,
        /// Bytes the shape needs (`usize::MAX` when the product overflows).
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A download or cache lookup failed.
    #[error("{repo} ({revision}) file {file}: {message}")]
    Hub {
        /// Repository id.
        repo: String,
        /// Revision.
        revision: String,
        /// File in the repository.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// An error from candle (e.g. while writing safetensors).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias for weight operations.
pub type Result<T> = std::result::Result<T, WeightsError>;
