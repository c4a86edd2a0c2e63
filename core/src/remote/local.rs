//! The standby's directories on this host (the same machine, or a mounted filesystem):
//! the store is written directly.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::dirs::{self, DirState};
use super::Transport;
use crate::archive::partial::PartialStore;
use crate::archive::store::{ArchiveStore, Stored};
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::os::files::ensure_private_dir;
use crate::remote::wire::{retire_partial, write_partial};
use crate::wal::{SegmentName, WalFileName};

pub struct Local {
    store: ArchiveStore,
    partials: PartialStore,
    dirs: Vec<(&'static str, PathBuf)>,
    /// Who writes into the directories: the master's server (its archiver and shipping
    /// worker), i.e. the owner of master_data; else whoever runs walmgr.
    writer: u32,
}

impl Local {
    pub fn new(config: &Config) -> Self {
        let writer = config
            .master_data
            .as_ref()
            .and_then(|data| fs::metadata(data).ok())
            .map_or_else(|| nix::unistd::geteuid().as_raw(), |m| m.uid());
        Local {
            store: ArchiveStore::new(&config.completed_wals),
            partials: PartialStore::new(&config.partial_wals),
            dirs: dirs::named(config),
            writer,
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
        for (_, dir) in &self.dirs {
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
        let stored = changes.apply(what, || self.store.archive_file(name, src))?;
        if let (Some(_), WalFileName::Segment(segment)) = (stored, name) {
            retire_partial(&self.partials, segment);
        }
        Ok(stored.unwrap_or(Stored::Written))
    }

    fn ship_partial(&mut self, segment: &SegmentName, offset: u64, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        write_partial(&self.store, &self.partials, segment, offset, bytes, len)
    }

    fn inspect_dirs(&mut self) -> Result<Vec<DirState>> {
        Ok(self
            .dirs
            .iter()
            .map(|(key, dir)| dirs::inspect(key, dir, self.writer))
            .collect())
    }

    fn archived_len(&mut self, name: &WalFileName) -> Result<Option<u64>> {
        self.store.archived_len(name)
    }
}
