//! `boot`: end recovery without dropping anything the archive holds, and open the standby
//! for writes.
//!
//! STOP tells xrestore that recovery is ending (it keeps handing out every file it has),
//! and the promotion request asks the server to open. PostgreSQL acts on a promotion only
//! once it fails to find the next WAL file, so a standby that is far behind first replays
//! the whole archive and opens at its end. That can take long: boot reports progress and
//! waits as long as the server keeps recovering, never cutting replay short on a timer.

use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::archive::control::{Control, ControlFiles};
use crate::archive::listing;
use crate::backup::datadir::Progress;
use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::server::{ServerState, Standby};
use crate::standby::replay;
use crate::wal::Lsn;

/// How boot watches the promotion: how often it looks, how often it reports.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub poll: Duration,
    pub report_every: Duration,
    /// How long to wait for recovery to ask the archive for WAL after STOP.
    pub stop_seen: Duration,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            poll: Duration::from_millis(200),
            report_every: Duration::from_secs(5),
            // PostgreSQL asks again every wal_retrieve_retry_interval (5 s by default).
            stop_seen: Duration::from_secs(30),
        }
    }
}

/// Where the booted server opened: its new timeline, and the LSN that timeline starts at
/// (the end of what recovery replayed), when its history file tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub timeline: u32,
    pub at: Option<Lsn>,
}

/// Boots the standby. Returns where it opened (None in a dry run). An opening short of the
/// archive's end is an error after the fact: the server is open, and the DBA must know.
/// `report` is called while the standby replays before it opens: bytes replayed since boot
/// began watching, of those up to the archive's end.
pub fn boot(
    config: &Config,
    server: &mut dyn Standby,
    watch: Watch,
    changes: &mut Changes,
    report: &mut dyn FnMut(&Progress),
) -> Result<Option<Opened>> {
    config.require_role(Role::Slave, "boot")?;
    let data = config.required(&config.slave_data, "slave_data", "boot")?;
    if !server.is_running() {
        return Err(Error::refused(format!(
            "no server is running on {}: start the standby, then boot it",
            data.display()
        )));
    }
    if let Some(state) = server.state()? {
        if !state.in_recovery {
            return Err(Error::refused(format!(
                "the server on {} is not in recovery: it is already booted",
                data.display()
            )));
        }
    }
    // Targeted (point-in-time) recovery stops short of the archive's end by design.
    let follows_archive = data.join("standby.signal").exists();
    let controls = ControlFiles::in_archive(&config.completed_wals);
    if controls.is_set(Control::Pause) {
        replay::resume(config, server, changes)?;
    }
    controls.clear(Control::StopSeen, changes)?;
    controls.set(
        Control::Stop,
        "recovery ends at the end of the archive",
        changes,
    )?;
    if !changes.is_dry_run() {
        wait_for_a_fetch_since_stop(data, server, &controls, watch)?;
    }
    changes.apply(
        "promote the standby (it opens once replay finds no more WAL)",
        || server.promote(),
    )?;
    if changes.is_dry_run() {
        controls.clear(Control::Restartpoint, changes)?;
        return Ok(None);
    }

    let opened = watch_promotion(config, data, server, watch, report)?;
    // A booted server restarts from nothing in the archive: its restartpoint no longer
    // holds WAL back from purging. Kept until now, as replay needed it until the end.
    controls.clear(Control::Restartpoint, changes)?;
    tracing::info!(
        "booted: {} opened for writes at {} on timeline {}",
        data.display(),
        opened.at.map_or("?".to_string(), |l| l.to_string()),
        opened.timeline
    );
    if let (true, Some(at), Some(reach)) = (
        follows_archive,
        opened.at,
        listing::reach(&config.completed_wals),
    ) {
        if at < reach.start {
            return Err(Error::refused(format!(
                "the standby opened at {at}, but the archive holds {} (from {}): replay \
                 stopped before it; the standby's server log says why",
                reach.segment, reach.start
            )));
        }
    }
    Ok(Some(opened))
}

/// Waits until recovery has asked the archive for WAL since STOP appeared (STOP.seen), so
/// that the fetch after which PostgreSQL acts on the promotion sees STOP and gets the
/// partial copy. A standby that does not ask within [`Watch::stop_seen`] (one streaming from
/// a live master, or an archive xrestore cannot write to) is promoted all the same: it
/// still replays everything it can reach.
fn wait_for_a_fetch_since_stop(
    data: &Path,
    server: &mut dyn Standby,
    controls: &ControlFiles,
    watch: Watch,
) -> Result<()> {
    let started = Instant::now();
    while !controls.is_set(Control::StopSeen) {
        if !server.is_running() {
            return Err(Error::refused(format!(
                "the server on {} stopped while it was being booted: its log says why",
                data.display()
            )));
        }
        if started.elapsed() >= watch.stop_seen {
            tracing::warn!(
                "the standby has not asked the archive for WAL in {} s since STOP: promoting \
                 it all the same (its replay may end before the partial copy of the last segment)",
                watch.stop_seen.as_secs()
            );
            return Ok(());
        }
        // Each look also lets a test's stand-in for the server act.
        let _ = server.state();
        sleep(watch.poll);
    }
    Ok(())
}

/// Waits until the server has left recovery, reporting replay progress. A server that
/// stops running ends the wait with an error; nothing else does.
fn watch_promotion(
    config: &Config,
    data: &Path,
    server: &mut dyn Standby,
    watch: Watch,
    report: &mut dyn FnMut(&Progress),
) -> Result<Opened> {
    // Where the archive ends, looked up every report_every rather than every poll: listing
    // a large archive five times a second would cost more than the display is worth.
    let mut archive_end = listing::reach(&config.completed_wals).map(|r| r.end);
    let mut last_look = Instant::now();
    let mut first_replayed: Option<Lsn> = None;
    loop {
        if !server.is_running() {
            return Err(Error::refused(format!(
                "the server on {} stopped while it was being booted: its log says why",
                data.display()
            )));
        }
        // Before the standby is consistent it accepts no connection; that is progress too.
        let state: Option<ServerState> = server.state().unwrap_or_else(|e| {
            tracing::debug!("standby state: {e}");
            None
        });
        if let Some(s) = state.as_ref().filter(|s| !s.in_recovery) {
            // Open: replay is over, whatever the last look saw of it.
            if let Some(from) = first_replayed {
                let end = archive_end.map_or(from.0, |e| e.0).saturating_sub(from.0);
                report(&Progress {
                    bytes_done: end,
                    bytes_total: end,
                    files: 0,
                });
            }
            let timeline = s.timeline.unwrap_or(0);
            return Ok(Opened {
                timeline,
                at: timeline_start(data, timeline),
            });
        }
        let replayed = state.and_then(|s| s.replay_lsn);
        if last_look.elapsed() >= watch.report_every {
            archive_end = listing::reach(&config.completed_wals).map(|r| r.end);
            last_look = Instant::now();
            // The display shows the progress; this is for -v and the logfile.
            tracing::debug!(
                "replaying what the archive holds before opening: at {}{}",
                replayed.map_or("(not yet consistent)".to_string(), |l| l.to_string()),
                archive_end
                    .map(|end| format!(", the archive reaches {end}"))
                    .unwrap_or_default()
            );
        }
        if let Some(now) = replayed {
            let from = *first_replayed.get_or_insert(now);
            let end = archive_end.map_or(now.0, |e| e.0.max(now.0));
            report(&Progress {
                bytes_done: now.0.saturating_sub(from.0),
                bytes_total: end.saturating_sub(from.0),
                files: 0,
            });
        }
        sleep(watch.poll);
    }
}

/// The LSN at which `timeline` branched off, from its history file in pg_wal.
fn timeline_start(data: &Path, timeline: u32) -> Option<Lsn> {
    let history = fs::read_to_string(data.join(format!("pg_wal/{timeline:08X}.history"))).ok()?;
    let last = history
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    last.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::segment::tests::fake_segment;
    use crate::wal::{SegmentName, WalFileName};

    const MB: u32 = 1 << 20;

    /// A standby that replays `step` bytes per look at it once promoted, up to `end`, and
    /// then opens on timeline 2 (writing its history file as PostgreSQL does). While not
    /// consistent it accepts no connection.
    struct FakeStandby {
        data: std::path::PathBuf,
        replayed: u64,
        end: u64,
        step: u64,
        unreachable_looks: u32,
        promoted: bool,
        paused: bool,
        dies: bool,
        looks: u32,
        never_fetches: bool,
        /// Whether recovery had asked for WAL since STOP when the promotion came.
        stop_seen_at_promotion: Option<bool>,
    }

    impl Standby for FakeStandby {
        fn is_running(&self) -> bool {
            !(self.dies && self.promoted)
        }
        fn state(&mut self) -> Result<Option<ServerState>> {
            self.looks += 1;
            // Recovery asks the archive (xrestore) now and then: every fourth look.
            if !self.never_fetches && self.looks.is_multiple_of(4) {
                let controls = self
                    .data
                    .parent()
                    .unwrap()
                    .join("walshipping/logs.complete");
                let files = ControlFiles::in_archive(&controls);
                if files.is_set(Control::Stop) && !files.is_set(Control::StopSeen) {
                    files
                        .set(Control::StopSeen, "test", &mut Changes::new(false))
                        .unwrap();
                }
            }
            if self.unreachable_looks > 0 {
                self.unreachable_looks -= 1;
                return Ok(None);
            }
            if self.promoted && !self.paused {
                self.replayed = (self.replayed + self.step).min(self.end);
            }
            let open = self.promoted && self.replayed == self.end;
            if open {
                let history = self.data.join("pg_wal/00000002.history");
                if !history.exists() {
                    fs::write(
                        history,
                        format!("1\t{}\tno recovery target specified\n", Lsn(self.end)),
                    )
                    .unwrap();
                }
            }
            Ok(Some(ServerState {
                in_recovery: !open,
                replay_lsn: Some(Lsn(self.replayed)),
                timeline: open.then_some(2),
                ..ServerState::default()
            }))
        }
        fn pause_replay(&mut self) -> Result<()> {
            self.paused = true;
            Ok(())
        }
        fn resume_replay(&mut self) -> Result<()> {
            self.paused = false;
            Ok(())
        }
        fn promote(&mut self) -> Result<()> {
            self.promoted = true;
            let controls = self
                .data
                .parent()
                .unwrap()
                .join("walshipping/logs.complete");
            self.stop_seen_at_promotion =
                Some(ControlFiles::in_archive(&controls).is_set(Control::StopSeen));
            Ok(())
        }
    }

    struct Scene {
        _dir: tempfile::TempDir,
        config: Config,
        standby: FakeStandby,
    }

    /// An archive of segments 1..=`segments` (1 MB) and a standby replayed to segment 1.
    fn scene(segments: u64) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let wals = dir.path().join("walshipping/logs.complete");
        fs::create_dir_all(&wals).unwrap();
        for segno in 1..=segments {
            let seg = SegmentName::from_segno(1, segno, MB);
            fs::write(wals.join(seg.to_string()), fake_segment(&seg, MB)).unwrap();
        }
        let data = dir.path().join("standby");
        fs::create_dir_all(data.join("pg_wal")).unwrap();
        fs::write(data.join("standby.signal"), "").unwrap();
        let path = dir.path().join("slave.toml");
        fs::write(
            &path,
            format!(
                "[walmgr]\nslave_data = \"{}\"\nwalmgr_data = \"{}\"\n",
                data.display(),
                dir.path().join("walshipping").display()
            ),
        )
        .unwrap();
        Scene {
            config: Config::load(&path, &[]).unwrap(),
            standby: FakeStandby {
                data,
                replayed: u64::from(MB) + 40,
                // The last record ends inside the newest segment.
                end: segments * u64::from(MB) + 5000,
                step: u64::from(MB) / 2,
                unreachable_looks: 0,
                promoted: false,
                paused: false,
                dies: false,
                looks: 0,
                never_fetches: false,
                stop_seen_at_promotion: None,
            },
            _dir: dir,
        }
    }

    fn fast() -> Watch {
        Watch {
            poll: Duration::from_millis(1),
            report_every: Duration::from_millis(5),
            stop_seen: Duration::from_millis(200),
        }
    }

    fn controls(s: &Scene) -> ControlFiles {
        ControlFiles::in_archive(&s.config.completed_wals)
    }

    #[test]
    fn a_standby_far_behind_is_waited_for_until_it_has_replayed_the_whole_archive() {
        let mut s = scene(200);
        let mut seen: Vec<Progress> = Vec::new();
        let opened = boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |p| seen.push(*p),
        )
        .unwrap()
        .unwrap();
        // Its progress: replayed bytes, never going back, up to (about) the archive's end.
        assert!(seen.len() > 100, "{} reports", seen.len());
        assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
        let last = seen.last().unwrap();
        assert!(
            last.bytes_done + u64::from(MB) >= last.bytes_total
                && last.bytes_total > 190 * u64::from(MB),
            "{last:?}"
        );
        assert_eq!(opened.timeline, 2);
        assert_eq!(opened.at, Some(Lsn(200 * u64::from(MB) + 5000)));
        assert!(
            s.standby.looks > 300,
            "boot stopped watching after {} looks",
            s.standby.looks
        );
        assert!(controls(&s).is_set(Control::Stop));
    }

    #[test]
    fn a_paused_standby_is_resumed_first_and_its_restartpoint_dropped_once_open() {
        let mut s = scene(10);
        let mut changes = Changes::new(false);
        replay::pause(&s.config, &mut s.standby, &mut changes).unwrap();
        let seg = match WalFileName::parse("000000010000000000000001").unwrap() {
            WalFileName::Segment(seg) => seg,
            _ => unreachable!(),
        };
        controls(&s).record_restartpoint(seg, &mut changes).unwrap();
        boot(&s.config, &mut s.standby, fast(), &mut changes, &mut |_| {}).unwrap();
        assert!(!s.standby.paused);
        assert!(!controls(&s).is_set(Control::Pause));
        assert!(!controls(&s).is_set(Control::Restartpoint));
    }

    #[test]
    fn promotion_waits_until_recovery_has_asked_for_wal_since_stop() {
        let mut s = scene(5);
        boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            s.standby.stop_seen_at_promotion,
            Some(true),
            "promoted before recovery had asked for WAL since STOP"
        );
    }

    #[test]
    fn a_standby_that_never_asks_for_wal_is_promoted_after_a_while_all_the_same() {
        let mut s = scene(5);
        s.standby.never_fetches = true;
        let opened = boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert!(opened.is_some());
        assert_eq!(s.standby.stop_seen_at_promotion, Some(false));
    }

    #[test]
    fn a_standby_not_yet_accepting_connections_is_waited_for() {
        let mut s = scene(5);
        s.standby.unreachable_looks = 50;
        let opened = boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert!(opened.is_some());
    }

    #[test]
    fn an_opening_short_of_the_archive_is_an_error_naming_what_was_not_replayed() {
        let mut s = scene(20);
        // Replay ends in segment 11, as if segment 12 were unreadable.
        s.standby.end = 11 * u64::from(MB) + 100;
        let err = boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the archive holds 000000010000000000000014"),
            "{err}"
        );
    }

    #[test]
    fn a_server_that_dies_while_booting_ends_the_wait_with_an_error() {
        let mut s = scene(5);
        s.standby.dies = true;
        let err = boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("stopped while it was being booted"), "{err}");
    }

    #[test]
    fn a_server_already_open_is_refused_and_nothing_is_written() {
        let mut s = scene(5);
        s.standby.promoted = true;
        s.standby.replayed = s.standby.end;
        let err = boot(
            &s.config,
            &mut s.standby,
            fast(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("already booted"), "{err}");
        assert!(!controls(&s).is_set(Control::Stop));
    }

    #[test]
    fn a_dry_run_boot_promotes_nothing() {
        let mut s = scene(5);
        let mut changes = Changes::new(true);
        assert_eq!(
            boot(&s.config, &mut s.standby, fast(), &mut changes, &mut |_| {}).unwrap(),
            None
        );
        assert!(!s.standby.promoted);
        assert!(!controls(&s).is_set(Control::Stop));
        let plan = changes.described().join("\n");
        assert!(plan.contains("STOP") && plan.contains("promote"), "{plan}");
    }
}
