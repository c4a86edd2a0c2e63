//! WAL purge after a backup: completed_wals keeps what the oldest kept backup needs, and
//! what the standby needs to restart from its last restartpoint.

use std::fs;
use std::path::Path;

use crate::archive::control::{Control, ControlFiles};
use crate::backup::catalog;
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::wal::{SegmentName, WalFileName};

/// Purges the standby's WAL older than what every kept backup needs, or than the standby's
/// recorded restartpoint if that is older: a standby that lags behind the newest backup
/// keeps what it still needs. Without any backup set nothing is purged.
pub fn purge(standby: &Config, changes: &mut Changes) -> Result<Vec<String>> {
    let sets = catalog::list(&standby.full_backup)?;
    // Each set's own start, not the rotation number: a set renamed or restored by hand may
    // carry a lower number than an older one.
    let Some(oldest) = sets
        .iter()
        .min_by_key(|s| (s.label.start_segment.log, s.label.start_segment.seg))
    else {
        tracing::debug!("no backup set: no WAL file is purged");
        return Ok(Vec::new());
    };
    let mut keep_from = oldest.label.start_segment;
    let controls = ControlFiles::in_archive(&standby.completed_wals);
    if let Some(restart) = controls.restartpoint() {
        let holder = controls.path(Control::Restartpoint);
        if restart.tli < keep_from.tli {
            // A standby on a timeline the master left behind, and no kept backup on it:
            // honouring it would stop all purging for good.
            tracing::warn!(
                "ignoring the restartpoint {restart} in {}: its timeline {} is older than every \
                 kept backup's; remove the file if no standby replays that timeline any more",
                holder.display(),
                restart.tli
            );
        } else if (restart.log, restart.seg) < (keep_from.log, keep_from.seg) {
            tracing::info!(
                "keeping WAL from {restart}: the standby restarts from there ({}; remove it \
                 if that standby is gone)",
                holder.display()
            );
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

    /// A standby's directories with backup sets starting at `starts` (data.master first,
    /// then data.master.1, ...) and segments 1 to 12 of timelines 1 and 2 archived.
    fn standby_with_sets(root: &Path, starts: &[&str]) -> Config {
        let wals = root.join("logs.complete");
        fs::create_dir_all(&wals).unwrap();
        for tli in 1..=2 {
            for seg in 1..=12 {
                fs::write(wals.join(format!("{tli:08X}00000000{seg:08X}")), b"x").unwrap();
            }
        }
        for (i, start) in starts.iter().enumerate() {
            let set = match i {
                0 => root.join("data.master"),
                n => root.join(format!("data.master.{n}")),
            };
            fs::create_dir_all(&set).unwrap();
            fs::write(
                set.join("backup_label"),
                format!(
                    "START WAL LOCATION: 0/1000028 (file {start})\n\
                     CHECKPOINT LOCATION: 0/1000060\nSTART TIMELINE: 1\n"
                ),
            )
            .unwrap();
        }
        let config = root.join("slave.toml");
        fs::write(
            &config,
            format!("[walmgr]\nwalmgr_data = \"{}\"\n", root.display()),
        )
        .unwrap();
        Config::load(&config, &[]).unwrap()
    }

    fn left(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && n.len() == 24)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn purge_keeps_what_every_set_needs_whatever_their_rotation_numbers() {
        let root = tempfile::tempdir().unwrap();
        // data.master.2 was put back by hand and is newer than data.master.1.
        let standby = standby_with_sets(
            root.path(),
            &[
                "000000010000000000000009",
                "000000010000000000000004",
                "000000010000000000000007",
            ],
        );
        purge(&standby, &mut Changes::new(false)).unwrap();
        let kept = left(&standby.completed_wals);
        assert_eq!(kept.first().unwrap(), "000000010000000000000004");
        assert!(!kept.contains(&"000000010000000000000003".to_string()));
    }

    #[test]
    fn a_restartpoint_holds_wal_on_its_timeline_but_one_of_an_abandoned_timeline_does_not() {
        let root = tempfile::tempdir().unwrap();
        let standby = standby_with_sets(root.path(), &["000000020000000000000009"]);
        let controls = ControlFiles::in_archive(&standby.completed_wals);
        let mut changes = Changes::new(false);
        let on = |name: &str| match WalFileName::parse(name).unwrap() {
            WalFileName::Segment(s) => s,
            _ => unreachable!(),
        };

        // A lagging standby on the set's timeline keeps WAL from its restartpoint.
        controls
            .record_restartpoint(on("000000020000000000000005"), &mut changes)
            .unwrap();
        purge(&standby, &mut changes).unwrap();
        let kept = left(&standby.completed_wals);
        assert!(
            kept.contains(&"000000020000000000000005".to_string()),
            "{kept:?}"
        );
        assert!(
            !kept.contains(&"000000020000000000000004".to_string()),
            "{kept:?}"
        );

        // One left by a standby of timeline 1, which no kept set is on, holds nothing back.
        controls
            .record_restartpoint(on("000000010000000000000002"), &mut changes)
            .unwrap();
        purge(&standby, &mut changes).unwrap();
        let kept = left(&standby.completed_wals);
        assert_eq!(
            kept.first().unwrap(),
            "000000010000000000000009",
            "{kept:?}"
        );
        assert!(
            !kept.contains(&"000000020000000000000005".to_string()),
            "{kept:?}"
        );
    }

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
