//! The trainer's error: every variant names what was wrong and where (file and
//! line, tensor, config field), so the CLI can print it as is.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line of a JSONL file could not be used.
    #[error("{}:{line}: {message}", path.display())]
    Line { path: PathBuf, line: usize, message: String },
    /// A row of a Parquet file (or of a JSON array) could not be used.
    #[error("{}: row {row}: {message}", path.display())]
    Row { path: PathBuf, row: usize, message: String },
    /// A file could not be read, written or understood.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// A tensor is missing, unexpected, or has the wrong shape or type.
    #[error("tensor {name}: {message}")]
    Tensor { name: String, message: String },
    /// A configuration value is missing or out of range.
    #[error("config: {0}")]
    Config(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Code cannot be run safely on this host (no sandbox), or the sandbox failed.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// The caller asked for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Runtime(#[from] aha_runtime::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn file(path: impl AsRef<Path>, message: impl ToString) -> Error {
        Error::File { path: path.as_ref().to_path_buf(), message: message.to_string() }
    }

    pub fn tensor(name: impl Into<String>, message: impl ToString) -> Error {
        Error::Tensor { name: name.into(), message: message.to_string() }
    }
}

/// Maps an I/O (or any displayable) error to one naming `path`.
pub fn at<E: ToString>(path: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::file(path, e.to_string())
}
