//! Errors of the semantic core, and the kinds every fstore error reports.
//!
//! Each crate's `Error` says its [`ErrorKind`]; the binary maps kinds to exit codes
//! ([`ErrorKind::exit_code`]) and the server maps them to gRPC codes, each in one place.

/// What sort of failure an error is, for whoever has to act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user's input is wrong: a definition, an argument, a value, a request.
    Invalid,
    /// A named thing that does not exist (a spec, a group, a feature, a path).
    NotFound,
    /// The request is valid but the system is not in a state to serve it (no registry yet,
    /// state of another spec, a refused change).
    FailedPrecondition,
    /// A server or store cannot be reached now; retrying may succeed.
    Unavailable,
    /// Stored data that does not decode: damaged or written by something else.
    DataLoss,
    /// A bug or an unexpected library failure.
    Internal,
}

impl ErrorKind {
    /// Whether the user has something to fix.
    pub fn is_user(self) -> bool {
        matches!(
            self,
            ErrorKind::Invalid | ErrorKind::NotFound | ErrorKind::FailedPrecondition
        )
    }

    /// The process exit code: 2 for the user's mistakes, 1 for everything else.
    pub fn exit_code(self) -> u8 {
        if self.is_user() { 2 } else { 1 }
    }
}

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value that does not decode: wrong fingerprint, truncated, bad UTF-8.
    #[error("corrupt online value: {0}")]
    Codec(String),
    /// An expression, value or schema that does not type-check.
    #[error("{0}")]
    Invalid(String),
    /// A bug or an unexpected failure of a library (Arrow).
    #[error("internal: {0}")]
    Internal(String),
    /// DataFusion failed while planning or evaluating an expression.
    #[error("expression engine: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Codec(_) => ErrorKind::DataLoss,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Internal(_) | Error::DataFusion(_) => ErrorKind::Internal,
        }
    }
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
