//! The replay benchmark (run it through bench/replay.sh, as root): how long a standby
//! restored from a base backup takes to replay the archived WAL behind it, with each
//! restore_command, on PostgreSQL 15. This is the recovery time a DBA waits for after a
//! failure, and per segment it is what each restore_command costs PostgreSQL.
//!
//! The method:
//!   - a primary (16 MB segments, then a second one with `initdb --wal-segsize=1`) archives
//!     with `cp` into a plain directory; a base backup (`pg_basebackup -X none`) is taken,
//!     then pgbench writes WAL (`pgbench -i -s 20` and a few seconds of TPC-B, in turns)
//!     until WAL_MB of it follow the backup; a final pg_switch_wal archives the last
//!     segment, and the primary stops. The same segments are pushed into a pgBackRest repo
//!     (no compression) for its variants.
//!   - each run copies the base backup into a fresh data directory, adds standby.signal and
//!     the variant's restore_command, and starts it; the time from `pg_ctl start` until
//!     `pg_last_wal_replay_lsn()` reaches the primary's last insert position before the
//!     switch is the replay time. The standby is then stopped and removed.
//!   - variants: `walmgr xrestore` (the CLI of this checkout, config read from the archive
//!     side's slave.toml), `cp` (the docs' example), `pgbackrest archive-get` synchronous
//!     and asynchronous (archive-async with its spool queue, emptied before each run), and
//!     `pg_wal` (no restore_command: the segments are copied into pg_wal before the start,
//!     so the run is PostgreSQL's replay alone, the floor under every other variant).
//!   - page cache: warm (the variant's source files are read just before the start) and
//!     cold (sync and `echo 3 > /proc/sys/vm/drop_caches` just before the start: the
//!     archive, the backup copy and the binaries come from disk).
//!   - every repetition runs every (variant, cache) pair once, in an order that rotates
//!     between repetitions (the per-segment timing before them warms everything up).
//!
//! A second part times the restore command alone, per segment, outside PostgreSQL (warm
//! cache, `/bin/sh -c` as postgres, as PostgreSQL's system() runs it), and splits walmgr's
//! time into its phases: the shell, walmgr's process start (`--version`), start plus
//! config and archive checks (xrestore of a name the archive lacks), and the whole
//! xrestore; with `cp`, pgBackRest, and the copy alone done in this process for reference.
//!
//!   walmgr-replay-bench REPS
//!
//! Environment: WALMGR_BENCH_CLI (the walmgr binary, required), WALMGR_BENCH_WAL_MB (WAL
//! after the backup, default 1024), WALMGR_BENCH_SMALL_WAL_MB (the same for segments under
//! 16 MB, default 256: there the point is the cost per segment), WALMGR_BENCH_SEGSIZES (default "16,1", MB),
//! WALMGR_BENCH_CACHE (default "warm,cold"; "none" runs no replay, only the timing of the
//! restore commands), WALMGR_BENCH_ONLY (a comma list of variants),
//! WALMGR_BENCH_MICRO (calls timed per tool in the second part, default 64; 0 skips it),
//! WALMGR_BENCH_OTHER_CLIS (LABEL=PATH,...: other walmgr binaries, main's say, measured
//! beside this one as `walmgr-LABEL`), WALMGR_KEEP_TEST_DIRS keeps the bench directory (servers stopped).
//! Exit status 0 when every run reached the end of the archived WAL, 101 otherwise.

mod micro;
mod report;
mod source;
mod standby;
mod variants;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use walmgr_bench::{catch_signals, load_average, log};
use walmgr_tests::{Pg, TestDir, Walmgr};

use source::Source;
use variants::{Cache, Variant};

pub const MIB: u64 = 1 << 20;

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_number(key: &str, default: u64) -> u64 {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v}: not a number")),
        Err(_) => default,
    }
}

fn main() -> ExitCode {
    catch_signals();
    let reps: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 5,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => {
            eprintln!("usage: walmgr-replay-bench [REPS>=1]");
            return ExitCode::from(1);
        }
    };
    let wal_mb = env_number("WALMGR_BENCH_WAL_MB", 1024);
    let small_wal_mb = env_number("WALMGR_BENCH_SMALL_WAL_MB", 256);
    let micro_n = env_number("WALMGR_BENCH_MICRO", 64) as usize;
    let seg_sizes: Vec<u64> = env_list("WALMGR_BENCH_SEGSIZES", "16,1")
        .iter()
        .map(|s| match s.parse() {
            Ok(n @ (1 | 2 | 4 | 8 | 16 | 32 | 64)) => n,
            _ => panic!("WALMGR_BENCH_SEGSIZES: {s} is not a WAL segment size in MB"),
        })
        .collect();
    let caches: Vec<Cache> = env_list("WALMGR_BENCH_CACHE", "warm,cold")
        .iter()
        .filter(|c| *c != "none")
        .map(|c| match c.as_str() {
            "warm" => Cache::Warm,
            "cold" => Cache::Cold,
            _ => panic!("WALMGR_BENCH_CACHE: {c} is neither warm, cold nor none"),
        })
        .collect();
    let only = env_list("WALMGR_BENCH_ONLY", "");
    let built = std::env::var_os("WALMGR_BENCH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("WALMGR_BENCH_CLI must name the walmgr binary (bench/replay.sh sets it)")
        });

    // Other walmgr binaries (main's, say) measured beside this one: before/after in one run.
    let others: Vec<(String, PathBuf)> = env_list("WALMGR_BENCH_OTHER_CLIS", "")
        .iter()
        .map(|o| match o.split_once('=') {
            Some((label, path)) => (label.to_string(), PathBuf::from(path)),
            None => panic!("WALMGR_BENCH_OTHER_CLIS: {o} is not LABEL=PATH"),
        })
        .collect();

    // The archive, the pgBackRest repo, the primary's pg_wal and a standby's pg_wal each
    // hold about the WAL volume at their peak: refuse to fill a disk others share.
    let need = 4 * wal_mb.max(small_wal_mb) * MIB + 1024 * MIB;
    let free = free_bytes(std::path::Path::new("/tmp"));
    if free < need {
        eprintln!(
            "only {} MB free in /tmp, and this run needs about {} MB: free some space or \
             lower WALMGR_BENCH_WAL_MB",
            free / MIB,
            need / MIB
        );
        return ExitCode::from(1);
    }
    let started = Instant::now();
    let pg = Pg::major(15);
    // Declared first, dropped last: everything below lives in it.
    let dir = TestDir::new("replaybench");
    log(&format!("bench directory {}", dir.path.display()));
    // A copy the postgres user can run, which a build meanwhile cannot change.
    let walmgr = Walmgr::new(&dir, &built);
    let others: Vec<(&'static str, PathBuf)> = others
        .into_iter()
        .map(|(label, path)| {
            let bin = Walmgr::new_in(&dir, &label, path).bin;
            // Variant names live as long as the bench.
            let name: &'static str = Box::leak(format!("walmgr-{label}").into_boxed_str());
            (name, bin)
        })
        .collect();
    println!("{}", report::describe(&built, &walmgr.bin, reps, &caches));
    println!("load average at the start: {}", load_average());
    for seg_mib in seg_sizes {
        walmgr_bench::check_interrupted();
        let mb = if seg_mib < 16 { small_wal_mb } else { wal_mb };
        let source = Source::make(&pg, &dir, seg_mib, mb);
        let variants: Vec<Variant> = Variant::all(&source, &walmgr.bin, &others)
            .into_iter()
            .filter(|v| only.is_empty() || only.iter().any(|o| o == v.name))
            .collect();
        if micro_n > 0 {
            let rows = micro::measure(&dir, &source, &walmgr.bin, &others, micro_n);
            report::micro_table(&source, &rows);
        }
        // WALMGR_BENCH_CACHE=none: the per-segment timing only.
        if !caches.is_empty() {
            let times = standby::measure(&pg, &dir, &source, &variants, &caches, reps);
            report::replay_table(&source, &variants, &caches, &times);
        }
        source.remove();
    }
    println!(
        "load average at the end (other work on this machine skews timings): {}",
        load_average()
    );
    println!(
        "bench wall time (without the build): {:.0} s",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// Bytes an unprivileged user may still write on the filesystem of `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs fills the zeroed struct for a valid C string path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return 0;
        }
        st.f_bavail * st.f_frsize
    }
}
