//! The sampler: a thread with its own connection to the master that reads, every
//! [`INTERVAL`], the flush LSN and the LSN the standby acknowledged, in one query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use postgres::types::PgLsn;
use postgres::Client;

use crate::series::Sample;

pub const INTERVAL: Duration = Duration::from_millis(10);

/// Samples `sql` (one row: the flush `pg_lsn`, the acknowledged `pg_lsn` or NULL) on a fixed
/// 10 ms schedule from `t0` until `stop` is set. A query that overruns its slot skips the
/// slots it missed rather than bursting to catch up, so gaps show as they happened.
pub fn run(
    mut client: Client,
    sql: &str,
    t0: Instant,
    stop: &AtomicBool,
) -> Result<Vec<Sample>, String> {
    let statement = client
        .prepare(sql)
        .map_err(|e| format!("prepare `{sql}`: {e}"))?;
    let mut samples = Vec::with_capacity(8192);
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) && !walmgr_bench::interrupted() {
        let at = t0.elapsed();
        let row = client
            .query_one(&statement, &[])
            .map_err(|e| format!("sample `{sql}` at {at:?}: {e}"))?;
        let flush: PgLsn = row
            .try_get(0)
            .map_err(|e| format!("`{sql}`: the flush LSN: {e}"))?;
        let ack: Option<PgLsn> = row
            .try_get(1)
            .map_err(|e| format!("`{sql}`: the acknowledged LSN: {e}"))?;
        samples.push(Sample {
            at,
            flush: u64::from(flush),
            ack: ack.map(u64::from),
        });
        next += INTERVAL;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(samples)
}

/// Sets `stop` when dropped: the main thread's panic (a failing pgbench, a signal) must end
/// the sampler, or the scope that joins it would wait for ever.
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
