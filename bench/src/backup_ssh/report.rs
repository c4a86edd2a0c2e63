//! The tables and target lines the bench prints.

use std::collections::BTreeMap;
use std::io::Write;

use crate::memory::{self, Peaks, Side};
use crate::variants::{Run, Variant};
use walmgr_bench::print_table;

/// Runs of each variant, in repetition order.
pub type Results = BTreeMap<&'static str, Vec<Run>>;

const MB: f64 = 1e6;
/// The memory bound for either end.
pub const MEMORY_LIMIT_MB: f64 = 64.0;

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub fn secs(results: &Results, name: &str) -> Vec<f64> {
    results
        .get(name)
        .map(|runs| runs.iter().map(|r| r.secs).collect())
        .unwrap_or_default()
}

/// The peaks of every run of `name`, merged.
pub fn peaks(results: &Results, name: &str) -> Peaks {
    let mut all = Peaks::new();
    for run in results.get(name).into_iter().flatten() {
        memory::merge(&mut all, &run.seen.peaks);
    }
    all
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 * 1024.0 / MB)
}

/// One phase's table: times, rates, the ratio to rsync, peak memory per host; then each
/// repetition's times, what each copy held, and every process's peak.
pub fn table(title: &str, variants: &[Variant], results: &Results, master_bytes: u64) {
    let rsync = median(&secs(results, "rsync -a + sync"));
    let mut rows = vec![[
        "variant",
        "median s",
        "min s",
        "max s",
        "MB/s",
        "x rsync",
        "master MB",
        "standby MB",
        "sshd MB",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for v in variants {
        let ts = secs(results, v.name);
        let m = median(&ts);
        let p = peaks(results, v.name);
        let tool = |side| {
            memory::tool(&p, side)
                .map(|(_, kb)| mb(kb))
                .or_else(|| {
                    // pg_basebackup's master end is the server's walsender.
                    p.get(&(side, memory::BACKEND.to_string()))
                        .map(|peak| format!("{}*", mb(peak.private_kb)))
                })
                .unwrap_or_else(|| "-".into())
        };
        let sshd = p
            .get(&(Side::Standby, memory::SSHD.to_string()))
            .map(|peak| mb(peak.hwm_kb))
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            v.name.to_string(),
            format!("{m:.2}"),
            format!("{:.2}", ts.iter().copied().fold(f64::INFINITY, f64::min)),
            format!(
                "{:.2}",
                ts.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            ),
            format!("{:.1}", master_bytes as f64 / MB / m),
            format!("{:.2}", rsync / m),
            tool(Side::Master),
            tool(Side::Standby),
            sshd,
        ]);
    }
    println!();
    println!("{title}");
    print_table(&rows);
    println!(
        "(MB = 10^6 bytes; x rsync = rsync's median time / this one's; master/standby MB = \
         peak RSS (VmHWM) of the largest process of the copy on that host, sshd = the \
         standby's sshd session processes; * = pg_basebackup's master end, the walsender, \
         without the shared buffers it touched; CPU s: CPU time of the run's processes, \
         machine: CPUs busy on average, both hosts and anything else included)"
    );
    println!();
    for v in variants {
        let ts: Vec<String> = secs(results, v.name)
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect();
        let held = results
            .get(v.name)
            .and_then(|r| r.last())
            .map(|r| format!("{} files, {:.1} MB", r.held.files, r.held.bytes as f64 / MB))
            .unwrap_or_default();
        println!(
            "  {}: per repetition {} s; copy held {held}",
            v.name,
            ts.join(" ")
        );
        println!("    peak RSS MB: {}", breakdown(&peaks(results, v.name)));
        if let Some(runs) = results.get(v.name) {
            println!("    CPU s (mean of runs): {}", cpu(runs));
        }
    }
    flush();
}

/// `master: walmgr backup 9.1, postgres backend 7.9 (private); standby: ...`.
fn breakdown(peaks: &Peaks) -> String {
    let mut sides = Vec::new();
    for side in [Side::Master, Side::Standby] {
        let parts: Vec<String> = peaks
            .iter()
            .filter(|((s, label), peak)| {
                // A shell that exec'd at once (sshd's `bash -c COMMAND`) shows as 0.
                *s == side && !memory::WRAPPERS.contains(&label.as_str()) && peak.hwm_kb > 0
            })
            .map(|((_, label), peak)| {
                let note = if label == memory::BACKEND {
                    " (private)"
                } else {
                    ""
                };
                format!("{label} {}{note}", mb(peak.shown_kb(label)))
            })
            .collect();
        if !parts.is_empty() {
            sides.push(format!("{}: {}", side.name(), parts.join(", ")));
        }
    }
    sides.join("; ")
}

/// `master: walmgr backup 7.1, ...; standby: ...; machine 1.6 CPUs busy, 0.1 in iowait`:
/// the mean over `runs`.
fn cpu(runs: &[Run]) -> String {
    let n = runs.len().max(1) as f64;
    let mut sums: BTreeMap<(Side, String), f64> = BTreeMap::new();
    for run in runs {
        for (key, secs) in &run.seen.cpu {
            *sums.entry(key.clone()).or_default() += secs;
        }
    }
    let mut parts = Vec::new();
    for side in [Side::Master, Side::Standby] {
        let of_side: Vec<String> = sums
            .iter()
            .filter(|((s, _), secs)| *s == side && **secs / n >= 0.05)
            .map(|((_, kind), secs)| format!("{kind} {:.1}", secs / n))
            .collect();
        if !of_side.is_empty() {
            parts.push(format!("{}: {}", side.name(), of_side.join(", ")));
        }
    }
    let busy: f64 = runs.iter().map(|r| r.seen.machine.busy).sum::<f64>() / n;
    let iowait: f64 = runs.iter().map(|r| r.seen.machine.iowait).sum::<f64>() / n;
    parts.push(format!(
        "machine {busy:.2} CPUs busy, {iowait:.2} in iowait"
    ));
    parts.join("; ")
}

/// `PASS (1.83; per repetition 1.80 1.91 1.79)`: `a / b` of the medians and of each
/// repetition (variants are interleaved, so each repetition's pair is a fair one too).
pub fn ratio(results: &Results, a: &str, b: &str) -> (f64, String) {
    let (ta, tb) = (secs(results, a), secs(results, b));
    let pairs: Vec<String> = ta
        .iter()
        .zip(&tb)
        .map(|(x, y)| format!("{:.2}", x / y))
        .collect();
    (median(&ta) / median(&tb), pairs.join(" "))
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

pub fn flush() {
    let _ = std::io::stdout().flush();
}
