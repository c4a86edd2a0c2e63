//! The backup sets under full_backup: `data.master` (newest), `data.master.0`,
//! `data.master.1`, ... (older). What rotation and purging may remove is decided here.

use std::fs;
use std::path::{Path, PathBuf};

use crate::backup::label::BackupLabel;
use crate::changes::Changes;
use crate::error::{Error, Result};
use crate::os::shell;

/// What walmgr writes beside backup_label: where the backup ended.
pub const INFO_FILE: &str = "walmgr_backup_info";

#[derive(Debug, Clone)]
pub struct BackupSet {
    pub path: PathBuf,
    /// Position in the rotation: None for the newest (`data.master`), Some(n) for `.n`.
    pub index: Option<u32>,
    pub label: BackupLabel,
    pub stop_lsn: Option<String>,
    pub size: u64,
    /// When the backup finished (its info file was written last), seconds since 1970.
    pub finished_unix: Option<i64>,
}

impl BackupSet {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The sets that exist, newest first. A directory without backup_label is not a set
/// (an interrupted copy), and is reported as such by `incomplete`.
pub fn list(full_backup: &Path) -> Result<Vec<BackupSet>> {
    let mut sets = Vec::new();
    for (path, index) in candidates(full_backup)? {
        let label_path = path.join("backup_label");
        let Ok(text) = fs::read_to_string(&label_path) else {
            continue;
        };
        let label = BackupLabel::parse(&text, &label_path)?;
        let stop_lsn = fs::read_to_string(path.join(INFO_FILE)).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("STOP LSN: ").map(str::to_string))
        });
        // The info file is the backup's last write; a set from walmgr3 has only its label.
        let finished_unix = [path.join(INFO_FILE), label_path.clone()]
            .iter()
            .find_map(|f| fs::metadata(f).ok())
            .map(|m| std::os::unix::fs::MetadataExt::mtime(&m));
        sets.push(BackupSet {
            finished_unix,
            size: dir_size(&path),
            path,
            index,
            label,
            stop_lsn,
        });
    }
    Ok(sets)
}

/// `data.master` and `data.master.N` directories, newest first.
fn candidates(full_backup: &Path) -> Result<Vec<(PathBuf, Option<u32>)>> {
    let parent = full_backup.parent().unwrap_or(Path::new("/"));
    let base = full_backup
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Error::refused(format!("full_backup {} has no name", full_backup.display()))
        })?;
    let mut found = Vec::new();
    let entries = match fs::read_dir(parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io("list", parent, e)),
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let index = if name == base {
            None
        } else if let Some(n) = name
            .strip_prefix(&base)
            .and_then(|r| r.strip_prefix('.'))
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(n)
        } else {
            continue;
        };
        if entry.path().is_dir() {
            found.push((entry.path(), index));
        }
    }
    found.sort_by_key(|(_, i)| i.map_or(0, |n| u64::from(n) + 1));
    Ok(found)
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Makes room for a new backup as walmgr3 did: with `keep_backups` = K > 0, sets are removed
/// oldest first until K - 1 remain (running `archive_command` with the set's path first; if
/// it fails, nothing more is removed), then every set moves one place older. With K = 0 no
/// set is ever removed or renamed (walmgr3 removed them all: a bug we do not repeat).
pub fn rotate(
    full_backup: &Path,
    keep_backups: u32,
    archive_command: Option<&str>,
    changes: &mut Changes,
) -> Result<()> {
    if keep_backups == 0 {
        return Ok(());
    }
    let mut sets = list(full_backup)?;
    while sets.len() >= keep_backups as usize {
        let Some(oldest) = sets.pop() else { break };
        if let Some(cmd) = archive_command {
            let full = format!("{cmd} {}", shell::quote(&oldest.path.to_string_lossy()));
            changes.apply(format!("run archive_command: {full}"), || {
                shell::run(
                    "archive_command (the oldest backup is kept and rotation stops)",
                    &full,
                )
            })?;
        }
        changes.apply(format!("remove backup {}", oldest.path.display()), || {
            fs::remove_dir_all(&oldest.path).map_err(|e| Error::io("remove", &oldest.path, e))
        })?;
    }
    // Oldest first, so no rename lands on an existing name.
    for set in sets.iter().rev() {
        let next = match set.index {
            None => 0,
            Some(n) => n + 1,
        };
        let to = PathBuf::from(format!("{}.{next}", full_backup.display()));
        changes.apply(
            format!("rename {} to {}", set.path.display(), to.display()),
            || fs::rename(&set.path, &to).map_err(|e| Error::io("rename", &set.path, e)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_set(path: &Path, start_seg: u32) {
        fs::create_dir_all(path).unwrap();
        fs::write(
            path.join("backup_label"),
            format!(
                "START WAL LOCATION: 0/{start_seg:X}000028 (file 0000000100000000000000{start_seg:02X})\n\
                 CHECKPOINT LOCATION: 0/{start_seg:X}000060\nSTART TIME: t\nLABEL: b{start_seg}\nSTART TIMELINE: 1\n"
            ),
        )
        .unwrap();
    }

    fn names(full: &Path) -> Vec<String> {
        list(full).unwrap().iter().map(BackupSet::name).collect()
    }

    /// Five backups with keep_backups = 3 leave the three newest, named as the manual says.
    #[test]
    fn keep_three_over_five_backups() {
        let root = tempfile::tempdir().unwrap();
        let full = root.path().join("data.master");
        for n in 1..=5 {
            rotate(&full, 3, None, &mut Changes::new(false)).unwrap();
            make_set(&full, n);
        }
        assert_eq!(
            names(&full),
            ["data.master", "data.master.0", "data.master.1"]
        );
        let labels: Vec<String> = list(&full)
            .unwrap()
            .iter()
            .map(|s| s.label.label.clone())
            .collect();
        assert_eq!(labels, ["b5", "b4", "b3"]);
    }

    #[test]
    fn keep_zero_never_deletes_a_backup() {
        let root = tempfile::tempdir().unwrap();
        let full = root.path().join("data.master");
        make_set(&full, 1);
        rotate(&full, 0, None, &mut Changes::new(false)).unwrap();
        assert_eq!(names(&full), ["data.master"]);
    }

    #[test]
    fn a_failing_archive_command_keeps_the_oldest_backup() {
        let root = tempfile::tempdir().unwrap();
        let full = root.path().join("data.master");
        make_set(&full, 1);
        let err = rotate(&full, 1, Some("false"), &mut Changes::new(false)).unwrap_err();
        assert!(err.to_string().contains("archive_command"), "{err}");
        assert_eq!(names(&full), ["data.master"]);
    }

    #[test]
    fn archive_command_gets_the_set_before_it_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let full = root.path().join("data.master");
        let seen = root.path().join("seen");
        make_set(&full, 1);
        let cmd = format!("cp -r -t {}", seen.display());
        fs::create_dir_all(&seen).unwrap();
        rotate(&full, 1, Some(&cmd), &mut Changes::new(false)).unwrap();
        assert!(names(&full).is_empty());
        assert!(seen.join("data.master").join("backup_label").exists());
    }

    #[test]
    fn a_dry_run_rotation_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let full = root.path().join("data.master");
        make_set(&full, 1);
        make_set(&root.path().join("data.master.0"), 0);
        let mut changes = Changes::new(true);
        rotate(&full, 2, None, &mut changes).unwrap();
        assert_eq!(names(&full), ["data.master", "data.master.0"]);
        assert_eq!(changes.described().len(), 2, "{:?}", changes.described());
    }
}
