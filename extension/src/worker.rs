//! The background worker that ships in-progress WAL: core's shipping loop, driven from
//! inside the server. It reads the flush position in shared memory (no database
//! connection), sleeps on the walsenders' flush condition variable on PostgreSQL 16+ (so
//! it ships as soon as WAL is flushed) and polls every `loop_delay` on 15.
//!
//! It never takes the server down: failures are logged and counted in `walmgr.status`,
//! a panic ends this process only, and the postmaster starts it again
//! [`RESTART_AFTER`] later (also after SIGTERM or SIGKILL).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags,
};
use pgrx::prelude::*;
use walmgr_core::config::Config;
use walmgr_core::server::{Flush, WalSource};
use walmgr_core::shipping::driver::{self, Host, Status, Wake};
use walmgr_core::shipping::reader::Cluster;
use walmgr_core::wal::Lsn;
use walmgr_core::Error;

use crate::{settings, status};

const RESTART_AFTER: Duration = Duration::from_secs(5);
/// The longest one sleep lasts: SIGTERM and SIGHUP are noticed at least this often
/// (a condition variable sleep does not end when the latch is set).
const SLICE: Duration = Duration::from_millis(100);

/// Registers the worker; only while shared_preload_libraries are loaded (the same library
/// is also loaded by the archiver and by CREATE EXTENSION, which must not register it).
pub fn register() {
    BackgroundWorkerBuilder::new("walmgr in-progress WAL shipping")
        .set_type("walmgr shipper")
        .set_library("walmgr")
        .set_function("walmgr_shipper_main")
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn walmgr_shipper_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // The postmaster sends SIGTERM at shutdown and waits for this worker before the
    // shutdown checkpoint: a silent standby must not hold it up for network_timeout.
    walmgr_core::remote::when_stopping(stop_asked);
    let mut host = WorkerHost {
        source: InProcess { last_flush: 0 },
        timeline: 0,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| driver::run(&mut host)));
    match outcome {
        Ok(Ok(())) => log!("walmgr: in-progress WAL shipping stopped"),
        Ok(Err(e)) => log!("walmgr: in-progress WAL shipping failed: {e}"),
        Err(_) => log!("walmgr: in-progress WAL shipping failed (panic); restarting"),
    }
    // Exit code 1, always: a worker that exits with 0 is never started again, and a DBA's
    // SIGTERM (or any failure) must not end shipping for good. At server shutdown the
    // postmaster starts nothing anyway.
    // SAFETY: ends this process the way PostgreSQL expects of a background worker.
    unsafe { pg_sys::proc_exit(1) };
}

/// SIGTERM, kept: pgrx's flag resets when read, and both the shipping loop and the
/// transport (waiting on a silent standby) ask.
fn stop_asked() -> bool {
    static ASKED: AtomicBool = AtomicBool::new(false);
    if BackgroundWorker::sigterm_received() {
        ASKED.store(true, Ordering::Relaxed);
    }
    ASKED.load(Ordering::Relaxed)
}

struct WorkerHost {
    source: InProcess,
    /// The timeline of the last flush read, for the status.
    timeline: u32,
}

impl Host for WorkerHost {
    fn load_config(&mut self) -> Result<Config, Error> {
        let path = settings::config_path().ok_or_else(|| {
            Error::refused("walmgr.config is not set (run `walmgr <master config> setup`)")
        })?;
        Config::load(&path, &[])
    }

    fn configured(&mut self) -> bool {
        // A restored copy (a standby, or a booted one not yet set up) has none: nothing to
        // ship and nothing to complain about.
        settings::config_path().is_some()
    }

    fn cluster(&mut self) -> Result<Cluster, Error> {
        Ok(this_cluster())
    }

    fn source(&mut self) -> &mut dyn WalSource {
        &mut self.source
    }

    fn wait(&mut self, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        loop {
            if stop_asked() {
                return Wake::Stop;
            }
            if BackgroundWorker::sighup_received() {
                // SAFETY: the standard reload of a worker, on its main thread.
                unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
                return Wake::Reload;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Round;
            }
            if self.source.sleep(left.min(SLICE)) {
                return Wake::Round;
            }
        }
    }

    fn report(&mut self, s: &Status) {
        // Not flush(): that would mark WAL flushed during the round as seen, and the next
        // sleep would wait loop_delay before shipping it (the last commits of a burst).
        if let Some(timeline) = self.source.timeline_now() {
            self.timeline = timeline;
        }
        status::record_shipping(s, self.timeline);
    }
}

/// This server's WAL, read in-process.
pub fn this_cluster() -> Cluster {
    // SAFETY: plain reads of server globals on the main thread.
    unsafe {
        let data = std::ffi::CStr::from_ptr(pg_sys::DataDir)
            .to_string_lossy()
            .into_owned();
        Cluster {
            pg_wal: PathBuf::from(data).join("pg_wal"),
            seg_size: pg_sys::wal_segment_size as u32,
            system_id: pg_sys::GetSystemIdentifier(),
        }
    }
}

/// Flush position and removed segments from shared memory.
pub struct InProcess {
    /// The flush position the last round saw: a sleep ends at once if WAL moved past it.
    last_flush: u64,
}

impl InProcess {
    pub fn new() -> InProcess {
        InProcess { last_flush: 0 }
    }

    /// Sleeps at most `timeout`; true when WAL was flushed meanwhile (or already had been).
    fn sleep(&mut self, timeout: Duration) -> bool {
        let ms = timeout.as_millis().clamp(1, i64::MAX as u128) as std::ffi::c_long;
        #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
        // SAFETY: WalSndCtl lives in shared memory for the server's lifetime; the prepare,
        // check, sleep, cancel order is PostgreSQL's own pattern for not missing a wakeup.
        unsafe {
            if !pg_sys::WalSndCtl.is_null() {
                let cv = std::ptr::addr_of_mut!((*pg_sys::WalSndCtl).wal_flush_cv);
                pg_sys::ConditionVariablePrepareToSleep(cv);
                let moved = self.flushed_now() > self.last_flush;
                if !moved {
                    pg_sys::ConditionVariableTimedSleep(cv, ms, pg_sys::PG_WAIT_EXTENSION);
                }
                pg_sys::ConditionVariableCancelSleep();
                return moved || self.flushed_now() > self.last_flush;
            }
        }
        if self.flushed_now() > self.last_flush {
            return true;
        }
        // Not BackgroundWorker::wait_latch: it consumes the SIGTERM flag the loop looks for.
        // SAFETY: this process's own latch, on its main thread.
        unsafe {
            pg_sys::WaitLatch(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                ms,
                pg_sys::PG_WAIT_EXTENSION,
            );
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
        self.flushed_now() > self.last_flush
    }

    /// The timeline WAL is flushed on now; None in recovery.
    fn timeline_now(&self) -> Option<u32> {
        // SAFETY: plain reads of server state on the main thread.
        unsafe {
            if pg_sys::RecoveryInProgress() {
                return None;
            }
            let mut tli: pg_sys::TimeLineID = 0;
            pg_sys::GetFlushRecPtr(&mut tli);
            Some(tli)
        }
    }

    fn flushed_now(&self) -> u64 {
        // SAFETY: plain reads of server state on the main thread.
        unsafe {
            if pg_sys::RecoveryInProgress() {
                return 0;
            }
            pg_sys::GetFlushRecPtr(std::ptr::null_mut())
        }
    }
}

impl WalSource for InProcess {
    fn flush(&mut self) -> Result<Flush, Error> {
        // SAFETY: plain reads of server state on the main thread.
        let (lsn, timeline) = unsafe {
            if pg_sys::RecoveryInProgress() {
                // A master in recovery (or a standby) has nothing of its own to ship.
                return Ok(Flush {
                    lsn: Lsn(0),
                    timeline: 0,
                });
            }
            let mut tli: pg_sys::TimeLineID = 0;
            let lsn = pg_sys::GetFlushRecPtr(&mut tli);
            (lsn, tli)
        };
        self.last_flush = lsn;
        Ok(Flush {
            lsn: Lsn(lsn),
            timeline,
        })
    }

    fn last_removed_segno(&mut self) -> Option<u64> {
        // SAFETY: reads a counter under the server's own spinlock.
        Some(unsafe { pg_sys::XLogGetLastRemovedSegno() })
    }
}
