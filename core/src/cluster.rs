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

/// True when `global/pg_control` of `data` says a shutdown checkpoint is being or has been
/// written: the server is stopping (the archiver is then told to finish, and nothing of it
/// should wait long). `state` is the fifth field (after the u64 system identifier and two
/// u32 version numbers) and has kept that place in every version since 8.x.
pub fn shutting_down(data: &Path) -> bool {
    // DBState: DB_SHUTDOWNED, DB_SHUTDOWNED_IN_RECOVERY, DB_SHUTDOWNING.
    const STOPPING_STATES: [i32; 3] = [1, 2, 3];
    let mut head = [0u8; 20];
    let read = fs::File::open(data.join("global/pg_control"))
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head));
    read.is_ok()
        && STOPPING_STATES.contains(&i32::from_ne_bytes([
            head[16], head[17], head[18], head[19],
        ]))
}

/// The login name of the owner of `data`: the OS user its server runs as.
pub fn owner_name(data: &Path) -> Option<String> {
    users::user_name(fs::metadata(data).ok()?.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control_with_state(state: i32) -> tempfile::TempDir {
        let data = tempfile::tempdir().unwrap();
        let mut control = vec![0u8; 8192];
        control[16..20].copy_from_slice(&state.to_ne_bytes());
        fs::create_dir(data.path().join("global")).unwrap();
        fs::write(data.path().join("global/pg_control"), control).unwrap();
        data
    }

    #[test]
    fn a_shutdown_checkpoint_in_pg_control_means_the_server_is_stopping() {
        // DB_IN_PRODUCTION and DB_IN_ARCHIVE_RECOVERY run; the three shutdown states stop.
        assert!(!shutting_down(control_with_state(6).path()));
        assert!(!shutting_down(control_with_state(5).path()));
        for state in [1, 2, 3] {
            assert!(shutting_down(control_with_state(state).path()), "{state}");
        }
        assert!(!shutting_down(Path::new("/nonexistent")));
    }
}
