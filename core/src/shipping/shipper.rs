//! One round of in-progress shipping, and what the standby is known to hold.

use crate::error::Result;
use crate::remote::Transport;
use crate::server::WalSource;
use crate::shipping::reader::{self, Cluster};
use crate::wal::{Lsn, SegmentName};

/// How much WAL one request carries at most (well under the standby's limit): a master far
/// ahead catches up in several rounds instead of one huge request.
pub const MAX_SHIP: u64 = 16 << 20;

/// What the standby acknowledged as durable: `segment` up to `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub segment: SegmentName,
    pub offset: u64,
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Nothing flushed since the last round.
    Idle,
    /// Shipped and acknowledged WAL from `from` to `to`; `flush` is where the master stood.
    Shipped { from: Lsn, to: Lsn, flush: Lsn },
}

/// The shipping loop's state between rounds. It starts knowing nothing, so a new worker
/// (after a master restart, a crash or a kill) starts the current segment at offset 0:
/// the standby's copy may hold a tail the master rewrote since.
#[derive(Debug)]
pub struct Shipper {
    cluster: Cluster,
    held: Option<Position>,
}

impl Shipper {
    pub fn new(cluster: Cluster) -> Shipper {
        Shipper {
            cluster,
            held: None,
        }
    }

    /// The LSN up to which the standby holds the master's WAL (as far as this loop knows).
    pub fn acknowledged(&self) -> Option<Lsn> {
        self.held
            .map(|p| Lsn(p.segment.start_lsn(self.cluster.seg_size) + p.offset))
    }

    pub fn position(&self) -> Option<Position> {
        self.held
    }

    /// Starts from what another loop already had acknowledged (`walmgr.sync()` after the
    /// worker): the standby holds `segment` up to `offset`.
    pub fn resume_at(&mut self, position: Position) {
        self.held = Some(position);
    }

    /// The position of `lsn` (acknowledged on `timeline`) in this cluster's segments.
    pub fn position_of(&self, lsn: Lsn, timeline: u32) -> Option<Position> {
        let seg_size = u64::from(self.cluster.seg_size);
        let segno = lsn.0.checked_sub(1)? / seg_size;
        let segment = SegmentName::from_segno(timeline, segno, self.cluster.seg_size);
        Some(Position {
            segment,
            offset: lsn.0 - segment.start_lsn(self.cluster.seg_size),
        })
    }

    /// Forgets what the standby holds: the next round starts its segment at offset 0. After
    /// any failure, as the standby's copy may now differ from what this loop thinks.
    pub fn restart(&mut self) {
        self.held = None;
    }

    /// Ships what was flushed since the last round (at most [`MAX_SHIP`] bytes). An error
    /// leaves the loop ready to start the segment again at offset 0.
    pub fn round(
        &mut self,
        source: &mut dyn WalSource,
        transport: &mut dyn Transport,
    ) -> Result<Round> {
        let result = self.ship(source, transport);
        if result.is_err() {
            self.restart();
        }
        result
    }

    fn ship(&mut self, source: &mut dyn WalSource, transport: &mut dyn Transport) -> Result<Round> {
        let seg_size = u64::from(self.cluster.seg_size);
        let flush = source.flush()?;
        if flush.lsn.0 == 0 {
            return Ok(Round::Idle);
        }
        // The segment holding the last flushed byte.
        let current = SegmentName::from_segno(
            flush.timeline,
            (flush.lsn.0 - 1) / seg_size,
            self.cluster.seg_size,
        );
        let (segment, from) = match self.held {
            Some(p) if p.segment == current => (current, p.offset),
            // The segment before the current one on the same timeline: its tail was flushed
            // before the switch and may hold the last commits the archive does not have
            // yet. Finish it first, unless the archiver was quicker.
            Some(p)
                if p.segment.tli == current.tli
                    && p.segment.segno(self.cluster.seg_size) + 1
                        == current.segno(self.cluster.seg_size)
                    && p.offset < seg_size
                    && !self.archived(&p.segment) =>
            {
                (p.segment, p.offset)
            }
            // Nothing known, another timeline, or further behind (the archive has those
            // segments): the current segment, from its start.
            _ => (current, 0),
        };
        let seg_start = segment.start_lsn(self.cluster.seg_size);
        let to = (flush.lsn.0 - seg_start).min(seg_size).min(from + MAX_SHIP);
        // A segment the archiver finished is whole in the archive: nothing to ship (the
        // current one, right after a switch, until WAL goes into the next).
        if to <= from || self.archived(&segment) {
            return Ok(Round::Idle);
        }
        let shipped = self.ship_range(source, transport, &segment, from, to);
        match shipped {
            // The archiver may archive the previous segment (and the standby drop its
            // partial copy) while we finish it: then the archive has it whole, and the
            // current segment is next. Not an error.
            Err(e) if segment != current => {
                tracing::debug!("{segment} left to the archiver: {e}");
                self.held = None;
                Ok(Round::Idle)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Round::Shipped {
                from: Lsn(seg_start + from),
                to: Lsn(seg_start + to),
                flush: flush.lsn,
            }),
        }
    }

    /// Reads, checks and ships `[from, to)` of `segment`; the standby then holds up to `to`.
    fn ship_range(
        &mut self,
        source: &mut dyn WalSource,
        transport: &mut dyn Transport,
        segment: &SegmentName,
        from: u64,
        to: u64,
    ) -> Result<()> {
        let bytes = reader::read(&self.cluster, segment, from, to)?;
        if let Some(removed) = source.last_removed_segno() {
            if segment.segno(self.cluster.seg_size) <= removed {
                return Err(crate::Error::damaged(
                    self.cluster.pg_wal.join(segment.to_string()),
                    "removed or recycled by the server while it was read",
                ));
            }
        }
        transport.ship_partial(segment, from, &bytes)?;
        self.held = Some(Position {
            segment: *segment,
            offset: to,
        });
        Ok(())
    }

    /// Has the master's archiver finished `segment` (archive_status/NAME.done)?
    fn archived(&self, segment: &SegmentName) -> bool {
        self.cluster
            .pg_wal
            .join("archive_status")
            .join(format!("{segment}.done"))
            .exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::partial::PartialStore;
    use crate::archive::store::Stored;
    use crate::changes::Changes;
    use crate::server::Flush;
    use crate::wal::segment::tests::fake_segment;
    use crate::wal::WalFileName;
    use std::fs;
    use std::path::Path;

    const MB: u32 = 1 << 20;

    /// A master whose pg_wal holds whole fake segments and whose flush position moves
    /// where the test says.
    struct FakeMaster {
        flush: Flush,
        removed: Option<u64>,
    }

    impl WalSource for FakeMaster {
        fn flush(&mut self) -> Result<Flush> {
            Ok(self.flush)
        }
        fn last_removed_segno(&mut self) -> Option<u64> {
            self.removed
        }
    }

    /// The standby's partial_wals on this host, failing on demand.
    struct Standby {
        partials: PartialStore,
        down: bool,
    }

    impl Transport for Standby {
        fn describe(&self) -> String {
            "test standby".into()
        }
        fn check(&mut self) -> Result<()> {
            Ok(())
        }
        fn create_dirs(&mut self, _: &mut Changes) -> Result<()> {
            Ok(())
        }
        fn archive(&mut self, _: &WalFileName, _: &Path, _: &mut Changes) -> Result<Stored> {
            unreachable!("the shipping loop does not archive")
        }
        fn ship_partial(&mut self, segment: &SegmentName, offset: u64, bytes: &[u8]) -> Result<()> {
            if self.down {
                return Err(crate::Error::remote("test standby", "cannot connect"));
            }
            self.partials
                .write(segment, offset, bytes, bytes.len() as u64)
        }
    }

    struct Scene {
        _dir: tempfile::TempDir,
        shipper: Shipper,
        master: FakeMaster,
        standby: Standby,
        wal: Vec<Vec<u8>>,
    }

    fn seg(tli: u32, n: u64) -> SegmentName {
        SegmentName::from_segno(tli, n, MB)
    }

    fn scene() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let pg_wal = dir.path().join("pg_wal");
        fs::create_dir_all(&pg_wal).unwrap();
        let wal: Vec<Vec<u8>> = (0..8).map(|n| fake_segment(&seg(1, n), MB)).collect();
        for n in 3..8 {
            fs::write(pg_wal.join(seg(1, n).to_string()), &wal[n as usize]).unwrap();
        }
        let partials = dir.path().join("logs.partial");
        fs::create_dir_all(&partials).unwrap();
        Scene {
            shipper: Shipper::new(Cluster {
                pg_wal,
                seg_size: MB,
                system_id: 7,
            }),
            master: FakeMaster {
                flush: Flush {
                    lsn: Lsn(3 * u64::from(MB) + 5000),
                    timeline: 1,
                },
                removed: None,
            },
            standby: Standby {
                partials: PartialStore::new(partials),
                down: false,
            },
            wal,
            _dir: dir,
        }
    }

    impl Scene {
        fn round(&mut self) -> Result<Round> {
            self.shipper.round(&mut self.master, &mut self.standby)
        }
        fn flush_at(&mut self, lsn: u64) {
            self.master.flush.lsn = Lsn(lsn);
        }
        fn copy_of(&self, n: u64) -> Vec<u8> {
            fs::read(self.standby.partials.path_of(&seg(1, n))).unwrap()
        }
    }

    #[test]
    fn each_round_ships_what_was_flushed_since_the_last_and_never_past_the_flush() {
        let mut s = scene();
        let start = 3 * u64::from(MB);
        assert_eq!(
            s.round().unwrap(),
            Round::Shipped {
                from: Lsn(start),
                to: Lsn(start + 5000),
                flush: Lsn(start + 5000)
            }
        );
        assert_eq!(s.round().unwrap(), Round::Idle);
        s.flush_at(start + 70_000);
        s.round().unwrap();
        assert_eq!(s.shipper.acknowledged(), Some(Lsn(start + 70_000)));
        let copy = s.copy_of(3);
        assert_eq!(copy[..70_000], s.wal[3][..70_000]);
        assert!(
            copy[70_000..].iter().all(|b| *b == 0),
            "shipped past the flush"
        );
    }

    #[test]
    fn the_tail_of_the_previous_segment_is_finished_after_a_switch() {
        let mut s = scene();
        s.round().unwrap();
        // The master switched: segment 3 is complete, 4 has begun.
        s.flush_at(4 * u64::from(MB) + 300);
        s.round().unwrap();
        assert_eq!(
            s.copy_of(3),
            s.wal[3],
            "the tail of segment 3 was not shipped"
        );
        s.round().unwrap();
        assert_eq!(s.copy_of(4)[..300], s.wal[4][..300]);
    }

    #[test]
    fn a_previous_segment_the_archiver_took_meanwhile_is_left_to_it_without_an_error() {
        let mut s = scene();
        s.round().unwrap();
        // The switch, and the standby already retired its copy of segment 3 (archived).
        assert!(s.standby.partials.retire(&seg(1, 3)).unwrap());
        s.flush_at(4 * u64::from(MB) + 300);
        assert_eq!(s.round().unwrap(), Round::Idle);
        s.round().unwrap();
        assert_eq!(s.shipper.position().unwrap().segment, seg(1, 4));
        // With archive_status saying so, it is not even tried.
        let status = s.shipper.cluster.pg_wal.join("archive_status");
        fs::create_dir_all(&status).unwrap();
        fs::write(status.join(format!("{}.done", seg(1, 4))), "").unwrap();
        s.flush_at(5 * u64::from(MB) + 300);
        s.round().unwrap();
        assert_eq!(s.shipper.position().unwrap().segment, seg(1, 5));
    }

    #[test]
    fn a_master_far_ahead_is_followed_from_its_current_segment() {
        let mut s = scene();
        s.round().unwrap();
        s.flush_at(7 * u64::from(MB) + 100);
        s.round().unwrap();
        assert_eq!(s.shipper.position().unwrap().segment, seg(1, 7));
    }

    #[test]
    fn after_a_failure_the_segment_starts_again_at_offset_0() {
        let mut s = scene();
        s.round().unwrap();
        s.standby.down = true;
        s.flush_at(3 * u64::from(MB) + 9000);
        assert!(s.round().is_err());
        assert_eq!(s.shipper.acknowledged(), None);
        s.standby.down = false;
        match s.round().unwrap() {
            Round::Shipped { from, .. } => assert_eq!(from, Lsn(3 * u64::from(MB))),
            idle => panic!("{idle:?}"),
        }
    }

    #[test]
    fn a_new_timeline_starts_its_segment_at_offset_0() {
        let mut s = scene();
        s.round().unwrap();
        let on_2 = seg(2, 3);
        let mut wal = fake_segment(&seg(1, 3), MB);
        wal[4..8].copy_from_slice(&2u32.to_ne_bytes());
        fs::write(s.shipper.cluster.pg_wal.join(on_2.to_string()), &wal).unwrap();
        s.master.flush = Flush {
            lsn: Lsn(3 * u64::from(MB) + 8000),
            timeline: 2,
        };
        match s.round().unwrap() {
            Round::Shipped { from, .. } => assert_eq!(from, Lsn(3 * u64::from(MB))),
            idle => panic!("{idle:?}"),
        }
        assert_eq!(s.shipper.position().unwrap().segment, on_2);
    }

    #[test]
    fn bytes_read_from_a_segment_the_server_removed_meanwhile_are_dropped() {
        let mut s = scene();
        s.master.removed = Some(3);
        let err = s.round().unwrap_err().to_string();
        assert!(err.contains("recycled"), "{err}");
        assert!(!s.standby.partials.path_of(&seg(1, 3)).exists());
    }
}
