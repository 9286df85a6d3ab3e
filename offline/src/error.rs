//! Errors of the batch engine.

use datafusion::error::DataFusionError;
use fstore_core::ErrorKind;

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
    #[error(transparent)]
    Core(#[from] fstore_core::Error),
    #[error("batch engine: {0}")]
    DataFusion(#[from] DataFusionError),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Input(_) => ErrorKind::Invalid,
            Error::Registry(e) => e.kind(),
            Error::Core(e) => e.kind(),
            // An unreadable or corrupt input file, or a memory limit too small for the job.
            Error::DataFusion(e) => match e.find_root() {
                DataFusionError::ParquetError(_)
                | DataFusionError::IoError(_)
                | DataFusionError::ObjectStore(_) => ErrorKind::Invalid,
                DataFusionError::ResourcesExhausted(_) => ErrorKind::FailedPrecondition,
                _ => ErrorKind::Internal,
            },
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// The error as the user should read it: a memory limit too small for the job names the
/// option that raises it.
impl Error {
    pub fn user_message(&self) -> String {
        match self {
            Error::DataFusion(e) => match e.find_root() {
                DataFusionError::ResourcesExhausted(m) => format!(
                    "the memory limit is too small for this job: raise --memory-limit ({m})"
                ),
                _ => self.to_string(),
            },
            _ => self.to_string(),
        }
    }
}

/// Wraps Arrow errors, which only an engine bug produces here.
pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}
