//! Reading flushed WAL out of pg_wal while the server goes on writing it.
//!
//! Only bytes below the flush position are read, and those are never rewritten in place.
//! What can still go wrong is the file itself: once its segment is archived and a
//! checkpoint passed, the server may rename it to a future segment's name and overwrite
//! it (recycling). So the bytes are only trusted when, after reading, every page in them
//! says it belongs to this segment (magic, page address; the long header also system id
//! and segment size), and the file we read is still the one under the segment's name.

use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::wal::segment::{LongPageHeader, LONG_HEADER_LEN};
use crate::wal::{Lsn, SegmentName};

/// What the WAL of this cluster must look like.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub pg_wal: PathBuf,
    pub seg_size: u32,
    pub system_id: u64,
}

/// The bytes `[from, to)` of `segment`, checked as described above.
pub fn read(cluster: &Cluster, segment: &SegmentName, from: u64, to: u64) -> Result<Vec<u8>> {
    let path = cluster.pg_wal.join(segment.to_string());
    let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let mut long = [0u8; LONG_HEADER_LEN];
    file.read_exact_at(&mut long, 0)
        .map_err(|e| Error::io("read", &path, e))?;
    let long = LongPageHeader::decode(&long);
    check_long_header(&long, cluster, segment, &path)?;
    let page = u64::from(long.block_size);

    // From the start of the first page touched, so that its header is checked too.
    let page_start = from - from % page;
    let mut bytes = vec![0u8; (to - page_start) as usize];
    file.read_exact_at(&mut bytes, page_start)
        .map_err(|e| Error::io("read", &path, e))?;

    let seg_start = segment.start_lsn(cluster.seg_size);
    for (i, chunk) in bytes.chunks(page as usize).enumerate() {
        let offset = page_start + i as u64 * page;
        check_page(chunk, long.magic, seg_start + offset, &path)?;
    }
    still_named(&file, &path)?;
    Ok(bytes.split_off((from - page_start) as usize))
}

fn check_long_header(
    long: &LongPageHeader,
    cluster: &Cluster,
    segment: &SegmentName,
    path: &Path,
) -> Result<()> {
    long.check(segment, u64::from(cluster.seg_size), path)?;
    if long.system_id != cluster.system_id {
        return Err(Error::damaged(
            path,
            format!(
                "belongs to database system {}, not this cluster's {}",
                long.system_id, cluster.system_id
            ),
        ));
    }
    if !long.block_size.is_power_of_two() || long.block_size < 1024 {
        return Err(Error::damaged(
            path,
            format!("impossible WAL page size {}", long.block_size),
        ));
    }
    Ok(())
}

/// xlp_magic (u16 at 0) and xlp_pageaddr (u64 at 8) of a page; a page cut before its
/// address (the flushed tail of the last page) has nothing more to check. After a segment
/// switch PostgreSQL (14+) fills the rest of the segment with pages zeroed header and all,
/// so an all-zero header is switch padding, not foreign WAL.
fn check_page(page: &[u8], magic: u16, addr: u64, path: &Path) -> Result<()> {
    if page.len() < 16 || page[..16].iter().all(|b| *b == 0) {
        return Ok(());
    }
    let found_magic = u16::from_ne_bytes([page[0], page[1]]);
    let mut a = [0u8; 8];
    a.copy_from_slice(&page[8..16]);
    let found_addr = u64::from_ne_bytes(a);
    if found_magic != magic || found_addr != addr {
        return Err(Error::damaged(
            path,
            format!(
                "the page at {} holds other WAL (magic {found_magic:#06x}, address {}): \
                 the segment was recycled while it was read",
                Lsn(addr),
                Lsn(found_addr)
            ),
        ));
    }
    Ok(())
}

/// The file read is still the one under the segment's name (not renamed away for reuse).
fn still_named(file: &File, path: &Path) -> Result<()> {
    let read = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    match fs::metadata(path) {
        Ok(now) if now.dev() == read.dev() && now.ino() == read.ino() => Ok(()),
        _ => Err(Error::damaged(
            path,
            "renamed while it was read: the segment was recycled".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::segment::tests::fake_segment;

    const MB: u32 = 1 << 20;

    fn cluster(dir: &Path) -> Cluster {
        Cluster {
            pg_wal: dir.to_path_buf(),
            seg_size: MB,
            system_id: 7,
        }
    }

    #[test]
    fn flushed_bytes_are_read_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let seg = SegmentName::from_segno(1, 5, MB);
        let data = fake_segment(&seg, MB);
        fs::write(dir.path().join(seg.to_string()), &data).unwrap();
        let bytes = read(&cluster(dir.path()), &seg, 10_000, 30_000).unwrap();
        assert_eq!(bytes, data[10_000..30_000]);
    }

    #[test]
    fn a_page_of_other_wal_means_the_segment_was_recycled() {
        let dir = tempfile::tempdir().unwrap();
        let seg = SegmentName::from_segno(1, 5, MB);
        let mut data = fake_segment(&seg, MB);
        // The third page already holds a future segment's WAL.
        data[2 * 8192 + 8..2 * 8192 + 16].copy_from_slice(&(99u64 << 20).to_ne_bytes());
        fs::write(dir.path().join(seg.to_string()), &data).unwrap();
        let err = read(&cluster(dir.path()), &seg, 100, 30_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("recycled"), "{err}");
    }

    #[test]
    fn the_zeroed_pages_after_a_segment_switch_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let seg = SegmentName::from_segno(1, 5, MB);
        let mut data = fake_segment(&seg, MB);
        // A switch record on the second page; every page after it is zeros.
        data[2 * 8192..].fill(0);
        fs::write(dir.path().join(seg.to_string()), &data).unwrap();
        let bytes = read(&cluster(dir.path()), &seg, 100, u64::from(MB)).unwrap();
        assert_eq!(bytes, data[100..]);
    }

    #[test]
    fn another_clusters_wal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = SegmentName::from_segno(1, 5, MB);
        fs::write(dir.path().join(seg.to_string()), fake_segment(&seg, MB)).unwrap();
        let mut other = cluster(dir.path());
        other.system_id = 8;
        let err = read(&other, &seg, 0, 100).unwrap_err().to_string();
        assert!(err.contains("database system"), "{err}");
    }
}
