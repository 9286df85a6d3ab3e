//! Errors of the registry crate.

use std::path::PathBuf;

use fstore_core::ErrorKind;

/// Everything that can go wrong in the registry: the user's mistakes first, then internal ones.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that the registry does not hold.
    #[error("unknown {kind} \"{name}\"{}", known_hint(.known))]
    Unknown {
        kind: &'static str,
        name: String,
        known: Vec<String>,
    },
    /// `apply` refused a change; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    /// An expression or schema that does not type-check.
    #[error("{0}")]
    Invalid(String),
    /// The registry folder is missing or holds no version yet.
    #[error("no registry at {}: run `fstore apply DIR --registry {}` first", .0.display(), .0.display())]
    NoRegistry(PathBuf),
    /// Reading or writing the registry's files.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A snapshot file that does not parse: the registry was edited by hand or is damaged.
    #[error("registry snapshot {} does not parse: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Output that cannot be written where the user asked (a folder that cannot be created).
    #[error("{0}")]
    Output(String),
    /// A bug or an unexpected failure of a library (Parquet, Arrow).
    #[error("internal: {0}")]
    Internal(String),
    /// DataFusion failed while planning or evaluating an expression.
    #[error("expression engine: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Core(#[from] fstore_core::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unknown { .. } => ErrorKind::NotFound,
            Error::Refused(_) | Error::NoRegistry(_) => ErrorKind::FailedPrecondition,
            Error::Invalid(_) | Error::Corrupt { .. } | Error::Output(_) => ErrorKind::Invalid,
            Error::Io { .. } | Error::Internal(_) | Error::DataFusion(_) => ErrorKind::Internal,
            Error::Core(e) => e.kind(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

/// Result alias of the registry crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
