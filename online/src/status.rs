//! The one table from error kinds to gRPC status codes, both ways: the server answers every
//! failure through [`status`], and clients of fstore's servers (the `fstore get` command) read
//! a status back into a kind through [`kind_of`].

use fstore_core::ErrorKind;
use tonic::{Code, Status};

use crate::Error;

/// The gRPC code of an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::Invalid => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The error kind of a gRPC code that a server answered with.
pub fn kind_of(code: Code) -> ErrorKind {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::AlreadyExists => ErrorKind::Invalid,
        Code::NotFound => ErrorKind::NotFound,
        Code::FailedPrecondition | Code::PermissionDenied | Code::Unauthenticated => {
            ErrorKind::FailedPrecondition
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            ErrorKind::Unavailable
        }
        Code::DataLoss => ErrorKind::DataLoss,
        _ => ErrorKind::Internal,
    }
}

/// The status a request that failed with `e` gets: the kind's code, the error's message.
pub fn status(e: &Error) -> Status {
    let msg = match e {
        Error::Unavailable(m) => format!("online store unavailable: {m}"),
        other => other.to_string(),
    };
    Status::new(code(e.kind()), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_back_from_its_code() {
        for kind in [
            ErrorKind::Invalid,
            ErrorKind::NotFound,
            ErrorKind::FailedPrecondition,
            ErrorKind::Unavailable,
            ErrorKind::DataLoss,
            ErrorKind::Internal,
        ] {
            assert_eq!(kind_of(code(kind)), kind);
        }
    }
}
