//! The lag benchmark of in-progress WAL shipping (issue 9, "Failover loses nothing"; run it
//! through bench/lag.sh, as root): how far behind the master's flush the LSN the standby
//! acknowledged as durable stays under sustained load, in bytes and in milliseconds, for
//! walmgr's background worker and for `pg_receivewal --synchronous`; and what the worker
//! costs in CPU, under load and idle.
//!
//! The method:
//!   - Per PostgreSQL major (15: the worker polls; 18: it is woken on flush), three masters
//!     with the same settings (16 MB segments, wal_compression off, shared_buffers 256MB,
//!     autovacuum off, synchronous_commit on) and the same `pgbench -i -s 10` database:
//!     walmgr shipping to a local standby directory, walmgr over SSH to a harness sshd on
//!     127.0.0.1 (both harness `Shipping` scenarios, set up with `walmgr setup`: archiving
//!     through the module, the worker preloaded), and a plain master (no archiving) streaming
//!     to `pg_receivewal --synchronous` into a directory on this machine.
//!   - Variants: walmgr {local, ssh} x loop_delay {0.1, 1.0} (a master.toml edit and a
//!     reload between them), and pg_receivewal. With REPS > 1 their order rotates between
//!     repetitions and the samples of all repetitions are pooled.
//!   - Each variant: CHECKPOINT (every variant starts with the same full-page-write storm),
//!     wait until the standby holds all flushed WAL, then `pgbench -n -c 2 -j 2 -T SECONDS
//!     --rate RATE` (a fixed rate, so that every variant gets the same load whatever it
//!     costs; RATE 0 runs unthrottled) while a sampler thread with its own connection reads
//!     every 10 ms, in one query, the flush LSN and the acknowledged LSN: walmgr.status's
//!     partial_lsn, or pg_stat_replication's flush_lsn for pg_receivewal. Sampling goes on
//!     after the load until the standby holds everything flushed (at most loop_delay + 10 s).
//!   - Lag in bytes: flush - acknowledged, per sample under load. Lag in ms: per sample under
//!     load, the time until the first later sample whose acknowledged LSN reached that
//!     sample's flush LSN; so to within one sampling interval (10 ms plus the query), and
//!     0 when the acknowledgement had already reached it. p50, p99 (nearest rank) and max.
//!   - CPU: utime + stime (/proc/PID/stat) of the shipping process, before and after: the
//!     worker (walmgr.status's shipper_pid), or the walsender serving pg_receivewal; of the
//!     standby side when it is a separate process: the sshd sessions and `walmgr xserve`,
//!     or pg_receivewal. Per GB (10^9 bytes) shipped: walmgr.status's partial_shipped_bytes,
//!     or the advance of pg_receivewal's flush LSN.
//!   - Idle: the worker's CPU over 10 s at loop_delay 0.1 with no load, local and SSH, from
//!     /proc/PID/stat ticks and /proc/PID/schedstat (nanoseconds).
//!   - Targets: with polling (15), p99 lag <= loop_delay + 100 ms; woken on flush (16+),
//!     p99 lag <= 2x pg_receivewal's p99 on the same major (floored at one sampling interval,
//!     below which the sampler cannot tell lags apart); idle worker < 5% of one core.
//!
//!   walmgr-lag-bench [SECONDS=20] [RATE=300] [REPS=1]
//!
//! Environment: WALMGR_BENCH_CLI, the walmgr binary of the scenarios (master_restart_cmd,
//! the standby's xserve; required); WALMGR_BENCH_MAJORS (default "15,18"); WALMGR_BENCH_RELEASE=0
//! says the installed walmgr.so was not rebuilt for the run (otherwise each major's
//! walmgr.so must be identical to WALMGR_BENCH_TARGET/pgrx-NN/release/libwalmgr.so, the
//! checkout's target dir by default, before its masters start, and the workers measured
//! must map that file, or the report says so: see build.rs); WALMGR_KEEP_TEST_DIRS keeps
//! the bench directories (servers stopped).
//! Exit status 0 when the run completed (targets met or not: this is a measurement), 101
//! when the set-up or a measurement failed (the panic says what; servers are torn down).

mod build;
mod cpu;
mod masters;
mod measure;
mod report;
mod sampler;
mod series;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use walmgr_bench::{catch_signals, check_interrupted, flush, load_average, log};
use walmgr_tests::Pg;

use build::Build;
use masters::{load_database, Receivewal, Source, WalmgrMaster};
use measure::{idle, measure, Idle, Load, Run};

/// The worker's loop_delay values measured.
const LOOP_DELAYS: [f64; 2] = [0.1, 1.0];
/// How long the idle worker is watched.
const IDLE_SECONDS: u64 = 10;

/// Who ships the WAL in a variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shipper {
    Walmgr { ssh: bool, loop_delay: f64 },
    Receivewal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variant {
    pub major: u32,
    pub shipper: Shipper,
}

impl Variant {
    pub fn name(&self) -> String {
        match self.shipper {
            Shipper::Walmgr { ssh, loop_delay } => format!(
                "pg{} walmgr {} loop_delay {loop_delay:.1}",
                self.major,
                if ssh { "ssh" } else { "local" }
            ),
            Shipper::Receivewal => format!("pg{} pg_receivewal --synchronous", self.major),
        }
    }
}

pub struct IdleRow {
    pub major: u32,
    pub transport: &'static str,
    pub idle: Idle,
}

fn main() -> ExitCode {
    catch_signals();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u64| -> Option<u64> {
        args.get(i).map_or(Some(default), |a| a.parse().ok())
    };
    let (Some(seconds), Some(rate), Some(reps)) = (number(0, 20), number(1, 300), number(2, 1))
    else {
        eprintln!("usage: walmgr-lag-bench [SECONDS=20] [RATE=300 (0: unthrottled)] [REPS=1]");
        return ExitCode::from(1);
    };
    if seconds < 2 || reps < 1 || args.len() > 3 {
        eprintln!("usage: walmgr-lag-bench [SECONDS>=2] [RATE] [REPS>=1]");
        return ExitCode::from(1);
    }
    let majors: Vec<u32> = std::env::var("WALMGR_BENCH_MAJORS")
        .unwrap_or_else(|_| "15,18".into())
        .split(',')
        .map(|m| {
            m.trim().parse().unwrap_or_else(|_| {
                panic!("WALMGR_BENCH_MAJORS: {m:?} is not a PostgreSQL major (e.g. 15,18)")
            })
        })
        .collect();
    let cli = std::env::var_os("WALMGR_BENCH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("WALMGR_BENCH_CLI must name the walmgr binary the scenarios run (bench/lag.sh sets it)")
        });
    let load = Load {
        seconds,
        rate: u32::try_from(rate).unwrap_or(u32::MAX),
    };
    run(&cli, &majors, &load, reps as usize);
    ExitCode::SUCCESS
}

fn run(cli: &Path, majors: &[u32], load: &Load, reps: usize) {
    let started = Instant::now();
    let release = std::env::var("WALMGR_BENCH_RELEASE").as_deref() != Ok("0");
    let target = release.then(|| {
        std::env::var_os("WALMGR_BENCH_TARGET")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
    });
    let load_before = load_average();
    let mut results: Vec<(Variant, Vec<Run>)> = Vec::new();
    let mut idles: Vec<IdleRow> = Vec::new();
    let mut builds = Vec::new();
    for &major in majors {
        let pg = Pg::major(major);
        let mut build = Build::check_before_start(&pg, target.as_deref());
        let (runs, idle_rows) = run_major(cli, &pg, load, reps, &mut build);
        results.extend(runs);
        idles.extend(idle_rows);
        builds.push(build);
    }

    println!();
    report::describe(&builds, load);
    report::lag_table(&results, load);
    report::details_table(&results);
    report::idle_table(&idles);
    for b in &builds {
        for p in &b.problems {
            println!(
                "WARNING: the PostgreSQL {} rows may not measure the build meant: {p}",
                b.major
            );
        }
    }
    println!(
        "machine: load average {load_before} before the run, {} after (1, 5, 15 min; 2 CPUs); \
         the host CPU % column says how busy both CPUs were during each load",
        load_average()
    );
    println!(
        "bench wall time (without the build): {:.0} s",
        started.elapsed().as_secs_f64()
    );
    flush();
}

/// Every variant of one major, on its three masters (torn down at the end), then the idle
/// worker.
fn run_major(
    cli: &Path,
    pg: &Pg,
    load: &Load,
    reps: usize,
    build: &mut Build,
) -> (Vec<(Variant, Vec<Run>)>, Vec<IdleRow>) {
    let major = pg.major;
    let local = WalmgrMaster::start(cli, pg, false);
    check_interrupted();
    let ssh = WalmgrMaster::start(cli, pg, true);
    check_interrupted();
    let recv = Receivewal::start(pg);
    for source in [&local as &dyn Source, &ssh, &recv] {
        check_interrupted();
        log(&format!(
            "pg{major}: pgbench -i -s {} on {}",
            masters::SCALE,
            source.cluster().data.display()
        ));
        load_database(source.cluster());
    }
    // pgbench -i finished segments: let the archiver take them before anything is measured.
    for w in [&local, &ssh] {
        w.scenario.master.wait_until(
            "the archiver to finish the segments of pgbench -i",
            Duration::from_secs(300),
            || {
                w.scenario
                    .master
                    .query_one::<i64>("SELECT files_waiting FROM walmgr.status")
                    == 0
            },
        );
    }

    let mut variants: Vec<Variant> = Vec::new();
    for ssh in [false, true] {
        for loop_delay in LOOP_DELAYS {
            variants.push(Variant {
                major,
                shipper: Shipper::Walmgr { ssh, loop_delay },
            });
        }
    }
    variants.push(Variant {
        major,
        shipper: Shipper::Receivewal,
    });
    let mut runs: Vec<(Variant, Vec<Run>)> = variants.iter().map(|v| (*v, Vec::new())).collect();
    for rep in 0..reps {
        // Rotate the order so that no variant always runs first or after the same one.
        for i in 0..variants.len() {
            check_interrupted();
            let k = (rep + i) % variants.len();
            let v = variants[k];
            let run = match v.shipper {
                Shipper::Walmgr {
                    ssh: over_ssh,
                    loop_delay,
                } => {
                    let m = if over_ssh { &ssh } else { &local };
                    m.set_loop_delay(loop_delay);
                    let drain = Duration::from_secs_f64(loop_delay) + Duration::from_secs(10);
                    measure(m, load, drain)
                }
                Shipper::Receivewal => {
                    recv.check_alive();
                    let run = measure(&recv, load, Duration::from_secs(10));
                    recv.check_alive();
                    run
                }
            };
            log(&format!(
                "rep {}/{reps} {:<40} {:7.1} tps, lag p99 {:6.1} ms, max {:6.1} ms",
                rep + 1,
                v.name(),
                run.tps,
                series::percentile(&run.lags.ms, 99.0),
                run.lags.ms.iter().copied().fold(0.0, f64::max),
            ));
            runs[k].1.push(run);
        }
    }

    let mut idle_rows = Vec::new();
    for w in [&local, &ssh] {
        check_interrupted();
        w.set_loop_delay(0.1);
        log(&format!(
            "pg{major}: worker idle at loop_delay 0.1 ({}), {IDLE_SECONDS} s",
            w.transport()
        ));
        idle_rows.push(IdleRow {
            major,
            transport: w.transport(),
            idle: idle(w, IDLE_SECONDS),
        });
    }
    build.check_loaded(&[
        (format!("pg{major} walmgr local"), local.sender_pid()),
        (format!("pg{major} walmgr ssh"), ssh.sender_pid()),
    ]);
    log(&format!("pg{major}: tearing down"));
    (runs, idle_rows)
}
