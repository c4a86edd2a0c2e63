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

/// How many bytes a copy goes between two calls of its `report`: the display decides what
/// it shows and how often, so calls are frequent enough for a smooth bar and cheap.
const REPORT_EVERY: u64 = 8 << 20;

/// What a copy did, for the log and the progress display.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files: u64,
}

/// Where a walk puts what it finds: a directory on this host ([`DirSink`]), or the standby's
/// backup area over the wire. Paths are relative to the set's root; directories come before
/// their contents.
pub trait TreeSink {
    fn dir(&mut self, rel: &Path, mode: u32, owner: Owner) -> Result<()>;
    /// Copies the file `src` (found with `meta`) as `rel`. Ok(None) when it vanished
    /// meanwhile (dropped tables, finished temp files: replay knows), else the bytes copied.
    fn file(&mut self, rel: &Path, src: &Path, meta: &fs::Metadata) -> Result<Option<u64>>;
    fn symlink(&mut self, rel: &Path, target: &Path, owner: Owner) -> Result<()>;
}

/// The owner of what was copied; only root can (and must) keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub fn of(meta: &fs::Metadata) -> Owner {
        Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }
}

/// Copies `src` (a data directory) to `dst` (which must not exist), then syncs the target
/// filesystem. `report` is called now and then with the progress.
pub fn copy_data_dir(
    src: &Path,
    dst: &Path,
    options: CopyOptions,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    let mut sink = DirSink::new(dst);
    let progress = walk_data_dir(src, options, &mut sink, report)?;
    sync_filesystem(dst)?;
    Ok(progress)
}

/// Walks the data directory `src` into `sink`, leaving out what a base backup must not
/// carry, and pg_control last.
pub fn walk_data_dir(
    src: &Path,
    options: CopyOptions,
    sink: &mut dyn TreeSink,
    report: &mut dyn FnMut(&Progress),
) -> Result<Progress> {
    let mut progress = Progress {
        bytes_total: planned_bytes(src, Path::new("")),
        ..Progress::default()
    };
    let mut walker = Walker {
        options,
        sink,
        progress: &mut progress,
        report,
        last_reported: 0,
    };
    walker.dir(src, Path::new(""))?;
    // pg_control last: for a backup taken on a standby, pg_backup_stop takes the end of
    // the backup from the copied pg_control's minimum recovery point, which is only right
    // if every data file was copied before it.
    let control = Path::new("global/pg_control");
    let from = src.join(control);
    let meta = fs::metadata(&from).map_err(|e| Error::io("stat", &from, e))?;
    walker.file(control, &from, &meta)?;
    (walker.report)(walker.progress);
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
    // Copied last, by walk_data_dir itself.
    if rel == Path::new("global/pg_control") {
        return true;
    }
    rel.parent() == Some(Path::new("")) && SKIP_TOP_FILES.contains(&name.as_ref())
}

struct Walker<'a> {
    options: CopyOptions,
    sink: &'a mut dyn TreeSink,
    progress: &'a mut Progress,
    report: &'a mut dyn FnMut(&Progress),
    last_reported: u64,
}

impl Walker<'_> {
    fn dir(&mut self, src: &Path, rel: &Path) -> Result<()> {
        let meta = fs::metadata(src).map_err(|e| Error::io("read", src, e))?;
        self.sink
            .dir(rel, meta.permissions().mode() & 0o7777, Owner::of(&meta))?;
        if EMPTY_DIRS.iter().any(|d| rel == Path::new(d)) {
            // pg_wal needs its archive_status subdirectory to start.
            if rel == Path::new("pg_wal") {
                self.sink
                    .dir(&rel.join("archive_status"), 0o700, Owner::of(&meta))?;
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
                let target = fs::read_link(&from).map_err(|e| Error::io("read link", &from, e))?;
                self.sink.symlink(&rel_child, &target, Owner::of(&lmeta))?;
                continue;
            }
            let meta = match fs::metadata(&from) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &from, e)),
            };
            if meta.is_dir() {
                self.dir(&from, &rel_child)?;
            } else if meta.is_file() {
                self.file(&rel_child, &from, &meta)?;
            }
        }
        Ok(())
    }

    fn file(&mut self, rel: &Path, from: &Path, meta: &fs::Metadata) -> Result<()> {
        let Some(bytes) = self.sink.file(rel, from, meta)? else {
            return Ok(());
        };
        self.progress.bytes_done += bytes;
        self.progress.files += 1;
        if self.progress.bytes_done - self.last_reported >= REPORT_EVERY {
            self.last_reported = self.progress.bytes_done;
            (self.report)(self.progress);
        }
        Ok(())
    }
}

/// A file received from the master is written in pieces of this size at most.
const WRITE_CHUNK: usize = 1 << 20;
/// Every this many bytes of a received file, its write-back to disk is started without
/// waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE, as PostgreSQL's own
/// pg_flush_data): the disk writes while the network still delivers, instead of the whole
/// set waiting in the page cache for the syncfs at the end. That syncfs alone still makes
/// the set durable; this only moves the writing earlier.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A directory on this host: the set's staging directory for a local backup, and on the
/// standby, the receiving end of a backup the master sends. Run as root, it keeps the
/// owner (the backup must stay readable by postgres); `owner` overrides it for all.
pub struct DirSink {
    root: PathBuf,
    as_root: bool,
    owner: Option<Owner>,
    /// What [`DirSink::write`] copies through, allocated once for the whole set.
    buffer: Vec<u8>,
}

impl DirSink {
    pub fn new(root: &Path) -> DirSink {
        DirSink {
            root: root.to_path_buf(),
            as_root: crate::os::users::is_root(),
            owner: None,
            buffer: Vec::new(),
        }
    }

    /// Everything written belongs to `owner` (the standby's user, not the master's uid).
    pub fn owned_by(mut self, owner: Owner) -> DirSink {
        self.owner = Some(owner);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn own(&self, path: &Path, owner: Owner) -> Result<()> {
        if self.as_root {
            let owner = self.owner.unwrap_or(owner);
            std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
                .map_err(|e| Error::io("chown", path, e))?;
        }
        Ok(())
    }

    /// The path of `rel` under the root; `rel` must stay inside it.
    ///
    /// Inside means more than no `..`: a set holds symlinks (a log directory, what a master
    /// sends over the wire), and a path through one lands wherever it points. So no part
    /// of `rel` that exists may be a symlink, the last one included (a write to it would
    /// follow it too). Nothing walmgr copies ever goes through a symlink it made: the walk
    /// recreates a symlink and does not descend into it.
    pub fn path(&self, rel: &Path) -> Result<PathBuf> {
        use std::path::Component;
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(Error::refused(format!(
                "{} would leave the backup set",
                rel.display()
            )));
        }
        let mut path = self.root.clone();
        for part in rel.components() {
            path.push(part);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(Error::refused(format!(
                        "{} would leave the backup set through the symlink {}",
                        rel.display(),
                        path.display()
                    )));
                }
                Ok(_) => {}
                // Nothing below a missing part exists either; whoever writes reports
                // any other failure with its own error.
                Err(_) => break,
            }
        }
        Ok(self.root.join(rel))
    }

    /// Writes `rel` from `data` (`len` bytes), owned like the set.
    pub fn write(
        &mut self,
        rel: &Path,
        mode: u32,
        data: &mut dyn io::Read,
        len: u64,
    ) -> Result<u64> {
        use std::os::unix::fs::OpenOptionsExt;
        let to = self.path(rel)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&to)
            .map_err(|e| Error::io("create", &to, e))?;
        if self.buffer.is_empty() {
            self.buffer = vec![0; WRITE_CHUNK];
        }
        let copied = copy_writing_back(&mut io::Read::take(data, len), &mut file, &mut self.buffer)
            .map_err(|e| Error::io("write", &to, e))?;
        if copied != len {
            return Err(Error::damaged(
                &to,
                format!("expected {len} bytes, got {copied}"),
            ));
        }
        if let Some(owner) = self.owner {
            self.own(&to, owner)?;
        }
        Ok(copied)
    }
}

impl TreeSink for DirSink {
    fn dir(&mut self, rel: &Path, mode: u32, owner: Owner) -> Result<()> {
        let dst = self.path(rel)?;
        fs::DirBuilder::new()
            .mode(mode)
            .create(&dst)
            .map_err(|e| Error::io("create directory", &dst, e))?;
        self.own(&dst, owner)
    }

    fn file(&mut self, rel: &Path, src: &Path, meta: &fs::Metadata) -> Result<Option<u64>> {
        let to = self.path(rel)?;
        // fs::copy streams through the kernel (copy_file_range): memory stays bounded.
        let bytes = match fs::copy(src, &to) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !to.exists() => return Ok(None),
            Err(e) => return Err(Error::io("copy", src, e)),
        };
        self.own(&to, Owner::of(meta))?;
        Ok(Some(bytes))
    }

    fn symlink(&mut self, rel: &Path, target: &Path, owner: Owner) -> Result<()> {
        // A symlink in place of the root itself would take everything after it elsewhere.
        if rel.file_name().is_none() {
            return Err(Error::refused(format!(
                "a symlink {:?} names no entry inside the backup set",
                rel.display().to_string()
            )));
        }
        let to = self.path(rel)?;
        std::os::unix::fs::symlink(target, &to).map_err(|e| Error::io("create symlink", &to, e))?;
        self.own(&to, owner)
    }
}

/// Copies `data` into `file` through `buffer`, starting the write-back of every
/// [`WRITEBACK_EVERY`] bytes as they are written, and of the rest at the end.
fn copy_writing_back(
    data: &mut dyn io::Read,
    file: &mut fs::File,
    buffer: &mut [u8],
) -> io::Result<u64> {
    use std::io::Write;
    let mut copied = 0u64;
    let mut started = 0u64;
    loop {
        let n = match data.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        file.write_all(&buffer[..n])?;
        copied += n as u64;
        if copied - started >= WRITEBACK_EVERY {
            start_writeback(file, started, copied - started);
            started = copied;
        }
    }
    if copied > started {
        start_writeback(file, started, copied - started);
    }
    Ok(copied)
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, and
/// returns without waiting for them (it may wait for room in the device's queue). Advice
/// only: its result is ignored, as durability comes from the syncfs that finishes the set.
fn start_writeback(file: &fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open fd; the call only reads its arguments.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

/// One syncfs for the whole copy instead of an fsync per file.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    nix::unistd::syncfs(&f)
        .map_err(|errno| Error::io("sync filesystem of", path, io::Error::from(errno)))
}

/// Copies a whole tree (a backup set to a restore destination), keeping modes, owners and
/// symlinks. `report` is called now and then with the progress.
pub fn copy_tree(src: &Path, dst: &Path, report: &mut dyn FnMut(&Progress)) -> Result<u64> {
    let mut copy = TreeCopy {
        sink: DirSink::new(dst),
        progress: Progress {
            bytes_total: tree_bytes(src),
            ..Progress::default()
        },
        last_reported: 0,
        report,
    };
    copy.tree(src, Path::new(""))?;
    (copy.report)(&copy.progress);
    sync_filesystem(dst)?;
    Ok(copy.progress.bytes_done)
}

/// Bytes of the regular files under `dir` (the total for the progress display).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => tree_bytes(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
}

struct TreeCopy<'a> {
    sink: DirSink,
    progress: Progress,
    last_reported: u64,
    report: &'a mut dyn FnMut(&Progress),
}

impl TreeCopy<'_> {
    fn tree(&mut self, src: &Path, rel: &Path) -> Result<()> {
        let meta = fs::metadata(src).map_err(|e| Error::io("read", src, e))?;
        self.sink
            .dir(rel, meta.permissions().mode() & 0o7777, Owner::of(&meta))?;
        for entry in fs::read_dir(src).map_err(|e| Error::io("list", src, e))? {
            let entry = entry.map_err(|e| Error::io("list", src, e))?;
            let from = entry.path();
            let rel_child = rel.join(entry.file_name());
            let lmeta = fs::symlink_metadata(&from).map_err(|e| Error::io("stat", &from, e))?;
            if lmeta.file_type().is_symlink() {
                let target = fs::read_link(&from).map_err(|e| Error::io("read link", &from, e))?;
                self.sink.symlink(&rel_child, &target, Owner::of(&lmeta))?;
            } else if lmeta.is_dir() {
                self.tree(&from, &rel_child)?;
            } else {
                self.progress.bytes_done += self.sink.file(&rel_child, &from, &lmeta)?.unwrap_or(0);
                self.progress.files += 1;
                if self.progress.bytes_done - self.last_reported >= REPORT_EVERY {
                    self.last_reported = self.progress.bytes_done;
                    (self.report)(&self.progress);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_file_arrives_whole_across_write_back_steps_and_a_short_one_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut sink = DirSink::new(root.path());
        let data: Vec<u8> = (0..(2 * WRITEBACK_EVERY as usize + 12_345))
            .map(|i| (i % 251) as u8)
            .collect();
        // A stream that hands out odd-sized pieces, as a pipe from sshd does.
        let mut pieces = io::Read::chain(&data[..70_001], &data[70_001..]);
        let n = sink
            .write(Path::new("16384"), 0o600, &mut pieces, data.len() as u64)
            .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(fs::read(root.path().join("16384")).unwrap(), data);
        let small = sink
            .write(Path::new("PG_VERSION"), 0o600, &mut &b"15\n"[..], 3)
            .unwrap();
        assert_eq!(small, 3);
        assert_eq!(fs::read(root.path().join("PG_VERSION")).unwrap(), b"15\n");
        let err = sink
            .write(Path::new("cut"), 0o600, &mut &data[..100], 200)
            .unwrap_err();
        assert!(err.to_string().contains("expected 200 bytes"), "{err}");
    }

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

    /// Bug: a set's own symlink was followed by the writes after it, so a master that sent
    /// `link l -> /anywhere` and then `file l/x` wrote /anywhere/x on the standby.
    #[test]
    fn nothing_is_written_through_a_symlink_in_the_set() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), "kept").unwrap();
        let mut sink = DirSink::new(&root.path().join("set"));
        let me = Owner { uid: 0, gid: 0 };
        sink.dir(Path::new(""), 0o700, me).unwrap();
        sink.symlink(Path::new("l"), &outside, me).unwrap();
        sink.symlink(Path::new("v"), &outside.join("victim"), me)
            .unwrap();

        let refusals = [
            sink.dir(Path::new("l/d"), 0o700, me).unwrap_err(),
            sink.write(Path::new("l/x"), 0o600, &mut &b"x"[..], 1)
                .unwrap_err(),
            sink.symlink(Path::new("l/y"), Path::new("/"), me)
                .unwrap_err(),
            sink.path(Path::new("v")).unwrap_err(),
            // The root itself cannot become a symlink either.
            DirSink::new(&root.path().join("new"))
                .symlink(Path::new(""), &outside, me)
                .unwrap_err(),
        ];
        for refused in refusals {
            let message = refused.to_string();
            assert!(message.contains("backup set"), "{message}");
        }
        let left: Vec<_> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["victim"]);
        assert_eq!(fs::read_to_string(outside.join("victim")).unwrap(), "kept");
        assert!(!root.path().join("new").exists());
        // The symlinks themselves are part of the set, as a data directory's are.
        assert_eq!(fs::read_link(root.path().join("set/l")).unwrap(), outside);
    }
}
