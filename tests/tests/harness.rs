//! Smoke tests of the test harness itself: clusters of every installed major come up, take
//! writes and pgbench load, and are torn down even when a test panics.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use walmgr_tests::{pid_alive, Cluster, Pg, TestDir};

fn smoke(pg: &Pg) {
    let dir = TestDir::new(&format!("smoke-pg{}", pg.major));
    let c = Cluster::init(pg, &dir, "primary", &["--wal-segsize=1"]);
    c.start();
    let version: i32 = c.query_one("SELECT current_setting('server_version_num')::int");
    assert_eq!(
        version as u32 / 10000,
        pg.major,
        "server_version_num {version}"
    );
    assert_eq!(c.query_one::<String>("SHOW fsync"), "on");
    assert_eq!(c.query_one::<String>("SHOW wal_segment_size"), "1MB");

    c.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g");
    assert_eq!(c.query_one::<i64>("SELECT count(*) FROM t"), 100);
    assert_eq!(
        c.query_one::<String>("SELECT v FROM t WHERE id = 42"),
        "row 42"
    );

    c.pgbench(&["-i", "-s", "1", "-q"]);
    let out = c.pgbench(&["-T", "2", "-c", "2"]);
    assert!(
        out.contains("number of transactions actually processed"),
        "pgbench output:\n{out}"
    );
    assert!(
        c.child_pid("checkpointer").is_some(),
        "children: {:?}",
        c.children()
    );

    let segment = c.switch_wal();
    assert_eq!(segment.len(), 24, "WAL file name {segment:?}");

    c.restart();
    assert_eq!(c.query_one::<i64>("SELECT count(*) FROM t"), 100);
    c.stop();
    assert!(c.pid().is_none(), "postmaster still running after stop");
}

#[test]
fn every_installed_major_starts_takes_writes_and_stops() {
    let all = Pg::installed();
    assert!(
        !all.is_empty(),
        "no PostgreSQL installed (see ~/.pgrx/config.toml)"
    );
    // In parallel: each cluster has its own dir and port.
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = all
            .iter()
            .map(|pg| (pg.major, s.spawn(|| smoke(pg))))
            .collect();
        handles
            .into_iter()
            .filter_map(|(major, h)| h.join().err().map(|_| format!("PostgreSQL {major}")))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "smoke test failed for {failures:?} (see the panic messages above)"
    );
}

#[test]
fn crash_and_restart_recovers_committed_rows() {
    let pg = Pg::installed().remove(0);
    let dir = TestDir::new("crash");
    let c = Cluster::init(&pg, &dir, "pg", &[]);
    c.start();
    c.execute("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 10)");
    let pid = c.pid().expect("postmaster pid of a running server");
    c.kill9();
    assert!(!pid_alive(pid), "postmaster {pid} survived kill9");
    assert!(c.pid().is_none());
    c.start();
    assert_eq!(c.query_one::<i64>("SELECT count(*) FROM t"), 10);
}

#[test]
fn base_backup_starts_as_a_copy() {
    let pg = Pg::installed().remove(0);
    let dir = TestDir::new("backup");
    let primary = Cluster::init(&pg, &dir, "primary", &[]);
    primary.start();
    primary.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    let copy = Cluster::base_backup_of(&primary, &dir, "copy");
    assert_ne!(copy.port, primary.port);
    copy.start();
    assert_eq!(copy.query_one::<i32>("SELECT x FROM t"), 7);
    // The two servers are independent.
    copy.execute("INSERT INTO t VALUES (8)");
    assert_eq!(primary.query_one::<i64>("SELECT count(*) FROM t"), 1);
    assert!(dir.listing("copy").contains("PG_VERSION"));
}

#[test]
fn a_panicking_test_still_tears_its_cluster_down() {
    let pg = Pg::installed().remove(0);
    let (tx, rx) = mpsc::channel::<(i32, PathBuf, PathBuf)>();
    let result = std::thread::spawn(move || {
        let dir = TestDir::new("panics");
        let c = Cluster::init(&pg, &dir, "doomed", &[]);
        c.start();
        let pid = c.pid().expect("postmaster pid of a running server");
        tx.send((pid, dir.path.clone(), c.socket_dir.clone()))
            .expect("send pid to the test thread");
        panic!("deliberate panic with cluster {pid} running");
    })
    .join();
    assert!(result.is_err(), "the thread was supposed to panic");
    let (pid, path, socket_dir) = rx.recv().expect("the thread sent the pid before panicking");
    assert!(
        !pid_alive(pid),
        "postmaster {pid} still alive after the panic"
    );
    assert!(
        !path.exists(),
        "{} not removed after the panic",
        path.display()
    );
    assert!(!socket_dir.exists());
}

#[test]
fn wait_until_panics_with_what_it_waited_for() {
    let pg = Pg::installed().remove(0);
    let dir = TestDir::new("wait");
    let c = Cluster::init(&pg, &dir, "pg", &[]);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.wait_until("the impossible", Duration::from_millis(300), || false)
    }))
    .expect_err("wait_until should panic on timeout");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("the impossible"), "panic message: {msg}");
}
