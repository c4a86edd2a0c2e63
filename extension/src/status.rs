//! What the archiver and the shipping worker report to `walmgr.status`: a small struct in
//! shared memory, written by them after every attempt and read by any backend.

use std::fs;

use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory};
use walmgr_core::wal::name::WalFileName;
use walmgr_core::wal::Lsn;

const NAME_LEN: usize = 64;
const ERROR_LEN: usize = 1024;
const TRANSPORT_LEN: usize = 512;

#[derive(Copy, Clone)]
pub struct Status {
    last_archived_wal: [u8; NAME_LEN],
    last_archived_at: pg_sys::TimestampTz,
    last_failed_wal: [u8; NAME_LEN],
    last_error: [u8; ERROR_LEN],
    last_error_at: pg_sys::TimestampTz,
    transport: [u8; TRANSPORT_LEN],
    archived_count: i64,
    failed_count: i64,
    shipper: Shipper,
}

/// The in-progress shipping loop (the worker, or `walmgr.sync()`).
#[derive(Copy, Clone)]
pub struct Shipper {
    state: [u8; NAME_LEN],
    pid: i32,
    acknowledged: u64,
    acknowledged_timeline: u32,
    acknowledged_at: pg_sys::TimestampTz,
    shipped_bytes: i64,
    errors: i64,
    last_error: [u8; ERROR_LEN],
    last_error_at: pg_sys::TimestampTz,
    transport: [u8; TRANSPORT_LEN],
}

impl Default for Shipper {
    fn default() -> Self {
        Shipper {
            state: [0; NAME_LEN],
            pid: 0,
            acknowledged: 0,
            acknowledged_timeline: 0,
            acknowledged_at: 0,
            shipped_bytes: 0,
            errors: 0,
            last_error: [0; ERROR_LEN],
            last_error_at: 0,
            transport: [0; TRANSPORT_LEN],
        }
    }
}

impl Default for Status {
    fn default() -> Self {
        Status {
            last_archived_wal: [0; NAME_LEN],
            last_archived_at: 0,
            last_failed_wal: [0; NAME_LEN],
            last_error: [0; ERROR_LEN],
            last_error_at: 0,
            transport: [0; TRANSPORT_LEN],
            archived_count: 0,
            failed_count: 0,
            shipper: Shipper::default(),
        }
    }
}

// SAFETY: plain old data, no pointers.
unsafe impl PGRXSharedMemory for Status {}

static STATUS: PgLwLock<Status> = unsafe { PgLwLock::new(c"walmgr_status") };
/// Set in the postmaster before fork, so every child knows whether STATUS exists.
static mut SHARED_MEMORY_READY: bool = false;

pub fn init_shared_memory() {
    pg_shmem_init!(STATUS);
    // SAFETY: written once, in the postmaster, before any child is forked.
    unsafe { SHARED_MEMORY_READY = true };
}

fn available() -> bool {
    // SAFETY: read-only after the postmaster set it.
    unsafe { SHARED_MEMORY_READY }
}

/// Copies `s` into a fixed buffer, cut at a character boundary, NUL-padded.
fn put(buf: &mut [u8], s: &str) {
    let mut end = s.len().min(buf.len() - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.fill(0);
    buf[..end].copy_from_slice(&s.as_bytes()[..end]);
}

fn get(buf: &[u8]) -> Option<String> {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    (end > 0).then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn now() -> pg_sys::TimestampTz {
    // SAFETY: a plain clock read.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

pub fn record_success(name: &str, transport: &str) {
    if !available() {
        return;
    }
    let mut s = STATUS.exclusive();
    put(&mut s.last_archived_wal, name);
    s.last_archived_at = now();
    put(&mut s.transport, transport);
    s.archived_count += 1;
}

pub fn record_failure(name: Option<&str>, error: &str) {
    if !available() {
        return;
    }
    let mut s = STATUS.exclusive();
    if let Some(name) = name {
        put(&mut s.last_failed_wal, name);
    }
    put(&mut s.last_error, error);
    s.last_error_at = now();
    s.failed_count += 1;
}

fn system_time(t: std::time::SystemTime) -> pg_sys::TimestampTz {
    // PostgreSQL's epoch is 2000-01-01, in microseconds.
    const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;
    let micros = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    micros - PG_EPOCH_UNIX_SECS * 1_000_000
}

/// The shipping loop's state, from the worker (with its pid) after every round.
pub fn record_shipping(status: &walmgr_core::shipping::driver::Status, timeline: u32) {
    if !available() {
        return;
    }
    let mut s = STATUS.exclusive();
    let sh = &mut s.shipper;
    put(&mut sh.state, status.state);
    // SAFETY: a plain read of this process's pid.
    sh.pid = unsafe { pg_sys::MyProcPid };
    if let (Some(lsn), Some(at)) = (status.acknowledged, status.acknowledged_at) {
        sh.acknowledged = lsn.0;
        sh.acknowledged_timeline = timeline;
        sh.acknowledged_at = system_time(at);
    }
    sh.shipped_bytes = status.shipped_bytes as i64;
    sh.errors = status.errors as i64;
    if let (Some(e), Some(at)) = (&status.last_error, status.last_error_at) {
        put(&mut sh.last_error, e);
        sh.last_error_at = system_time(at);
    }
    if let Some(t) = &status.transport {
        put(&mut sh.transport, t);
    }
}

/// Raises the acknowledged position after `walmgr.sync()` shipped further than the worker.
pub fn record_synced(lsn: u64, timeline: u32) {
    if !available() {
        return;
    }
    let mut s = STATUS.exclusive();
    if lsn > s.shipper.acknowledged {
        s.shipper.acknowledged = lsn;
        s.shipper.acknowledged_timeline = timeline;
        s.shipper.acknowledged_at = now();
    }
}

/// What the standby is known to hold: (LSN, timeline).
pub fn acknowledged() -> Option<(u64, u32)> {
    if !available() {
        return None;
    }
    let s = STATUS.share();
    (s.shipper.acknowledged > 0)
        .then_some((s.shipper.acknowledged, s.shipper.acknowledged_timeline))
}

fn timestamp(ts: pg_sys::TimestampTz) -> Option<TimestampWithTimeZone> {
    if ts == 0 {
        return None;
    }
    TimestampWithTimeZone::try_from(ts).ok()
}

/// Files PostgreSQL has finished and not yet seen archived.
fn files_waiting() -> i64 {
    fs::read_dir("pg_wal/archive_status")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                .count() as i64
        })
        .unwrap_or(0)
}

/// Bytes of WAL flushed after the end of the last archived segment.
fn bytes_behind(last_archived: Option<&str>) -> Option<i64> {
    let segment = WalFileName::parse(last_archived?).ok()?;
    let WalFileName::Segment(segment) = segment else {
        return None;
    };
    // SAFETY: a plain read of a server global on the main thread.
    let seg_size = unsafe { pg_sys::wal_segment_size } as u32;
    let end = segment.start_lsn(seg_size) + u64::from(seg_size);
    Some(flushed()?.saturating_sub(end) as i64)
}

/// How far WAL is flushed; None on a server in recovery.
fn flushed() -> Option<u64> {
    // SAFETY: plain reads of server state on the main thread.
    unsafe {
        if pg_sys::RecoveryInProgress() {
            return None;
        }
        Some(pg_sys::GetFlushRecPtr(std::ptr::null_mut()))
    }
}

#[allow(clippy::type_complexity)]
#[pg_extern(name = "status_row")]
fn status_row() -> TableIterator<
    'static,
    (
        name!(last_archived_wal, Option<String>),
        name!(last_archived_time, Option<TimestampWithTimeZone>),
        name!(files_waiting, i64),
        name!(bytes_behind, Option<i64>),
        name!(last_failed_wal, Option<String>),
        name!(last_error, Option<String>),
        name!(last_error_time, Option<TimestampWithTimeZone>),
        name!(transport, Option<String>),
        name!(archived_count, i64),
        name!(failed_count, i64),
        name!(shipper_state, Option<String>),
        name!(shipper_pid, Option<i32>),
        name!(partial_lsn, Option<String>),
        name!(partial_time, Option<TimestampWithTimeZone>),
        name!(partial_bytes_behind, Option<i64>),
        name!(partial_shipped_bytes, i64),
        name!(shipper_errors, i64),
        name!(shipper_last_error, Option<String>),
        name!(shipper_last_error_time, Option<TimestampWithTimeZone>),
    ),
> {
    let waiting = files_waiting();
    let row = if available() {
        let s = *STATUS.share();
        let last = get(&s.last_archived_wal);
        (
            last.clone(),
            timestamp(s.last_archived_at),
            waiting,
            bytes_behind(last.as_deref()),
            get(&s.last_failed_wal),
            get(&s.last_error),
            timestamp(s.last_error_at),
            get(&s.transport),
            s.archived_count,
            s.failed_count,
            get(&s.shipper.state),
            (s.shipper.pid != 0).then_some(s.shipper.pid),
            (s.shipper.acknowledged != 0).then(|| Lsn(s.shipper.acknowledged).to_string()),
            timestamp(s.shipper.acknowledged_at),
            (s.shipper.acknowledged != 0)
                .then(flushed)
                .flatten()
                .map(|f| f.saturating_sub(s.shipper.acknowledged) as i64),
            s.shipper.shipped_bytes,
            s.shipper.errors,
            get(&s.shipper.last_error),
            timestamp(s.shipper.last_error_at),
        )
    } else {
        (
            None,
            None,
            waiting,
            None,
            None,
            Some(
                "walmgr is not in shared_preload_libraries: archive status is not recorded".into(),
            ),
            None,
            None,
            0,
            0,
            None,
            None,
            None,
            None,
            None,
            0,
            0,
            None,
            None,
        )
    };
    TableIterator::once(row)
}

extension_sql!(
    r#"
CREATE VIEW status AS
    SELECT last_archived_wal, last_archived_time, files_waiting, bytes_behind,
           last_failed_wal, last_error, last_error_time, transport, archived_count,
           failed_count, shipper_state, shipper_pid, partial_lsn::pg_lsn AS partial_lsn,
           partial_time, partial_bytes_behind, partial_shipped_bytes, shipper_errors,
           shipper_last_error, shipper_last_error_time
    FROM status_row();
COMMENT ON VIEW status IS 'walmgr: archiving (last archived file, files waiting, last error) and in-progress WAL shipping (the LSN the standby holds, bytes behind the flush)';
REVOKE ALL ON FUNCTION status_row() FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
GRANT EXECUTE ON FUNCTION status_row() TO pg_monitor;
GRANT SELECT ON status TO pg_monitor;
"#,
    name = "status_view",
    requires = [status_row]
);
