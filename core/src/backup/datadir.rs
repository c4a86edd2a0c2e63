//! Copying a running cluster's data directory into a backup set, leaving out what
//! PostgreSQL's documentation says a base backup must not carry (pg_wal contents, the pid
//! file, temp files, replication slots, ...). Files may change or vanish while we copy: the
//! backup is made consistent by WAL replay, so a vanished file is skipped, never an error.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Directories whose contents are not copied (the directory itself is recreated empty).
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

/// Files at the top of the data directory that are never copied.
const SKIP_TOP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "tablespace_map.old",
    "standby.signal",
    "recovery.signal",
    "current_logfiles",
];

#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Recreate symlinks (e.g. pg_wal, log) as symlinks instead of copying what they point to.
    pub keep_symlinks: bool,
}

/// What a copy did, for the log and the progress display.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files: u64,
}

/// Copies `src` (a data directory) to `dst` (which must not exist), then syncs the target
/// filesystem. `report` is called now and then with the progress.
pub fn copy_data_dir(
    src: &Path,
    dst: &Path,
    options: CopyOptions,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    let mut progress = Progress {
        bytes_total: planned_bytes(src, Path::new("")),
        ..Progress::default()
    };
    let as_root = crate::os::users::is_root();
    let mut copier = Copier {
        options,
        as_root,
        progress: &mut progress,
        report,
        last_reported: 0,
    };
    copier.dir(src, dst, Path::new(""))?;
    // pg_control last: for a backup taken on a standby, pg_backup_stop takes the end of
    // the backup from the copied pg_control's minimum recovery point, which is only right
    // if every data file was copied before it.
    let control = Path::new("global/pg_control");
    let meta =
        fs::metadata(src.join(control)).map_err(|e| Error::io("stat", src.join(control), e))?;
    copier.file(&src.join(control), &dst.join(control), &meta)?;
    (copier.report)(copier.progress);
    sync_filesystem(dst)?;
    Ok(progress)
}

/// Bytes a copy of `dir` would take (an estimate for the progress display).
fn planned_bytes(root: &Path, rel: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(root.join(rel)) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.filter_map(|e| e.ok()) {
        let rel_child = rel.join(e.file_name());
        if skipped(&rel_child) {
            continue;
        }
        match fs::metadata(e.path()) {
            Ok(m) if m.is_dir() && !EMPTY_DIRS.iter().any(|d| rel_child == Path::new(d)) => {
                total += planned_bytes(root, &rel_child)
            }
            Ok(m) if m.is_file() => total += m.len(),
            _ => {}
        }
    }
    total
}

/// Temp files anywhere, relcache init files, and the top-level files above.
fn skipped(rel: &Path) -> bool {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.starts_with("pgsql_tmp") || name == "pg_internal.init" {
        return true;
    }
    // Copied last, by copy_data_dir itself.
    if rel == Path::new("global/pg_control") {
        return true;
    }
    rel.parent() == Some(Path::new("")) && SKIP_TOP_FILES.contains(&name.as_ref())
}

struct Copier<'a> {
    options: CopyOptions,
    as_root: bool,
    progress: &'a mut Progress,
    report: &'a mut dyn FnMut(&Progress),
    last_reported: u64,
}

impl Copier<'_> {
    fn dir(&mut self, src: &Path, dst: &Path, rel: &Path) -> Result<()> {
        let meta = self.mkdir_like(src, dst)?;
        if EMPTY_DIRS.iter().any(|d| rel == Path::new(d)) {
            // pg_wal needs its archive_status subdirectory to start.
            if rel == Path::new("pg_wal") {
                let status = dst.join("archive_status");
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&status)
                    .map_err(|e| Error::io("create directory", &status, e))?;
                self.own(&status, &meta)?;
            }
            return Ok(());
        }
        let mut entries: Vec<_> = match fs::read_dir(src) {
            Ok(e) => e.filter_map(|e| e.ok()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", src, e)),
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel_child = rel.join(entry.file_name());
            if skipped(&rel_child) {
                continue;
            }
            let from = entry.path();
            let to = dst.join(entry.file_name());
            let lmeta = match fs::symlink_metadata(&from) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &from, e)),
            };
            // Tablespaces (pg_tblspc/OID) are always followed: their data belongs in the set.
            let in_tblspc = rel == Path::new("pg_tblspc");
            // pg_wal is always a fresh, empty directory: a kept symlink would point the
            // restored server at the master's own WAL directory.
            let is_pg_wal = rel_child == Path::new("pg_wal");
            if lmeta.file_type().is_symlink()
                && self.options.keep_symlinks
                && !in_tblspc
                && !is_pg_wal
            {
                self.symlink(&from, &to, &lmeta)?;
                continue;
            }
            let meta = match fs::metadata(&from) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &from, e)),
            };
            if meta.is_dir() {
                self.dir(&from, &to, &rel_child)?;
            } else if meta.is_file() {
                self.file(&from, &to, &meta)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, from: &Path, to: &Path, meta: &fs::Metadata) -> Result<()> {
        // fs::copy streams through the kernel (copy_file_range): memory stays bounded.
        let bytes = match fs::copy(from, to) {
            Ok(n) => n,
            // Dropped tables, finished temp files: gone is fine, replay knows.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !to.exists() => return Ok(()),
            Err(e) => return Err(Error::io("copy", from, e)),
        };
        self.own(to, meta)?;
        self.progress.bytes_done += bytes;
        self.progress.files += 1;
        if self.progress.bytes_done - self.last_reported >= 64 << 20 {
            self.last_reported = self.progress.bytes_done;
            (self.report)(self.progress);
        }
        Ok(())
    }

    /// Run as root, the copy keeps the owner (the backup must stay readable by postgres).
    /// Creates `dst` with the mode (and, as root, the owner) of the directory `src`.
    fn mkdir_like(&self, src: &Path, dst: &Path) -> Result<fs::Metadata> {
        let meta = fs::metadata(src).map_err(|e| Error::io("read", src, e))?;
        fs::DirBuilder::new()
            .mode(meta.permissions().mode() & 0o7777)
            .create(dst)
            .map_err(|e| Error::io("create directory", dst, e))?;
        self.own(dst, &meta)?;
        Ok(meta)
    }

    /// Recreates the symlink `from` (metadata `lmeta`) as `to`.
    fn symlink(&self, from: &Path, to: &Path, lmeta: &fs::Metadata) -> Result<()> {
        let target = fs::read_link(from).map_err(|e| Error::io("read link", from, e))?;
        std::os::unix::fs::symlink(&target, to).map_err(|e| Error::io("create symlink", to, e))?;
        if self.as_root {
            std::os::unix::fs::lchown(to, Some(lmeta.uid()), Some(lmeta.gid()))
                .map_err(|e| Error::io("chown", to, e))?;
        }
        Ok(())
    }

    fn own(&self, path: &Path, meta: &fs::Metadata) -> Result<()> {
        if self.as_root {
            std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| Error::io("chown", path, e))?;
        }
        Ok(())
    }
}

/// One syncfs for the whole copy instead of an fsync per file.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    nix::unistd::syncfs(&f)
        .map_err(|errno| Error::io("sync filesystem of", path, io::Error::from(errno)))
}

/// Copies a whole tree (a backup set to a restore destination), keeping modes and symlinks.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<u64> {
    let mut progress = Progress::default();
    let mut copier = Copier {
        options: CopyOptions {
            keep_symlinks: true,
        },
        as_root: crate::os::users::is_root(),
        progress: &mut progress,
        report: &mut |_| {},
        last_reported: 0,
    };
    copier.plain_dir(src, dst)?;
    sync_filesystem(dst)?;
    Ok(progress.bytes_done)
}

impl Copier<'_> {
    fn plain_dir(&mut self, src: &Path, dst: &Path) -> Result<()> {
        self.mkdir_like(src, dst)?;
        for entry in fs::read_dir(src).map_err(|e| Error::io("list", src, e))? {
            let entry = entry.map_err(|e| Error::io("list", src, e))?;
            let (from, to): (PathBuf, PathBuf) = (entry.path(), dst.join(entry.file_name()));
            let lmeta = fs::symlink_metadata(&from).map_err(|e| Error::io("stat", &from, e))?;
            if lmeta.file_type().is_symlink() {
                self.symlink(&from, &to, &lmeta)?;
            } else if lmeta.is_dir() {
                self.plain_dir(&from, &to)?;
            } else {
                self.file(&from, &to, &lmeta)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_leaves_out_what_a_base_backup_must_not_carry() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("data");
        for d in [
            "base/1",
            "pg_wal/archive_status",
            "pg_replslot/s",
            "pg_stat_tmp",
            "global",
        ] {
            fs::create_dir_all(src.join(d)).unwrap();
        }
        for (f, body) in [
            ("base/1/1259", "table"),
            ("base/1/pg_internal.init", "x"),
            ("base/1/pgsql_tmp123", "x"),
            ("global/pg_control", "control"),
            ("pg_wal/000000010000000000000001", "wal"),
            ("pg_replslot/s/state", "x"),
            ("pg_stat_tmp/db.stat", "x"),
            ("postmaster.pid", "1"),
            ("standby.signal", ""),
            ("postgresql.conf", "port = 5"),
        ] {
            fs::write(src.join(f), body).unwrap();
        }
        std::os::unix::fs::symlink("/somewhere/log", src.join("log")).unwrap();
        let dst = root.path().join("backup");
        let done = copy_data_dir(
            &src,
            &dst,
            CopyOptions {
                keep_symlinks: true,
            },
            &mut |_| {},
        )
        .unwrap();

        let mut found = Vec::new();
        let mut stack = vec![dst.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(&dst).unwrap().display().to_string();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                    found.push(format!("{rel}/"));
                } else {
                    found.push(rel);
                }
            }
        }
        found.sort();
        assert_eq!(
            found,
            [
                "base/",
                "base/1/",
                "base/1/1259",
                "global/",
                "global/pg_control",
                "log",
                "pg_replslot/",
                "pg_stat_tmp/",
                "pg_wal/",
                "pg_wal/archive_status/",
                "postgresql.conf"
            ]
        );
        assert_eq!(
            fs::read_link(dst.join("log")).unwrap(),
            Path::new("/somewhere/log")
        );
        assert_eq!(done.files, 3);
        assert_eq!(fs::read(dst.join("global/pg_control")).unwrap(), b"control");
    }
}
