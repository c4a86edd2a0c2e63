//! How the master reaches the standby's directories.
//!
//! `slave` empty means the standby's directories are on this host (the same machine, or a
//! mounted filesystem): the store is written directly. Otherwise `slave` names the standby
//! for the SSH transport.

mod ssh;
pub mod ssh_target;

pub use ssh::Ssh;

use std::fs;
use std::path::{Path, PathBuf};

use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{ArchiveStore, Stored};
use crate::wal_name::WalFileName;

pub trait Transport: Send {
    /// One line for logs and `walmgr.status`, e.g. `local:/srv/walshipping/logs.complete`.
    fn describe(&self) -> String;
    /// Ready to archive? Names what is missing when not (checked before every batch).
    fn check(&mut self) -> Result<()>;
    /// Creates the standby's directories (setup), as the standby's config names them.
    fn create_dirs(&mut self, changes: &mut Changes) -> Result<()>;
    /// Archives one file durably into completed_wals.
    fn archive(&mut self, name: &WalFileName, src: &Path, changes: &mut Changes) -> Result<Stored>;
}

/// The directories `setup` creates on the standby, in creation order.
pub fn slave_dirs(config: &Config) -> Vec<PathBuf> {
    let mut dirs = vec![
        config.completed_wals.clone(),
        config.partial_wals.clone(),
        config.full_backup.clone(),
    ];
    dirs.extend(config.config_backup.clone());
    dirs
}

/// The transport a master config selects.
pub fn for_master(config: &Config) -> Result<Box<dyn Transport>> {
    match config.slave.as_deref() {
        None => Ok(Box::new(Local::new(config))),
        Some(slave) => Ok(Box::new(Ssh::new(config, slave)?)),
    }
}

pub struct Local {
    store: ArchiveStore,
    dirs: Vec<PathBuf>,
}

impl Local {
    pub fn new(config: &Config) -> Self {
        Local {
            store: ArchiveStore::new(&config.completed_wals),
            dirs: slave_dirs(config),
        }
    }
}

impl Transport for Local {
    fn describe(&self) -> String {
        format!("local:{}", self.store.dir().display())
    }

    fn check(&mut self) -> Result<()> {
        let dir = self.store.dir();
        let meta = fs::metadata(dir).map_err(|e| Error::io("use archive directory", dir, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                "use archive directory",
                dir,
                std::io::Error::other("not a directory"),
            ));
        }
        Ok(())
    }

    fn create_dirs(&mut self, changes: &mut Changes) -> Result<()> {
        for dir in &self.dirs {
            ensure_private_dir(dir, changes)?;
        }
        Ok(())
    }

    fn archive(&mut self, name: &WalFileName, src: &Path, changes: &mut Changes) -> Result<Stored> {
        let what = format!(
            "archive {} as {}",
            src.display(),
            self.store.path_of(name).display()
        );
        Ok(changes
            .apply(what, || self.store.archive_file(name, src))?
            .unwrap_or(Stored::Written))
    }
}

/// Creates `dir` (mode 0700) through `changes` unless it exists.
pub fn ensure_private_dir(dir: &Path, changes: &mut Changes) -> Result<()> {
    if !dir.is_dir() {
        changes.apply(
            format!("create directory {} (mode 0700)", dir.display()),
            || create_private_dir(dir),
        )?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents; the new directories are private to their owner.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))
}
