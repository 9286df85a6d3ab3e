//! Errors of the definition language crate.

use std::path::PathBuf;

use fstore_core::ErrorKind;

use crate::diag::Diagnostics;

/// Loading definitions fails on unreadable paths or on mistakes in the definitions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more mistakes in the definitions, each at file:line:col.
    #[error("{0}")]
    Definitions(Diagnostics),
    /// The folder holds no `*.sql` file.
    #[error("no definitions (*.sql files) in {}", .0.display())]
    NoDefinitions(PathBuf),
    /// A file or folder that cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Every dsl error is the user's to fix.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Definitions(_) => ErrorKind::Invalid,
            Error::NoDefinitions(_) | Error::Read { .. } => ErrorKind::NotFound,
        }
    }
}
