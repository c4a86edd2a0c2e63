//! What the benchmarks of this crate share (walmgr-archive-bench, walmgr-lag-bench): progress
//! lines, signals that tear the servers down instead of leaving them running, the table
//! printer, and what the machine was doing.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// A progress line on stderr (the tables go to stdout).
pub fn log(msg: &str) {
    eprintln!("--> {msg}");
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP only set a flag, which the bench checks between steps: it then
/// panics, and unwinding tears down the servers and the sshd (their Drop), which a default
/// signal death would leave running.
pub fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// True once a signal asked the bench to stop (for loops that must not panic, such as a
/// sampling thread: it stops, and the main thread's next check panics).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

pub fn check_interrupted() {
    if interrupted() {
        panic!("interrupted by a signal: tearing down");
    }
}

/// Columns aligned, the first left and the others right, a dashed line under the header.
pub fn print_table(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(j, c)| {
                if j == 0 {
                    format!("{c:<w$}", w = widths[j])
                } else {
                    format!("{c:>w$}", w = widths[j])
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
        if i == 0 {
            let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("{}", dashes.join("  "));
        }
    }
}

/// The load averages: other work on this machine skews timings.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

pub fn flush() {
    let _ = std::io::stdout().flush();
}

/// (mtime, size) of a file, to notice it was replaced during the run (another build or test
/// installing walmgr.so, say).
pub fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}
