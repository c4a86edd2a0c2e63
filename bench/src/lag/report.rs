//! The tables the lag bench prints.

use walmgr_bench::print_table;

use crate::build::Build;
use crate::measure::{Load, Run};
use crate::sampler::INTERVAL;
use crate::series::{percentile, Lags};
use crate::{IdleRow, Shipper, Variant};

const GB: f64 = 1e9;
/// The idle worker's budget, percent of one core.
const IDLE_TARGET: f64 = 5.0;

/// One variant's runs, pooled.
struct Pooled {
    lags: Lags,
    tps: f64,
    wal_mb_per_s: f64,
    shipped: u64,
    sender_cpu: f64,
    receiver_cpu: Option<f64>,
    errors: Option<i64>,
    host_busy: f64,
    samples: usize,
    interval_median: f64,
    interval_max: f64,
    drained_max: Option<f64>,
    not_drained: usize,
    restarted: bool,
}

fn pool(runs: &[Run]) -> Pooled {
    let mut lags = Lags::default();
    for r in runs {
        lags.extend(r.lags.clone());
    }
    let n = runs.len().max(1) as f64;
    let seconds: f64 = runs.iter().map(|r| r.load_seconds).sum();
    let receiver_cpu = runs.iter().map(|r| r.receiver_cpu).sum::<Option<f64>>();
    let errors = runs.iter().map(|r| r.errors).sum::<Option<i64>>();
    Pooled {
        lags,
        tps: runs.iter().map(|r| r.tps).sum::<f64>() / n,
        wal_mb_per_s: runs.iter().map(|r| r.wal_bytes).sum::<u64>() as f64 / 1e6 / seconds,
        shipped: runs.iter().map(|r| r.shipped).sum(),
        sender_cpu: runs.iter().map(|r| r.sender_cpu).sum(),
        receiver_cpu,
        errors,
        host_busy: runs.iter().map(|r| r.host_busy).sum::<f64>() / n,
        samples: runs.iter().map(|r| r.samples).sum(),
        interval_median: runs
            .iter()
            .map(|r| r.interval_ms.0)
            .fold(f64::NAN, f64::max),
        interval_max: runs
            .iter()
            .map(|r| r.interval_ms.1)
            .fold(f64::NAN, f64::max),
        drained_max: runs
            .iter()
            .filter_map(|r| r.drained_ms)
            .fold(None, |m: Option<f64>, d| Some(m.map_or(d, |m| m.max(d)))),
        not_drained: runs.iter().filter(|r| r.drained_ms.is_none()).count(),
        restarted: runs.iter().any(|r| r.sender_restarted),
    }
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

/// The p99 lag target of a walmgr variant, in ms, and how it is set; None for the reference.
fn target(v: &Variant, receivewal_p99: Option<f64>) -> Option<(f64, String)> {
    let Shipper::Walmgr { loop_delay, .. } = v.shipper else {
        return None;
    };
    if v.major < 16 {
        let limit = loop_delay * 1000.0 + 100.0;
        return Some((limit, format!("<= {limit:.0} (loop_delay+100)")));
    }
    let reference = receivewal_p99?;
    let floor = INTERVAL.as_secs_f64() * 1000.0;
    let limit = 2.0 * reference.max(floor);
    Some((limit, format!("<= {limit:.0} (2x pg_receivewal)")))
}

fn bytes(b: f64) -> String {
    if b.is_nan() {
        "-".into()
    } else {
        format!("{b:.0}")
    }
}

fn ms(m: f64) -> String {
    if m.is_nan() {
        "-".into()
    } else {
        format!("{m:.1}")
    }
}

fn per_gb(cpu: f64, shipped: u64) -> String {
    if shipped == 0 {
        "-".into()
    } else {
        format!("{:.2}", cpu / (shipped as f64 / GB))
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

pub fn describe(builds: &[Build], load: &Load) {
    for b in builds {
        println!("{}", b.describe());
    }
    println!(
        "load: pgbench -n -c 2 -j 2 -T {} {}(TPC-B-like, scale 10) on each master after a \
         CHECKPOINT; lag sampled every {} ms",
        load.seconds,
        if load.rate > 0 {
            format!("--rate {} ", load.rate)
        } else {
            "(unthrottled) ".to_string()
        },
        INTERVAL.as_millis()
    );
}

pub fn lag_table(results: &[(Variant, Vec<Run>)], load: &Load) {
    let pooled: Vec<(Variant, Pooled)> = results.iter().map(|(v, r)| (*v, pool(r))).collect();
    let receivewal_p99 = |major: u32| {
        pooled
            .iter()
            .find(|(v, _)| v.major == major && v.shipper == Shipper::Receivewal)
            .map(|(_, p)| percentile(&p.lags.ms, 99.0))
    };
    let mut rows = vec![row(&[
        "variant",
        "tps",
        "WAL MB/s",
        "lag B p50",
        "p99",
        "max",
        "lag ms p50",
        "p99",
        "max",
        "target p99 ms",
        "met?",
        "sender CPU s/GB",
        "standby CPU s/GB",
    ])];
    for (v, p) in &pooled {
        let p99 = percentile(&p.lags.ms, 99.0);
        let target = target(v, receivewal_p99(v.major));
        let met = match &target {
            None => "(ref)".to_string(),
            // A flush never acknowledged leaves the p99 a lower bound: not met.
            Some(_) if p.lags.unresolved > 0 => format!("NO ({} unacked)", p.lags.unresolved),
            Some((limit, _)) => if p99 <= *limit { "yes" } else { "NO" }.to_string(),
        };
        let max_ms = max(&p.lags.ms);
        rows.push(vec![
            v.name(),
            format!("{:.0}", p.tps),
            format!("{:.2}", p.wal_mb_per_s),
            bytes(percentile(&p.lags.bytes, 50.0)),
            bytes(percentile(&p.lags.bytes, 99.0)),
            bytes(max(&p.lags.bytes)),
            ms(percentile(&p.lags.ms, 50.0)),
            ms(p99),
            if p.lags.unresolved > 0 {
                format!(">{}", ms(max_ms))
            } else {
                ms(max_ms)
            },
            target.map_or("-".to_string(), |(_, t)| t),
            met,
            per_gb(p.sender_cpu, p.shipped),
            p.receiver_cpu
                .map_or("(in sender)".to_string(), |c| per_gb(c, p.shipped)),
        ]);
    }
    println!();
    println!(
        "lag of the LSN the standby acknowledged as durable behind the master's flush LSN, \
         under load ({} s per run); ms: time until a later sample saw the acknowledgement reach \
         the sample's flush (resolution one sampling interval)",
        load.seconds
    );
    print_table(&rows);
    println!(
        "sender: walmgr's worker (it also writes the local standby directory) or the walsender \
         serving pg_receivewal; standby: the sshd sessions and `walmgr xserve`, or \
         pg_receivewal. GB = 10^9 bytes shipped (walmgr.status partial_shipped_bytes, or \
         pg_receivewal's flush advance)."
    );
}

pub fn details_table(results: &[(Variant, Vec<Run>)]) {
    let mut rows = vec![row(&[
        "variant",
        "runs",
        "samples",
        "interval ms p50",
        "max gap ms",
        "unacked",
        "drained after ms",
        "shipped MB",
        "shipper errors",
        "host CPU %",
    ])];
    let mut restarted = Vec::new();
    for (v, runs) in results {
        let p = pool(runs);
        if p.restarted {
            restarted.push(v.name());
        }
        rows.push(vec![
            v.name(),
            runs.len().to_string(),
            p.samples.to_string(),
            ms(p.interval_median),
            ms(p.interval_max),
            p.lags.unresolved.to_string(),
            match (p.drained_max, p.not_drained) {
                (_, n) if n > 0 => format!("not in time ({n})"),
                (Some(d), _) => format!("{d:.0}"),
                (None, _) => "-".into(),
            },
            format!("{:.0}", p.shipped as f64 / 1e6),
            p.errors.map_or("-".to_string(), |e| e.to_string()),
            format!("{:.0}", p.host_busy),
        ]);
    }
    println!();
    println!("sampling and drain details (drained: from the end of the load until the standby held all of it)");
    print_table(&rows);
    if !restarted.is_empty() {
        println!(
            "WARNING: the shipping process changed during {}: its CPU time is incomplete",
            restarted.join(", ")
        );
    }
    drain_note(results);
}

/// Says so when the last WAL of a load reached the standby only about loop_delay after the
/// load stopped: under load the worker ships every few ms, so a drain that long means it
/// slept through WAL that was already flushed.
fn drain_note(results: &[(Variant, Vec<Run>)]) {
    let slow: Vec<String> = results
        .iter()
        .filter_map(|(v, runs)| {
            let Shipper::Walmgr { loop_delay, .. } = v.shipper else {
                return None;
            };
            let worst = runs.iter().filter_map(|r| r.drained_ms).fold(0.0, f64::max);
            let late = runs.iter().any(|r| r.drained_ms.is_none())
                || (loop_delay >= 0.5 && worst >= 0.8 * loop_delay * 1000.0);
            late.then(|| format!("{} ({worst:.0} ms)", v.name()))
        })
        .collect();
    if !slow.is_empty() {
        println!(
            "NOTE: after the load stopped, the standby got the last flushed WAL only about \
             loop_delay later on: {}. Under load the worker ships within ms, so it slept \
             through WAL flushed during its last round. The cause when this bench was \
             written: WorkerHost::report (extension/src/worker.rs) re-reads the flush \
             position into InProcess::last_flush after the round, so the next wait does not \
             count that WAL as new and waits for the next flush or loop_delay: a burst's last \
             commits wait up to loop_delay (10 s by default) to reach the standby.",
            slow.join(", ")
        );
    }
}

pub fn idle_table(idles: &[IdleRow]) {
    let mut rows = vec![row(&[
        "worker idle, loop_delay 0.1",
        "seconds",
        "CPU ticks",
        "% of a core (ticks)",
        "% of a core (schedstat)",
        "target",
        "met?",
    ])];
    for i in idles {
        let by_ticks = 100.0 * crate::cpu::ticks_to_seconds(i.idle.ticks) / i.idle.seconds;
        let by_ns = 100.0 * i.idle.on_cpu_ns as f64 / 1e9 / i.idle.seconds;
        rows.push(vec![
            format!("pg{} walmgr {}", i.major, i.transport),
            format!("{:.1}", i.idle.seconds),
            i.idle.ticks.to_string(),
            format!("{by_ticks:.2}"),
            format!("{by_ns:.3}"),
            format!("< {IDLE_TARGET:.0}%"),
            if i.idle.restarted {
                "? (restarted)".to_string()
            } else if by_ns.max(by_ticks) < IDLE_TARGET {
                "yes".to_string()
            } else {
                "NO".to_string()
            },
        ]);
    }
    println!();
    print_table(&rows);
}
