//! Failover loses nothing: the master's in-progress WAL reaches the standby's partial_wals
//! while it is written, and `boot` replays it, so a master that dies between segment
//! switches takes no acknowledged commit with it.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use walmgr_core::wal::Lsn;
use walmgr_tests::shipping::{path, Shipping, WAIT};
use walmgr_tests::{send_signal, Cluster, Pg, Sig};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

fn lsn(text: &str) -> Lsn {
    text.parse().expect("an LSN")
}

/// The LSN the standby holds, as walmgr.status says (None before the first ship).
fn acknowledged(s: &Shipping) -> Option<Lsn> {
    s.master
        .query_one::<Option<String>>("SELECT partial_lsn::text FROM walmgr.status")
        .map(|t| lsn(&t))
}

fn flushed(c: &Cluster) -> Lsn {
    lsn(&c.query_one::<String>("SELECT pg_current_wal_flush_lsn()::text"))
}

fn count(c: &Cluster, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"))
}

/// A slave config for booting `standby` (its data, its binaries, the shared walshipping).
fn boot_config(s: &Shipping, standby: &Cluster) -> PathBuf {
    s.dir.write(
        "boot.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nslave_bin = \"{}\"\nwalmgr_data = \"{}\"\n",
            standby.data.display(),
            standby.pg.bindir.display(),
            s.dir.join("walshipping").display()
        ),
    )
}

/// The worker ships every 0.1 s at the latest (it is also woken on flush on 16+).
fn ship_often(s: &Shipping) {
    s.add_to_master_config("loop_delay = 0.1");
    s.master.reload();
    s.master.execute("SELECT txid_current()");
    caught_up(s);
}

/// Waits until the standby holds everything the master has flushed.
fn caught_up(s: &Shipping) {
    s.master
        .wait_until("the standby holds all flushed WAL", WAIT, || {
            acknowledged(s).is_some_and(|a| a >= flushed(&s.master))
        });
}

/// Single-row transactions, one after another, for `run`, with no segment switch; each
/// with an upper bound of its commit record's end (the flush position read right after
/// the commit returned: synchronous_commit made it durable by then). While it runs the
/// acknowledged position is sampled; returns (commits, samples).
fn commit_for(s: &Shipping, run: Duration) -> (Vec<(i64, Lsn)>, Vec<Lsn>) {
    let mut client = s.master.connect();
    let mut commits = Vec::new();
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut id = 0;
    while started.elapsed() < run {
        id += 1;
        client
            .execute("INSERT INTO rpo VALUES ($1, now())", &[&id])
            .expect("commit");
        let after: String = client
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .expect("flush position")
            .get(0);
        commits.push((id, lsn(&after)));
        if id % 10 == 0 {
            samples.extend(acknowledged(s));
        }
    }
    (commits, samples)
}

enum Crash {
    Kill9,
    ImmediateStop,
}

/// The scenario of the issue: a standby replaying the archive, a master committing
/// single rows, the master dies, the standby boots: nothing acknowledged is lost, and
/// with commits stopped a second before the crash, nothing committed is lost.
/// How the standby asks the archive for WAL while it waits: PostgreSQL's default (again
/// every 5 s), or all the time with each fetch slow (an archive on a slow disk): then a
/// promotion nearly always arrives while a fetch that began before STOP still runs, and
/// PostgreSQL acts on it right after that fetch fails, so boot must wait for a fetch that
/// saw STOP or the partial copy is never asked for.
#[derive(Clone, Copy)]
enum Retry {
    Constant,
    Default,
}

fn failover_loses_nothing(s: Shipping, crash: Crash, retry: Retry) {
    s.master
        .execute("CREATE TABLE rpo (id bigint PRIMARY KEY, at timestamptz)");
    s.switch_and_wait();
    let standby = s.standby("standby");
    match retry {
        Retry::Constant => standby.set(&format!(
            "wal_retrieve_retry_interval = '1ms'\n\
             restore_command = 'sleep 0.3; exec {} {} xrestore %f %p %r'",
            s.walmgr_bin().display(),
            s.slave_config.display()
        )),
        Retry::Default => standby.set("wal_retrieve_retry_interval = '5s'"),
    }
    standby.reload();
    ship_often(&s);
    let (commits, samples) = commit_for(&s, Duration::from_secs(3));
    // All of it in one segment, which the archive never gets: only the partial copy has it.
    let segment_of = |l: Lsn| -> String {
        s.master
            .query_one(&format!("SELECT pg_walfile_name('{l}')"))
    };
    assert_eq!(
        segment_of(commits[0].1),
        segment_of(commits[commits.len() - 1].1),
        "the workload switched segments"
    );
    assert!(
        samples.windows(2).any(|w| w[1] > w[0]),
        "the acknowledged LSN did not move while commits ran: {samples:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let last_acknowledged = acknowledged(&s).expect("something was acknowledged");
    match crash {
        Crash::Kill9 => s.master.kill9(),
        Crash::ImmediateStop => {
            s.master.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        }
    }

    let boot = boot_config(&s, &standby);
    let out = s.walmgr().args([path(&boot), "boot"]).as_postgres().run();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "boot failed: {said}");
    let opened = said
        .split("opened for writes at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(lsn)
        .unwrap_or_else(|| panic!("boot did not say where it opened: {said}"));
    assert!(
        opened >= last_acknowledged,
        "opened at {opened}, short of the acknowledged {last_acknowledged}: {said}"
    );
    let handed_out = fs::read_to_string(&standby.log).unwrap_or_default();
    assert!(
        handed_out.contains("handed out the partial copy of"),
        "recovery did not get the partial copy; standby log:\n{handed_out}"
    );
    let present: Vec<i64> = standby.query_column("SELECT id FROM rpo ORDER BY id");
    let acknowledged_rows: Vec<i64> = commits
        .iter()
        .filter(|(_, end)| *end <= last_acknowledged)
        .map(|(id, _)| *id)
        .collect();
    let missing: Vec<&i64> = acknowledged_rows
        .iter()
        .filter(|id| !present.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged commits lost: {missing:?} (last acknowledged {last_acknowledged})"
    );
    assert_eq!(
        present.len(),
        commits.len(),
        "commits stopped a second before the crash: every one must be there"
    );
    standby.execute("INSERT INTO rpo VALUES (0, now())");
}

#[test]
fn failover_after_kill_9_of_the_master_loses_nothing_on_postgresql_15() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "rpo15", &[]);
    failover_loses_nothing(s, Crash::Kill9, Retry::Default);
}

#[test]
fn failover_after_an_immediate_stop_loses_nothing_on_postgresql_18() {
    let s = Shipping::with_module(WALMGR, &Pg::major(18), "rpo18", &[]);
    failover_loses_nothing(s, Crash::ImmediateStop, Retry::Constant);
}

#[test]
fn failover_over_ssh_after_an_immediate_stop_loses_nothing_on_postgresql_15() {
    let s = Shipping::over_ssh(WALMGR, &Pg::major(15), "rposs15", &[], "");
    s.setup();
    failover_loses_nothing(s, Crash::ImmediateStop, Retry::Default);
}

#[test]
fn failover_over_ssh_after_kill_9_loses_nothing_on_postgresql_18() {
    let s = Shipping::over_ssh(WALMGR, &Pg::major(18), "rposs18", &[], "");
    s.setup();
    failover_loses_nothing(s, Crash::Kill9, Retry::Constant);
}

/// The postmaster's children other than walmgr's worker do not matter here.
/// The last commits of a burst reach the standby at once, not a loop_delay later: WAL
/// flushed while a round was shipping counts as new for the next one. (A round used to
/// mark it as seen when it reported, and the worker then slept the whole loop_delay.)
fn the_end_of_a_burst_is_shipped_without_waiting_loop_delay(major: u32) {
    let s = Shipping::with_module(
        WALMGR,
        &Pg::major(major),
        &format!("burst-end-{major}"),
        &[],
    );
    s.master.pgbench(&["-i", "-s", "1", "-q"]);
    s.add_to_master_config("loop_delay = 120");
    s.master.reload();
    s.master.execute("SELECT txid_current()");
    caught_up(&s);
    // Well under loop_delay, and under the 15 s after which the bgwriter's own WAL record
    // would wake a worker that missed the burst's end.
    let promptly = Duration::from_secs(5);
    for burst in 0..10 {
        // Four clients: commits land while a round ships, as under any real load.
        s.master.pgbench(&["-n", "-c", "4", "-j", "2", "-t", "100"]);
        s.master.wait_until(
            &format!("burst {burst}: the standby holds its last commit (loop_delay is 120 s)"),
            promptly,
            || acknowledged(&s).is_some_and(|a| a >= flushed(&s.master)),
        );
    }
}

#[test]
fn the_end_of_a_burst_is_shipped_without_waiting_loop_delay_15() {
    the_end_of_a_burst_is_shipped_without_waiting_loop_delay(15);
}

#[test]
fn the_end_of_a_burst_is_shipped_without_waiting_loop_delay_18() {
    the_end_of_a_burst_is_shipped_without_waiting_loop_delay(18);
}

fn worker_pid(c: &Cluster) -> Option<i32> {
    c.child_pid("walmgr")
}

#[test]
fn the_worker_rides_out_an_unreachable_standby_and_its_own_deaths() {
    let s = Shipping::over_ssh(WALMGR, &Pg::major(18), "worker", &["--wal-segsize=1"], "");
    s.setup();
    s.master.execute("CREATE TABLE w (x int)");
    ship_often(&s);

    // The standby's sshd goes away: errors are counted, the master is unharmed.
    s.sshd().stop();
    s.master.execute("INSERT INTO w VALUES (1)");
    s.master
        .wait_until("the worker reports failures", WAIT, || {
            s.master
                .query_one::<i64>("SELECT shipper_errors FROM walmgr.status")
                > 0
        });
    s.sshd().start_again();
    s.master.execute("INSERT INTO w VALUES (2)");
    caught_up(&s);

    // SIGTERM: the postmaster starts it again a few seconds later.
    let first = worker_pid(&s.master).expect("the worker runs");
    send_signal(first, Sig::Term);
    s.master.wait_until("a new worker after SIGTERM", WAIT, || {
        worker_pid(&s.master).is_some_and(|p| p != first)
    });
    s.master.execute("INSERT INTO w VALUES (3)");
    caught_up(&s);

    // SIGKILL: the postmaster restarts the whole server (crash recovery), and the worker.
    let second = worker_pid(&s.master).expect("the worker runs");
    send_signal(second, Sig::Kill);
    s.master
        .wait_until("the server is back with a new worker", WAIT, || {
            s.master.try_connect().is_ok() && worker_pid(&s.master).is_some_and(|p| p != second)
        });
    s.master.execute("INSERT INTO w VALUES (4)");
    caught_up(&s);
    assert_eq!(count(&s.master, "w"), 4);
}

#[test]
fn a_promoted_standby_ships_its_new_timeline_from_the_segment_start() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "timeline", &["--wal-segsize=1"]);
    s.master
        .execute("CREATE TABLE tl (x int); INSERT INTO tl VALUES (1)");
    s.switch_and_wait();
    // The copy carries the master's settings: walmgr preloaded, walmgr.config.
    let next = Cluster::base_backup_of(&s.master, &s.dir, "next");
    s.master.stop();
    let signal = next.data.join("standby.signal");
    fs::write(&signal, "").unwrap();
    walmgr_tests::chown_to_postgres(&signal);
    next.set(&format!(
        "restore_command = '{} {} xrestore %f %p'",
        s.walmgr_bin().display(),
        s.slave_config.display()
    ));
    s.add_to_master_config("loop_delay = 0.1");
    next.start();
    next.promote();
    next.execute("INSERT INTO tl VALUES (2)");
    let current: String = next.query_one("SELECT pg_walfile_name(pg_current_wal_flush_lsn())");
    assert!(current.starts_with("00000002"), "{current}");
    let partial = s.dir.join("walshipping/logs.partial").join(&current);
    next.wait_until("the new timeline's segment in partial_wals", WAIT, || {
        next.query_one::<Option<String>>("SELECT partial_lsn::text FROM walmgr.status")
            .is_some_and(|a| lsn(&a) >= flushed(&next))
            && partial.exists()
    });
    let copy = fs::read(&partial).unwrap();
    let theirs = fs::read(next.data.join("pg_wal").join(&current)).unwrap();
    let held = (flushed(&next).0 % (1 << 20)) as usize;
    assert_eq!(
        copy[..held],
        theirs[..held],
        "the copy starts at offset 0 of timeline 2"
    );
}

/// A syncdaemon started in a test is killed when the test ends, whatever happens.
struct Daemon {
    pidfile: PathBuf,
}

impl Daemon {
    fn pid(&self) -> Option<i32> {
        fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, Sig::Kill);
        }
    }
}

/// What the standby's `status --json` says of its newest partial copy: (name, reach).
fn partial_on_standby(s: &Shipping) -> (Option<String>, Option<Lsn>) {
    let json = s
        .walmgr()
        .args([path(&s.slave_config), "status", "--json"])
        .as_postgres()
        .ok();
    let value: serde_json::Value = serde_json::from_str(&json).expect("status --json");
    (
        value["newest_partial"].as_str().map(str::to_owned),
        value["partial_reaches"].as_str().map(lsn),
    )
}

#[test]
fn syncdaemon_ships_for_a_master_without_the_extension_and_answers_reload_stop_and_a_stale_pidfile()
{
    let s = Shipping::new(WALMGR, &Pg::major(15), "syncd", &["--wal-segsize=1"]);
    s.archive_with_xarchive();
    let partials = s.dir.join("walshipping/logs.partial");
    fs::create_dir_all(&partials).unwrap();
    walmgr_tests::chown_to_postgres(&partials);
    let pidfile = s.dir.join("run/syncdaemon.pid");
    let log = s.dir.join("syncdaemon.log");
    s.add_to_master_config(&format!(
        "pidfile = \"{}\"\nlogfile = \"{}\"\nloop_delay = 0.2",
        pidfile.display(),
        log.display()
    ));
    let daemon = Daemon {
        pidfile: pidfile.clone(),
    };
    let walmgr = |args: &[&str]| {
        let mut all = vec![path(&s.master_config)];
        all.extend_from_slice(args);
        s.walmgr().args(all).as_postgres().ok()
    };
    walmgr(&["-d", "syncdaemon"]);
    s.master
        .wait_until("the daemon writes its pidfile", WAIT, || {
            daemon.pid().is_some_and(walmgr_tests::pid_alive)
        });

    s.master
        .execute("CREATE TABLE d (x int); INSERT INTO d VALUES (1)");
    let flush = flushed(&s.master);
    let current: String = s
        .master
        .query_one("SELECT pg_walfile_name(pg_current_wal_flush_lsn())");
    s.master
        .wait_until("the daemon ships the current segment", WAIT, || {
            let (name, reach) = partial_on_standby(&s);
            name.as_deref() == Some(current.as_str()) && reach.is_some_and(|r| r >= flush)
        });

    // A second daemon for the same config is refused.
    let again = s
        .walmgr()
        .args([path(&s.master_config), "syncdaemon"])
        .as_postgres()
        .fails_with(1);
    assert!(again.contains("already running"), "{again}");

    walmgr(&["-r"]);
    s.master.wait_until("the daemon reloads", WAIT, || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains("reloading the config"))
    });

    let pid = daemon.pid().unwrap();
    walmgr(&["-s"]);
    s.master
        .wait_until("the daemon stops and removes its pidfile", WAIT, || {
            !walmgr_tests::pid_alive(pid) && !pidfile.exists()
        });
    assert!(fs::read_to_string(&log)
        .unwrap()
        .contains("syncdaemon stopped"));

    // A daemon killed outright leaves its pidfile: the next one takes it over.
    fs::write(&pidfile, "999999\n").unwrap();
    walmgr_tests::chown_to_postgres(&pidfile);
    let refused = s
        .walmgr()
        .args([path(&s.master_config), "-r"])
        .as_postgres()
        .fails_with(1);
    assert!(refused.contains("stale"), "{refused}");
    walmgr(&["-d", "syncdaemon"]);
    s.master
        .wait_until("a new daemon takes the stale pidfile over", WAIT, || {
            daemon
                .pid()
                .is_some_and(|p| p != 999_999 && walmgr_tests::pid_alive(p))
        });
    assert!(fs::read_to_string(&log).unwrap().contains("taking it over"));
    walmgr(&["-s"]);
}

#[test]
fn periodic_command_runs_at_its_interval_and_its_failure_does_not_stop_shipping() {
    let s = Shipping::with_module(WALMGR, &Pg::major(18), "periodic", &["--wal-segsize=1"]);
    let ran = s.dir.join("periodic.out");
    s.add_to_master_config(&format!(
        "command_interval = 1\nperiodic_command = \"echo ran >> {}; exit 3\"",
        ran.display()
    ));
    ship_often(&s);
    let lines = || fs::read_to_string(&ran).map_or(0, |t| t.lines().count());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        s.master.execute("SELECT txid_current()");
        s.master.switch_wal();
        std::thread::sleep(Duration::from_millis(300));
    }
    let runs = lines();
    assert!(
        (2..=5).contains(&runs),
        "periodic_command ran {runs} times in 4 s of segment switches every 0.3 s at an interval of 1 s"
    );
    s.master.execute("SELECT txid_current()");
    caught_up(&s);
    let row = s
        .master
        .connect()
        .query_one(
            "SELECT shipper_errors, shipper_last_error FROM walmgr.status",
            &[],
        )
        .unwrap();
    let (errors, last): (i64, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(errors, 0, "segment switches are no error: {last:?}");

    // `walmgr periodic` runs it now, and says it failed.
    let err = s
        .walmgr()
        .args([path(&s.master_config), "periodic"])
        .as_postgres()
        .fails_with(1);
    assert!(err.contains("periodic_command"), "{err}");
    // (The worker may have started one more run of its own meanwhile.)
    assert!(lines() > runs, "walmgr periodic did not run the command");

    // `walmgr sync` ships now and prints the LSN the standby holds.
    s.master.execute("SELECT txid_current()");
    let flush = flushed(&s.master);
    let held = s.walmgr().args([path(&s.master_config), "sync"]).ok();
    assert!(
        lsn(held.trim()) >= flush,
        "sync says {held}, flushed {flush}"
    );
}
