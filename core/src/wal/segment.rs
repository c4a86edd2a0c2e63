//! What a WAL segment says about itself: the long page header at its start.
//!
//! Reading the header lets walmgr refuse a damaged or misnamed segment before it is stored
//! or handed to recovery, and lets it learn the cluster's segment size from the data
//! instead of assuming 16 MB.

use std::path::Path;

use crate::error::{Error, Result};
use crate::wal::name::SegmentName;

/// `sizeof(XLogLongPageHeaderData)` on every supported platform.
pub const LONG_HEADER_LEN: usize = 40;
/// `XLP_LONG_HEADER`: set in `xlp_info` of the first page of every segment.
const XLP_LONG_HEADER: u16 = 0x0002;

const MIN_SEG_SIZE: u32 = 1 << 20;
const MAX_SEG_SIZE: u32 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPageHeader {
    pub magic: u16,
    pub info: u16,
    pub tli: u32,
    pub page_addr: u64,
    pub system_id: u64,
    pub seg_size: u32,
    pub block_size: u32,
}

impl LongPageHeader {
    /// Decodes the header; PostgreSQL writes it in the machine's byte order.
    pub fn decode(bytes: &[u8; LONG_HEADER_LEN]) -> Self {
        let u16_at = |o: usize| u16::from_ne_bytes([bytes[o], bytes[o + 1]]);
        let u32_at = |o: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[o..o + 4]);
            u32::from_ne_bytes(b)
        };
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_ne_bytes(b)
        };
        LongPageHeader {
            magic: u16_at(0),
            info: u16_at(2),
            tli: u32_at(4),
            page_addr: u64_at(8),
            system_id: u64_at(24),
            seg_size: u32_at(32),
            block_size: u32_at(36),
        }
    }

    /// Checks that a segment of `file_len` bytes stored as `name` is what its header says.
    ///
    /// The header's timeline may be older than the name's: the first segment of a new
    /// timeline starts as a copy of the old timeline's segment.
    pub fn check(&self, name: &SegmentName, file_len: u64, path: &Path) -> Result<()> {
        let damaged = |reason: String| Err(Error::damaged(path, reason));
        if self.info & XLP_LONG_HEADER == 0 {
            return damaged("the first page has no long header (not a WAL segment?)".into());
        }
        if !self.seg_size.is_power_of_two()
            || !(MIN_SEG_SIZE..=MAX_SEG_SIZE).contains(&self.seg_size)
        {
            return damaged(format!(
                "header names an impossible segment size {}",
                self.seg_size
            ));
        }
        if file_len != u64::from(self.seg_size) {
            return damaged(format!(
                "{file_len} bytes, but the segment size is {} (truncated or padded copy?)",
                self.seg_size
            ));
        }
        let expected = name.start_lsn(self.seg_size);
        if self.page_addr != expected {
            return damaged(format!(
                "header is for LSN {}, but the name {name} is for {} (renamed file?)",
                crate::wal::lsn::Lsn(self.page_addr),
                crate::wal::lsn::Lsn(expected)
            ));
        }
        if self.tli > name.tli {
            return damaged(format!(
                "header is from timeline {}, later than the name's timeline {}",
                self.tli, name.tli
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A synthetic segment of `seg_size` bytes whose first page header says it is `name`,
    /// and whose every 8 KB page carries the WAL page magic and its own address.
    pub(crate) fn fake_segment(name: &SegmentName, seg_size: u32) -> Vec<u8> {
        let mut data = vec![0u8; seg_size as usize];
        data[0..2].copy_from_slice(&0xD110u16.to_ne_bytes());
        data[2..4].copy_from_slice(&XLP_LONG_HEADER.to_ne_bytes());
        data[4..8].copy_from_slice(&name.tli.to_ne_bytes());
        data[8..16].copy_from_slice(&name.start_lsn(seg_size).to_ne_bytes());
        data[24..32].copy_from_slice(&7u64.to_ne_bytes());
        data[32..36].copy_from_slice(&seg_size.to_ne_bytes());
        data[36..40].copy_from_slice(&8192u32.to_ne_bytes());
        for (i, b) in data.iter_mut().enumerate().skip(LONG_HEADER_LEN) {
            *b = (i % 251) as u8;
        }
        let start = name.start_lsn(seg_size);
        for (i, page) in data.chunks_mut(8192).enumerate().skip(1) {
            page[0..2].copy_from_slice(&0xD110u16.to_ne_bytes());
            page[2..8].fill(0);
            page[8..16].copy_from_slice(&(start + i as u64 * 8192).to_ne_bytes());
        }
        data
    }

    fn header_of(data: &[u8]) -> LongPageHeader {
        let mut h = [0u8; LONG_HEADER_LEN];
        h.copy_from_slice(&data[..LONG_HEADER_LEN]);
        LongPageHeader::decode(&h)
    }

    const MB: u32 = 1 << 20;

    #[test]
    fn a_segment_matching_its_name_passes() {
        let name = SegmentName {
            tli: 2,
            log: 0,
            seg: 5,
        };
        let data = fake_segment(&name, MB);
        header_of(&data)
            .check(&name, MB.into(), Path::new("x"))
            .unwrap();
    }

    #[test]
    fn truncated_renamed_and_foreign_files_are_refused() {
        let name = SegmentName {
            tli: 1,
            log: 0,
            seg: 5,
        };
        let data = fake_segment(&name, MB);
        let h = header_of(&data);
        let err = h
            .check(&name, u64::from(MB) - 1, Path::new("x"))
            .unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let other = SegmentName {
            tli: 1,
            log: 0,
            seg: 6,
        };
        let err = h.check(&other, MB.into(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("renamed"), "{err}");
        let zeros = header_of(&[0u8; 64]);
        let err = zeros.check(&name, MB.into(), Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("long header"), "{err}");
    }
}
