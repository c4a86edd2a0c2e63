//! What a copy must hold: the master's data directory as a base backup carries it, listed
//! before each run, and the check of each copy against that list. A variant that copies
//! nothing, or half, fails the bench instead of winning it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::VerifyError;

/// Directories whose contents no base backup carries (PostgreSQL's documentation; walmgr's
/// and pg_basebackup's lists).
const EMPTY_DIRS: &[&str] = &[
    "pg_wal",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
];
/// Top-level files of the master that no copy carries, and those a backup adds.
const NOT_COMPARED_TOP: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "current_logfiles",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "backup_manifest",
    "walmgr_backup_info",
    "walmgr_tablespace_map.txt",
];
/// Files at least this large (relation segments) must arrive with exactly the master's size.
const LARGE: u64 = 1 << 20;
/// Share of the master's files and of its bytes a copy must hold: what the variants leave out
/// beyond the list above is a handful of small files (walmgr3's rsync skips `*.conf`).
const MIN_SHARE: f64 = 0.99;

/// Relative path -> size of every regular file a base backup of `data` carries.
pub type Listing = BTreeMap<PathBuf, u64>;

/// What one copy held.
#[derive(Debug, Clone, Copy, Default)]
pub struct Held {
    pub files: usize,
    pub bytes: u64,
}

pub fn list(root: &Path) -> Listing {
    let mut listing = Listing::new();
    walk(root, Path::new(""), &mut listing);
    listing
}

pub fn total(listing: &Listing) -> u64 {
    listing.values().sum()
}

fn walk(root: &Path, rel: &Path, into: &mut Listing) {
    let Ok(entries) = fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let rel_child = rel.join(&*name);
        if name.starts_with("pgsql_tmp") || name == "pg_internal.init" {
            continue;
        }
        if rel.as_os_str().is_empty() && NOT_COMPARED_TOP.contains(&name.as_ref()) {
            continue;
        }
        let Ok(meta) = fs::metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            if !EMPTY_DIRS.iter().any(|d| rel_child == Path::new(d)) {
                walk(root, &rel_child, into);
            }
        } else if meta.is_file() {
            into.insert(rel_child, meta.len());
        }
    }
}

/// Checks the copy at `copy` against the master's listing from before the run. `now` is the
/// master's listing after the run: a file gone from the master meanwhile may be missing.
pub fn verify(
    variant: &str,
    before: &Listing,
    now: &Listing,
    copy: &Path,
) -> Result<Held, VerifyError> {
    let fail = |what: String| {
        Err(VerifyError(format!(
            "{variant}: the copy in {} {what}",
            copy.display()
        )))
    };
    if !copy.join("backup_label").is_file() {
        return fail("has no backup_label".into());
    }
    let got = list(copy);
    let held = Held {
        files: got.len(),
        bytes: total(&got),
    };
    let mut wrong = Vec::new();
    let mut present = 0usize;
    for (rel, size) in before {
        match got.get(rel) {
            Some(copied) => {
                present += 1;
                if *size >= LARGE && copied != size && now.get(rel) == Some(size) {
                    wrong.push(format!("{} is {copied} bytes, not {size}", rel.display()));
                }
            }
            None if *size >= LARGE && now.contains_key(rel) => {
                wrong.push(format!("{} ({size} bytes) is missing", rel.display()))
            }
            None => {}
        }
    }
    if !wrong.is_empty() {
        let first: Vec<&str> = wrong.iter().take(5).map(String::as_str).collect();
        return fail(format!(
            "lacks {} large files or has them cut: {}",
            wrong.len(),
            first.join("; ")
        ));
    }
    let master_bytes = total(before);
    if (present as f64) < MIN_SHARE * before.len() as f64
        || (held.bytes as f64) < MIN_SHARE * master_bytes as f64
    {
        return fail(format!(
            "holds {present} of the master's {} files and {} of its {master_bytes} bytes",
            before.len(),
            held.bytes
        ));
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir(root: &Path) {
        for d in ["base/1", "global", "pg_wal", "pg_stat_tmp"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("base/1/16384"), vec![1u8; 2 << 20]).unwrap();
        for i in 0..200 {
            fs::write(root.join(format!("base/1/{}", 1000 + i)), b"x").unwrap();
        }
        fs::write(root.join("global/pg_control"), vec![0u8; 8192]).unwrap();
        fs::write(root.join("pg_wal/000000010000000000000001"), b"wal").unwrap();
        fs::write(root.join("postmaster.pid"), b"1").unwrap();
    }

    #[test]
    fn a_whole_copy_passes_and_wal_pid_and_labels_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (master, copy) = (dir.path().join("m"), dir.path().join("c"));
        data_dir(&master);
        data_dir(&copy);
        fs::write(copy.join("backup_label"), b"START WAL LOCATION").unwrap();
        let before = list(&master);
        assert!(!before.contains_key(Path::new("postmaster.pid")));
        assert!(!before.keys().any(|k| k.starts_with("pg_wal")));
        let held = verify("v", &before, &before, &copy).unwrap();
        assert_eq!(held.files, before.len());
    }

    #[test]
    fn an_empty_or_cut_copy_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (master, copy) = (dir.path().join("m"), dir.path().join("c"));
        data_dir(&master);
        fs::create_dir_all(&copy).unwrap();
        fs::write(copy.join("backup_label"), b"x").unwrap();
        let before = list(&master);
        assert!(verify("v", &before, &before, &copy).is_err());
        data_dir(&copy);
        fs::write(copy.join("base/1/16384"), vec![1u8; 1 << 20]).unwrap();
        let err = verify("v", &before, &before, &copy).unwrap_err();
        assert!(err.0.contains("base/1/16384"), "{}", err.0);
        fs::remove_file(copy.join("backup_label")).unwrap();
        assert!(verify("v", &before, &before, &copy).is_err());
    }
}
