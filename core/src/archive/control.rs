//! The control files in completed_wals, through which walmgr speaks to the standby's
//! recovery (it runs `walmgr xrestore` for every file it wants):
//! - `PAUSE` (`walmgr pause`): xrestore hands out nothing, so archive replay holds still;
//! - `STOP` (`walmgr boot`): recovery is ending. xrestore still hands out every complete
//!   file, then the partial copy of the first name it lacks, and only then "not found", so
//!   the server opens at the end of what was shipped;
//! - `STOP.seen`: xrestore was asked for WAL while STOP was there. PostgreSQL acts on a
//!   promotion only right after a fetch failed; a fetch that failed before STOP appeared
//!   would end recovery without the partial copy, so `boot` promotes only once this shows
//!   that recovery has asked since;
//! - `RESTARTPOINT`: the oldest segment the standby needs to restart (its `%r`); no purge
//!   removes WAL from there on.

use std::fs;
use std::path::{Path, PathBuf};

use crate::archive::store::replace_file;
use crate::changes::Changes;
use crate::error::{Error, Result};
use crate::wal::{SegmentName, WalFileName};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Stop,
    StopSeen,
    Restartpoint,
}

impl Control {
    pub fn file_name(self) -> &'static str {
        match self {
            Control::Pause => "PAUSE",
            Control::Stop => "STOP",
            Control::StopSeen => "STOP.seen",
            Control::Restartpoint => "RESTARTPOINT",
        }
    }
}

/// The control files of one completed_wals directory.
#[derive(Debug, Clone)]
pub struct ControlFiles {
    dir: PathBuf,
}

impl ControlFiles {
    pub fn in_archive(completed_wals: &Path) -> ControlFiles {
        ControlFiles {
            dir: completed_wals.to_path_buf(),
        }
    }

    pub fn path(&self, control: Control) -> PathBuf {
        self.dir.join(control.file_name())
    }

    pub fn is_set(&self, control: Control) -> bool {
        self.path(control).exists()
    }

    /// Creates the (empty) control file, durably: a STOP or PAUSE that vanished in a crash
    /// would silently change what recovery does.
    pub fn set(&self, control: Control, why: &str, changes: &mut Changes) -> Result<()> {
        let path = self.path(control);
        changes.apply(format!("create {} ({why})", path.display()), || {
            replace_file(&path, b"")
        })?;
        Ok(())
    }

    /// Removes the control file if it is there.
    pub fn clear(&self, control: Control, changes: &mut Changes) -> Result<()> {
        let path = self.path(control);
        if path.exists() {
            changes.apply(format!("remove {}", path.display()), || {
                fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
            })?;
        }
        Ok(())
    }

    /// The recorded restartpoint, if there is a readable one.
    pub fn restartpoint(&self) -> Option<SegmentName> {
        let text = fs::read_to_string(self.path(Control::Restartpoint)).ok()?;
        match WalFileName::parse(text.trim()) {
            Ok(WalFileName::Segment(s)) => Some(s),
            _ => None,
        }
    }

    /// Records `segment` as where the standby restarts from (unchanged: nothing written).
    pub fn record_restartpoint(&self, segment: SegmentName, changes: &mut Changes) -> Result<()> {
        if self.restartpoint() == Some(segment) {
            return Ok(());
        }
        let path = self.path(Control::Restartpoint);
        changes.apply(
            format!("record restartpoint {segment} in {}", path.display()),
            || replace_file(&path, format!("{segment}\n").as_bytes()),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restartpoint_round_trips_and_an_unchanged_one_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let files = ControlFiles::in_archive(dir.path());
        assert_eq!(files.restartpoint(), None);
        let seg = match WalFileName::parse("000000010000000000000007").unwrap() {
            WalFileName::Segment(s) => s,
            _ => unreachable!(),
        };
        let mut changes = Changes::new(false);
        files.record_restartpoint(seg, &mut changes).unwrap();
        files.record_restartpoint(seg, &mut changes).unwrap();
        assert_eq!(files.restartpoint(), Some(seg));
        assert_eq!(changes.described().len(), 1, "{:?}", changes.described());
    }

    #[test]
    fn set_and_clear_go_through_changes() {
        let dir = tempfile::tempdir().unwrap();
        let files = ControlFiles::in_archive(dir.path());
        files
            .set(Control::Stop, "boot", &mut Changes::new(true))
            .unwrap();
        assert!(!files.is_set(Control::Stop), "a dry run wrote STOP");
        files
            .set(Control::Stop, "boot", &mut Changes::new(false))
            .unwrap();
        assert!(files.is_set(Control::Stop));
        files
            .clear(Control::Stop, &mut Changes::new(false))
            .unwrap();
        assert!(!files.is_set(Control::Stop));
    }
}
