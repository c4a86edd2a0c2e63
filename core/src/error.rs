//! The one error type of walmgr-core. Every variant names the file, key or WAL name it is
//! about, so the message alone tells a DBA what to look at.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a configuration value came from: a line of a file, or `--set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Line(PathBuf, usize),
    File(PathBuf),
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(path, line) => write!(f, "{}:{}", path.display(), line),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::CommandLine => write!(f, "--set"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{origin}: {}{message}", key.as_ref().map(|k| format!("key '{k}': ")).unwrap_or_default())]
    Config {
        origin: Origin,
        key: Option<String>,
        message: String,
    },

    #[error("could not {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{name:?} is not a WAL file name: {reason}")]
    WalName { name: String, reason: String },

    #[error(
        "{} already exists with different content; the archived copy was left unchanged \
         (check that two clusters do not archive into the same directory)",
        path.display()
    )]
    Conflict { path: PathBuf },

    #[error("{}: damaged WAL file: {reason}", path.display())]
    Damaged { path: PathBuf, reason: String },

    /// The standby (or the way to it) failed or refused; `peer` names it, e.g.
    /// `ssh:postgres@standby:22`.
    #[error("{peer}: {message}")]
    Remote { peer: String, message: String },

    /// The peer's bytes do not follow walmgr's wire protocol (or a request names something
    /// the protocol does not allow).
    #[error("{peer}: protocol error: {message}")]
    Protocol { peer: String, message: String },

    /// A connection setting libpq would refuse, or one walmgr cannot honour; `origin` says
    /// where it was set: the config key (`master_db`), an environment variable
    /// (`PGSSLMODE`), or a service file's line.
    #[error("{origin}: {message}")]
    Connection { origin: String, message: String },

    /// BACKUPLOCK is held by a live process.
    #[error("another backup is running: {holder} holds {} (wait for it, or run `walmgr CONFIG xrelease` if it is gone)", path.display())]
    LockBusy { holder: String, path: PathBuf },

    /// What PostgreSQL said (message, detail and hint) when `context` ran.
    #[error("{context}: {message}")]
    Server {
        context: String,
        message: String,
        /// The server's SQLSTATE, when it answered at all.
        sqlstate: Option<String>,
    },

    /// A command from the config (or one walmgr runs, such as pg_ctl) failed.
    #[error("{what} ({command:?}) failed with {status}")]
    CommandFailed {
        what: String,
        command: String,
        status: String,
    },

    /// The request is fine, but the state of things forbids it now: a server still runs
    /// where restore would write, no backup set to restore, a standby not in recovery.
    #[error("{0}")]
    Refused(String),

    /// Wrong arguments or options: the caller must change the command line.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn config(origin: Origin, key: Option<&str>, message: impl Into<String>) -> Self {
        Error::Config {
            origin,
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }

    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn wal_name(name: &str, reason: impl Into<String>) -> Self {
        Error::WalName {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn damaged(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Damaged {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    pub fn remote(peer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Remote {
            peer: peer.into(),
            message: message.into(),
        }
    }

    pub fn protocol(peer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Protocol {
            peer: peer.into(),
            message: message.into(),
        }
    }

    pub fn refused(message: impl fmt::Display) -> Self {
        Error::Refused(message.to_string())
    }

    pub fn server(context: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Server {
            context: context.into(),
            message: message.into(),
            sqlstate: None,
        }
    }

    /// True when the error means "the file is simply not there", which xrestore reports
    /// to PostgreSQL as an ordinary miss rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// True when a peer stayed silent longer than `network_timeout`.
    pub fn is_timed_out(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::TimedOut)
    }
}
