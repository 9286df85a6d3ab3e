//! Errors of the batch engine.

/// What can go wrong producing samples: the user's mistakes first, then internal ones.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A missing path, a Parquet column whose type differs from its declaration, …
    #[error("{0}")]
    Input(String),
    /// An invariant of the engine broke: a bug, not the user's input.
    #[error("internal: {0}")]
    Internal(String),
    #[error(transparent)]
    Registry(#[from] fstore_registry::Error),
    #[error("batch engine: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl Error {
    /// True when the user can fix it (exit code 2); false for internal errors (exit 1).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Input(_) => true,
            Error::Registry(e) => e.is_user_error(),
            Error::Internal(_) | Error::DataFusion(_) => false,
        }
    }
}

/// Wraps Arrow errors, which only an engine bug produces here.
pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}
