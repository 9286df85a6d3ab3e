//! The one place errors become exit codes: 0 ok, 2 the user's mistake, 1 internal.

use std::process::ExitCode;

/// An error on its way out of the process.
#[derive(Debug)]
pub struct CliError {
    pub user: bool,
    pub message: String,
}

impl CliError {
    pub fn user(message: impl Into<String>) -> Self {
        CliError {
            user: true,
            message: message.into(),
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
        ExitCode::from(if self.user { 2 } else { 1 })
    }
}

impl From<fstore_dsl::Error> for CliError {
    fn from(e: fstore_dsl::Error) -> Self {
        CliError {
            user: e.is_user_error(),
            message: e.to_string(),
        }
    }
}

impl From<fstore_registry::Error> for CliError {
    fn from(e: fstore_registry::Error) -> Self {
        CliError {
            user: e.is_user_error(),
            message: e.to_string(),
        }
    }
}

impl From<fstore_offline::Error> for CliError {
    fn from(e: fstore_offline::Error) -> Self {
        CliError {
            user: e.is_user_error(),
            message: e.user_message(),
        }
    }
}
