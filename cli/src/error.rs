//! The CLI's one error type. Display is the one line a DBA sees on stderr.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Core(#[from] walmgr_core::Error),

    #[error("{context}: {}", db_message(.source))]
    Db {
        context: String,
        #[source]
        source: postgres::Error,
    },

    /// A normal "no": not an error in the log, e.g. xrestore's miss.
    #[error("{0}")]
    Declined(String),

    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn db(context: impl Into<String>, source: postgres::Error) -> Self {
        CliError::Db {
            context: context.into(),
            source,
        }
    }

    pub fn failed(message: impl fmt::Display) -> Self {
        CliError::Failed(message.to_string())
    }
}

/// The server's own message (with detail and hint) rather than the driver's generic one.
fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" hint: {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
