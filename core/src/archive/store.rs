//! The archive directory: where completed WAL files live, and the only code that writes them.
//!
//! The durability rules, each enforced below next to the line that keeps it:
//! - a file is visible under its final name only once it is complete and on disk;
//! - success is reported only after the file and its directory entry are fsynced;
//! - an existing file is never replaced: the same bytes again count as success (PostgreSQL
//!   retries a file whose archiving it could not confirm), different bytes are an error.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};

use crate::error::{Error, Result};
use crate::wal::name::{SegmentName, WalFileName};
use crate::wal::segment::{LongPageHeader, LONG_HEADER_LEN};

/// Archived files hold the cluster's data: readable by its owner only.
const FILE_MODE: u32 = 0o600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The file was written and made durable.
    Written,
    /// An identical copy was already archived (a retry after a lost acknowledgement).
    AlreadyPresent,
}

#[derive(Debug, Clone)]
pub struct ArchiveStore {
    dir: PathBuf,
}

impl ArchiveStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArchiveStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, name: &WalFileName) -> PathBuf {
        self.dir.join(name.to_string())
    }

    /// The length of `name` here, or None while it is not archived. Under its final name a
    /// file is whole and on disk (see the rules above), so a length is all there is to ask.
    pub fn archived_len(&self, name: &WalFileName) -> Result<Option<u64>> {
        let path = self.path_of(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", &path, e)),
        }
    }

    /// Archives the file at `src` under `name`.
    pub fn archive_file(&self, name: &WalFileName, src: &Path) -> Result<Stored> {
        let file = File::open(src).map_err(|e| Error::io("open", src, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", src, e))?
            .len();
        self.archive_stream(name, file, len)
    }

    /// Archives exactly `len` bytes read from `data` under `name`. This is the single write
    /// path of the archive, whatever brought the bytes (a local file or a transport).
    pub fn archive_stream(&self, name: &WalFileName, data: impl Read, len: u64) -> Result<Stored> {
        let final_path = self.path_of(name);
        let temp = TempFile::create(&self.dir, &name.to_string())?;

        let copied = copy_with_writeback(data, &temp.file, len)
            .map_err(|e| Error::io("write", &temp.path, e))?;
        if copied != len {
            return Err(Error::damaged(
                &temp.path,
                format!("expected {len} bytes for {name}, got {copied} (source shrank?)"),
            ));
        }
        // A damaged or misnamed segment must not enter the archive: recovery would stop at it.
        check_contents(name, &temp.file, &temp.path, len)?;

        // fsync before rename: after a crash the final name must never point at a file
        // whose blocks did not reach the disk.
        temp.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &temp.path, e))?;

        // Publish without replacing: another writer may have finished the same name since.
        match rename_noreplace(&temp.path, &final_path) {
            Ok(()) => {
                temp.disarm();
                fsync_dir(&self.dir)?;
                Ok(Stored::Written)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let existing =
                    File::open(&final_path).map_err(|e| Error::io("open", &final_path, e))?;
                if !same_contents(&temp.file, &existing)
                    .map_err(|e| Error::io("compare", &final_path, e))?
                {
                    return Err(Error::Conflict { path: final_path });
                }
                // The earlier copy may predate a crash that lost its fsync; make sure now.
                existing
                    .sync_all()
                    .map_err(|e| Error::io("fsync", &final_path, e))?;
                fsync_dir(&self.dir)?;
                Ok(Stored::AlreadyPresent)
            }
            Err(e) => Err(Error::io("rename into place", &final_path, e)),
        }
    }

    /// Copies the archived `name` to `dst` for recovery. Fails with a not-found error
    /// (see [`Error::is_not_found`]) when the archive does not have it (yet).
    ///
    /// `dst` appears only when complete (temp + rename), so PostgreSQL never reads a torn
    /// file. No fsync: the file is read by recovery straight away and re-fetched after a crash.
    pub fn restore_to(&self, name: &WalFileName, dst: &Path) -> Result<u64> {
        let src_path = self.path_of(name);
        let mut src = File::open(&src_path).map_err(|e| Error::io("open", &src_path, e))?;
        let len = src
            .metadata()
            .map_err(|e| Error::io("stat", &src_path, e))?
            .len();
        // From disk, the whole segment at once rather than readahead's growing window.
        will_need(&src);
        check_contents(name, &src, &src_path, len)?;
        src.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("read", &src_path, e))?;

        copy_out(&mut src, len, &src_path, dst)
    }

    /// Asks the kernel to read a segment about 64 MB (2 to 16 files) after `segment` (of
    /// `seg_size` bytes) into the page cache in the background, while PostgreSQL replays:
    /// recovery asks for it a few restore_commands later, and would otherwise wait for its
    /// reads from disk. Each call advises only the far end of the window, as the calls for
    /// the segments before already advised the rest: one open per restored segment, not
    /// sixteen. Only advice: a missing file (not archived yet) or a failed call changes
    /// nothing.
    pub fn read_ahead_after(&self, segment: &SegmentName, seg_size: u64) {
        let Ok(size) = u32::try_from(seg_size) else {
            return;
        };
        if size == 0 {
            return;
        }
        let ahead = (READ_AHEAD_BYTES / seg_size).clamp(2, 16);
        let name = SegmentName::from_segno(segment.tli, segment.segno(size) + ahead, size);
        if let Ok(f) = File::open(self.dir.join(name.to_string())) {
            will_need(&f);
        }
    }
}

/// How far [`ArchiveStore::read_ahead_after`] reads ahead of recovery.
const READ_AHEAD_BYTES: u64 = 64 << 20;

/// posix_fadvise(WILLNEED) on all of `file`: the kernel starts reading what is not cached
/// and returns. Advice only, so its failure is ignored.
fn will_need(file: &File) {
    let _ = nix::fcntl::posix_fadvise(
        file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    );
}

/// Copies `len` bytes of `src` (read from `src_path`) to `dst` for recovery: `dst` appears
/// only when complete (temp + rename), so PostgreSQL never reads a torn file. No fsync: the
/// file is read by recovery straight away and re-fetched after a crash.
pub(crate) fn copy_out(src: &mut File, len: u64, src_path: &Path, dst: &Path) -> Result<u64> {
    let dst_dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dst_name = dst
        .file_name()
        .ok_or_else(|| Error::refused(format!("{} is not a file path", dst.display())))?;
    let temp = TempFile::create(dst_dir, &dst_name.to_string_lossy())?;
    // A reflink where the filesystem has one (XFS, Btrfs): the copy shares the archive's
    // blocks until either side writes, so PostgreSQL recycling the segment in place
    // later changes only its copy (which is why this is never a hard link). Elsewhere
    // (ext4) io::copy, which is copy_file_range(2): the copy stays in the kernel.
    let copied = if reflink(src, &temp.file) {
        temp.file
            .metadata()
            .map_err(|e| Error::io("stat", &temp.path, e))?
            .len()
    } else {
        io::copy(src, &mut &*temp.file).map_err(|e| Error::io("write", &temp.path, e))?
    };
    if copied != len {
        return Err(Error::damaged(
            src_path,
            format!("expected {len} bytes, read {copied}"),
        ));
    }
    fs::rename(&temp.path, dst).map_err(|e| Error::io("rename into place", dst, e))?;
    temp.disarm();
    Ok(len)
}

/// FICLONE: makes `dst` (empty) share all of `src`'s blocks. False when the filesystem
/// cannot (EOPNOTSUPP, EXDEV, EINVAL on ext4 and tmpfs), and the caller copies instead.
fn reflink(src: &File, dst: &File) -> bool {
    // SAFETY: FICLONE takes the source descriptor as its argument; both are open files.
    unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) == 0 }
}

/// Chunk for reads and writes; writeback of the previous chunk starts as the next is copied.
const COPY_CHUNK: usize = 1 << 20;
const WRITEBACK_EVERY: u64 = 4 << 20;

/// Copies `len` bytes from `src` to `dst`, asking the kernel to start writing each few MiB
/// out while the copy goes on (as PostgreSQL's own copy does). The final fsync then finds
/// most blocks already on their way instead of flushing the whole file at once.
fn copy_with_writeback(src: impl Read, dst: &File, len: u64) -> io::Result<u64> {
    use std::io::Write;
    let mut src = src.take(len);
    let mut buf = vec![0u8; COPY_CHUNK];
    let (mut done, mut flushed) = (0u64, 0u64);
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        (&*dst).write_all(&buf[..n])?;
        done += n as u64;
        if done - flushed >= WRITEBACK_EVERY {
            // SAFETY: a hint on an open descriptor; failure only loses the head start.
            // Neither nix nor rustix offers sync_file_range.
            unsafe {
                libc::sync_file_range(
                    dst.as_raw_fd(),
                    flushed as libc::off64_t,
                    (done - flushed) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            flushed = done;
        }
    }
    Ok(done)
}

/// For a segment, the header must match the name and the length the segment size.
fn check_contents(name: &WalFileName, file: &File, path: &Path, len: u64) -> Result<()> {
    let WalFileName::Segment(segment) = name else {
        return Ok(());
    };
    let mut header = [0u8; LONG_HEADER_LEN];
    if len < LONG_HEADER_LEN as u64 {
        return Err(Error::damaged(
            path,
            format!("only {len} bytes, too short for a segment"),
        ));
    }
    read_at(file, &mut header, 0).map_err(|e| Error::io("read", path, e))?;
    LongPageHeader::decode(&header).check(segment, len, path)
}

pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

fn same_contents(a: &File, b: &File) -> io::Result<bool> {
    let (la, lb) = (a.metadata()?.len(), b.metadata()?.len());
    if la != lb {
        return Ok(false);
    }
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < la {
        let n = ((la - offset) as usize).min(ba.len());
        read_at(a, &mut ba[..n], offset)?;
        read_at(b, &mut bb[..n], offset)?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        offset += n as u64;
    }
    Ok(true)
}

/// A temp file beside its final name, removed on drop unless disarmed.
///
/// The name is derived from the final name, not random: a writer killed mid-copy leaves
/// its temp file behind, and the retry of the same file reuses (truncates) it, so crashes
/// leave no litter that grows. An exclusive flock keeps two live writers of the same name
/// from sharing it.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    /// Unlocked when dropped (and by the kernel when we die).
    pub(crate) file: Flock<File>,
    armed: bool,
}

impl TempFile {
    pub(crate) fn create(dir: &Path, final_name: &str) -> Result<TempFile> {
        let path = dir.join(format!(".{final_name}.walmgr-tmp"));
        // A few rounds: the file we opened may have been published (renamed to its final
        // name) by the writer that held it until we got the lock.
        for _ in 0..10 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(FILE_MODE)
                .custom_flags(crate::os::files::NO_FOLLOW)
                .open(&path)
                .map_err(|e| Error::io("create", &path, e))?;
            // Between the open and the lock is where another writer can publish the file.
            #[cfg(test)]
            tests::opened_temp_file();
            let file =
                Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                    Error::io(
                        "lock (another walmgr is writing the same file right now)",
                        &path,
                        io::Error::from(errno),
                    )
                })?;
            // Ours only if the name still points at the inode we locked: otherwise the
            // previous holder renamed it into place, and truncating it would destroy an
            // archived file.
            if !still_named(&file, &path) {
                continue;
            }
            // Only now is it ours: drop whatever a killed writer left. A file we have just
            // created is empty with our mode already, and is left alone: on ext4 a truncate
            // to zero (even of an empty file) marks it "replaced by truncate", and its close
            // then starts writing all of it out (auto_da_alloc), 16 MB of disk writes per
            // segment restored for recovery, which only needs it in the page cache.
            let meta = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
            if meta.len() > 0 {
                file.set_len(0)
                    .map_err(|e| Error::io("truncate", &path, e))?;
            }
            if meta.permissions().mode() & 0o7777 != FILE_MODE {
                file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
                    .map_err(|e| Error::io("chmod", &path, e))?;
            }
            return Ok(TempFile {
                path,
                file,
                armed: true,
            });
        }
        Err(Error::io(
            "claim",
            &path,
            io::Error::other("other writers keep publishing this name; retry later"),
        ))
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Replaces (or creates) the small file `path` with `contents`, mode 0600, so that a crash
/// leaves either the old or the new file, never a torn one: for configs and
/// authorized_keys, which people edit and sshd reads at any moment.
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::refused(format!("{} names no file", path.display())))?;
    let mut temp = TempFile::create(dir, &name.to_string_lossy())?;
    temp.file
        .write_all(contents)
        .and_then(|_| temp.file.sync_data())
        .map_err(|e| Error::io("write", &temp.path, e))?;
    fs::rename(&temp.path, path).map_err(|e| Error::io("rename into place", path, e))?;
    temp.disarm();
    fsync_dir(dir)
}

/// rename(2) that fails with AlreadyExists instead of replacing the target.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        // Filesystems without RENAME_NOREPLACE: link(2) also refuses to replace.
        Err(Errno::EINVAL) | Err(Errno::ENOSYS) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::name::SegmentName;
    use crate::wal::segment::tests::fake_segment;
    use std::cell::{Cell, RefCell};
    use std::os::unix::fs::MetadataExt;
    use std::rc::Rc;

    const MB: u32 = 1 << 20;

    fn segment(seg: u32) -> (WalFileName, Vec<u8>) {
        let name = SegmentName {
            tli: 1,
            log: 0,
            seg,
        };
        (WalFileName::Segment(name), fake_segment(&name, MB))
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn archived_segment_is_identical_private_and_alone() {
        let src = tempfile::tempdir().unwrap();
        let archive = tempfile::tempdir().unwrap();
        let (name, data) = segment(3);
        let src_path = src.path().join(name.to_string());
        fs::write(&src_path, &data).unwrap();

        let store = ArchiveStore::new(archive.path());
        assert_eq!(
            store.archive_file(&name, &src_path).unwrap(),
            Stored::Written
        );

        let stored = store.path_of(&name);
        assert_eq!(fs::read(&stored).unwrap(), data);
        assert_eq!(
            fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(listing(archive.path()), vec![name.to_string()]);
    }

    #[test]
    fn archiving_the_same_bytes_twice_succeeds() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(4);
        store
            .archive_stream(&name, &data[..], data.len() as u64)
            .unwrap();
        let again = store
            .archive_stream(&name, &data[..], data.len() as u64)
            .unwrap();
        assert_eq!(again, Stored::AlreadyPresent);
        assert_eq!(listing(archive.path()), vec![name.to_string()]);
    }

    #[test]
    fn different_bytes_under_an_archived_name_fail_and_leave_it_unchanged() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(5);
        store
            .archive_stream(&name, &data[..], data.len() as u64)
            .unwrap();
        let mut other = data.clone();
        other[5000] ^= 0xFF;
        let err = store
            .archive_stream(&name, &other[..], other.len() as u64)
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("different content"));
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), data);
        assert_eq!(listing(archive.path()), vec![name.to_string()]);
    }

    #[test]
    fn a_short_source_never_appears_under_the_final_name() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(6);
        let err = store
            .archive_stream(&name, &data[..1000], data.len() as u64)
            .unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
        assert!(listing(archive.path()).is_empty());
    }

    #[test]
    fn a_segment_whose_header_disagrees_with_its_name_is_refused() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (_, data) = segment(7);
        let (wrong, _) = segment(8);
        let err = store
            .archive_stream(&wrong, &data[..], data.len() as u64)
            .unwrap_err();
        assert!(matches!(err, Error::Damaged { .. }), "{err}");
        assert!(listing(archive.path()).is_empty());
    }

    #[test]
    fn a_temp_file_left_by_a_killed_writer_is_reused_not_published() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(9);
        let leftover = archive.path().join(format!(".{name}.walmgr-tmp"));
        fs::write(&leftover, b"half a segment").unwrap();
        store
            .archive_stream(&name, &data[..], data.len() as u64)
            .unwrap();
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), data);
        assert_eq!(listing(archive.path()), vec![name.to_string()]);
    }

    /// A symlink planted under a temp file's name is refused, not followed: the file it
    /// points at is left as it was, and nothing is published.
    #[test]
    fn a_symlink_under_the_temp_name_is_refused_and_its_target_untouched() {
        let archive = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("postgresql.conf");
        fs::write(&victim, b"precious").unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(21);
        std::os::unix::fs::symlink(&victim, archive.path().join(format!(".{name}.walmgr-tmp")))
            .unwrap();
        let err = store
            .archive_stream(&name, &data[..], data.len() as u64)
            .unwrap_err();
        assert!(err.to_string().contains(".walmgr-tmp"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!store.path_of(&name).exists());
    }

    thread_local! {
        /// What happens, on this thread, right after the next open of a temp name and
        /// before its lock: another writer's turn.
        static AFTER_OPEN: RefCell<Option<Box<dyn FnOnce()>>> = const { RefCell::new(None) };
    }

    /// Called by [`TempFile::create`] between its open and its lock.
    pub(super) fn opened_temp_file() {
        // Taken out before it runs: the other writer opens temp names too.
        if let Some(other_writer) = AFTER_OPEN.with(|a| a.borrow_mut().take()) {
            other_writer();
        }
    }

    /// Two writers of one segment (PostgreSQL retries a file whose first attempt still
    /// runs): B opens the temp name; before B locks it, A writes the whole segment through
    /// the same name and publishes it. The file B opened is now the archived segment: B
    /// must not truncate and reuse it, but start over on a fresh temp file, and then find
    /// the identical copy archived.
    #[test]
    fn a_temp_file_published_by_another_writer_is_not_reused() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(13);
        let len = data.len() as u64;
        let temp = archive.path().join(format!(".{name}.walmgr-tmp"));
        let opened_by_b = Rc::new(Cell::new(None));
        let writer_a = {
            let (store, data) = (store.clone(), data.clone());
            let opened_by_b = Rc::clone(&opened_by_b);
            move || {
                opened_by_b.set(Some(fs::metadata(&temp).unwrap().ino()));
                let a = store.archive_stream(&name, &data[..], len).unwrap();
                assert_eq!(a, Stored::Written, "writer A");
            }
        };
        AFTER_OPEN.with(|a| *a.borrow_mut() = Some(Box::new(writer_a)));

        let b = store.archive_stream(&name, &data[..], len).unwrap();

        let archived = store.path_of(&name);
        assert_eq!(
            Some(fs::metadata(&archived).unwrap().ino()),
            opened_by_b.get(),
            "no race: A published another file than the one B had opened"
        );
        assert_eq!(b, Stored::AlreadyPresent, "writer B");
        assert_eq!(fs::read(&archived).unwrap(), data, "the archived segment");
        assert_eq!(listing(archive.path()), vec![name.to_string()]);
    }

    #[test]
    fn history_files_are_stored_as_they_are() {
        let archive = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let name = WalFileName::parse("00000002.history").unwrap();
        let text = b"1\t0/3000000\tno recovery target specified\n";
        store
            .archive_stream(&name, &text[..], text.len() as u64)
            .unwrap();
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), text);
    }

    #[test]
    fn restore_copies_whole_files_and_reports_a_miss_as_not_found() {
        let archive = tempfile::tempdir().unwrap();
        let pg_wal = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(10);
        store
            .archive_stream(&name, &data[..], data.len() as u64)
            .unwrap();

        let dst = pg_wal.path().join("RECOVERYXLOG");
        store.restore_to(&name, &dst).unwrap();
        assert_eq!(fs::read(&dst).unwrap(), data);
        assert_eq!(listing(pg_wal.path()), vec!["RECOVERYXLOG".to_string()]);

        let (missing, _) = segment(11);
        let err = store.restore_to(&missing, &dst).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn a_restored_segment_is_a_copy_and_reading_ahead_changes_nothing() {
        let archive = tempfile::tempdir().unwrap();
        let pg_wal = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        for n in [20, 21] {
            let (name, data) = segment(n);
            fs::write(store.path_of(&name), data).unwrap();
        }
        let before = listing(archive.path());
        let (name, data) = segment(20);
        let dst = pg_wal.path().join("RECOVERYXLOG");
        let bytes = store.restore_to(&name, &dst).unwrap();
        let WalFileName::Segment(seg) = name else {
            unreachable!()
        };
        // 21 is archived, 22 and on are not (yet): advice for the one, nothing for the rest.
        store.read_ahead_after(&seg, bytes);
        assert_eq!(listing(archive.path()), before);
        // PostgreSQL recycles a restored segment in place: the archive's copy must not change
        // (a hard link would share it; a reflink or a copy does not).
        use std::os::unix::fs::FileExt;
        let f = OpenOptions::new().write(true).open(&dst).unwrap();
        f.write_all_at(b"recycled", 0).unwrap();
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), data);
        assert_eq!(fs::metadata(&dst).unwrap().nlink(), 1);
        assert_eq!(listing(pg_wal.path()), vec!["RECOVERYXLOG".to_string()]);
    }

    #[test]
    fn restore_refuses_a_damaged_archived_segment() {
        let archive = tempfile::tempdir().unwrap();
        let pg_wal = tempfile::tempdir().unwrap();
        let store = ArchiveStore::new(archive.path());
        let (name, data) = segment(12);
        fs::write(store.path_of(&name), &data[..data.len() / 2]).unwrap();
        let dst = pg_wal.path().join("RECOVERYXLOG");
        let err = store.restore_to(&name, &dst).unwrap_err();
        assert!(!err.is_not_found());
        assert!(err.to_string().contains("damaged"), "{err}");
        assert!(!dst.exists());
    }
}
