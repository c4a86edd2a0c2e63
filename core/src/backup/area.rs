//! The standby's side of a backup: full_backup, its lock, the staging directory, rotation
//! and the WAL purge. A backup drives an area on this host ([`LocalArea`]), or, when the
//! standby is another host, the same [`LocalArea`] there through the wire (the remote
//! module's area, answered by `walmgr xserve`).
//!
//! The set is staged under `<full_backup>.inprogress` and renamed to `full_backup` only when
//! complete and synced, so a failed or killed backup never costs an existing one; BACKUPLOCK
//! is held from begin to finish.

use std::fs;
use std::path::{Path, PathBuf};

use crate::archive::lock::{self, LockGuard};
use crate::backup::datadir::{sync_filesystem, DirSink, Owner, TreeSink};
use crate::backup::{catalog, purge};
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::os::files::{create_private_dir, give_to_owner_of};

pub trait BackupArea: Send {
    /// One line for messages: the directory, and the host when it is remote.
    fn describe(&self) -> String;
    /// Takes the backup lock for `what` and prepares staging (a complete copy a killed
    /// backup left becomes the newest set; an incomplete one is dropped).
    fn begin(&mut self, what: &str, changes: &mut Changes) -> Result<()>;
    /// Where the data directory's copy goes (the staging directory).
    fn sink(&mut self) -> &mut dyn TreeSink;
    /// Reports a failure the sink kept for later (a remote sink does not answer each file).
    fn check(&mut self) -> Result<()>;
    /// Writes a small file (backup_label, ...) at the top of the staged set.
    fn put_file(&mut self, name: &str, contents: &[u8]) -> Result<()>;
    /// Makes the staged set the newest: sync, rotate, rename, purge; returns its path.
    fn finish(&mut self, changes: &mut Changes) -> Result<PathBuf>;
    /// Saves a configuration file of the server into config_backup (if configured).
    fn put_config(&mut self, name: &str, contents: &[u8], changes: &mut Changes) -> Result<()>;
    /// Drops the staged copy after a failure; the lock goes with it.
    fn abort(&mut self);
    /// True when the area is a session that gives up a silent peer (a remote standby):
    /// while the master waits on its server, [`BackupArea::keep_alive`] must speak.
    fn has_session(&self) -> bool;
    /// One round trip that tells the other end this side is still there.
    fn keep_alive(&mut self) -> Result<()>;
}

/// The area in directories of this host, as the standby's config names them.
pub struct LocalArea {
    standby: Config,
    staging: PathBuf,
    sink: DirSink,
    lock: Option<LockGuard>,
}

impl LocalArea {
    pub fn new(standby: Config) -> LocalArea {
        let staging = PathBuf::from(format!("{}.inprogress", standby.full_backup.display()));
        let mut sink = DirSink::new(&staging);
        // Whatever uid sent them, the set belongs to whoever owns walmgr's directories here.
        if let Some(owner) = standby
            .full_backup
            .parent()
            .and_then(|p| fs::metadata(p).ok())
            .map(|m| Owner::of(&m))
        {
            if crate::os::users::is_root() {
                sink = sink.owned_by(owner);
            }
        }
        LocalArea {
            standby,
            staging,
            sink,
            lock: None,
        }
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The staging directory as a sink that also takes files from a stream (what the
    /// master sends over the wire).
    pub fn sink_dir(&mut self) -> &mut DirSink {
        &mut self.sink
    }
}

impl BackupArea for LocalArea {
    fn describe(&self) -> String {
        self.staging.display().to_string()
    }

    fn begin(&mut self, what: &str, changes: &mut Changes) -> Result<()> {
        self.lock = lock::take(&self.standby.completed_wals, what, changes)?;
        let full_backup = &self.standby.full_backup;
        let staging = &self.staging;
        if staging.join("backup_label").exists() && !full_backup.exists() {
            changes.apply(
                format!(
                    "rename {} (complete, left by a killed backup) to {}",
                    staging.display(),
                    full_backup.display()
                ),
                || fs::rename(staging, full_backup).map_err(|e| Error::io("rename", staging, e)),
            )?;
        } else if staging.exists() {
            changes.apply(
                format!("remove {} left by an interrupted backup", staging.display()),
                || fs::remove_dir_all(staging).map_err(|e| Error::io("remove", staging, e)),
            )?;
        }
        Ok(())
    }

    fn sink(&mut self) -> &mut dyn TreeSink {
        &mut self.sink
    }

    fn check(&mut self) -> Result<()> {
        Ok(())
    }

    fn put_file(&mut self, name: &str, contents: &[u8]) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.sink.path(Path::new(name))?;
        // O_NOFOLLOW: `path` refused a symlink already; this keeps one that appears
        // meanwhile from redirecting the write.
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut f| f.write_all(contents))
            .map_err(|e| Error::io("write", &path, e))?;
        give_to_owner_of(&path, &self.staging)
    }

    fn finish(&mut self, changes: &mut Changes) -> Result<PathBuf> {
        let full_backup = self.standby.full_backup.clone();
        let staging = self.staging.clone();
        changes.apply(format!("sync {}", staging.display()), || {
            sync_filesystem(&staging)
        })?;
        catalog::rotate(
            &full_backup,
            self.standby.keep_backups,
            self.standby.archive_command.as_deref(),
            changes,
        )?;
        if full_backup.exists() && self.standby.keep_backups == 0 {
            // keep_backups = 0: the new set replaces the newest one, once it is complete.
            changes.apply(
                format!("remove the previous backup {}", full_backup.display()),
                || {
                    fs::remove_dir_all(&full_backup)
                        .map_err(|e| Error::io("remove", &full_backup, e))
                },
            )?;
        }
        changes.apply(
            format!("rename {} to {}", staging.display(), full_backup.display()),
            || fs::rename(&staging, &full_backup).map_err(|e| Error::io("rename", &staging, e)),
        )?;
        purge::purge(&self.standby, changes)?;
        self.lock = None;
        Ok(full_backup)
    }

    fn put_config(&mut self, name: &str, contents: &[u8], changes: &mut Changes) -> Result<()> {
        let Some(dir) = self.standby.config_backup.clone() else {
            return Ok(());
        };
        if name.contains('/') || name.starts_with('.') || name.is_empty() {
            return Err(Error::refused(format!(
                "{name:?} is not a configuration file name"
            )));
        }
        let to = dir.join(name);
        changes.apply(format!("save {name} as {}", to.display()), || {
            create_private_dir(&dir)?;
            fs::write(&to, contents).map_err(|e| Error::io("write", &to, e))?;
            if let Some(parent) = dir.parent() {
                give_to_owner_of(&to, parent)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    fn abort(&mut self) {
        // The server ends the backup when its session goes; only our copy is left to drop.
        let _ = fs::remove_dir_all(&self.staging);
        self.lock = None;
    }

    fn has_session(&self) -> bool {
        false
    }

    fn keep_alive(&mut self) -> Result<()> {
        Ok(())
    }
}
