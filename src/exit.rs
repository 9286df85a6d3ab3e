//! The one place errors become exit codes: 0 ok, 2 the user's mistake, 1 internal. Every
//! crate's error says its [`ErrorKind`]; [`ErrorKind::exit_code`] decides the code.

use std::process::ExitCode;

use fstore_core::ErrorKind;

/// An error on its way out of the process.
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CliError {
    /// The user's mistake (exit code 2).
    pub fn user(message: impl Into<String>) -> Self {
        CliError {
            kind: ErrorKind::Invalid,
            message: message.into(),
        }
    }

    /// A failure that is not the user's (exit code 1).
    pub fn internal(message: impl std::fmt::Display) -> Self {
        CliError {
            kind: ErrorKind::Internal,
            message: message.to_string(),
        }
    }

    /// Prints the message to stderr and returns the exit code.
    pub fn report(self) -> ExitCode {
        let msg = self.message.trim_end();
        if msg.starts_with("error:") || msg.contains("\nerror:") {
            eprintln!("{msg}");
        } else {
            eprintln!("error: {msg}");
        }
        ExitCode::from(self.kind.exit_code())
    }
}

macro_rules! from_crate_error {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError {
                    kind: e.kind(),
                    message: e.to_string(),
                }
            }
        }
    )*};
}

from_crate_error!(
    fstore_core::Error,
    fstore_dsl::Error,
    fstore_registry::Error,
    fstore_online::Error,
    fstore_joiner::Error
);

impl From<fstore_offline::Error> for CliError {
    fn from(e: fstore_offline::Error) -> Self {
        CliError {
            kind: e.kind(),
            message: e.user_message(),
        }
    }
}
