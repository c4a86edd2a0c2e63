//! The manual's internal commands on the standby's side, run by hand as a DBA's script would
//! run them, and judged by what they leave in the standby's directories: `xlock` and
//! `xrelease` (BACKUPLOCK), `xrotate` (the backup sets), `xpurgewals` (completed_wals), and
//! the RESTARTPOINT that restore, xrestore's `%r` and archive_cleanup_command's
//! `xpurgewals %r` keep, so that no purge takes WAL a standby still needs.

use std::fs;
use std::path::{Path, PathBuf};

use walmgr_tests::shipping::{list, path, Shipping, WAIT};
use walmgr_tests::{Cluster, Pg};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// A master archiving through walmgr to directories on this host, and a planned standby
/// with its slave.toml (`slave_extra` appended), which master.toml names as slave_config.
fn quick_start(pg: &Pg, label: &str, slave_extra: &str) -> (Shipping, Cluster, PathBuf) {
    let s = Shipping::with_module(WALMGR, pg, label, &["--wal-segsize=1"]);
    let standby = Cluster::planned(&s.master.pg, &s.dir, "standby");
    let slave = s.slave_toml(&standby, slave_extra);
    (s, standby, slave)
}

fn walmgr_ok(s: &Shipping, config: &Path, command: &str) -> String {
    s.walmgr().args([path(config), command]).as_postgres().ok()
}

/// Runs `command`, which must fail with exit status 1; returns what it said on stderr.
fn walmgr_refused(s: &Shipping, config: &Path, command: &str) -> String {
    s.walmgr()
        .args([path(config), command])
        .as_postgres()
        .fails_with(1)
}

fn count(c: &Cluster, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"))
}

/// The backup sets in walmgr_data, newest first (staging directories included, so that a
/// refused backup that left one shows).
fn set_names(s: &Shipping) -> Vec<String> {
    let mut names: Vec<String> = list(&s.dir.join("walshipping"))
        .into_iter()
        .filter(|n| n.starts_with("data.master"))
        .collect();
    names.sort();
    names
}

/// The WAL segment a set starts at, from its backup_label.
fn start_segment(s: &Shipping, set: &str) -> String {
    let label_path = s.dir.join("walshipping").join(set).join("backup_label");
    let label = fs::read_to_string(&label_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", label_path.display()));
    label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|l| l.split("(file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .unwrap_or_else(|| panic!("no start segment in {}:\n{label}", label_path.display()))
}

/// The oldest WAL segment in completed_wals.
fn oldest_archived(s: &Shipping) -> String {
    s.archived()
        .into_iter()
        .find(|n| n.len() == 24)
        .expect("segments archived")
}

/// What RESTARTPOINT in completed_wals records, if it is there.
fn restartpoint(s: &Shipping) -> Option<String> {
    fs::read_to_string(s.completed_wals.join("RESTARTPOINT"))
        .ok()
        .map(|t| t.trim().to_string())
}

/// Master writes `rows` more rows into table `table` and finishes the segment; returns it
/// once archived.
fn write_and_archive(s: &Shipping, table: &str, rows: i32) -> String {
    s.master.execute(&format!(
        "INSERT INTO {table} SELECT generate_series(1, {rows})"
    ));
    s.switch_and_wait()
}

#[test]
fn xlock_holds_off_backups_and_restores_until_xrelease() {
    let (s, standby, slave) = quick_start(&Pg::major(15), "xlock", "");
    s.master
        .execute("CREATE TABLE l (x int); INSERT INTO l VALUES (1)");
    walmgr_ok(&s, &s.master_config, "backup");
    s.switch_and_wait();
    let lock = s.completed_wals.join("BACKUPLOCK");

    // On the master, as the manual has it (its config reaches the standby's directories
    // through slave_config): the lock stays after xlock's own process has exited.
    walmgr_ok(&s, &s.master_config, "xlock");
    let holder = fs::read_to_string(&lock).expect("xlock leaves BACKUPLOCK");
    assert!(holder.contains("until=xrelease"), "{holder}");
    let status = walmgr_ok(&s, &slave, "status");
    assert!(status.contains("held until xrelease"), "{status}");

    // Nothing that moves sets gets past it: neither a backup, nor a restore, nor a second xlock.
    for (config, command) in [
        (&s.master_config, "backup"),
        (&slave, "restore"),
        (&s.master_config, "xlock"),
    ] {
        let said = walmgr_refused(&s, config, command);
        assert!(
            said.contains("another backup is running") && said.contains("held until xrelease"),
            "{command}: {said}"
        );
    }
    assert_eq!(
        set_names(&s),
        ["data.master"],
        "a refused command moved a set"
    );
    assert!(!standby.data.exists(), "a refused restore made the standby");
    assert!(lock.exists(), "a refused command took the lock away");

    // On the standby: xrelease frees it, and both go through again.
    walmgr_ok(&s, &slave, "xrelease");
    assert!(!lock.exists(), "xrelease left BACKUPLOCK");
    let status = walmgr_ok(&s, &slave, "status");
    assert!(!status.contains("held until xrelease"), "{status}");
    s.master.execute("INSERT INTO l VALUES (2)");
    walmgr_ok(&s, &s.master_config, "backup");
    s.switch_and_wait();
    walmgr_ok(&s, &slave, "restore");
    standby.wait_until("the restored standby has both rows", WAIT, || {
        standby.try_connect().is_ok() && count(&standby, "l") == 2
    });
    assert!(!lock.exists(), "backup or restore kept the lock");
}

#[test]
fn xrotate_makes_room_for_one_more_set_and_xpurgewals_drops_only_the_wal_it_freed() {
    let (s, _standby, slave) = quick_start(&Pg::major(18), "xrotate", "keep_backups = 3");
    s.master.execute("CREATE TABLE r (x int)");
    for _ in 0..3 {
        walmgr_ok(&s, &s.master_config, "backup");
        write_and_archive(&s, "r", 100);
    }
    assert_eq!(
        set_names(&s),
        ["data.master", "data.master.0", "data.master.1"]
    );
    let [newest, middle, oldest] =
        ["data.master", "data.master.0", "data.master.1"].map(|set| start_segment(&s, set));
    assert_eq!(oldest_archived(&s), oldest, "the backups' own purge");

    // keep_backups - 1 sets stay, each one suffix up; the oldest goes.
    walmgr_ok(&s, &slave, "xrotate");
    assert_eq!(set_names(&s), ["data.master.0", "data.master.1"]);
    assert_eq!(start_segment(&s, "data.master.0"), newest);
    assert_eq!(start_segment(&s, "data.master.1"), middle);
    assert_eq!(oldest_archived(&s), oldest, "xrotate removed WAL");

    // xpurgewals drops what only the removed set needed, and nothing a kept one needs.
    let last = write_and_archive(&s, "r", 100);
    walmgr_ok(&s, &slave, "xpurgewals");
    assert_eq!(oldest_archived(&s), middle);
    s.assert_archive_complete_up_to(&last);

    // The room xrotate made is the next backup's: three sets again, the two kept ones
    // after it (whatever their suffixes: the backup's own rotation moves them up again).
    walmgr_ok(&s, &s.master_config, "backup");
    let starts: Vec<String> = set_names(&s)
        .iter()
        .map(|set| start_segment(&s, set))
        .collect();
    assert_eq!(starts.len(), 3, "{:?}", set_names(&s));
    assert!(starts[0] > newest, "the new set starts at {}", starts[0]);
    assert_eq!(starts[1..], [newest, middle], "{:?}", set_names(&s));
}

/// keep_backups = 1: each backup leaves only its own WAL, except what the standby's
/// restartpoint still needs.
fn a_standbys_restartpoint_keeps_its_wal_from_purges_until_it_moves_on(major: u32) {
    let (s, standby, slave) = quick_start(
        &Pg::major(major),
        &format!("restartpoint{major}"),
        "keep_backups = 1",
    );
    s.master.execute("CREATE TABLE rp (x int)");
    walmgr_ok(&s, &s.master_config, "backup");
    let first_start = start_segment(&s, "data.master");
    write_and_archive(&s, "rp", 10);
    walmgr_ok(&s, &slave, "restore");
    // Recorded by restore: the standby reports no restartpoint of its own (%r) yet.
    assert_eq!(restartpoint(&s).as_deref(), Some(first_start.as_str()));
    standby.wait_until("the standby replays the first rows", WAIT, || {
        standby.try_connect().is_ok() && count(&standby, "rp") == 10
    });

    // The master moves on and takes a new backup, whose purge would leave only the new
    // set's WAL: the standby still restarts from the first set's start, which stays.
    for _ in 0..3 {
        write_and_archive(&s, "rp", 10);
    }
    walmgr_ok(&s, &s.master_config, "backup");
    let second_start = start_segment(&s, "data.master");
    assert!(
        second_start > first_start,
        "{second_start} after {first_start}"
    );
    let last = write_and_archive(&s, "rp", 10);
    assert_eq!(oldest_archived(&s), first_start, "purged under the standby");
    s.assert_archive_complete_up_to(&last);

    // The standby replays past the new backup's checkpoint and makes a restartpoint there
    // (CHECKPOINT on a standby); archive_cleanup_command (`xpurgewals %r`) records it and
    // purges what neither the standby nor the kept set needs any more.
    standby.wait_until("the standby replays every row", WAIT, || {
        count(&standby, "rp") == 50
    });
    standby.checkpoint();
    let redo: String = standby.query_one("SELECT redo_wal_file FROM pg_control_checkpoint()");
    assert!(redo >= second_start, "restartpoint at {redo}");
    s.master.wait_until(
        &format!("RESTARTPOINT to record the standby's restartpoint {redo}"),
        WAIT,
        || restartpoint(&s).as_deref() == Some(redo.as_str()),
    );
    s.master
        .wait_until("archive_cleanup_command to purge", WAIT, || {
            oldest_archived(&s) == second_start
        });
    s.assert_archive_complete_up_to(&last);
}

#[test]
fn a_standbys_restartpoint_keeps_its_wal_from_purges_until_it_moves_on_postgresql_15() {
    a_standbys_restartpoint_keeps_its_wal_from_purges_until_it_moves_on(15);
}

#[test]
fn a_standbys_restartpoint_keeps_its_wal_from_purges_until_it_moves_on_postgresql_18() {
    a_standbys_restartpoint_keeps_its_wal_from_purges_until_it_moves_on(18);
}
