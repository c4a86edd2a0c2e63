//! The archive benchmark (run it through bench/archive.sh, as root): how fast each archiver
//! drains N ready WAL segments of a PostgreSQL 15 master.
//!
//! The method, which is what makes the numbers fair: a master fills N finished segments with
//! real data (INSERTs of random text, no pg_switch_wal padding) while nothing can archive
//! them, so they wait as .ready. Then, for every repetition and every variant, in an order
//! that rotates between repetitions, the same N files are turned back into .ready, the
//! variant is configured with its gate closed, the archiver is seen idle under that
//! configuration, the gate is opened, and the time until none of the N is .ready any more is
//! the drain time. Every variant's output is compared byte for byte with the master's files.
//!
//! Gates, so that timing starts with work waiting and the archiver idle:
//!   - walmgr (local) and basic_archive: the destination directory does not exist until the
//!     gate opens (the module's check fails); over SSH, the standby's directory, so each
//!     attempt fails on the standby and the failed attempts open walmgr's SSH session, as
//!     its steady state has one open;
//!   - cp, pgbackrest, rsync: the command starts with `test -e GATE &&`; rsync-ssh-cm's
//!     master connection is opened right before the gate opens, as ControlPersist keeps it
//!     open between files in the steady state.
//!
//! A change of archive_library restarts the archiver, and the postmaster starts the new one
//! only 10 s after the previous start, so each switch waits for the new process. Opening a
//! gate is an atomic rename or create, followed by SIGHUP to the postmaster (what
//! pg_reload_conf() does), which wakes the archiver.
//!
//! Suites (WALMGR_BENCH_SUITE: local, ssh, or all, the default, which shares the 16 MB
//! cluster and its segments):
//!   local: walmgr (the module), contrib basic_archive, `cp` (the docs' example, no fsync),
//!          pgbackrest archive-push (local repo, no compression, synchronous), and a copy
//!          by this program (the page-cache upper bound).
//!   ssh:   walmgr over SSH to 127.0.0.1 (one libssh2 session kept by the archiver; the
//!          standby's `walmgr xserve` writes each file durably before it replies), the same
//!          with compression = true, the local walmgr as reference, and walmgr3's way,
//!          rsync over ssh then `ssh standby sync`, with and without ControlMaster (without,
//!          only the first max(8, N/16) segments: its cost per file is fixed), at 16 MB
//!          segments (N of them) and 1 MB segments (N1, a second cluster).
//!
//!   walmgr-archive-bench N REPS N1
//!
//! Environment: WALMGR_BENCH_SUITE; WALMGR_BENCH_CLI, the walmgr binary the standby runs
//! (required by the ssh suite); WALMGR_BENCH_RELEASE=0 says the installed walmgr.so was not
//! rebuilt for the run; WALMGR_KEEP_TEST_DIRS keeps the bench directory (servers stopped).
//! Exit status 0 when every output matched the master's files (targets met or not: this is a
//! measurement), 2 when one did not, 101 when the set-up failed.

mod master;
mod report;
mod ssh;
mod variants;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use walmgr_bench::{catch_signals, file_stamp};
pub use walmgr_bench::{check_interrupted, log};
use walmgr_tests::{Pg, TestDir, Walmgr};

use master::Master;
use report::{flush, Times};
use ssh::{walmgr_ssh_config, ControlMasterGuard, SshClient};
use variants::{measure, Variant};

pub const MIB: u64 = 1 << 20;

/// An output that differs from the master's file: the one failure that is the bench's result
/// rather than a broken set-up.
#[derive(Debug)]
pub struct VerifyError(pub String);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Suite {
    Local,
    Ssh,
    All,
}

fn main() -> ExitCode {
    catch_signals();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or(0))
        .collect();
    let n = args.first().copied().unwrap_or(64);
    let reps = args.get(1).copied().unwrap_or(3);
    let n1 = args.get(2).copied().unwrap_or(4 * n);
    let suite = match std::env::var("WALMGR_BENCH_SUITE").as_deref() {
        Ok("local") => Some(Suite::Local),
        Ok("ssh") => Some(Suite::Ssh),
        Ok("all") | Err(_) => Some(Suite::All),
        Ok(_) => None,
    };
    let (Some(suite), true) = (suite, n >= 1 && reps >= 1 && n1 >= 1) else {
        eprintln!(
            "usage: walmgr-archive-bench N>=1 REPS>=1 N1>=1; WALMGR_BENCH_SUITE=local|ssh|all"
        );
        return ExitCode::from(1);
    };
    match run(suite, n, reps, n1) {
        Ok(()) => ExitCode::SUCCESS,
        Err(VerifyError(e)) => {
            eprintln!("VERIFICATION FAILED: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(suite: Suite, n: usize, reps: usize, n1: usize) -> Result<(), VerifyError> {
    let started = Instant::now();
    let pg = Pg::major(15);
    let libdir = PathBuf::from(pg.config("--pkglibdir"));
    for lib in ["walmgr.so", "basic_archive.so"] {
        assert!(
            libdir.join(lib).exists(),
            "{} is missing (run scripts/test or scripts/demo first)",
            libdir.join(lib).display()
        );
    }
    let so = libdir.join("walmgr.so");
    let stamp = file_stamp(&so);
    let release = std::env::var("WALMGR_BENCH_RELEASE").as_deref() != Ok("0");

    // Declared first, dropped last: everything below lives in it.
    let dir = TestDir::new("archbench");
    log(&format!("bench directory {}", dir.path.display()));
    let dest = dir.mkdir("dest");
    let gate = dir.join("gate");

    if suite == Suite::Local {
        let master = fill_master(&pg, &dir, 16, n, &dest);
        let names = master.fill(n);
        println!("{}", report::describe_build(&pg, &master, release, None));
        println!("{}", report::fsync_note(&dir.path));
        run_local(&dir, &master, &names, reps, &dest, &gate)?;
    } else {
        let built = std::env::var_os("WALMGR_BENCH_CLI")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!("WALMGR_BENCH_CLI must name the walmgr binary the standby runs (bench/archive.sh sets it)")
            });
        // A copy the postgres user can run, which a build meanwhile cannot change.
        let standby_walmgr = Walmgr::new(&dir, &built);
        let (_sshd, ssh) = SshClient::start(&dir);
        let _control_master = ControlMasterGuard(ssh.clone());
        for (seg_mib, count) in [(16, n), (1, n1)] {
            let master = fill_master(&pg, &dir, seg_mib, count, &dest);
            let names = master.fill(count);
            if seg_mib == 16 {
                println!(
                    "{}",
                    report::describe_build(&pg, &master, release, Some(&built))
                );
                println!("{}", report::fsync_note(&dir.path));
                println!("{}", report::ssh_notes(&ssh));
                flush();
                if suite == Suite::All {
                    run_local(&dir, &master, &names, reps, &dest, &gate)?;
                }
            }
            run_ssh(
                &dir,
                &master,
                &names,
                reps,
                &ssh,
                &standby_walmgr.bin,
                &dest,
                &gate,
            )?;
            // Each segment size starts without a ControlMaster, so that its table names the
            // cipher of the one it opens.
            ssh.close_control_master();
            let data = master.cluster.data.clone();
            drop(master);
            // Its WAL (up to 2N segments kept) is not needed any more.
            let _ = std::fs::remove_dir_all(data);
        }
    }
    if file_stamp(&so) != stamp {
        println!(
            "WARNING: {} was replaced during the run (another build or test installed it): \
             the walmgr rows may mix builds.",
            so.display()
        );
    }
    println!(
        "load average at the end (other work on this machine skews timings): {}",
        report::load_average()
    );
    println!(
        "bench wall time (without the build): {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn fill_master(pg: &Pg, dir: &TestDir, seg_mib: u64, count: usize, dest: &Path) -> Master {
    log(&format!(
        "master with {seg_mib} MiB segments, filling {count}"
    ));
    Master::start(pg, dir, &format!("master{seg_mib}"), seg_mib, count, dest)
}

fn run_local(
    dir: &TestDir,
    master: &Master,
    names: &[String],
    reps: usize,
    dest: &Path,
    gate: &Path,
) -> Result<(), VerifyError> {
    let mut variants = vec![
        Variant::walmgr(master, dest),
        Variant::basic_archive(dest),
        Variant::cp(dest, gate),
        Variant::pgbackrest(dir, master, gate),
        Variant::page_cache(dest),
    ];
    let times: Times = measure(&mut variants, master, names, reps)?;
    report::report_local(&variants, &times, names.len(), master.seg_size);
    flush();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_ssh(
    dir: &TestDir,
    master: &Master,
    names: &[String],
    reps: usize,
    ssh: &SshClient,
    standby_walmgr: &Path,
    dest: &Path,
    gate: &Path,
) -> Result<(), VerifyError> {
    let n = names.len();
    let config = |name: &str, compression: bool| {
        walmgr_ssh_config(dir, master, ssh, standby_walmgr, name, compression, dest)
    };
    let mut variants = vec![
        Variant::walmgr_ssh(ssh, config("walmgr-ssh", false), false, dest),
        Variant::walmgr_ssh(ssh, config("walmgr-ssh-zstd", true), true, dest),
        Variant::walmgr(master, dest),
        Variant::rsync_ssh(ssh, true, None, dest, gate),
        Variant::rsync_ssh(ssh, false, Some(n.min((n / 16).max(8))), dest, gate),
    ];
    let times = measure(&mut variants, master, names, reps)?;
    let zstd = report::zstd_ratio(master, names, 8);
    report::report_ssh(&variants, &times, names, master.seg_size, zstd);
    flush();
    Ok(())
}
