//! The names PostgreSQL gives the files it archives, and nothing else.
//!
//! Every name that arrives from outside (archive_command's %f, restore_command's %f, the
//! remote side of a transport) is parsed here before it becomes part of a path, so a name
//! can never climb out of the archive directory.

use std::fmt;

use crate::error::{Error, Result};

/// Segments per "xlogid" for a segment size: the middle 8 hex digits of a segment name
/// count in units of 4 GiB, the last 8 count segments within those 4 GiB.
pub fn segments_per_xlogid(seg_size: u32) -> u64 {
    0x1_0000_0000u64 / u64::from(seg_size)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    pub tli: u32,
    pub log: u32,
    pub seg: u32,
}

impl SegmentName {
    pub fn from_segno(tli: u32, segno: u64, seg_size: u32) -> Self {
        let per_id = segments_per_xlogid(seg_size);
        SegmentName {
            tli,
            log: (segno / per_id) as u32,
            seg: (segno % per_id) as u32,
        }
    }

    pub fn segno(&self, seg_size: u32) -> u64 {
        u64::from(self.log) * segments_per_xlogid(seg_size) + u64::from(self.seg)
    }

    /// The LSN of the first byte of this segment.
    pub fn start_lsn(&self, seg_size: u32) -> u64 {
        self.segno(seg_size) * u64::from(seg_size)
    }

    fn parse(hex24: &str, whole: &str) -> Result<Self> {
        let part = |range: std::ops::Range<usize>| {
            u32::from_str_radix(&hex24[range], 16)
                .map_err(|_| Error::wal_name(whole, "expected upper-case hexadecimal digits"))
        };
        let name = SegmentName {
            tli: part(0..8)?,
            log: part(8..16)?,
            seg: part(16..24)?,
        };
        if name.tli == 0 {
            return Err(Error::wal_name(whole, "timeline 0 does not exist"));
        }
        Ok(name)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.tli, self.log, self.seg)
    }
}

/// A file name PostgreSQL archives or asks to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalFileName {
    /// `000000010000000000000003`: a whole segment.
    Segment(SegmentName),
    /// `00000002.history`: the timeline history written at a promotion.
    History { tli: u32 },
    /// `000000010000000000000003.00000028.backup`: written by pg_backup_stop.
    Backup { segment: SegmentName, offset: u32 },
    /// `000000010000000000000003.partial`: the last, incomplete segment of the old timeline,
    /// archived by a standby when it is promoted.
    Partial(SegmentName),
}

fn is_upper_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

impl WalFileName {
    pub fn parse(name: &str) -> Result<Self> {
        let bad = |reason: &str| Err(Error::wal_name(name, reason));
        let (stem, suffix) = match name.split_once('.') {
            Some((stem, suffix)) => (stem, Some(suffix)),
            None => (name, None),
        };
        if !is_upper_hex(stem) {
            return bad("expected upper-case hexadecimal digits");
        }
        match (stem.len(), suffix) {
            (24, None) => Ok(WalFileName::Segment(SegmentName::parse(stem, name)?)),
            (24, Some("partial")) => Ok(WalFileName::Partial(SegmentName::parse(stem, name)?)),
            (24, Some(rest)) => match rest.split_once('.') {
                Some((offset, "backup")) if offset.len() == 8 && is_upper_hex(offset) => {
                    Ok(WalFileName::Backup {
                        segment: SegmentName::parse(stem, name)?,
                        offset: u32::from_str_radix(offset, 16)
                            .map_err(|_| Error::wal_name(name, "bad backup offset"))?,
                    })
                }
                _ => bad("unknown suffix (expected .partial or .XXXXXXXX.backup)"),
            },
            (8, Some("history")) => {
                let tli = u32::from_str_radix(stem, 16)
                    .map_err(|_| Error::wal_name(name, "bad timeline"))?;
                if tli == 0 {
                    return bad("timeline 0 does not exist");
                }
                Ok(WalFileName::History { tli })
            }
            _ => bad(
                "expected a 24-digit segment name, TTTTTTTT.history, or a .backup/.partial file",
            ),
        }
    }

    /// The segment this file belongs to, if any.
    pub fn segment(&self) -> Option<SegmentName> {
        match *self {
            WalFileName::Segment(s) | WalFileName::Partial(s) => Some(s),
            WalFileName::Backup { segment, .. } => Some(segment),
            WalFileName::History { .. } => None,
        }
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalFileName::Segment(s) => write!(f, "{s}"),
            WalFileName::History { tli } => write!(f, "{tli:08X}.history"),
            WalFileName::Backup { segment, offset } => write!(f, "{segment}.{offset:08X}.backup"),
            WalFileName::Partial(s) => write!(f, "{s}.partial"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_archived_name_round_trips() {
        for name in [
            "000000010000000000000001",
            "0000000A00000003000000FF",
            "00000002.history",
            "000000010000000000000003.00000028.backup",
            "000000010000000000000003.partial",
        ] {
            assert_eq!(WalFileName::parse(name).unwrap().to_string(), name);
        }
    }

    #[test]
    fn names_that_could_escape_or_confuse_are_refused() {
        for name in [
            "",
            "../000000010000000000000001",
            "000000010000000000000001/..",
            "00000001000000000000000",
            "0000000100000000000000001",
            "000000010000000000000001.",
            "00000001000000000000000a",
            "000000000000000000000001",
            "00000000.history",
            "0000001.history",
            "000000010000000000000003.0000028.backup",
            "000000010000000000000003.00000028.backup.x",
            "000000010000000000000003.done",
            "RECOVERYXLOG",
            "+00000010000000000000001",
        ] {
            let err = WalFileName::parse(name).unwrap_err();
            assert!(
                err.to_string().contains("is not a WAL file name"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn segment_numbers_follow_the_segment_size() {
        let name = match WalFileName::parse("000000010000000200000003").unwrap() {
            WalFileName::Segment(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(name.segno(16 << 20), 2 * 256 + 3);
        assert_eq!(name.segno(1 << 20), 2 * 4096 + 3);
        assert_eq!(SegmentName::from_segno(1, 2 * 256 + 3, 16 << 20), name);
        assert_eq!(name.start_lsn(16 << 20), 0x2_0300_0000);
    }
}
