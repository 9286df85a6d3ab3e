//! Errors of the online crate.

use fstore_core::ErrorKind;

/// What can go wrong reading or writing online values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entity key that does not fit the entity's key columns.
    #[error("{0}")]
    BadKey(String),
    /// An online store URL that cannot be used.
    #[error("{0}")]
    BadUrl(String),
    /// The store cannot be reached or failed an operation; retrying may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug, not the user's input.
    #[error("internal: {0}")]
    Internal(String),
    /// A registry object that cannot be served.
    #[error(transparent)]
    Registry(#[from] fstore_registry::Error),
    /// A value from the store that does not decode.
    #[error(transparent)]
    Core(#[from] fstore_core::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadKey(_) | Error::BadUrl(_) => ErrorKind::Invalid,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Registry(e) => e.kind(),
            Error::Core(e) => e.kind(),
        }
    }
}
