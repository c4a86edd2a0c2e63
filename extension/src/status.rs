//! What the archiver reports to `walmgr.status`: a small struct in shared memory, written by
//! the archiver after every attempt and read by any backend.

use std::fs;

use pgrx::lwlock::PgLwLock;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory};
use walmgr_core::wal::name::WalFileName;

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
    // SAFETY: plain reads of server state on the main thread.
    unsafe {
        if pg_sys::RecoveryInProgress() {
            return None;
        }
        let seg_size = pg_sys::wal_segment_size as u32;
        let end = segment.start_lsn(seg_size) + u64::from(seg_size);
        let flushed = pg_sys::GetFlushRecPtr(std::ptr::null_mut());
        Some(flushed.saturating_sub(end) as i64)
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
        )
    };
    TableIterator::once(row)
}

extension_sql!(
    r#"
CREATE VIEW status AS SELECT * FROM status_row();
COMMENT ON VIEW status IS 'walmgr archiving: last archived file, files waiting, last error';
REVOKE ALL ON FUNCTION status_row() FROM PUBLIC;
GRANT USAGE ON SCHEMA @extschema@ TO pg_monitor;
GRANT EXECUTE ON FUNCTION status_row() TO pg_monitor;
GRANT SELECT ON status TO pg_monitor;
"#,
    name = "status_view",
    requires = [status_row]
);
