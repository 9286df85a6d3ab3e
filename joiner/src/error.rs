//! Errors of the streaming joiner.

use fstore_core::ErrorKind;

/// What can go wrong in the joiner: the user's mistakes (bad arguments, a spec the joiner
/// cannot run, state of another spec) first, then the outside world and internal failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument or a spec the joiner cannot run; the message says what to change.
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Registry(#[from] fstore_registry::Error),
    #[error(transparent)]
    Core(#[from] fstore_core::Error),
    /// The broker refused or failed an operation.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The state folder cannot be opened, read or written, or holds damaged data.
    #[error("state: {0}")]
    State(String),
    /// The online store refused a write.
    #[error("online store: {0}")]
    Online(String),
    /// Sample output that cannot be written.
    #[error("output: {0}")]
    Output(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) => ErrorKind::Invalid,
            Error::Registry(e) => e.kind(),
            Error::Core(e) => e.kind(),
            Error::Kafka(_) | Error::Online(_) => ErrorKind::Unavailable,
            Error::State(_) | Error::Output(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<rdkafka::error::KafkaError> for Error {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        Error::Kafka(e.to_string())
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::State(e.to_string())
    }
}
