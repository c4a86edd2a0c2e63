//! The archive path end to end: real masters archive through walmgr, real standbys replay
//! from the archive through `walmgr xrestore`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use walmgr_tests::shipping::{path, pgbench_aggregate, Shipping, WAIT};
use walmgr_tests::{pid_alive, send_signal, Pg, Sig};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// pgbench on a master with the module, every segment archived and identical, a standby
/// replaying from the archive catches up with more writes.
fn archive_and_replay(major: u32, initdb_args: &[&str]) {
    let pg = Pg::major(major);
    let s = Shipping::with_module(WALMGR, &pg, &format!("replay{major}"), initdb_args);
    s.master.pgbench(&["-i", "-s", "4", "-q"]);
    s.master.pgbench(&["-c", "2", "-T", "3", "-n"]);
    let last = s.switch_and_wait();
    s.assert_archive_complete_up_to(&last);

    let standby = s.standby("standby");
    s.master.pgbench(&["-c", "2", "-T", "3", "-n"]);
    let expected = pgbench_aggregate(&s.master);
    let last = s.switch_and_wait();
    standby.wait_until("the standby has replayed the master's writes", WAIT, || {
        standby.try_connect().is_ok() && pgbench_aggregate(&standby) == expected
    });
    s.assert_archive_complete_up_to(&last);

    // Once the archiver is through, nothing waits and the last segment is the last archived.
    s.master
        .wait_until("walmgr.status: no file waiting", WAIT, || s.status().1 == 0);
    let (archived, _, error) = s.status();
    assert_eq!(
        archived.as_deref(),
        Some(last.as_str()),
        "last_archived_wal"
    );
    assert_eq!(error, None, "unexpected archiving error");
    let in_recovery: bool = standby.query_one("SELECT pg_is_in_recovery()");
    assert!(in_recovery);
}

#[test]
fn archive_and_replay_on_postgresql_15() {
    archive_and_replay(15, &[]);
}

#[test]
fn archive_and_replay_on_postgresql_16() {
    archive_and_replay(16, &["--wal-segsize=1"]);
}

#[test]
fn archive_and_replay_on_postgresql_17() {
    archive_and_replay(17, &["--wal-segsize=1"]);
}

#[test]
fn archive_and_replay_on_postgresql_18() {
    archive_and_replay(18, &["--wal-segsize=1"]);
}

#[test]
fn same_segment_twice_succeeds_and_different_bytes_are_refused() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "twice", &["--wal-segsize=1"]);
    s.master
        .execute("CREATE TABLE t AS SELECT generate_series(1, 10000) AS x");
    let segment = s.switch_and_wait();
    let on_master = s.master.data.join("pg_wal").join(&segment);
    let archived = s.completed_wals.join(&segment);
    let original = fs::read(&archived).expect("archived segment");

    // A retry of the same file (lost acknowledgement) is success.
    s.walmgr()
        .args([
            path(&s.master_config),
            "xarchive",
            path(&on_master),
            &segment,
        ])
        .as_postgres()
        .ok();

    // The same name with other bytes: refused, archive unchanged.
    let mut forged = fs::read(&on_master).expect("master segment");
    let middle = forged.len() / 2;
    forged[middle] ^= 0xFF;
    let forged_path = s.dir.write("forged", &forged);
    let stderr = s
        .walmgr()
        .args([
            path(&s.master_config),
            "xarchive",
            path(&forged_path),
            &segment,
        ])
        .as_postgres()
        .fails_with(1);
    assert!(stderr.contains("different content"), "{stderr}");
    assert_eq!(fs::read(&archived).unwrap(), original);
}

#[test]
fn xarchive_from_archive_command_ships_every_segment() {
    let s = Shipping::new(WALMGR, &Pg::major(15), "xarchive", &["--wal-segsize=1"]);
    s.archive_with_xarchive();
    s.fill_and_check_archive();
}

/// A config that breaks while the server runs: archiving waits and says why, nothing is lost,
/// and a reload after the fix catches up.
#[test]
fn broken_config_makes_archiving_wait_and_a_reload_catches_up() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "broken", &["--wal-segsize=1"]);
    s.switch_and_wait();
    let good_config = fs::read_to_string(&s.master_config).unwrap();

    let wait_for_error = |what: &str, expect: &str| {
        s.master
            .execute("CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1)");
        let segment = s.master.switch_wal();
        s.master.wait_until(
            &format!("walmgr.status shows {what}"),
            WAIT,
            || matches!(s.status().2, Some(e) if e.contains(expect)),
        );
        assert!(
            !s.completed_wals.join(&segment).exists(),
            "{what}: {segment} archived anyway"
        );
        let (_, waiting, _) = s.status();
        assert!(waiting >= 1, "{what}: nothing waits");
        let log = fs::read_to_string(&s.master.log).unwrap();
        assert!(log.contains(expect), "{what}: server log does not say why");
        segment
    };
    let fixed = |segment: &str| {
        s.master.reload();
        s.wait_archived(segment);
    };

    // 1. The archive directory is gone.
    let moved = s.dir.join("moved-away");
    fs::rename(&s.completed_wals, &moved).unwrap();
    let segment = wait_for_error("a missing directory", "logs.complete");
    fs::rename(&moved, &s.completed_wals).unwrap();
    fixed(&segment);

    // 2. The config file cannot be read by the server.
    fs::set_permissions(&s.master_config, fs::Permissions::from_mode(0o000)).unwrap();
    let segment = wait_for_error("an unreadable config", "master.toml");
    fs::set_permissions(&s.master_config, fs::Permissions::from_mode(0o644)).unwrap();
    fixed(&segment);

    // 3. A key that does not exist.
    fs::write(
        &s.master_config,
        format!("{good_config}completed_wal = \"/x\"\n"),
    )
    .unwrap();
    let segment = wait_for_error("an unknown key", "completed_wal");
    fs::write(&s.master_config, &good_config).unwrap();
    fixed(&segment);

    let last = s.switch_and_wait();
    s.assert_archive_complete_up_to(&last);
    let alive: i32 = s.master.query_one("SELECT 1");
    assert_eq!(alive, 1);
}

/// kill -9 of the archiver while it copies a 256 MB segment: the dead archiver's temp file
/// holds part of the segment, nothing incomplete appears under a final name, and after the
/// restart every segment is archived and no temp file is left.
#[test]
fn archiver_killed_mid_copy_leaves_no_partial_file_and_resumes() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "kill9", &["--wal-segsize=256"]);
    let seg_size = s.seg_size() as u64;
    let mut kills_mid_copy = 0;
    for round in 0..2 {
        s.master.execute(&format!(
            "CREATE TABLE t{round} AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
        ));
        let segment = s.master.switch_wal();
        let temp = s.completed_wals.join(format!(".{segment}.walmgr-tmp"));
        // Catch the archiver with part of the segment in its temp file, then SIGKILL it.
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline && !s.completed_wals.join(&segment).exists() {
            let partly_there = fs::metadata(&temp).is_ok_and(|m| m.len() > 0 && m.len() < seg_size);
            if let (true, Some(pid)) = (partly_there, s.master.child_pid("archiver")) {
                send_signal(pid, Sig::Kill);
                s.master
                    .wait_until("the killed archiver is gone", WAIT, || !pid_alive(pid));
                // The kill landed mid-copy if the segment was still unpublished and its temp
                // file short when the archiver died (else it had just finished the copy).
                let left = fs::metadata(&temp).map(|m| m.len()).unwrap_or(0);
                if !s.completed_wals.join(&segment).exists() && left < seg_size {
                    kills_mid_copy += 1;
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        // Whatever is visible under a final name is complete.
        for name in s.archived() {
            let len = fs::metadata(s.completed_wals.join(&name)).unwrap().len();
            if name.len() == 24 {
                assert_eq!(len, seg_size, "{name} visible with {len} bytes");
            }
        }
        s.master
            .wait_until("the master is back after the archiver crash", WAIT, || {
                s.master.try_connect().is_ok()
            });
        s.wait_archived(&segment);
    }
    assert!(kills_mid_copy > 0, "never killed the archiver mid-copy");
    let last = s.switch_and_wait();
    s.assert_archive_complete_up_to(&last);
    let litter: Vec<String> = walmgr_tests::shipping::list(&s.completed_wals)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(litter.is_empty(), "temp files left: {litter:?}");
}

#[test]
fn stop_waits_for_archiving_and_changes_nothing_while_files_are_stuck() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "stop", &["--wal-segsize=1"]);
    s.switch_and_wait();
    let moved = s.dir.join("moved-away");
    fs::rename(&s.completed_wals, &moved).unwrap();
    s.master.execute("CREATE TABLE t (x int)");
    s.master.switch_wal();

    let stderr = s
        .walmgr()
        .args([path(&s.master_config), "stop", "--wait", "2"])
        .fails_with(1);
    assert!(
        stderr.contains("still wait") && stderr.contains("nothing changed"),
        "{stderr}"
    );
    let mode: String = s.master.query_one("SHOW archive_mode");
    assert_eq!(mode, "on");

    let dry = s
        .walmgr()
        .args([
            "-n",
            path(&s.master_config),
            "stop",
            "--drop-waiting",
            "--wait",
            "1",
        ])
        .ok();
    assert!(
        dry.contains("would: ALTER SYSTEM SET archive_mode = 'off'"),
        "{dry}"
    );
    let auto = fs::read_to_string(s.master.data.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("archive_mode = 'on'"),
        "dry run changed the config: {auto}"
    );

    fs::rename(&moved, &s.completed_wals).unwrap();
    s.master.reload();
    let out = s.walmgr().args([path(&s.master_config), "stop"]).ok();
    assert!(out.contains("restarted the master"), "{out}");
    let mode: String = s.master.query_one("SHOW archive_mode");
    assert_eq!(mode, "off");
}

#[test]
fn setup_is_idempotent_and_a_dry_run_changes_nothing() {
    let s = Shipping::new(WALMGR, &Pg::major(15), "setup", &["--wal-segsize=1"]);
    // Another preloaded library must stay loaded beside walmgr (and the list stay a list).
    s.master
        .set("shared_preload_libraries = 'pg_stat_statements'");
    s.master.restart();
    let dry = s
        .walmgr()
        .args(["-n", path(&s.master_config), "setup"])
        .ok();
    assert!(dry.contains("would: CREATE EXTENSION walmgr"), "{dry}");
    assert!(!s.completed_wals.exists(), "dry run created directories");
    let ext: i64 = s
        .master
        .query_one("SELECT count(*) FROM pg_extension WHERE extname = 'walmgr'");
    assert_eq!(ext, 0);

    let first = s.setup();
    assert!(first.contains("restarted the master"), "{first}");
    for sub in [
        "logs.complete",
        "logs.partial",
        "data.master",
        "config.backup",
    ] {
        let dir = s.dir.join("walshipping").join(sub);
        assert!(dir.is_dir(), "{sub} missing");
    }
    let preload: String = s.master.query_one("SHOW shared_preload_libraries");
    assert_eq!(preload, "pg_stat_statements, walmgr");
    let second = s.walmgr().args([path(&s.master_config), "setup"]).ok();
    assert!(second.contains("nothing to change"), "{second}");
}
