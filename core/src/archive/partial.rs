//! partial_wals on the standby: the master's current, unfinished segment, as far as the
//! master has flushed it, so that a failover loses seconds of commits instead of a segment.
//!
//! The durability rules, each enforced below next to the line that keeps it:
//! - the file carries the segment's name and is padded with zeros to the segment size, so
//!   recovery reads it like any segment and stops where the shipped WAL ends;
//! - a write is acknowledged only once its bytes are fdatasync'd, and only then is the
//!   length the file holds raised (the held length never claims bytes that are not durable);
//! - offset 0 starts the file afresh: a new file, complete and fsynced under a temp name,
//!   replaces the old copy (after a crash the master may rewrite a flushed but unfinished
//!   record at the tail, so an old tail must never survive a restart);
//! - later writes extend what the file holds with no gap; a resend of bytes the file
//!   already holds is success if identical and refused if not;
//! - every refusal leaves the file byte-identical: the request is read whole and checked
//!   before anything is written.
//!
//! How much of the file is real WAL cannot be read from the file (it is zero-padded, and
//! WAL itself may end in zeros), so it is kept beside it in `.<name>.held`: the data file's
//! inode, the length, and a checksum, in one 24-byte write (within a disk sector, as
//! PostgreSQL keeps pg_control). A held record for another inode (a crash between the
//! rename of a fresh file and its record) or with a bad checksum counts as holding nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::archive::store::{copy_out, fsync_dir, read_at, TempFile};
use crate::error::{Error, Result};
use crate::wal::segment::{LongPageHeader, LONG_HEADER_LEN};
use crate::wal::SegmentName;

/// Partial copies hold the cluster's data: readable by its owner only.
const FILE_MODE: u32 = 0o600;
/// The most one request may carry: it is held in memory until checked.
pub const MAX_CHUNK: u64 = 64 << 20;

#[derive(Debug, Clone)]
pub struct PartialStore {
    dir: PathBuf,
}

/// What a partial file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub len: u64,
    pub seg_size: u64,
}

impl PartialStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PartialStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, segment: &SegmentName) -> PathBuf {
        self.dir.join(segment.to_string())
    }

    fn held_path(&self, segment: &SegmentName) -> PathBuf {
        self.dir.join(format!(".{segment}.held"))
    }

    /// What the partial copy of `segment` holds; None when there is none (or its record
    /// does not describe this very file).
    pub fn held(&self, segment: &SegmentName) -> Result<Option<Held>> {
        let path = self.path_of(segment);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("stat", &path, e)),
        };
        let record = match fs::read(self.held_path(segment)) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", self.held_path(segment), e)),
        };
        Ok(decode_held(&record)
            .filter(|(ino, len)| *ino == meta.ino() && *len <= meta.len())
            .map(|(_, len)| Held {
                len,
                seg_size: meta.len(),
            }))
    }

    /// Writes `len` bytes read from `data` at `offset` into the partial copy of `segment`,
    /// durably. Refusals leave the file as it was.
    pub fn write(
        &self,
        segment: &SegmentName,
        offset: u64,
        data: impl Read,
        len: u64,
    ) -> Result<()> {
        let path = self.path_of(segment);
        if len > MAX_CHUNK {
            return Err(self.refuse(
                segment,
                format!("{len} bytes in one request; at most {MAX_CHUNK}"),
            ));
        }
        // Read and check everything before the first write.
        let mut bytes = Vec::with_capacity(len as usize);
        data.take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read the bytes for", &path, e))?;
        if bytes.len() as u64 != len {
            return Err(self.refuse(
                segment,
                format!("{len} bytes announced, {} arrived", bytes.len()),
            ));
        }
        // One writer at a time per directory: a fresh file replacing the old one must not
        // race a write into the old one, whose bytes would vanish with it.
        let _lock = self.lock()?;
        if offset == 0 {
            return self.start_afresh(segment, &bytes);
        }
        let Some(held) = self.held(segment)? else {
            return Err(self.refuse(
                segment,
                format!("nothing of it is held here, so offset {offset} leaves a gap; start at offset 0"),
            ));
        };
        let end = offset.saturating_add(len);
        if end > held.seg_size {
            return Err(self.refuse(
                segment,
                format!(
                    "bytes up to {end} do not fit a segment of {} bytes",
                    held.seg_size
                ),
            ));
        }
        if offset > held.len {
            return Err(self.refuse(
                segment,
                format!(
                    "offset {offset} leaves a gap after the {} bytes held; resend from there",
                    held.len
                ),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(crate::os::files::NO_FOLLOW)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        // A resend of what is already held must be identical: WAL, once flushed, does not
        // change (unless the master restarted, and then it starts at offset 0).
        let overlap = (held.len.min(end) - offset) as usize;
        if overlap > 0 {
            let mut have = vec![0u8; overlap];
            read_at(&file, &mut have, offset).map_err(|e| Error::io("read", &path, e))?;
            if have != bytes[..overlap] {
                return Err(self.refuse(
                    segment,
                    format!(
                        "the bytes from offset {offset} differ from those already held; \
                         the master must start the segment again at offset 0"
                    ),
                ));
            }
        }
        if end > held.len {
            file.write_all_at(&bytes[overlap..], held.len)
                .map_err(|e| Error::io("write", &path, e))?;
            // Durable before the held length claims it, and before the master hears so.
            file.sync_data().map_err(|e| Error::io("fsync", &path, e))?;
            self.record_held(
                segment,
                file.metadata()
                    .map_err(|e| Error::io("stat", &path, e))?
                    .ino(),
                end,
            )?;
        }
        Ok(())
    }

    /// Offset 0: a new, complete file replaces whatever copy there was.
    fn start_afresh(&self, segment: &SegmentName, bytes: &[u8]) -> Result<()> {
        let path = self.path_of(segment);
        let Some(header) = bytes.get(..LONG_HEADER_LEN) else {
            return Err(self.refuse(
                segment,
                format!("offset 0 must bring at least the segment's {LONG_HEADER_LEN}-byte header"),
            ));
        };
        let mut long = [0u8; LONG_HEADER_LEN];
        long.copy_from_slice(header);
        let long = LongPageHeader::decode(&long);
        // The segment size comes from the WAL itself, never assumed; the header must be this
        // segment's.
        long.check(segment, u64::from(long.seg_size), &path)?;
        let seg_size = u64::from(long.seg_size);
        if bytes.len() as u64 > seg_size {
            return Err(self.refuse(
                segment,
                format!(
                    "{} bytes do not fit a segment of {seg_size} bytes",
                    bytes.len()
                ),
            ));
        }
        let temp = TempFile::create(&self.dir, &segment.to_string())?;
        temp.file
            .write_all_at(bytes, 0)
            .and_then(|_| temp.file.set_len(seg_size))
            // fsync before rename: the final name never points at blocks not on disk.
            .and_then(|_| temp.file.sync_data())
            .map_err(|e| Error::io("write", &temp.path, e))?;
        let ino = temp
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &temp.path, e))?
            .ino();
        // Replacing is the point here: an older copy's tail may not survive.
        fs::rename(&temp.path, &path).map_err(|e| Error::io("rename into place", &path, e))?;
        temp.disarm();
        fsync_dir(&self.dir)?;
        self.record_held(segment, ino, bytes.len() as u64)
    }

    fn record_held(&self, segment: &SegmentName, ino: u64, len: u64) -> Result<()> {
        let path = self.held_path(segment);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(crate::os::files::NO_FOLLOW)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let fresh = file.metadata().map(|m| m.len() == 0).unwrap_or(true);
        file.write_all_at(&encode_held(ino, len), 0)
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io("write", &path, e))?;
        if fresh {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Removes the partial copy of `segment` once the complete segment is durable in
    /// completed_wals. True if there was one.
    pub fn retire(&self, segment: &SegmentName) -> Result<bool> {
        // The archiver calls this for every segment: one stat when there is no copy (the
        // usual case without in-progress shipping, or no partial_wals at all).
        if !self.path_of(segment).exists() && !self.held_path(segment).exists() {
            return Ok(false);
        }
        let _lock = self.lock()?;
        let path = self.path_of(segment);
        let existed = match fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io("remove", &path, e)),
        };
        let held = self.held_path(segment);
        match fs::remove_file(&held) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &held, e)),
        }
        if existed {
            fsync_dir(&self.dir)?;
        }
        Ok(existed)
    }

    /// Copies the partial copy of `segment` (padded, as recovery reads segments) to `dst`.
    /// Fails with a not-found error when there is none.
    pub fn restore_to(&self, segment: &SegmentName, dst: &Path) -> Result<u64> {
        let path = self.path_of(segment);
        let mut file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        copy_out(&mut file, len, &path, dst)
    }

    /// The newest partial copy and how many bytes it holds.
    pub fn newest(&self) -> Option<(SegmentName, Held)> {
        crate::archive::listing::segments(&self.dir)
            .into_iter()
            .filter_map(|s| Some((s, self.held(&s).ok()??)))
            .max_by_key(|(s, _)| (s.log, s.seg, s.tli))
    }

    fn lock(&self) -> Result<Flock<File>> {
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(crate::os::files::NO_FOLLOW)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::io("lock", &path, io::Error::from(errno)))
    }

    fn refuse(&self, segment: &SegmentName, why: String) -> Error {
        Error::refused(format!(
            "{}: partial write refused, nothing changed: {why}",
            self.path_of(segment).display()
        ))
    }
}

const HELD_MAGIC: u64 = 0x7761_6c6d_6772_6831; // "walmgrh1"

fn encode_held(ino: u64, len: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&ino.to_le_bytes());
    out[8..16].copy_from_slice(&len.to_le_bytes());
    out[16..].copy_from_slice(&check_of(ino, len).to_le_bytes());
    out
}

fn decode_held(record: &[u8]) -> Option<(u64, u64)> {
    let word = |i: usize| Some(u64::from_le_bytes(record.get(i..i + 8)?.try_into().ok()?));
    let (ino, len, check) = (word(0)?, word(8)?, word(16)?);
    (check == check_of(ino, len)).then_some((ino, len))
}

/// Tells a whole record from a torn or foreign one; not a defence against tampering.
fn check_of(ino: u64, len: u64) -> u64 {
    (ino ^ HELD_MAGIC)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
        ^ len.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::segment::tests::fake_segment;

    const MB: u32 = 1 << 20;

    fn seg(n: u64) -> SegmentName {
        SegmentName::from_segno(1, n, MB)
    }

    struct Scene {
        _dir: tempfile::TempDir,
        store: PartialStore,
        wal: Vec<u8>,
    }

    fn scene() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        Scene {
            store: PartialStore::new(dir.path()),
            wal: fake_segment(&seg(3), MB),
            _dir: dir,
        }
    }

    impl Scene {
        fn write(&self, offset: u64, end: u64) -> Result<()> {
            let bytes = &self.wal[offset as usize..end as usize];
            self.store.write(&seg(3), offset, bytes, end - offset)
        }
        fn file(&self) -> Vec<u8> {
            fs::read(self.store.path_of(&seg(3))).unwrap()
        }
    }

    #[test]
    fn writes_extend_the_copy_which_stays_padded_to_the_segment_size() {
        let s = scene();
        s.write(0, 8192).unwrap();
        s.write(8192, 20_000).unwrap();
        let file = s.file();
        assert_eq!(file.len(), MB as usize);
        assert_eq!(file[..20_000], s.wal[..20_000]);
        assert!(file[20_000..].iter().all(|b| *b == 0));
        assert_eq!(s.store.held(&seg(3)).unwrap().unwrap().len, 20_000);
    }

    #[test]
    fn an_identical_resend_is_success_and_changes_nothing() {
        let s = scene();
        s.write(0, 20_000).unwrap();
        s.write(8192, 20_000).unwrap();
        s.write(10_000, 30_000).unwrap();
        assert_eq!(s.store.held(&seg(3)).unwrap().unwrap().len, 30_000);
        assert_eq!(s.file()[..30_000], s.wal[..30_000]);
    }

    #[test]
    fn every_bad_request_is_refused_and_leaves_the_file_byte_identical() {
        let s = scene();
        s.write(0, 20_000).unwrap();
        let before = s.file();
        let other = [0xABu8; 100];
        // (what is wrong, what the refusal says)
        let cases: Vec<(&str, Result<()>)> = vec![
            ("gap", s.write(20_001, 30_000)),
            (
                "do not fit",
                s.store.write(&seg(3), u64::from(MB) - 10, &other[..], 100),
            ),
            // Bug: offset + len overflowed, a panic in a debug build.
            (
                "do not fit",
                s.store.write(&seg(3), u64::MAX - 10, &other[..], 100),
            ),
            (
                "announced",
                s.store.write(&seg(3), 20_000, &other[..50], 100),
            ),
            ("differ", s.store.write(&seg(3), 10_000, &other[..], 100)),
            (
                "nothing of it is held",
                s.store.write(&seg(4), 100, &other[..], 100),
            ),
        ];
        for (what, result) in cases {
            let err = result.expect_err(what).to_string();
            assert!(
                err.contains("refused, nothing changed") && err.contains(what),
                "{what}: {err}"
            );
            assert_eq!(s.file(), before, "{what} changed the file");
            assert_eq!(
                s.store.held(&seg(3)).unwrap().unwrap().len,
                20_000,
                "{what}"
            );
        }
    }

    #[test]
    fn offset_zero_replaces_an_older_copy_whole() {
        let s = scene();
        s.write(0, 30_000).unwrap();
        // The master crashed and rewrote its tail: the new incarnation is shorter and differs.
        let mut rewritten = s.wal[..12_000].to_vec();
        rewritten[11_000..].fill(0x5A);
        s.store.write(&seg(3), 0, &rewritten[..], 12_000).unwrap();
        let file = s.file();
        assert_eq!(file[..12_000], rewritten[..]);
        assert!(
            file[12_000..].iter().all(|b| *b == 0),
            "the old tail survived"
        );
        assert_eq!(s.store.held(&seg(3)).unwrap().unwrap().len, 12_000);
    }

    #[test]
    fn offset_zero_must_carry_this_segments_header() {
        let s = scene();
        let not_ours = fake_segment(&seg(9), MB);
        let err = s
            .store
            .write(&seg(3), 0, &not_ours[..8192], 8192)
            .unwrap_err();
        assert!(matches!(err, Error::Damaged { .. }), "{err}");
        assert!(!s.store.path_of(&seg(3)).exists());
    }

    #[test]
    fn a_held_record_of_another_file_counts_as_holding_nothing() {
        let s = scene();
        s.write(0, 20_000).unwrap();
        let held = s.store.held_path(&seg(3));
        let record = fs::read(&held).unwrap();
        // A crash after a fresh file replaced the old one, before its record was written.
        let path = s.store.path_of(&seg(3));
        let copy = path.with_extension("copy");
        fs::copy(&path, &copy).unwrap();
        fs::rename(&copy, &path).unwrap();
        fs::write(&held, record).unwrap();
        assert_eq!(s.store.held(&seg(3)).unwrap(), None);
        assert!(
            s.write(20_000, 30_000).is_err(),
            "a write after an untrusted length"
        );
    }

    #[test]
    fn retire_removes_the_copy_and_its_record_and_restore_hands_out_the_padded_file() {
        let s = scene();
        s.write(0, 20_000).unwrap();
        let dst = s.store.dir().join("RECOVERYXLOG");
        assert_eq!(s.store.restore_to(&seg(3), &dst).unwrap(), u64::from(MB));
        assert_eq!(fs::read(&dst).unwrap(), s.file());
        assert_eq!(
            s.store.newest().map(|(n, h)| (n, h.len)),
            Some((seg(3), 20_000))
        );
        assert!(s.store.retire(&seg(3)).unwrap());
        assert!(!s.store.path_of(&seg(3)).exists());
        assert!(!s.store.held_path(&seg(3)).exists());
        assert!(!s.store.retire(&seg(3)).unwrap());
    }
}
