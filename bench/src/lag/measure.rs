//! One measurement: a checkpoint, the load with the sampler running, the drain; and the idle
//! measurement of the worker.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use walmgr_tests::Cluster;

use crate::cpu::{self, Host, Snapshot};
use crate::masters::{wait_caught_up, Source, WalmgrMaster};
use crate::sampler::{self, StopOnDrop, INTERVAL};
use crate::series::{self, Lags, Sample};

/// The pgbench load every variant gets.
#[derive(Debug, Clone)]
pub struct Load {
    pub seconds: u64,
    /// Transactions per second for all clients together (`--rate`); 0: as fast as it goes.
    pub rate: u32,
}

impl Load {
    /// The built-in TPC-B-like script, 2 clients on 2 threads, no vacuum first (the bench
    /// vacuumed once, after `pgbench -i`).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["-n", "-c", "2", "-j", "2", "-T"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(self.seconds.to_string());
        if self.rate > 0 {
            a.push("--rate".into());
            a.push(self.rate.to_string());
        }
        a
    }
}

/// What one run of a variant measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub lags: Lags,
    pub samples: usize,
    /// (median, largest) gap between samples, ms.
    pub interval_ms: (f64, f64),
    pub tps: f64,
    pub load_seconds: f64,
    /// How far the flush LSN moved under load.
    pub wal_bytes: u64,
    pub shipped: u64,
    pub sender_cpu: f64,
    pub receiver_cpu: Option<f64>,
    /// Errors the shipping loop counted during the run (walmgr).
    pub errors: Option<i64>,
    /// Percent of both CPUs busy during the load, everything on the machine included.
    pub host_busy: f64,
    /// From the end of the load until the standby held all of it; None if it did not
    /// within the drain limit.
    pub drained_ms: Option<f64>,
    /// The shipping process changed during the run: its CPU time is incomplete.
    pub sender_restarted: bool,
}

/// Checkpoint (every variant starts with the same full-page-write storm), wait until the
/// standby holds all flushed WAL, then pgbench under the sampler, then keep sampling until
/// the standby holds everything flushed under load (at most `drain_within`).
pub fn measure(source: &dyn Source, load: &Load, drain_within: Duration) -> Run {
    let cluster = source.cluster();
    cluster.checkpoint();
    wait_caught_up(source, Duration::from_secs(60));
    let sender = source.sender_pid();
    let receivers = source.receiver_pids();
    let sender_before = Snapshot::of(&[sender]);
    let receivers_before = receivers.as_deref().map(Snapshot::of);
    let shipped_before = source.shipped();
    let errors_before = source.errors();

    let sql = source.sample_sql();
    let client = cluster.connect();
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (samples, pgbench_out, window, drained, host_busy) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sampler::run(client, sql, t0, &stop));
        let stop_sampler = StopOnDrop(&stop);
        // The sampler's first query, so that the load window starts with a sample.
        std::thread::sleep(2 * INTERVAL);
        let host_before = Host::now();
        let start = t0.elapsed();
        let args = load.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cluster.pgbench(&args);
        let end = t0.elapsed();
        let host_busy = Host::now().busy_since(&host_before);
        let drained = drain(cluster, sql, end, t0, drain_within);
        // Two more samples, so that the series ends acknowledged.
        std::thread::sleep(3 * INTERVAL);
        drop(stop_sampler);
        let samples = sampler
            .join()
            .unwrap_or_else(|_| cluster.fail("the sampler thread panicked"))
            .unwrap_or_else(|e| cluster.fail(&e));
        (samples, out, start..end, drained, host_busy)
    });

    let sender_after = Snapshot::of(&[sender]);
    let receiver_cpu = receivers_before.map(|before| {
        Snapshot::of(&source.receiver_pids().unwrap_or_default()).seconds_since(&before)
    });
    let sender_restarted = source.sender_pid() != sender;
    let lags = series::lags(&samples, window.clone());
    let in_window: Vec<&Sample> = samples.iter().filter(|s| window.contains(&s.at)).collect();
    let wal_bytes = match (in_window.first(), in_window.last()) {
        (Some(a), Some(b)) => b.flush - a.flush,
        _ => 0,
    };
    Run {
        samples: in_window.len(),
        interval_ms: series::intervals(&samples),
        lags,
        tps: tps(&pgbench_out),
        load_seconds: (window.end - window.start).as_secs_f64(),
        wal_bytes,
        shipped: source.shipped().saturating_sub(shipped_before),
        sender_cpu: sender_after.seconds_since(&sender_before),
        receiver_cpu,
        errors: source.errors().zip(errors_before).map(|(a, b)| a - b),
        host_busy,
        drained_ms: drained.map(|d| d.as_secs_f64() * 1000.0),
        sender_restarted,
    }
}

/// Polls until the standby acknowledged the flush LSN; the time since `end`, or None after
/// `within`.
fn drain(
    cluster: &Cluster,
    sql: &str,
    end: Duration,
    t0: Instant,
    within: Duration,
) -> Option<Duration> {
    let mut client = cluster.connect();
    loop {
        let row = client
            .query_one(sql, &[])
            .unwrap_or_else(|e| cluster.fail(&format!("`{sql}`: {e}")));
        let flush: postgres::types::PgLsn = row.get(0);
        let ack: Option<postgres::types::PgLsn> = row.get(1);
        let since = t0.elapsed() - end;
        if ack.is_some_and(|a| a >= flush) {
            return Some(since);
        }
        if since > within {
            return None;
        }
        std::thread::sleep(INTERVAL);
    }
}

/// pgbench's "tps = 499.871 (without initial connection time)".
fn tps(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The worker with nothing to ship.
#[derive(Debug, Clone)]
pub struct Idle {
    pub seconds: f64,
    pub ticks: u64,
    pub on_cpu_ns: u64,
    pub restarted: bool,
}

/// The worker's CPU over `seconds` with no load (at whatever loop_delay is set), after the
/// standby caught up.
pub fn idle(master: &WalmgrMaster, seconds: u64) -> Idle {
    wait_caught_up(master, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let pid = master.sender_pid();
    let (ticks, ns) = (cpu::ticks(pid), cpu::on_cpu_ns(pid));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let elapsed = t0.elapsed().as_secs_f64();
    let (ticks_after, ns_after) = (cpu::ticks(pid), cpu::on_cpu_ns(pid));
    let restarted = master.sender_pid() != pid;
    Idle {
        seconds: elapsed,
        ticks: ticks_after.unwrap_or(0).saturating_sub(ticks.unwrap_or(0)),
        on_cpu_ns: ns_after.unwrap_or(0).saturating_sub(ns.unwrap_or(0)),
        restarted,
    }
}
