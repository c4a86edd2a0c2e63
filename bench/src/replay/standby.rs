//! One replay: a fresh standby from the base backup, started, timed until it has replayed
//! the whole archive, removed; and the interleaved repetitions of every variant.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use walmgr_bench::{check_interrupted, log};
use walmgr_tests::{Cluster, Pg, TestCommand, TestDir};

use crate::source::Source;
use crate::variants::{set_cache, Cache, Variant};

/// Seconds per (variant, cache).
pub type Times = BTreeMap<(&'static str, Cache), Vec<f64>>;

/// How long one replay may take before the bench gives up on it.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(900);

pub fn measure(
    pg: &Pg,
    dir: &TestDir,
    source: &Source,
    variants: &[Variant],
    caches: &[Cache],
    reps: usize,
) -> Times {
    let mut times = Times::new();
    let pairs: Vec<(usize, Cache)> = (0..variants.len())
        .flat_map(|v| caches.iter().map(move |c| (v, *c)))
        .collect();
    let mut run_no = 0;
    for rep in 1..=reps {
        let n = pairs.len();
        // Rotated so that no pair always runs first or after the same one.
        for i in 0..n {
            let (v, cache) = pairs[(rep - 1 + i) % n];
            check_interrupted();
            run_no += 1;
            let variant = &variants[v];
            let t = replay_once(pg, dir, source, variant, cache, run_no);
            log(&format!(
                "rep {rep}/{reps} {:>2} MB {:<17} {:<4} {t:7.2} s ({:.1} ms per segment)",
                source.seg_mib,
                variant.name,
                cache.name(),
                t * 1000.0 / source.segments.len() as f64
            ));
            times.entry((variant.name, cache)).or_default().push(t);
        }
    }
    times
}

/// Seconds from `pg_ctl start` until the standby has replayed up to the target.
fn replay_once(
    pg: &Pg,
    dir: &TestDir,
    source: &Source,
    variant: &Variant,
    cache: Cache,
    run_no: usize,
) -> f64 {
    let standby = Cluster::planned(pg, dir, &format!("s{}-{run_no}", source.seg_mib));
    // cp -a as root keeps the owner (postgres) and modes of the backup.
    TestCommand::new("cp")
        .arg("-a")
        .arg(&source.base)
        .arg(&standby.data)
        .ok();
    standby.set(&format!(
        "# walmgr replay benchmark: {} ({})\n\
         port = {}\n\
         listen_addresses = ''\n\
         unix_socket_directories = '{}'\n\
         archive_mode = off\n\
         hot_standby = on\n\
         restore_command = '{}'\n",
        variant.name,
        cache.name(),
        standby.port,
        standby.socket_dir.display(),
        variant.restore_command(&standby.data).replace('\'', "''")
    ));
    let signal = standby.data.join("standby.signal");
    fs::write(&signal, "").unwrap_or_else(|e| panic!("write {}: {e}", signal.display()));
    walmgr_tests::chown_to_postgres(&signal);
    variant.prepare(source, &standby.data);
    set_cache(cache, &variant.sources(source, &standby.data));

    let t0 = Instant::now();
    let log_path = standby.log.display().to_string();
    let out = standby.pg_ctl(&["-l", &log_path, "-W", "start"]);
    if !out.status.success() {
        standby.fail(&format!(
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let deadline = t0 + REPLAY_TIMEOUT;
    // Connections are refused until the standby is consistent (the end of the backup).
    let mut client = loop {
        if let Ok(c) = standby.try_connect() {
            break c;
        }
        if Instant::now() > deadline {
            standby.fail("the standby accepted no connection");
        }
        check_interrupted();
        std::thread::sleep(Duration::from_millis(10));
    };
    let sql = format!(
        "SELECT coalesce(pg_last_wal_replay_lsn() >= '{}'::pg_lsn, false)",
        source.target_lsn
    );
    let elapsed = loop {
        let done: bool = client
            .query_one(&sql, &[])
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| standby.fail(&format!("{sql}: {e}")));
        if done {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            standby.fail(&format!(
                "replay did not reach {} within {REPLAY_TIMEOUT:?}",
                source.target_lsn
            ));
        }
        check_interrupted();
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(client);
    let data = standby.data.clone();
    // Drop stops it (immediate); its data directory goes too.
    drop(standby);
    let _ = fs::remove_dir_all(data);
    elapsed.as_secs_f64()
}
