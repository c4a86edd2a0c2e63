//! The CLI's one error type. Display is the one line a DBA sees on stderr.
//!
//! Exit statuses (README, "Exit status"): 0 success; 1 failure, or for xrestore "not
//! available"; 2 usage (a wrong command line). Nothing walmgr exits with is above 125,
//! which PostgreSQL would take from restore_command as "stop recovery".

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Core(#[from] walmgr_core::Error),

    /// A normal "no": not an error in the log, e.g. xrestore's miss.
    #[error("{0}")]
    Declined(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Core(walmgr_core::Error::Usage(_)) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
