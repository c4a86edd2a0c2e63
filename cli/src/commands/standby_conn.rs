//! Reaching the standby's own server: its postmaster.pid says where it listens.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use postgres::Client;
use walmgr_core::cluster_location::PostmasterPid;

use crate::db;
use crate::error::{CliError, Result};

/// The running server of data directory `data`, if any: (pid, port, socket dir).
pub fn running(data: &Path) -> Option<(i32, u16, String)> {
    let found = PostmasterPid::read(data)?;
    let pid = found.pid;
    // EPERM: alive, but another user's (e.g. postgres's when we run as someone else).
    // SAFETY: signal 0 only checks that the process exists.
    let alive = pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM));
    if !alive {
        return None;
    }
    let socket = found
        .socket
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/var/run/postgresql".to_string());
    Some((pid, found.port, socket))
}

/// Connects to the server of `data` as the data directory's owner.
pub fn connect(data: &Path) -> Result<Client> {
    let (_, port, socket) = running(data).ok_or_else(|| {
        CliError::failed(format!(
            "no PostgreSQL server is running on {} (start it, or check slave_data)",
            data.display()
        ))
    })?;
    let user = owner_name(data).unwrap_or_else(|| "postgres".into());
    db::connect(&format!(
        "host={socket} port={port} user={user} dbname=postgres"
    ))
}

pub fn try_connect(data: &Path) -> Option<Client> {
    running(data)?;
    connect(data).ok()
}

/// The login name of the owner of `path` (a data directory: the server's OS user).
pub fn owner_name(path: &Path) -> Option<String> {
    walmgr_core::system::user_name(fs::metadata(path).ok()?.uid())
}
