//! Errors of the batch engine.

/// What can go wrong producing samples: the user's mistakes first, then internal ones.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A missing path, a Parquet column whose type differs from its declaration, …
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Registry(#[from] fstore_registry::Error),
    #[error("batch engine: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}
