//! The tables the replay bench prints.

use std::path::Path;

use walmgr_bench::{flush, print_table};
use walmgr_tests::TestCommand;

use crate::micro::Row;
use crate::source::Source;
use crate::standby::Times;
use crate::variants::{Cache, Variant};
use crate::MIB;

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn first_line(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// What was measured, with which tools.
pub fn describe(built: &Path, copy: &Path, reps: usize, caches: &[Cache]) -> String {
    let modified = first_line(
        TestCommand::new("date")
            .args(["-r", &built.display().to_string(), "+%Y-%m-%d %H:%M"])
            .run()
            .stdout,
    );
    let caches: Vec<&str> = caches.iter().map(|c| c.name()).collect();
    let caches = if caches.is_empty() {
        vec!["none (no replays: the restore commands alone)"]
    } else {
        caches
    };
    format!(
        "replay benchmark: pgbench WAL after a base backup, PostgreSQL 15, medians of {reps} \
         (min..max), page cache {}\n\
         walmgr: {} (built {modified}), run as {}\n{}; {}",
        caches.join(" and "),
        built.display(),
        copy.display(),
        first_line(TestCommand::new("pgbackrest").arg("version").run().stdout),
        first_line(TestCommand::new("cp").arg("--version").run().stdout),
    )
}

pub fn micro_table(source: &Source, rows: &[Row]) {
    println!();
    println!(
        "restore command alone, per {} MB segment (warm cache, sh -c as postgres, {} calls \
         each; ms)",
        source.seg_mib,
        rows.first().map_or(0, |r| r.ms.len())
    );
    let cp = rows.iter().find(|r| r.name == "cp").map(|r| median(&r.ms));
    let mut table = vec![vec![
        "command".to_string(),
        "median".into(),
        "min".into(),
        "max".into(),
        "x cp".into(),
        "what".into(),
    ]];
    for r in rows {
        let m = median(&r.ms);
        table.push(vec![
            r.name.to_string(),
            format!("{m:.2}"),
            format!("{:.2}", min(&r.ms)),
            format!("{:.2}", max(&r.ms)),
            cp.map_or("-".into(), |c| format!("{:.2}", m / c)),
            r.what.to_string(),
        ]);
    }
    print_table(&table);
    let get = |name: &str| rows.iter().find(|r| r.name == name).map(|r| median(&r.ms));
    if let (Some(sh), Some(start), Some(miss), Some(full), Some(copy)) = (
        get("sh -c true"),
        get("walmgr --version"),
        get("walmgr xrestore (miss)"),
        get("walmgr xrestore"),
        get("copy in-process"),
    ) {
        println!(
            "walmgr xrestore {full:.2} ms = shell {sh:.2} + process start {:.2} + logging, \
             config and checks {:.2} + copy and the rest {:.2} (the copy alone, in-process: \
             {copy:.2})",
            start - sh,
            miss - start,
            full - miss
        );
    }
    flush();
}

pub fn replay_table(source: &Source, variants: &[Variant], caches: &[Cache], times: &Times) {
    let n = source.segments.len();
    println!();
    println!(
        "replay of {} MB ({n} segments of {} MB) from pg_ctl start to caught up: seconds, \
         median (min..max); ms per segment; x cp",
        source.wal_bytes() / MIB,
        source.seg_mib
    );
    let mut header = vec!["variant".to_string()];
    for c in caches {
        header.push(format!("{} s", c.name()));
        header.push(format!("{} ms/seg", c.name()));
        header.push(format!("{} x cp", c.name()));
        header.push(format!("{} over pg_wal ms/seg", c.name()));
    }
    let mut table = vec![header];
    for v in variants {
        let mut row = vec![v.name.to_string()];
        for c in caches {
            let Some(t) = times.get(&(v.name, *c)) else {
                row.extend(["-".to_string(), "-".into(), "-".into(), "-".into()]);
                continue;
            };
            let m = median(t);
            row.push(format!("{m:.2} ({:.2}..{:.2})", min(t), max(t)));
            row.push(format!("{:.1}", m * 1000.0 / n as f64));
            let rel = |name: &str| times.get(&(name, *c)).map(|t| median(t));
            row.push(rel("cp").map_or("-".into(), |cp| format!("{:.2}", m / cp)));
            row.push(rel("pg_wal").map_or("-".into(), |f| {
                format!("{:.1}", (m - f) * 1000.0 / n as f64)
            }));
        }
        table.push(row);
    }
    print_table(&table);
    println!(
        "\"over pg_wal\": what the restore_command adds per segment to PostgreSQL's own replay \
         (the pg_wal variant: the same segments already in pg_wal, no restore_command)."
    );
    flush();
}
