//! Base backups and the standby's lifecycle, as the manual's quick start runs them:
//! setup, backup, restore on the standby, replay, pause/continue, boot, point in time.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use walmgr_tests::shipping::{path, Shipping, WAIT};
use walmgr_tests::{Cluster, Pg};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

fn count(c: &Cluster, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"))
}

fn in_recovery(c: &Cluster) -> bool {
    c.query_one("SELECT pg_is_in_recovery()")
}

/// A master archiving through walmgr plus a planned standby with its slave.toml.
fn quick_start(label: &str, slave_extra: &str) -> (Shipping, Cluster, PathBuf) {
    quick_start_on(&Pg::major(15), label, slave_extra)
}

fn quick_start_on(pg: &Pg, label: &str, slave_extra: &str) -> (Shipping, Cluster, PathBuf) {
    let s = Shipping::with_module(WALMGR, pg, label, &["--wal-segsize=1"]);
    let standby = Cluster::planned(&s.master.pg, &s.dir, "standby");
    let slave = s.slave_toml(&standby, slave_extra);
    (s, standby, slave)
}

fn backup(s: &Shipping) -> String {
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok()
}

fn set_names(s: &Shipping) -> Vec<String> {
    let mut names: Vec<String> = walmgr_tests::shipping::list(&s.dir.join("walshipping"))
        .into_iter()
        .filter(|n| n.starts_with("data.master") && !n.ends_with(".inprogress"))
        .collect();
    names.sort();
    names
}

/// The manual's quick start on one machine: setup, backup, restore on the standby, replay,
/// boot, and walmgr torn down again with stop and cleanup.
fn quick_start_setup_backup_restore_replay_boot(major: u32) {
    let (s, standby, slave) = quick_start_on(&Pg::major(major), &format!("quick{major}"), "");
    s.master.execute("CREATE TABLE quick (id int, note text)");
    s.master
        .execute("INSERT INTO quick SELECT g, 'before backup' FROM generate_series(1, 1000) g");
    let out = backup(&s);
    assert!(out.contains("backup from the master done"), "{out}");
    assert_eq!(set_names(&s), ["data.master"]);

    s.master
        .execute("INSERT INTO quick SELECT g, 'after backup' FROM generate_series(1001, 3000) g");
    s.switch_and_wait();
    s.walmgr()
        .args([path(&slave), "restore"])
        .as_postgres()
        .ok();
    assert!(
        set_names(&s).is_empty(),
        "restore without arguments moves the newest set"
    );
    standby.wait_until("the standby replays up to the master", WAIT, || {
        standby.try_connect().is_ok() && count(&standby, "quick") == 3000
    });
    assert!(in_recovery(&standby));
    let status = s
        .walmgr()
        .args([path(&slave), "status", "--json"])
        .as_postgres()
        .ok();
    assert!(status.contains("\"in_recovery\":true"), "{status}");
    assert!(status.contains("\"role\":\"slave\""), "{status}");
    let status = s
        .walmgr()
        .args([path(&s.master_config), "status"])
        .as_postgres()
        .ok();
    assert!(status.contains("files_waiting"), "{status}");

    s.master.execute(
        "INSERT INTO quick SELECT g, 'while replaying' FROM generate_series(3001, 3500) g",
    );
    s.switch_and_wait();
    s.walmgr().args([path(&slave), "boot"]).as_postgres().ok();
    standby.wait_until("the booted standby leaves recovery", WAIT, || {
        !in_recovery(&standby)
    });
    assert_eq!(
        count(&standby, "quick"),
        3500,
        "every committed row of the master"
    );
    standby.execute("INSERT INTO quick VALUES (0, 'written on the booted standby')");
    assert_eq!(count(&standby, "quick"), 3501);

    // Tear walmgr down as the manual says: stop on the master, cleanup on the standby.
    s.walmgr().args([path(&s.master_config), "stop"]).ok();
    s.walmgr()
        .args([path(&slave), "cleanup"])
        .as_postgres()
        .ok();
    assert!(
        !s.dir.join("walshipping").exists(),
        "cleanup left walmgr_data"
    );
    assert_eq!(
        count(&standby, "quick"),
        3501,
        "cleanup touched the booted server"
    );
}

#[test]
fn quick_start_setup_backup_restore_replay_boot_on_postgresql_15() {
    quick_start_setup_backup_restore_replay_boot(15);
}

#[test]
fn quick_start_setup_backup_restore_replay_boot_on_postgresql_18() {
    quick_start_setup_backup_restore_replay_boot(18);
}

#[test]
fn keep_three_over_five_backups_keeps_the_documented_sets_and_their_wal() {
    let (s, standby, slave) = quick_start("rotate", "keep_backups = 3");
    s.master.execute("CREATE TABLE r (backup int)");
    for n in 1..=5 {
        s.master.execute(&format!("INSERT INTO r VALUES ({n})"));
        backup(&s);
        s.switch_and_wait();
    }
    assert_eq!(
        set_names(&s),
        ["data.master", "data.master.0", "data.master.1"]
    );

    // The oldest WAL kept is the oldest kept backup's start segment.
    let label = fs::read_to_string(s.dir.join("walshipping/data.master.1/backup_label")).unwrap();
    let start = label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|l| l.split("(file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .expect("start segment in backup_label");
    let oldest_segment = s
        .archived()
        .into_iter()
        .find(|n| n.len() == 24)
        .expect("segments archived");
    assert_eq!(oldest_segment, start);

    // The standby restores from the oldest kept set and replays to the present.
    let listing = s
        .walmgr()
        .args([path(&slave), "listbackups"])
        .as_postgres()
        .ok();
    assert_eq!(listing.lines().count(), 4, "{listing}");
    s.walmgr()
        .args([path(&slave), "restore", "data.master.1"])
        .as_postgres()
        .ok();
    standby.wait_until(
        "the standby restored from data.master.1 catches up",
        WAIT,
        || standby.try_connect().is_ok() && count(&standby, "r") == 5,
    );
    assert_eq!(
        set_names(&s).len(),
        3,
        "a named restore copies, the set stays"
    );
}

/// A master with table `far` (1000 rows), backed up and restored into a standby that has
/// replayed those rows.
fn standby_caught_up(pg: &Pg, label: &str) -> (Shipping, Cluster, PathBuf) {
    let (s, standby, slave) = quick_start_on(pg, label, "");
    s.master
        .execute("CREATE TABLE far (id int, pad text); INSERT INTO far SELECT g, 'restored' FROM generate_series(1, 1000) g");
    backup(&s);
    s.switch_and_wait();
    s.walmgr()
        .args([path(&slave), "restore"])
        .as_postgres()
        .ok();
    standby.wait_until("the standby replays the first rows", WAIT, || {
        standby.try_connect().is_ok() && count(&standby, "far") == 1000
    });
    (s, standby, slave)
}

/// Commits 250,000 more rows to `far` in 50 transactions, about 140 MB of WAL (over 100
/// segments of 1 MB), and waits until all of it is archived. Returns the segments archived.
fn master_runs_far_ahead(s: &Shipping) -> usize {
    let before = s.archived().len();
    for batch in 0..50 {
        let from = 1001 + batch * 5000;
        s.master.execute(&format!(
            "INSERT INTO far SELECT g, repeat(md5(g::text), 16) FROM generate_series({from}, {}) g",
            from + 4999
        ));
    }
    s.switch_and_wait();
    let shipped = s.archived().len() - before;
    assert!(shipped >= 100, "only {shipped} segments archived");
    shipped
}

/// `walmgr slave boot` with default options; returns its stderr (its progress and result).
fn boot(s: &Shipping, slave: &Path) -> String {
    let out = s
        .walmgr()
        .args([path(slave), "boot"])
        .as_postgres()
        .ok_output();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn boot_of_a_paused_standby_far_behind_replays_every_archived_row() {
    let (s, standby, slave) = standby_caught_up(&Pg::major(15), "farpaused");
    s.walmgr().args([path(&slave), "pause"]).as_postgres().ok();
    let shipped = master_runs_far_ahead(&s);
    assert_eq!(
        count(&standby, "far"),
        1000,
        "the paused standby is {shipped} segments behind"
    );

    let said = boot(&s, &slave);
    assert!(
        !in_recovery(&standby),
        "boot returned before the standby opened"
    );
    assert_eq!(count(&standby, "far"), 251_000, "every archived row");
    assert!(said.contains("opened for writes at"), "{said}");
    assert!(said.contains("on timeline 2"), "{said}");
    // Its replay's progress, as log lines without a terminal: never back, up to the end.
    let replayed = progress_lines_of(&said, "boot: replayed ");
    assert!(!replayed.is_empty(), "no progress lines:\n{said}");
    assert!(replayed.windows(2).all(|w| w[0] <= w[1]), "{replayed:?}");
    assert_eq!(replayed.last(), Some(&100), "{said}");
    standby.execute("INSERT INTO far VALUES (0, 'written after boot')");
}

#[test]
fn boot_of_a_delayed_standby_hours_behind_replays_every_archived_row() {
    let (s, standby, slave) = standby_caught_up(&Pg::major(18), "fardelayed");
    // A standby kept an hour behind on purpose: its replay waits before every commit.
    standby.set("recovery_min_apply_delay = '1h'");
    standby.execute("SELECT pg_reload_conf()");
    master_runs_far_ahead(&s);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        count(&standby, "far"),
        1000,
        "the delayed standby applied rows"
    );

    boot(&s, &slave);
    assert!(!in_recovery(&standby));
    assert_eq!(count(&standby, "far"), 251_000, "every archived row");
}

#[test]
fn restore_protects_the_backups_wal_until_the_standby_starts() {
    // keep_backups = 0 keeps every set, and purge keeps WAL from the oldest set's start on;
    // a restore that moves the only set away leaves a standby no set protects.
    let (s, standby, slave) = quick_start("restartpoint", "");
    fs::write(
        &slave,
        fs::read_to_string(&slave).unwrap().replace(
            &format!("slave_start_cmd = \"{}\"\n", standby.start_command()),
            "",
        ),
    )
    .unwrap();
    s.master
        .execute("CREATE TABLE rp (x int); INSERT INTO rp SELECT generate_series(1, 10)");
    backup(&s);
    s.master
        .execute("INSERT INTO rp SELECT generate_series(11, 20)");
    s.switch_and_wait();
    s.walmgr()
        .args([path(&slave), "restore"])
        .as_postgres()
        .ok();
    // Before the restored standby ever starts, the master takes two new backups.
    for _ in 0..2 {
        s.master
            .execute("INSERT INTO rp SELECT generate_series(21, 30)");
        backup(&s);
        s.switch_and_wait();
    }
    s.command("/bin/sh")
        .args(["-c", &standby.start_command()])
        .as_postgres()
        .ok();
    standby.wait_until("the restored standby replays to the present", WAIT, || {
        standby.try_connect().is_ok() && count(&standby, "rp") == 40
    });
}

fn spawn_backup(s: &Shipping) -> std::process::Child {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(s.walmgr_bin())
        .args([path(&s.master_config), "backup"])
        .current_dir("/tmp")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup")
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_killed_backups_lock_is_taken_over_and_a_concurrent_backup_fails_at_once() {
    let (s, _standby, _slave) = quick_start("lock", "");
    s.master.pgbench(&["-i", "-s", "15", "-q"]);
    let lock = s.completed_wals.join("BACKUPLOCK");
    let staging = s.dir.join("walshipping/data.master.inprogress");

    // A backup killed with SIGKILL in the middle of its copy.
    let mut first = spawn_backup(&s);
    wait_for("the first backup to start copying", || staging.exists());
    first.kill().expect("SIGKILL the backup");
    first.wait().unwrap();
    // runuser forwards no SIGKILL: kill the walmgr process it started as well.
    let _ = Command::new("pkill")
        .args(["-9", "-f", &format!("{} backup", path(&s.master_config))])
        .status();
    wait_for("the killed backup to be gone", || {
        !Command::new("pgrep")
            .args(["-f", &format!("{} backup", path(&s.master_config))])
            .status()
            .map(|st| st.success())
            .unwrap_or(false)
    });
    assert!(lock.exists(), "a killed backup leaves its lock");

    // The next backup takes the dead holder's lock over, with a log line.
    let out = s
        .walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok_output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("took over the backup lock"), "{stderr}");
    assert!(!lock.exists());

    // Two at once: the second fails at once, naming the first.
    let mut running = spawn_backup(&s);
    wait_for("the running backup's lock", || lock.exists());
    let started = Instant::now();
    let stderr = s
        .walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .fails_with(1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the second backup waited"
    );
    assert!(stderr.contains("another backup is running"), "{stderr}");
    assert!(stderr.contains("pid "), "{stderr}");
    assert!(running.wait().unwrap().success());
    assert_eq!(set_names(&s), ["data.master"]);
}

/// How long a paused standby must hold still: 30 times the archive retry interval the
/// test gives it, so that a pause that held nothing back could not pass unnoticed.
const HOLD: Duration = Duration::from_secs(3);
const RETRY_INTERVAL: &str = "100ms";

/// Switches the master to a new segment (after a commit, so there is one to finish), waits
/// until the finished segment is archived, and returns the LSN where its WAL ends.
fn archive_current_segment(s: &Shipping) -> String {
    s.master.execute("SELECT txid_current()");
    let row = s
        .master
        .connect()
        .query_one(
            "WITH switched AS (SELECT pg_switch_wal() AS lsn) \
             SELECT lsn::text, pg_walfile_name(lsn) FROM switched",
            &[],
        )
        .expect("pg_switch_wal()");
    s.wait_archived(row.get(1));
    row.get(0)
}

fn replay_lsn(standby: &Cluster) -> String {
    standby.query_one("SELECT pg_last_wal_replay_lsn()::text")
}

/// Polls the standby's replay position for HOLD; fails at once if it leaves `at`.
fn holds_still(standby: &Cluster, at: &str, while_: &str) {
    let until = Instant::now() + HOLD;
    while Instant::now() < until {
        assert_eq!(replay_lsn(standby), at, "replay moved on {while_}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn slave_status(s: &Shipping, slave: &Path) -> String {
    s.walmgr()
        .args([path(slave), "status", "--json"])
        .as_postgres()
        .ok()
}

/// pause holds a standby still while the archive holds newer WAL, each of its two levers
/// on its own (the server's replay pause, and the PAUSE file that keeps xrestore from
/// handing out WAL); continue lets the rows through.
fn pause_holds_back_new_rows_and_continue_lets_them_through(major: u32) {
    let (s, standby, slave) = quick_start_on(&Pg::major(major), &format!("pause{major}"), "");
    // The standby keeps its WAL elsewhere, through a pg_wal symlink made by restore.
    let wal_dir = s.dir.join("standby-wal");
    let mut text = fs::read_to_string(&slave).unwrap();
    text.push_str(&format!("slave_pg_xlog = \"{}\"\n", wal_dir.display()));
    fs::write(&slave, text).unwrap();
    s.master
        .execute("CREATE TABLE p (x int); INSERT INTO p VALUES (1)");
    backup(&s);
    let archive_end = archive_current_segment(&s);
    s.walmgr()
        .args([path(&slave), "restore"])
        .as_postgres()
        .ok();
    standby.wait_until("the standby replays all the archive holds", WAIT, || {
        standby.try_connect().is_ok()
            && standby.query_one::<bool>(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{archive_end}'"
            ))
    });
    assert_eq!(count(&standby, "p"), 1);
    let link = fs::read_link(standby.data.join("pg_wal")).expect("pg_wal is a symlink");
    assert_eq!(link, wal_dir);
    // The standby asks the archive for the next segment every 100 ms, not every 5 s.
    standby.set(&format!("wal_retrieve_retry_interval = '{RETRY_INTERVAL}'"));
    standby.execute("SELECT pg_reload_conf()");

    s.walmgr().args([path(&slave), "pause"]).as_postgres().ok();
    let status = slave_status(&s, &slave);
    assert!(status.contains("\"pause_file\":true"), "{status}");
    assert!(status.contains("\"replay_paused\":true"), "{status}");
    let server_pause: String = standby.query_one("SELECT pg_get_wal_replay_pause_state()");
    assert_ne!(server_pause, "not paused");
    let paused_at = replay_lsn(&standby);

    s.master
        .execute("INSERT INTO p SELECT generate_series(2, 100)");
    let newer = archive_current_segment(&s);
    holds_still(&standby, &paused_at, "while paused");

    // The server's own pause lifted by hand: the PAUSE file alone still holds archive
    // replay, however often the standby asks.
    standby.execute("SELECT pg_wal_replay_resume()");
    let server_pause: String = standby.query_one("SELECT pg_get_wal_replay_pause_state()");
    assert_eq!(server_pause, "not paused");
    holds_still(&standby, &paused_at, "with only the PAUSE file set");
    assert_eq!(
        count(&standby, "p"),
        1,
        "rows written after pause are visible"
    );

    s.walmgr()
        .args([path(&slave), "continue"])
        .as_postgres()
        .ok();
    let status = slave_status(&s, &slave);
    assert!(status.contains("\"pause_file\":false"), "{status}");
    assert!(status.contains("\"replay_paused\":false"), "{status}");
    standby.wait_until("the rows after continue", WAIT, || {
        count(&standby, "p") == 100
            && standby.query_one::<bool>(&format!("SELECT pg_last_wal_replay_lsn() >= '{newer}'"))
    });
}

#[test]
fn pause_holds_back_new_rows_and_continue_lets_them_through_on_postgresql_15() {
    pause_holds_back_new_rows_and_continue_lets_them_through(15);
}

#[test]
fn pause_holds_back_new_rows_and_continue_lets_them_through_on_postgresql_18() {
    pause_holds_back_new_rows_and_continue_lets_them_through(18);
}

/// Point-in-time restores of one backup to an LSN, a time, a named restore point and a
/// transaction: each opens with exactly the rows committed up to its target.
fn point_in_time_restore_stops_exactly_at_the_target(major: u32) {
    let (s, standby, slave) = quick_start_on(&Pg::major(major), &format!("pitr{major}"), "");
    s.master.execute("CREATE TABLE t (x int)");
    backup(&s);
    s.master
        .execute("INSERT INTO t SELECT generate_series(1, 100)");
    let target_lsn: String = s.master.query_one("SELECT pg_current_wal_lsn()::text");
    std::thread::sleep(Duration::from_millis(1100));
    let target_time: String = s.master.query_one("SELECT now()::text");
    s.master
        .execute("SELECT pg_create_restore_point('before_second_batch')");
    // This transaction writes nothing else: recovery to its xid stops before the second batch.
    let target_xid: String = s.master.query_one("SELECT txid_current()::text");
    std::thread::sleep(Duration::from_millis(1100));
    s.master
        .execute("INSERT INTO t SELECT generate_series(101, 200)");
    s.switch_and_wait();

    for target in [
        format!("--target-lsn={target_lsn}"),
        format!("--target-time={target_time}"),
        "--target-name=before_second_batch".to_string(),
        format!("--target-xid={target_xid}"),
    ] {
        s.walmgr()
            .args([path(&slave), "restore", "data.master", &target])
            .as_postgres()
            .ok();
        standby.wait_until(&format!("recovery to {target} ends"), WAIT, || {
            standby.try_connect().is_ok() && !in_recovery(&standby)
        });
        assert_eq!(
            count(&standby, "t"),
            100,
            "{target}: exactly the rows up to the target"
        );
        standby.stop();
    }
}

#[test]
fn point_in_time_restore_stops_exactly_at_the_target_on_postgresql_15() {
    point_in_time_restore_stops_exactly_at_the_target(15);
}

#[test]
fn point_in_time_restore_stops_exactly_at_the_target_on_postgresql_18() {
    point_in_time_restore_stops_exactly_at_the_target(18);
}

/// Path, size and mtime of everything under `root`.
fn snapshot(root: &Path) -> BTreeMap<String, (u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.insert(
                e.path().display().to_string(),
                (meta.len(), meta.mtime_nsec() + meta.mtime() * 1_000_000_000),
            );
        }
    }
    out
}

#[test]
fn not_really_backup_and_restore_change_no_file_and_print_the_plan() {
    let (s, standby, slave) = quick_start("dry", "keep_backups = 2");
    s.master
        .execute("CREATE TABLE d (x int); INSERT INTO d VALUES (1)");
    backup(&s);
    s.switch_and_wait();
    s.master.checkpoint();

    let walmgr_data = s.dir.join("walshipping");
    let before = (snapshot(&s.master.data), snapshot(&walmgr_data));
    let plan = s
        .walmgr()
        .args(["-n", path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    for step in [
        "take backup lock",
        "pg_backup_start",
        "copy ",
        "pg_backup_stop",
        "rename ",
    ] {
        assert!(plan.contains(step), "backup plan lacks {step:?}:\n{plan}");
    }
    let plan = s
        .walmgr()
        .args(["-n", path(&slave), "restore"])
        .as_postgres()
        .ok();
    for step in [
        "move ",
        "standby.signal",
        "restore_command",
        "slave_start_cmd",
    ] {
        assert!(plan.contains(step), "restore plan lacks {step:?}:\n{plan}");
    }
    let after = (snapshot(&s.master.data), snapshot(&walmgr_data));
    let changed = |a: &BTreeMap<String, (u64, i64)>, b: &BTreeMap<String, (u64, i64)>| {
        a.iter()
            .filter(|(k, v)| {
                b.get(*k) != Some(v)
                    && !k.contains("pg_stat")
                    && !k.contains("pg_wal")
                    && !k.contains("pg_xact")
                    && !k.contains("pg_logical")
                    && !k.contains("pg_multixact")
                    && !k.contains("/base/")
                    && !k.contains("/global/")
                    // The master's worker ships in-progress WAL there all along.
                    && !k.contains("logs.partial")
            })
            .map(|(k, _)| k.clone())
            .chain(
                b.keys()
                    .filter(|k| {
                        !a.contains_key(*k)
                            && !k.contains("pg_stat")
                            && !k.contains("pg_wal")
                            && !k.contains("logs.partial")
                    })
                    .cloned(),
            )
            .collect::<Vec<_>>()
    };
    assert!(
        changed(&before.1, &after.1).is_empty(),
        "walmgr_data changed: {:?}",
        changed(&before.1, &after.1)
    );
    assert!(
        changed(&before.0, &after.0).is_empty(),
        "master data changed: {:?}",
        changed(&before.0, &after.0)
    );
    assert!(
        !standby.data.exists(),
        "dry-run restore created the standby"
    );
}

#[test]
fn a_backup_taken_on_the_standby_restores_to_a_working_server() {
    let (s, standby, slave) = quick_start("sbackup", "keep_backups = 2");
    s.master
        .execute("CREATE TABLE b (x int); INSERT INTO b SELECT generate_series(1, 500)");
    backup(&s);
    s.switch_and_wait();
    s.walmgr()
        .args([path(&slave), "restore", "data.master"])
        .as_postgres()
        .ok();
    standby.wait_until("the standby replays", WAIT, || {
        standby.try_connect().is_ok() && count(&standby, "b") == 500
    });

    let out = s.walmgr().args([path(&slave), "backup"]).as_postgres().ok();
    assert!(out.contains("backup from the standby done"), "{out}");
    let label = fs::read_to_string(s.dir.join("walshipping/data.master/backup_label")).unwrap();
    assert!(label.contains("BACKUP FROM: standby"), "{label}");

    s.master
        .execute("INSERT INTO b SELECT generate_series(501, 700)");
    s.switch_and_wait();
    let copy = Cluster::planned(&s.master.pg, &s.dir, "fromstandby");
    s.walmgr()
        .args([path(&slave), "restore", "data.master", path(&copy.data)])
        .as_postgres()
        .ok();
    s.command("/bin/sh")
        .args(["-c", &copy.start_command()])
        .as_postgres()
        .ok();
    copy.wait_until(
        "the server restored from the standby's backup catches up",
        WAIT,
        || copy.try_connect().is_ok() && count(&copy, "b") == 700,
    );
}

/// The percentages of the progress lines `what` printed, in order; and that nothing of a
/// terminal's bar is among them (no carriage return, no escape sequence).
fn progress_lines(stderr: &str, what: &str) -> Vec<u64> {
    progress_lines_of(stderr, &format!("{what}: copied "))
}

/// The percentages after `start` in the lines of `stderr` (see [`progress_lines`]).
fn progress_lines_of(stderr: &str, start: &str) -> Vec<u64> {
    assert!(
        !stderr.contains('\r') && !stderr.contains('\x1b'),
        "a progress bar without a terminal:\n{stderr:?}"
    );
    stderr
        .lines()
        .filter_map(|l| l.split_once(start))
        .map(|(_, rest)| {
            let pct = rest.split('%').next().unwrap();
            pct.parse()
                .unwrap_or_else(|_| panic!("not a percentage in {rest:?}"))
        })
        .collect()
}

/// Without a terminal (cron, a pipe, PostgreSQL's log) long copies report as log lines: a
/// line per tenth, in order, up to 100%; `-q` keeps them out.
#[test]
fn backup_and_restore_report_progress_as_log_lines_without_a_terminal() {
    let (s, standby, slave) = quick_start("progress", "");
    s.master.pgbench(&["-i", "-s", "5", "-q"]);
    let out = s
        .walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok_output();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let backup = progress_lines(&said, "backup");
    assert!(backup.len() >= 3, "too few progress lines:\n{said}");
    assert!(
        backup.windows(2).all(|w| w[0] <= w[1]),
        "{backup:?}\n{said}"
    );
    assert_eq!(backup.last(), Some(&100), "{said}");

    let out = s
        .walmgr()
        .args(["-q", path(&s.master_config), "backup"])
        .as_postgres()
        .ok_output();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(progress_lines(&said, "backup").is_empty(), "-q:\n{said}");

    // A named set is copied, not moved: that copy reports too.
    s.switch_and_wait();
    let out = s
        .walmgr()
        .args([path(&slave), "restore", "data.master"])
        .as_postgres()
        .ok_output();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let restore = progress_lines(&said, "restore");
    assert!(restore.len() >= 3, "too few progress lines:\n{said}");
    assert_eq!(restore.last(), Some(&100), "{said}");
    standby.wait_until("the restored standby runs", WAIT, || {
        standby.try_connect().is_ok()
    });
}

/// On a terminal the same backup shows a bar and no progress lines.
#[test]
fn backup_on_a_terminal_shows_a_bar_and_no_progress_lines() {
    let (s, _standby, _slave) = quick_start("progress-tty", "");
    s.master.pgbench(&["-i", "-s", "5", "-q"]);
    // script(1) runs the command on a pseudo-terminal and passes on what it shows.
    let command = format!(
        "{} {} backup",
        s.walmgr_bin().display(),
        path(&s.master_config)
    );
    let shown = s
        .command("script")
        .args(["-qec", &command, "/dev/null"])
        .as_postgres()
        .ok();
    assert!(shown.contains("backup from the master done"), "{shown:?}");
    assert!(shown.contains("backup ["), "no bar:\n{shown:?}");
    assert!(
        !shown.contains("backup: copied"),
        "lines as well:\n{shown:?}"
    );
}

/// createslave reports pg_basebackup's progress the same way: log lines without a terminal,
/// in order, up to 100%, and none of pg_basebackup's own progress output.
#[test]
fn createslave_reports_pg_basebackups_progress_as_log_lines() {
    let (s, standby, _) = quick_start("progress-createslave", "");
    s.master.pgbench(&["-i", "-s", "5", "-q"]);
    let config = s.dir.write(
        "createslave.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nslave_bin = \"{}\"\nslave_start_cmd = \"{}\"\n\
             walmgr_data = \"{}\"\nprimary_conninfo = \"{} application_name=s1\"\n",
            standby.data.display(),
            standby.pg.bindir.display(),
            standby.start_command(),
            s.dir.join("walshipping").display(),
            s.master.conninfo(),
        ),
    );
    let out = s
        .walmgr()
        .args([path(&config), "createslave"])
        .as_postgres()
        .ok_output();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let seen = progress_lines(&said, "createslave");
    assert!(!seen.is_empty(), "no progress lines:\n{said}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}\n{said}");
    assert_eq!(seen.last(), Some(&100), "{said}");
    assert!(
        !said.contains(" kB ("),
        "pg_basebackup's own lines:\n{said}"
    );
    s.master.wait_until_streaming("s1", WAIT);
}
