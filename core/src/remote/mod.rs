//! How the master reaches the standby's directories.
//!
//! `slave` empty means the standby's directories are on this host (the same machine, or a
//! mounted filesystem): the store is written directly. Otherwise `slave` names the standby
//! for the SSH transport.

pub mod backup;
pub mod dirs;
mod local;
mod ssh;
pub mod ssh_target;
pub mod wire;

pub use dirs::slave_dirs;
pub use local::Local;
pub use ssh::{SessionStep, Ssh};

use std::path::Path;
use std::sync::OnceLock;

use crate::archive::store::Stored;
use crate::changes::Changes;
use crate::config::Config;
use crate::error::Result;
use crate::wal::{SegmentName, WalFileName};

pub trait Transport: Send {
    /// One line for logs and `walmgr.status`, e.g. `local:/srv/walshipping/logs.complete`.
    fn describe(&self) -> String;
    /// Ready to archive? Names what is missing when not (checked before every batch).
    fn check(&mut self) -> Result<()>;
    /// Creates the standby's directories (setup), as the standby's config names them.
    fn create_dirs(&mut self, changes: &mut Changes) -> Result<()>;
    /// Archives one file durably into completed_wals.
    fn archive(&mut self, name: &WalFileName, src: &Path, changes: &mut Changes) -> Result<Stored>;
    /// Writes in-progress WAL of `segment` from `offset` on durably into partial_wals.
    fn ship_partial(&mut self, segment: &SegmentName, offset: u64, bytes: &[u8]) -> Result<()>;
    /// The standby's directories as `check` judges them (owner, mode), judged where they
    /// are. Reads only.
    fn inspect_dirs(&mut self) -> Result<Vec<dirs::DirState>> {
        Err(crate::error::Error::refused(format!(
            "{} cannot inspect the standby's directories",
            self.describe()
        )))
    }
    /// The length of `name` in completed_wals, or None while it is not there. A file under
    /// its final name there is complete and fsynced (the store renames it only then).
    /// Reads only.
    fn archived_len(&mut self, name: &WalFileName) -> Result<Option<u64>> {
        Err(crate::error::Error::refused(format!(
            "{} cannot look up {name} in the archive",
            self.describe()
        )))
    }
}

static STOPPING: OnceLock<fn() -> bool> = OnceLock::new();

/// The process hosting walmgr (the server's archiver, its shipping worker) says how to
/// tell that the server is shutting down: then a silent standby is given up after a few
/// seconds rather than network_timeout, so that `pg_ctl stop` is not held up by it.
pub fn when_stopping(check: fn() -> bool) {
    let _ = STOPPING.set(check);
}

fn stopping() -> bool {
    STOPPING.get().is_some_and(|check| check())
}

/// The transport a master config selects.
pub fn for_master(config: &Config) -> Result<Box<dyn Transport>> {
    match config.slave.as_deref() {
        None => Ok(Box::new(Local::new(config))),
        Some(slave) => Ok(Box::new(Ssh::new(config, slave)?)),
    }
}

/// Where a backup with `config` goes: the standby's area on this host, or, when `slave`
/// names another host, the same area there through a session of its own.
pub fn backup_area(config: &Config) -> Result<Box<dyn crate::backup::area::BackupArea>> {
    use crate::config::Role;
    match (&config.role, config.slave.as_deref()) {
        (Role::Master, Some(slave)) => {
            Ok(Box::new(backup::RemoteArea::new(Ssh::new(config, slave)?)))
        }
        _ => Ok(Box::new(crate::backup::area::LocalArea::new(
            crate::backup::standby_side(config, "backup")?,
        ))),
    }
}
