//! The shipping loop, as both drivers run it: the background worker and `syncdaemon`
//! provide a [`Host`] (how to wait, where the WAL is, where to report), and [`run`] does
//! the rest: rounds, waits, reloads, periodic_command, the last ship before exit.

use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, FileStamp, Role};
use crate::error::{Error, Result};
use crate::remote::{self, Transport};
use crate::server::WalSource;
use crate::shipping::periodic::Periodic;
use crate::shipping::reader::Cluster;
use crate::shipping::{Round, Shipper};
use crate::wal::Lsn;

/// Ships are at least this far apart: under heavy load the server flushes constantly, and
/// every flush would otherwise wake a round for a few bytes.
pub const MIN_INTERVAL: Duration = Duration::from_millis(5);
/// How often the config file is looked at for edits.
const CONFIG_CHECK: Duration = Duration::from_secs(1);
/// How long to wait before trying again after a config that does not load.
const CONFIG_RETRY: Duration = Duration::from_secs(5);
/// The same error is logged again only after this long (it is counted every time).
const REPEAT_ERROR_AFTER: Duration = Duration::from_secs(60);
/// Rounds to run before exit, to ship what is flushed (each ships up to 16 MB).
const FINAL_ROUNDS: usize = 8;

/// Why a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The timeout passed, or WAL was flushed (the worker on PostgreSQL 16+ is woken then).
    Round,
    /// Reload the config (SIGHUP).
    Reload,
    /// Ship what is flushed, then return (SIGTERM, SIGINT).
    Stop,
}

/// What the loop needs from its driver.
pub trait Host {
    /// The master config (reloaded after [`Wake::Reload`]).
    fn load_config(&mut self) -> Result<Config>;
    /// False while this server is deliberately not a shipping master (no config named):
    /// the loop then waits quietly instead of reporting an error.
    fn configured(&mut self) -> bool {
        true
    }
    /// Where this cluster's WAL is and what it must look like.
    fn cluster(&mut self) -> Result<Cluster>;
    fn source(&mut self) -> &mut dyn WalSource;
    /// Waits at most `timeout`, returning early when WAL is flushed if the driver can tell.
    fn wait(&mut self, timeout: Duration) -> Wake;
    /// Publishes the loop's state (shared memory for the worker, the log for the daemon).
    fn report(&mut self, status: &Status);
}

/// The loop's state, as `walmgr.status` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub state: &'static str,
    /// Where the master's flush stood at the last round.
    pub flush: Option<Lsn>,
    /// Up to where the standby acknowledged WAL as durable.
    pub acknowledged: Option<Lsn>,
    pub acknowledged_at: Option<SystemTime>,
    pub transport: Option<String>,
    pub shipped_bytes: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
}

impl Status {
    pub fn bytes_behind(&self) -> Option<u64> {
        Some(self.flush?.0.saturating_sub(self.acknowledged?.0))
    }
}

/// Runs until the host says stop; then ships what is flushed and returns.
pub fn run(host: &mut dyn Host) -> Result<()> {
    let mut status = Status {
        state: "starting",
        ..Status::default()
    };
    loop {
        if !host.configured() {
            status.state = "not configured";
            host.report(&status);
            match host.wait(CONFIG_RETRY) {
                Wake::Stop => return Ok(()),
                Wake::Round | Wake::Reload => continue,
            }
        }
        let (config, cluster) = match load(host) {
            Ok(loaded) => loaded,
            Err(e) => {
                status.state = "waiting for a config";
                note_error(&mut status, &e, &mut None);
                host.report(&status);
                match host.wait(CONFIG_RETRY) {
                    Wake::Stop => return Ok(()),
                    Wake::Round | Wake::Reload => continue,
                }
            }
        };
        match ship_with(host, &config, cluster, &mut status)? {
            Next::Reload => continue,
            Next::Stop => return Ok(()),
        }
    }
}

enum Next {
    Reload,
    Stop,
}

fn load(host: &mut dyn Host) -> Result<(Config, Cluster)> {
    let config = host.load_config()?;
    config.require_role(Role::Master, "in-progress WAL shipping")?;
    Ok((config, host.cluster()?))
}

/// Ships rounds with one config until a reload or a stop.
fn ship_with(
    host: &mut dyn Host,
    config: &Config,
    cluster: Cluster,
    status: &mut Status,
) -> Result<Next> {
    let loop_delay = Duration::from_secs_f64(config.loop_delay.max(0.0));
    let mut transport: Option<Box<dyn Transport>> = None;
    let mut shipper = Shipper::new(cluster);
    let mut periodic = Periodic::new(config);
    let mut last_logged: Option<(String, Instant)> = None;
    // An edited config takes effect without a reload, as for the archive module.
    let stamp = FileStamp::of(&config.source).ok();
    let mut stamp_checked = Instant::now();
    status.state = "shipping";
    loop {
        let started = Instant::now();
        let more = round(
            host,
            config,
            &mut transport,
            &mut shipper,
            status,
            &mut last_logged,
        );
        let flushed_segment = shipper.position().map(|p| p.segment);
        periodic.tick(flushed_segment);
        host.report(status);
        // A round that shipped less than was flushed (a cap per round, the tail of the
        // previous segment first) goes on at once: that WAL is not new to a host that
        // sleeps until WAL is flushed, so waiting would cost up to loop_delay.
        let wake = host.wait(if more { Duration::ZERO } else { loop_delay });
        if wake == Wake::Stop {
            status.state = "stopping";
            for _ in 0..FINAL_ROUNDS {
                let before = status.acknowledged;
                round(
                    host,
                    config,
                    &mut transport,
                    &mut shipper,
                    status,
                    &mut last_logged,
                );
                if status.acknowledged == before {
                    break;
                }
            }
            status.state = "stopped";
            host.report(status);
            return Ok(Next::Stop);
        }
        if wake == Wake::Reload {
            tracing::info!("reloading the config");
            return Ok(Next::Reload);
        }
        if stamp_checked.elapsed() >= CONFIG_CHECK {
            stamp_checked = Instant::now();
            if FileStamp::of(&config.source).ok() != stamp {
                tracing::info!("{} changed: reloading it", config.source.display());
                return Ok(Next::Reload);
            }
        }
        let since = started.elapsed();
        if since < MIN_INTERVAL {
            std::thread::sleep(MIN_INTERVAL - since);
        }
    }
}

/// One round; true when it shipped less than was flushed (more is ready right now).
fn round(
    host: &mut dyn Host,
    config: &Config,
    transport: &mut Option<Box<dyn Transport>>,
    shipper: &mut Shipper,
    status: &mut Status,
    last_logged: &mut Option<(String, Instant)>,
) -> bool {
    let result = (|| {
        if transport.is_none() {
            *transport = Some(remote::for_master(config)?);
        }
        let t = transport.as_mut().expect("just made");
        status.transport = Some(t.describe());
        shipper.round(host.source(), t.as_mut())
    })();
    match result {
        Ok(Round::Idle) => false,
        Ok(Round::Shipped { from, to, flush }) => {
            status.flush = Some(flush);
            status.acknowledged = Some(to);
            status.acknowledged_at = Some(SystemTime::now());
            status.shipped_bytes += to.0 - from.0;
            status.state = "shipping";
            if last_logged.take().is_some() {
                tracing::info!("in-progress WAL shipping works again (up to {to})");
            }
            to < flush
        }
        Err(e) => {
            status.state = "retrying";
            status.acknowledged = None;
            note_error(status, &e, last_logged);
            false
        }
    }
}

/// Counts every error; logs it unless the same one was logged a moment ago.
fn note_error(status: &mut Status, e: &Error, last_logged: &mut Option<(String, Instant)>) {
    let text = e.to_string();
    status.errors += 1;
    status.last_error = Some(text.clone());
    status.last_error_at = Some(SystemTime::now());
    let repeat =
        matches!(last_logged, Some((t, at)) if *t == text && at.elapsed() < REPEAT_ERROR_AFTER);
    if !repeat {
        tracing::warn!("in-progress WAL shipping: {text}; retrying from the segment's start");
        *last_logged = Some((text, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Flush;
    use crate::wal::segment::tests::fake_segment;
    use crate::wal::SegmentName;
    use std::fs;
    use std::path::PathBuf;

    const MB: u32 = 1 << 20;

    /// A master whose flush moves 10 KB per wait, driven for a fixed number of waits, then
    /// told to stop. The standby is a local directory.
    struct FakeHost {
        config_path: PathBuf,
        pg_wal: PathBuf,
        flush: Lsn,
        waits: usize,
        stop_after: usize,
        reload_at: Option<usize>,
        broken_loads: usize,
        loads: usize,
        reports: Vec<Status>,
        /// Each wait lasts this long (for tests of what happens over time).
        pause: Duration,
        /// At this wait, the config file is edited.
        edit_at: Option<usize>,
        /// The timeout of each wait, in order.
        timeouts: Vec<Duration>,
    }

    impl WalSource for FakeHost {
        fn flush(&mut self) -> Result<Flush> {
            Ok(Flush {
                lsn: self.flush,
                timeline: 1,
            })
        }
        fn last_removed_segno(&mut self) -> Option<u64> {
            None
        }
    }

    impl Host for FakeHost {
        fn load_config(&mut self) -> Result<Config> {
            self.loads += 1;
            if self.broken_loads > 0 {
                self.broken_loads -= 1;
                return Err(Error::refused("the config is being edited"));
            }
            Config::load(&self.config_path, &[])
        }
        fn cluster(&mut self) -> Result<Cluster> {
            Ok(Cluster {
                pg_wal: self.pg_wal.clone(),
                seg_size: MB,
                system_id: 7,
            })
        }
        fn source(&mut self) -> &mut dyn WalSource {
            self
        }
        fn wait(&mut self, timeout: Duration) -> Wake {
            self.waits += 1;
            self.timeouts.push(timeout);
            std::thread::sleep(self.pause);
            if Some(self.waits) == self.edit_at {
                let text = fs::read_to_string(&self.config_path).unwrap();
                fs::write(&self.config_path, text.replace("0.01", "0.02")).unwrap();
            }
            if Some(self.waits) == self.reload_at {
                return Wake::Reload;
            }
            // WAL flushed while the loop waited.
            self.flush = Lsn(self.flush.0 + 10_000);
            if self.waits >= self.stop_after {
                Wake::Stop
            } else {
                Wake::Round
            }
        }
        fn report(&mut self, status: &Status) {
            self.reports.push(status.clone());
        }
    }

    fn host(dir: &std::path::Path) -> FakeHost {
        let pg_wal = dir.join("pg_wal");
        fs::create_dir_all(&pg_wal).unwrap();
        let seg = SegmentName::from_segno(1, 2, MB);
        fs::write(pg_wal.join(seg.to_string()), fake_segment(&seg, MB)).unwrap();
        let wd = dir.join("walshipping");
        fs::create_dir_all(wd.join("logs.partial")).unwrap();
        let config_path = dir.join("master.toml");
        fs::write(
            &config_path,
            format!(
                "[walmgr]\nmaster_data = \"/x\"\nwalmgr_data = \"{}\"\nloop_delay = 0.01\n",
                wd.display()
            ),
        )
        .unwrap();
        FakeHost {
            config_path,
            pg_wal,
            flush: Lsn(2 * u64::from(MB) + 100),
            waits: 0,
            stop_after: 5,
            reload_at: None,
            broken_loads: 0,
            loads: 0,
            reports: Vec::new(),
            pause: Duration::ZERO,
            edit_at: None,
            timeouts: Vec::new(),
        }
    }

    /// WAL flushed across a segment switch while the loop waited: the next round finishes
    /// the previous segment's tail only, and the round after it must follow at once. A
    /// host that sleeps until WAL is flushed would otherwise sleep loop_delay (and the
    /// commits after the switch with it).
    #[test]
    fn a_round_that_shipped_less_than_was_flushed_is_followed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = host(dir.path());
        let next = SegmentName::from_segno(1, 3, MB);
        fs::write(h.pg_wal.join(next.to_string()), fake_segment(&next, MB)).unwrap();
        // 5,000 bytes before the end of segment 2; the first wait moves it 5,000 into 3.
        h.flush = Lsn(3 * u64::from(MB) - 5_000);
        h.stop_after = 4;
        run(&mut h).unwrap();
        let loop_delay = Duration::from_secs_f64(0.01);
        assert_eq!(
            h.timeouts[..3],
            [loop_delay, Duration::ZERO, loop_delay],
            "after the tail of segment 2, segment 3 without waiting"
        );
        assert_eq!(h.reports.last().unwrap().acknowledged, Some(h.flush));
    }

    #[test]
    fn the_loop_ships_each_flush_and_what_was_flushed_before_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = host(dir.path());
        run(&mut h).unwrap();
        let last = h.reports.last().unwrap();
        assert_eq!(last.state, "stopped");
        // The flush moved once more with the stop; the final round shipped it too.
        assert_eq!(last.acknowledged, Some(h.flush));
        assert_eq!(last.bytes_behind(), Some(0));
        let partial = dir
            .path()
            .join("walshipping/logs.partial/000000010000000000000002");
        let held = fs::read(partial).unwrap();
        let wal = fake_segment(&SegmentName::from_segno(1, 2, MB), MB);
        let n = (h.flush.0 - 2 * u64::from(MB)) as usize;
        assert_eq!(held[..n], wal[..n]);
    }

    #[test]
    fn an_edited_config_is_loaded_again_without_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = host(dir.path());
        h.pause = Duration::from_millis(100);
        h.edit_at = Some(2);
        h.stop_after = 20;
        run(&mut h).unwrap();
        assert_eq!(h.loads, 2, "the edit was not picked up");
    }

    #[test]
    fn a_config_that_does_not_load_is_waited_out_and_a_reload_loads_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = host(dir.path());
        h.broken_loads = 1;
        h.reload_at = Some(3);
        h.stop_after = 6;
        run(&mut h).unwrap();
        assert_eq!(h.reports[0].state, "waiting for a config");
        assert!(h.reports[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("being edited")));
        assert!(h.reports.iter().any(|r| r.state == "shipping"));
        assert_eq!(h.loads, 3, "a load, a retry, and the reload");
        assert_eq!(h.reports.last().unwrap().state, "stopped");
    }
}
