//! A PostgreSQL data directory on this host: whether its server runs, where it listens,
//! and who owns it (the OS user the server runs as).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::os::{process, users};

/// What `postmaster.pid` says about a server: its pid, port and Unix socket directory
/// (lines 1, 4 and 5; the socket line is empty when the server has none). It may be stale:
/// whether `pid` still runs is the caller's question.
#[derive(Debug, Clone, PartialEq)]
pub struct PostmasterPid {
    pub pid: i32,
    pub port: u16,
    pub socket: Option<PathBuf>,
}

impl PostmasterPid {
    pub fn read(data: &Path) -> Option<PostmasterPid> {
        let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        Some(PostmasterPid {
            pid: lines.first()?.parse().ok()?,
            port: lines.get(3)?.parse().ok()?,
            socket: lines.get(4).filter(|s| !s.is_empty()).map(PathBuf::from),
        })
    }
}

/// The running server of data directory `data`, if any. A postmaster.pid whose process is
/// gone (a crash, a kill -9) is no server.
pub fn running(data: &Path) -> Option<PostmasterPid> {
    PostmasterPid::read(data).filter(|found| process::alive(found.pid))
}

/// The login name of the owner of `data`: the OS user its server runs as.
pub fn owner_name(data: &Path) -> Option<String> {
    users::user_name(fs::metadata(data).ok()?.uid())
}
