//! Errors of the online crate.

use fstore_core::ErrorKind;

/// What can go wrong reading or writing online values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entity key that does not fit the entity's key columns.
    #[error("{0}")]
    BadKey(String),
    /// A request that cannot be served as asked: a malformed key, too many keys, a value
    /// of the wrong type; the message says what to change.
    #[error("{0}")]
    BadRequest(String),
    /// A request naming a group, feature, model or object the served registry lacks.
    #[error("{0}")]
    NotFound(String),
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
            Error::BadKey(_) | Error::BadUrl(_) | Error::BadRequest(_) => ErrorKind::Invalid,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Registry(e) => e.kind(),
            Error::Core(e) => e.kind(),
        }
    }
}
