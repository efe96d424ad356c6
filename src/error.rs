//! The engine's one error type. Every layer returns it (or a part of it that converts with `?`),
//! and the worker turns it into text once, at the protocol boundary.

use crate::data::DataError;
use crate::model::ModelError;
use crate::text::TextError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// `config.json` and the weights: unsupported, malformed, mismatched.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// `tokenizer.json` and encoding.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A labelled CSV/TSV file.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Model files: ids, sources, downloads, archives, browser storage.
    #[error("{0}")]
    Files(String),
    /// A request that cannot be served as asked: the wrong kind of model, nothing loaded yet,
    /// settings out of range.
    #[error("{0}")]
    Usage(String),
    /// The same error, in a file the user named.
    #[error("{file}: {source}")]
    InFile { file: String, source: Box<Error> },
}

impl Error {
    /// This error as one about the file `file` (its name leads the message).
    pub fn in_file(self, file: impl Into<String>) -> Self {
        Error::InFile {
            file: file.into(),
            source: Box::new(self),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }

    pub fn files(message: impl Into<String>) -> Self {
        Error::Files(message.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
