//! WAL purge after a backup: completed_wals keeps what the oldest kept backup needs, and
//! what the standby needs to restart from its last restartpoint.

use std::fs;
use std::path::Path;

use crate::archive::control::ControlFiles;
use crate::backup::catalog;
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::wal::{SegmentName, WalFileName};

/// Purges the standby's WAL older than the oldest kept backup, or than the standby's
/// recorded restartpoint if that is older: a standby that lags behind the newest backup
/// keeps what it still needs. Without any backup set nothing is purged.
pub fn purge(standby: &Config, changes: &mut Changes) -> Result<Vec<String>> {
    let sets = catalog::list(&standby.full_backup)?;
    let Some(oldest) = sets.last() else {
        tracing::debug!("no backup set: no WAL file is purged");
        return Ok(Vec::new());
    };
    let mut keep_from = oldest.label.start_segment;
    if let Some(restart) = ControlFiles::in_archive(&standby.completed_wals).restartpoint() {
        if (restart.log, restart.seg) < (keep_from.log, keep_from.seg) {
            tracing::info!("keeping WAL from {restart}: the standby restarts from there");
            keep_from = restart;
        }
    }
    let dirs: [&Path; 2] = [&standby.completed_wals, &standby.partial_wals];
    let removed = purge_wals(&keep_from, &dirs, changes)?;
    if !removed.is_empty() {
        tracing::info!(
            "purged {} WAL file(s) older than {keep_from} (oldest backup: {})",
            removed.len(),
            oldest.name()
        );
    }
    Ok(removed)
}

/// Removes from `completed_wals` (and `partial_wals`) what no kept backup needs: segments
/// and .backup/.partial files before the oldest set's start segment, on its timeline or
/// earlier ones. `.history` files are never removed (tiny, and recovery to any later
/// timeline needs them). Returns what was (or would be) removed.
pub fn purge_wals(
    oldest_needed: &SegmentName,
    dirs: &[&Path],
    changes: &mut Changes,
) -> Result<Vec<String>> {
    // (log, seg) orders segments of any size; no segment size needs to be trusted.
    let first = (oldest_needed.log, oldest_needed.seg);
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let Ok(file) = WalFileName::parse(&name) else {
                continue;
            };
            let Some(segment) = file.segment() else {
                continue;
            };
            if segment.tli <= oldest_needed.tli && (segment.log, segment.seg) < first {
                let path = dir.join(&name);
                changes.apply(format!("remove {}", path.display()), || {
                    fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
                })?;
                removed.push(name);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_keeps_what_the_oldest_backup_needs_and_every_history_file() {
        let root = tempfile::tempdir().unwrap();
        let wals = root.path();
        for name in [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003",
            "000000010000000000000004",
            "00000002.history",
            "000000020000000000000004",
        ] {
            fs::write(wals.join(name), b"x").unwrap();
        }
        let oldest = SegmentName {
            tli: 1,
            log: 0,
            seg: 3,
        };
        let removed = purge_wals(&oldest, &[wals], &mut Changes::new(false)).unwrap();
        assert_eq!(
            removed,
            [
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000002.00000028.backup"
            ]
        );
        let mut left: Vec<String> = fs::read_dir(wals)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "000000010000000000000003",
                "000000010000000000000004",
                "00000002.history",
                "000000020000000000000004",
            ]
        );
    }
}
