//! The remote backup benchmark (issue 10; run it through bench/backup-ssh.sh, as root): a
//! base backup of a PostgreSQL 15 master with a pgbench database of 1 GB and more, copied to
//! the standby host across the two hosts of the test harness (two network namespaces joined
//! by a veth pair, nothing else between them), first over the open link, then over the same
//! link limited to 100 Mbit/s by `tc` on both ends.
//!
//! Variants (src/backup_ssh/variants.rs):
//!   - `walmgr`: `walmgr master.toml backup`, the data directory streamed through walmgr's own
//!     SSH session (libssh2) to the standby's `walmgr xserve`, which stages, syncs, renames,
//!     rotates and purges;
//!   - `walmgr compression`: the same with `compression = true` (zstd on the wire);
//!   - `rsync -a + sync`: walmgr3's way, pg_backup_start, rsync -a over OpenSSH with
//!     walmgr3's excludes, pg_backup_stop, `ssh standby sync`;
//!   - `rsync -az + sync` (100 Mbit/s only): the same with walmgr3's `compression = 1`;
//!   - `pg_basebackup`: `pg_basebackup -Fp -X none -c fast` run on the standby host.
//!
//! The method: every run starts with the previous copies removed, a CHECKPOINT on the
//! master, and an empty page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`), and ends
//! when the copy is durable on the standby; the copy is then checked against the master's
//! file list and sizes (tree.rs). Variants run round-robin, the first one rotating between
//! repetitions; the tables show medians of REPS runs. A thread watches the peak RSS of every
//! process each run starts on either host (memory.rs). One untimed walmgr backup before the
//! first run drops the fill's WAL from the archive (every later backup purges only what the
//! previous one left) and checks the set-up.
//!
//!   walmgr-backup-ssh-bench REPS SCALE
//!
//! Environment: WALMGR_BENCH_CLI, the walmgr binary both hosts run (required);
//! WALMGR_BENCH_LINKS=open,slow (default both: which phases run); WALMGR_BENCH_CLI_B, a second
//! walmgr build measured beside the first on both hosts (variants `walmgr B` and `walmgr B
//! compression`, for a before/after comparison in one interleaved run) and
//! WALMGR_BENCH_CLI_B_NOTE, what it is (printed); WALMGR_BENCH_ONLY=NAME,... runs only the
//! variants so named (e.g. `walmgr` alone, to profile it); WALMGR_BENCH_PROFILE=DIR records a
//! system-wide `perf record -g` of every timed run into DIR (it costs the runs some CPU);
//! WALMGR_KEEP_TEST_DIRS keeps the bench directory. Exit status 0 when every copy held the master's files
//! (targets met or not: this is a measurement), 2 when one did not, 101 when the set-up
//! failed.

mod memory;
mod report;
mod scenario;
mod tree;
mod variants;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use walmgr_tests::TestCommand;

use memory::Side;
use report::{ratio, verdict, Results, MEMORY_LIMIT_MB};
use scenario::{Scenario, Shaped};
use variants::Variant;

/// A copy that does not hold the master's files: the one failure that is the bench's result
/// rather than a broken set-up.
#[derive(Debug)]
pub struct VerifyError(pub String);

pub fn log(msg: &str) {
    eprintln!("--> {msg}");
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP only set a flag, which the bench checks between runs: it then
/// panics, and unwinding tears down the servers, the sshd and the namespaces (their Drop),
/// which a default signal death would leave behind.
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn check_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted by a signal: tearing down");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Open,
    /// 100 Mbit/s each way.
    Slow,
}

impl Link {
    fn variants(self, second: bool) -> Vec<Variant> {
        let mut variants = match self {
            Link::Open => vec![
                Variant::WALMGR,
                Variant::WALMGR_ZSTD,
                Variant::RSYNC,
                Variant::BASEBACKUP,
            ],
            Link::Slow => vec![
                Variant::WALMGR,
                Variant::WALMGR_ZSTD,
                Variant::RSYNC,
                Variant::RSYNC_Z,
                Variant::BASEBACKUP,
            ],
        };
        if second {
            variants.extend([Variant::WALMGR_B, Variant::WALMGR_B_ZSTD]);
        }
        variants
    }

    fn describe(self) -> &'static str {
        match self {
            Link::Open => "open veth link",
            Link::Slow => "link limited to 100 Mbit/s each way (tc tbf on both veth ends)",
        }
    }
}

fn main() -> ExitCode {
    catch_signals();
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let reps = args.first().copied().unwrap_or(3) as usize;
    let scale = args.get(1).copied().unwrap_or(70);
    let links: Option<Vec<Link>> = std::env::var("WALMGR_BENCH_LINKS")
        .unwrap_or_else(|_| "open,slow".into())
        .split(',')
        .map(|l| match l.trim() {
            "open" => Some(Link::Open),
            "slow" => Some(Link::Slow),
            _ => None,
        })
        .collect();
    let (Some(links), true) = (links, reps >= 1 && scale >= 1) else {
        eprintln!("usage: walmgr-backup-ssh-bench REPS>=1 SCALE>=1; WALMGR_BENCH_LINKS=open,slow");
        return ExitCode::from(1);
    };
    let cli = std::env::var_os("WALMGR_BENCH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("WALMGR_BENCH_CLI must name the walmgr binary (bench/backup-ssh.sh sets it)")
        });
    let second = std::env::var_os("WALMGR_BENCH_CLI_B").map(PathBuf::from);
    match run(&cli, second.as_deref(), reps, scale, &links) {
        Ok(()) => ExitCode::SUCCESS,
        Err(VerifyError(e)) => {
            eprintln!("VERIFICATION FAILED: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(
    cli: &Path,
    second: Option<&Path>,
    reps: usize,
    scale: u32,
    links: &[Link],
) -> Result<(), VerifyError> {
    let started = Instant::now();
    // A subset of the variants, by name (for profiling one of them).
    let only: Option<Vec<String>> = std::env::var("WALMGR_BENCH_ONLY")
        .ok()
        .map(|o| o.split(',').map(|n| n.trim().to_string()).collect());
    let sc = Scenario::start(cli, second, scale);
    log(&format!("bench directory {}", sc.s.dir.path.display()));
    let master_files = tree::list(&sc.s.master.data);
    let master_bytes = tree::total(&master_files);
    describe(&sc, scale, master_files.len(), master_bytes);
    if let Some(b) = second {
        let note = std::env::var("WALMGR_BENCH_CLI_B_NOTE").unwrap_or_default();
        println!(
            "walmgr B: a second build on both hosts, measured beside this one: {}{}",
            b.display(),
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        );
    }

    log("one untimed walmgr backup: the archive drops the fill's WAL, the set-up is checked");
    variants::run(&sc, &Variant::WALMGR, None)?;
    let profiles = std::env::var_os("WALMGR_BENCH_PROFILE").map(PathBuf::from);

    let mut busy = Vec::new();
    let mut all: Vec<(Link, Results)> = Vec::new();
    for &link in links {
        let shaped = (link == Link::Slow).then(|| Shaped::new(sc.hosts(), "100mbit"));
        let variants: Vec<Variant> = link
            .variants(sc.second.is_some())
            .into_iter()
            .filter(|v| only.as_ref().is_none_or(|o| o.iter().any(|n| n == v.name)))
            .collect();
        let mut results = Results::new();
        for rep in 0..reps {
            for i in 0..variants.len() {
                let v = &variants[(rep + i) % variants.len()];
                check_interrupted();
                let others = others_at_work();
                let profile = profiles.as_ref().map(|dir| {
                    let name = format!("{link:?}-{}-{}.perf", v.name.replace(' ', "_"), rep + 1);
                    dir.join(name.to_lowercase())
                });
                let r = variants::run(&sc, v, profile.as_deref())?;
                let others: Vec<String> = others.into_iter().chain(others_at_work()).collect();
                log(&format!(
                    "{:?} link, repetition {}/{reps}, {}: {:.2} s ({} files, {:.0} MB; load {})",
                    link,
                    rep + 1,
                    v.name,
                    r.secs,
                    r.held.files,
                    r.held.bytes as f64 / 1e6,
                    report::load_average()
                ));
                if !others.is_empty() {
                    busy.push(format!(
                        "{:?} link, repetition {}, {}: {}",
                        link,
                        rep + 1,
                        v.name,
                        others.join(", ")
                    ));
                }
                results.entry(v.name).or_default().push(r);
            }
        }
        report::table(
            &format!(
                "backup to the standby host, {}: {:.0} MB in {} files (pgbench scale {scale}), \
                 {reps} repetitions, cold cache, variants interleaved",
                link.describe(),
                master_bytes as f64 / 1e6,
                master_files.len()
            ),
            &variants,
            &results,
            master_bytes,
        );
        if let Some(shaped) = &shaped {
            println!("tc counters of the phase:\n{}", shaped.stats());
        }
        all.push((link, results));
    }
    targets(&all);
    println!();
    if busy.is_empty() {
        println!("other work seen on the machine during the runs: none (cargo, rustc, pgbench, other benches)");
    } else {
        println!("WARNING: other work ran during these runs (their timings may be skewed):");
        for b in &busy {
            println!("  {b}");
        }
    }
    println!(
        "load average at the end: {}; bench wall time (without the build): {:.0} s",
        report::load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Versions, the machine, and the ciphers, before the tables.
fn describe(sc: &Scenario, scale: u32, files: usize, bytes: u64) {
    let first_line = |program: &str, arg: &str| {
        let out = TestCommand::new(program).arg(arg).run();
        let text = [out.stdout, out.stderr].concat();
        String::from_utf8_lossy(&text)
            .lines()
            .next()
            .unwrap_or("?")
            .to_string()
    };
    let pg_basebackup = sc.s.master.pg.bin("pg_basebackup");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    println!(
        "master: PostgreSQL 15, pgbench scale {scale}: {:.0} MB in {files} files a base backup \
         carries; archiving over SSH to the standby host (walmgr module)",
        bytes as f64 / 1e6
    );
    println!(
        "machine: {cpu}, {} CPUs, kernel {}; load average at the start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        first_line("uname", "-r"),
        report::load_average()
    );
    println!(
        "tools: {}; {}; {}; walmgr {}",
        first_line("rsync", "--version"),
        first_line("ssh", "-V"),
        first_line(
            pg_basebackup.to_str().unwrap_or("pg_basebackup"),
            "--version"
        ),
        sc.s.walmgr_bin().display()
    );
    println!(
        "ciphers: walmgr (libssh2) aes128-ctr, its first choice, which sshd offers; rsync's \
         OpenSSH client negotiates {}",
        sc.openssh_cipher()
    );
    report::flush();
}

/// The issue's three targets (and the same for a second build, if measured).
fn targets(all: &[(Link, Results)]) {
    println!();
    let builds = [
        ("walmgr", "walmgr compression"),
        ("walmgr B", "walmgr B compression"),
    ];
    for (link, results) in all {
        for (plain, zstd) in builds {
            let needed = match link {
                Link::Open => ["rsync -a + sync", plain],
                Link::Slow => [zstd, plain],
            };
            if !needed.iter().all(|n| results.contains_key(n)) {
                continue;
            }
            match link {
                Link::Open => {
                    let (x, each) = ratio(results, "rsync -a + sync", plain);
                    println!(
                        "target: {plain} backup >= 1.5x rsync over ssh, open link: {} ({x:.2}x; \
                         per repetition {each})",
                        verdict(x >= 1.5)
                    );
                    if results.contains_key(zstd) {
                        let (x, each) = ratio(results, "rsync -a + sync", zstd);
                        println!(
                            "  (with compression = true: {x:.2}x rsync; per repetition {each})"
                        );
                    }
                }
                Link::Slow => {
                    let (x, each) = ratio(results, zstd, plain);
                    println!(
                        "target: {plain}, compression = true <= 0.6x the time of compression = \
                         false at 100 Mbit/s: {} ({x:.2}; per repetition {each})",
                        verdict(x <= 0.6)
                    );
                }
            }
        }
    }
    let mut worst: Vec<(Side, &str, u64)> = Vec::new();
    for (side, kind) in [
        (Side::Master, "walmgr backup"),
        (Side::Standby, "walmgr xserve"),
    ] {
        let kb = all
            .iter()
            .flat_map(|(_, results)| {
                builds
                    .iter()
                    .flat_map(|(plain, zstd)| [*plain, *zstd])
                    .map(|name| report::peaks(results, name))
            })
            .filter_map(|p| p.get(&(side, kind.to_string())).map(|peak| peak.hwm_kb))
            .max()
            .unwrap_or(0);
        worst.push((side, kind, kb));
    }
    let over = worst
        .iter()
        .any(|(_, _, kb)| *kb as f64 * 1024.0 / 1e6 >= MEMORY_LIMIT_MB || *kb == 0);
    let text: Vec<String> = worst
        .iter()
        .map(|(side, kind, kb)| {
            format!("{} {kind} {:.1} MB", side.name(), *kb as f64 * 1024.0 / 1e6)
        })
        .collect();
    println!(
        "target: peak RSS of either end < {MEMORY_LIMIT_MB} MB (walmgr's processes, every run, \
         with and without compression): {} ({})",
        verdict(!over),
        text.join(", ")
    );
}

/// Other work on this 2-core machine that would skew a timing: builds, other benches,
/// pgbench (the bench's own runs only while filling, before any timing).
fn others_at_work() -> Vec<String> {
    const BUSY: &[&str] = &[
        "cargo",
        "rustc",
        "pgbench",
        "walmgr-lag-benc",
        "walmgr-archive-",
    ];
    let mut seen = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
            .is_none()
        {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim_end();
        if BUSY.contains(&comm) && !seen.iter().any(|s: &String| s == comm) {
            seen.push(comm.to_string());
        }
    }
    seen
}
