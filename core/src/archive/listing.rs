//! What an archive directory holds, read from the names and headers of its files.

use std::fs;
use std::path::Path;

use crate::wal::{Lsn, SegmentName, WalFileName};

/// The segments in `dir` (not .history, .backup or partial files), in no particular order.
pub fn segments(dir: &Path) -> Vec<SegmentName> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(
                    |e| match WalFileName::parse(&e.file_name().to_string_lossy()) {
                        Ok(WalFileName::Segment(s)) => Some(s),
                        _ => None,
                    },
                )
                .collect()
        })
        .unwrap_or_default()
}

/// The newest segment in `dir` and where the WAL it holds begins and ends: how far replay
/// from this archive can go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    pub segment: SegmentName,
    pub start: Lsn,
    pub end: Lsn,
}

pub fn reach(dir: &Path) -> Option<Reach> {
    let seg_size = segment_size(dir)?;
    // Position first: a newer timeline branches off at an older position, and replay
    // follows the newest timeline, so the furthest position is what recovery can reach.
    let newest = segments(dir)
        .into_iter()
        .max_by_key(|s| (s.segno(seg_size), s.tli))?;
    let start = newest.start_lsn(seg_size);
    Some(Reach {
        segment: newest,
        start: Lsn(start),
        end: Lsn(start + u64::from(seg_size)),
    })
}

/// The segment size of the WAL in `dir`, read from a segment's own header (any segment:
/// they all agree). None if there is no segment.
pub fn segment_size(dir: &Path) -> Option<u32> {
    use std::io::Read;
    let entries = fs::read_dir(dir).ok()?;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !matches!(WalFileName::parse(&name), Ok(WalFileName::Segment(_))) {
            continue;
        }
        let mut header = [0u8; crate::wal::segment::LONG_HEADER_LEN];
        if fs::File::open(e.path())
            .and_then(|mut f| f.read_exact(&mut header))
            .is_ok()
        {
            let size = crate::wal::segment::LongPageHeader::decode(&header).seg_size;
            // Only a size PostgreSQL can have; anything else is a damaged header.
            if size.is_power_of_two() && ((1 << 20)..=(1 << 30)).contains(&size) {
                return Some(size);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::segment::tests::fake_segment;

    #[test]
    fn the_reach_is_the_end_of_the_newest_segment_by_position() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(reach(dir.path()), None, "an empty archive reaches nowhere");
        const MB: u32 = 1 << 20;
        for name in [
            "000000010000000000000003",
            "000000010000000000000005",
            "000000020000000000000004",
        ] {
            let seg = match WalFileName::parse(name).unwrap() {
                WalFileName::Segment(s) => s,
                _ => unreachable!(),
            };
            fs::write(dir.path().join(name), fake_segment(&seg, MB)).unwrap();
        }
        fs::write(
            dir.path().join("00000002.history"),
            "1\t0/4000000\tno recovery target specified\n",
        )
        .unwrap();
        assert_eq!(segment_size(dir.path()), Some(MB));
        let r = reach(dir.path()).unwrap();
        assert_eq!(r.segment.to_string(), "000000010000000000000005");
        assert_eq!((r.start, r.end), (Lsn(5 * MB as u64), Lsn(6 * MB as u64)));
    }
}
