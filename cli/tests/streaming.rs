//! Streaming standbys: `synch-standby` makes the master's commits wait for a standby that is
//! there and refuses one that is not; `--add-password` gives the standby the replication
//! password libpq finds.

use std::fs;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use postgres::error::SqlState;
use walmgr_tests::shipping::{path, Shipping, WAIT};
use walmgr_tests::{Cluster, Pg};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// How long a commit that waits for a missing standby is watched: it never returns.
const HANG: Duration = Duration::from_secs(2);

fn standby_names(c: &Cluster) -> String {
    c.query_one("SHOW synchronous_standby_names")
}

/// Waits until new sessions of `c` run with synchronous_standby_names = `names` (the reload
/// reaches the server a moment after pg_reload_conf() returns).
fn wait_for_names(c: &Cluster, names: &str) {
    c.wait_until(
        &format!("synchronous_standby_names = '{names}'"),
        WAIT,
        || standby_names(c) == names,
    );
}

/// Waits until the master counts `application_name` as a synchronous standby.
fn wait_until_sync(c: &Cluster, application_name: &str) {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_replication \
         WHERE application_name = '{application_name}' AND sync_state = 'sync'"
    );
    c.wait_until(&format!("{application_name} synchronous"), WAIT, || {
        c.query_one::<i64>(&sql) == 1
    });
}

/// Commits one row from a session of its own; the receiver hears once the commit returned.
fn commit_in_background(c: &Cluster, id: i32) -> Receiver<Result<(), String>> {
    let mut client = c.connect();
    let (done, heard) = mpsc::channel();
    std::thread::spawn(move || {
        let result = client
            .execute("INSERT INTO t VALUES ($1)", &[&id])
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = done.send(result);
    });
    heard
}

/// A commit on `c` returns (well within `WAIT`; it takes milliseconds).
fn commits(c: &Cluster, id: i32) {
    commit_in_background(c, id)
        .recv_timeout(WAIT)
        .expect("the commit returned")
        .expect("the commit succeeded");
}

/// The scenario of the manual: a standby streams as s1, `synch-standby s1` makes every
/// commit wait for it; with it stopped, commits hang until `synch-standby ''` lets them go.
/// A name that is not streaming, and `*` with no standby, are refused and change nothing.
#[test]
fn synch_standby_makes_commits_wait_for_the_named_standby_until_switched_off() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "synch", &["--wal-segsize=1"]);
    s.master.execute("CREATE TABLE t (id int)");
    let standby = s.streaming_standby("standby", "s1");
    let config = path(&s.master_config);
    let synch_standby = |names: &str| {
        s.walmgr()
            .args([config, "synch-standby", names])
            .as_postgres()
    };

    let plan = synch_standby("s1").arg("-n").ok();
    assert!(
        plan.contains("would: ALTER SYSTEM SET synchronous_standby_names = 's1'"),
        "{plan}"
    );
    assert!(plan.contains("would: SELECT pg_reload_conf()"), "{plan}");
    assert_eq!(standby_names(&s.master), "", "-n changed the setting");

    let refused = synch_standby("nosuch").fails_with(1);
    assert!(
        refused.contains("standby nosuch must be connected and streaming"),
        "{refused}"
    );
    assert!(refused.contains("s1 (streaming)"), "{refused}");
    assert!(refused.contains("nothing changed"), "{refused}");
    assert_eq!(standby_names(&s.master), "");

    let said = synch_standby("s1").ok();
    assert!(said.contains("commits wait for standby s1"), "{said}");
    wait_for_names(&s.master, "s1");
    wait_until_sync(&s.master, "s1");
    commits(&s.master, 1);

    standby.stop();
    let waiting = commit_in_background(&s.master, 2);
    assert_eq!(
        waiting.recv_timeout(HANG),
        Err(RecvTimeoutError::Timeout),
        "a commit returned with the synchronous standby stopped"
    );

    let refused = synch_standby("*").fails_with(1);
    assert!(
        refused.contains("a standby must be connected and streaming"),
        "{refused}"
    );
    assert!(refused.contains("no standby is connected"), "{refused}");
    assert_eq!(
        standby_names(&s.master),
        "s1",
        "a refusal changed the setting"
    );

    let said = synch_standby("").ok();
    assert!(said.contains("synchronous replication off"), "{said}");
    waiting
        .recv_timeout(WAIT)
        .expect("the waiting commit returned once synchronous replication was off")
        .expect("the waiting commit succeeded");
    wait_for_names(&s.master, "");
    commits(&s.master, 3);
    assert_eq!(s.master.query_one::<i64>("SELECT count(*) FROM t"), 3);
}

/// `walmgr.synch_standby()` checks and sets as the command does, is superuser-only, and
/// fails with its own SQLSTATE; the config-less `--synch-standby` goes through it.
fn the_sql_function_checks_and_sets_synchronous_standby_names(major: u32) {
    let s = Shipping::with_module(
        WALMGR,
        &Pg::major(major),
        &format!("synch-sql-{major}"),
        &["--wal-segsize=1"],
    );
    s.master.execute("CREATE TABLE t (id int)");
    let _standby = s.streaming_standby("standby", "s1");
    let public_may: bool = s.master.query_one(
        "SELECT has_function_privilege('public', 'walmgr.synch_standby(text, boolean)', 'EXECUTE')",
    );
    assert!(!public_may, "PUBLIC may run walmgr.synch_standby()");

    let plan: String = s
        .master
        .query_one("SELECT walmgr.synch_standby('s1', dry_run => true)");
    assert!(
        plan.starts_with("ALTER SYSTEM SET synchronous_standby_names = 's1'\n"),
        "{plan}"
    );
    assert_eq!(standby_names(&s.master), "");

    let mut client = s.master.connect();
    for (names, sqlstate, says) in [
        (
            "nosuch",
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "standby nosuch must be connected and streaming",
        ),
        (
            "ANY 2 (s1, s2)",
            SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "only s1 is",
        ),
        (
            "standby-1",
            SqlState::INVALID_PARAMETER_VALUE,
            "unless it is double-quoted",
        ),
    ] {
        let err = client
            .query_one("SELECT walmgr.synch_standby($1)", &[&names])
            .expect_err(names);
        let db = err.as_db_error().expect("an error from the server");
        assert_eq!(db.code(), &sqlstate, "{names}: {}", db.message());
        assert!(db.message().contains(says), "{names}: {}", db.message());
    }
    assert_eq!(standby_names(&s.master), "");

    let said: String = s
        .master
        .query_one("SELECT walmgr.synch_standby('FIRST 1 (s1, s2)')");
    assert!(
        said.ends_with("commits wait for FIRST 1 of s1, s2 (streaming now: s1)"),
        "{said}"
    );
    wait_for_names(&s.master, "FIRST 1 (s1, s2)");
    wait_until_sync(&s.master, "s1");
    commits(&s.master, 1);

    // Without a config: the cluster from --pgdata, reached through its postmaster.pid.
    let without_config = |names: &str| {
        s.walmgr()
            .arg(format!("--synch-standby={names}"))
            .args(["--pgdata", path(&s.master.data)])
            .as_postgres()
    };
    let plan = without_config("").arg("-n").ok();
    assert!(
        plan.contains("would: ALTER SYSTEM SET synchronous_standby_names = ''"),
        "{plan}"
    );
    assert_eq!(standby_names(&s.master), "FIRST 1 (s1, s2)");
    let said = without_config("").ok();
    assert!(said.contains("synchronous replication off"), "{said}");
    wait_for_names(&s.master, "");
}

#[test]
fn the_sql_function_checks_and_sets_synchronous_standby_names_on_15() {
    the_sql_function_checks_and_sets_synchronous_standby_names(15);
}

#[test]
fn the_sql_function_checks_and_sets_synchronous_standby_names_on_18() {
    the_sql_function_checks_and_sets_synchronous_standby_names(18);
}

/// A master that never ran walmgr setup: `--synch-standby` finds the cluster from $PGDATA
/// or --pgdata and sets the names with plain ALTER SYSTEM.
#[test]
fn without_a_config_or_the_extension_synch_standby_uses_alter_system() {
    let s = Shipping::new(WALMGR, &Pg::major(15), "synch-plain", &["--wal-segsize=1"]);
    s.master.execute("CREATE TABLE t (id int)");
    let _standby = s.streaming_standby("standby", "s1");
    assert_eq!(
        s.master
            .query_one::<i64>("SELECT count(*) FROM pg_extension WHERE extname = 'walmgr'"),
        0
    );
    let synch_standby = |names: &str| {
        s.walmgr()
            .arg(format!("--synch-standby={names}"))
            .env("PGDATA", &s.master.data)
            .as_postgres()
    };

    let plan = synch_standby("s1").arg("-n").ok();
    assert!(
        plan.contains("would: ALTER SYSTEM SET synchronous_standby_names = 's1'"),
        "{plan}"
    );
    assert_eq!(standby_names(&s.master), "");

    let refused = synch_standby("ANY 2 (s1, s2)").fails_with(1);
    assert!(
        refused.contains("2 of s1, s2 must be connected"),
        "{refused}"
    );
    assert!(refused.contains("only s1 is"), "{refused}");
    let usage = synch_standby("FIRST (s1)").fails_with(2);
    assert!(usage.contains("followed by a number"), "{usage}");
    assert_eq!(standby_names(&s.master), "");

    let said = synch_standby("s1").ok();
    assert!(said.contains("commits wait for standby s1"), "{said}");
    wait_for_names(&s.master, "s1");
    let auto = fs::read_to_string(s.master.data.join("postgresql.auto.conf")).unwrap();
    assert!(auto.contains("synchronous_standby_names = 's1'"), "{auto}");
    wait_until_sync(&s.master, "s1");
    commits(&s.master, 1);

    s.walmgr()
        .args(["--synch-standby=", "--pgdata", path(&s.master.data)])
        .as_postgres()
        .ok();
    wait_for_names(&s.master, "");
}

/// `--add-password` writes the line libpq looks up for the standby's replication
/// connection: a master that asks for a password lets the standby in with it (a password
/// with ':' and '\' in it, which .pgpass must escape), and after `--remove-password` no more.
#[test]
fn a_standby_streams_with_the_password_add_password_wrote() {
    let s = Shipping::new(WALMGR, &Pg::major(15), "pgpass", &["--wal-segsize=1"]);
    let master = &s.master;
    master.execute(r"CREATE ROLE rep REPLICATION LOGIN PASSWORD 'p:w\rd'");
    let hba = master.data.join("pg_hba.conf");
    let rules = fs::read_to_string(&hba).unwrap();
    fs::write(
        &hba,
        format!("local replication rep scram-sha-256\n{rules}"),
    )
    .unwrap();
    master.reload();
    let standby = s.streaming_standby("standby", "s0");

    // The standby's server reads its OS user's real ~/.pgpass: passfile points it at the
    // home this test gives walmgr instead.
    let home = s.dir.mkdir("standby-home");
    let conninfo = format!(
        "host={} port={} user=rep application_name=s1 passfile={}",
        master.socket_dir.display(),
        master.port,
        home.join(".pgpass").display()
    );
    let slave = s.dir.write(
        "streaming-slave.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nwalmgr_data = \"{}\"\nprimary_conninfo = \"{conninfo}\"\n",
            standby.data.display(),
            s.dir.join("walshipping").display()
        ),
    );
    let password = s.dir.write("password", "p:w\\rd\n");
    let out = s
        .walmgr()
        .args([
            path(&slave),
            &format!("--add-password={}", password.display()),
        ])
        .env("HOME", &home)
        .as_postgres()
        .ok();
    assert!(!out.contains("p:w"), "{out}");

    standby.execute(&format!("ALTER SYSTEM SET primary_conninfo = '{conninfo}'"));
    standby.reload();
    master.wait_until_streaming("s1", WAIT);
    let user: String = master
        .query_one("SELECT usename::text FROM pg_stat_replication WHERE application_name = 's1'");
    assert_eq!(user, "rep");

    s.walmgr()
        .args([path(&slave), "--remove-password"])
        .env("HOME", &home)
        .as_postgres()
        .ok();
    master.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication");
    standby.wait_until("the standby is refused without the password", WAIT, || {
        fs::read_to_string(&standby.log)
            .unwrap_or_default()
            .contains("no password supplied")
    });
}

/// `pause` and `continue` hold back a standby that streams, not only archive replay
/// (walmgr3's PAUSE file only stopped xrestore): rows committed after the pause stay out of
/// sight until continue.
#[test]
fn pause_and_continue_hold_back_a_streaming_standby() {
    let s = Shipping::new(WALMGR, &Pg::major(15), "stream-pause", &["--wal-segsize=1"]);
    s.master
        .execute("CREATE TABLE p (x int); INSERT INTO p VALUES (1)");
    let standby = s.streaming_standby("standby", "s1");
    let slave = s.dir.write(
        "streaming-slave.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nwalmgr_data = \"{}\"\n",
            standby.data.display(),
            s.dir.join("walshipping").display()
        ),
    );
    fs::create_dir_all(s.dir.join("walshipping/logs.complete")).unwrap();
    walmgr_tests::chown_to_postgres(&s.dir.join("walshipping"));
    walmgr_tests::chown_to_postgres(&s.dir.join("walshipping/logs.complete"));
    let count = |c: &Cluster| c.query_one::<i64>("SELECT count(*) FROM p");
    standby.wait_until("the standby streams the first row", WAIT, || {
        count(&standby) == 1
    });

    s.walmgr().args([path(&slave), "pause"]).as_postgres().ok();
    let paused: bool = standby.query_one("SELECT pg_is_wal_replay_paused()");
    assert!(paused);
    s.master
        .execute("INSERT INTO p SELECT generate_series(2, 100)");
    s.master
        .wait_until("the paused standby has received the rows", WAIT, || {
            s.master.query_one::<bool>(
                "SELECT flush_lsn >= pg_current_wal_flush_lsn() FROM pg_stat_replication \
             WHERE application_name = 's1'",
            )
        });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        count(&standby),
        1,
        "rows committed after the pause are visible"
    );

    s.walmgr()
        .args([path(&slave), "continue"])
        .as_postgres()
        .ok();
    standby.wait_until("the rows after continue", WAIT, || count(&standby) == 100);
}
