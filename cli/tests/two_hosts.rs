//! The SSH transport between two real hosts: the master runs in one network namespace, the
//! standby's sshd and PostgreSQL in another, joined by a veth pair (master 169.254.77.1,
//! standby 169.254.77.2), so the archive reaches the standby over TCP and nothing else.

use walmgr_tests::shipping::{pgbench_aggregate, Shipping, WAIT};
use walmgr_tests::{netns_list, Pg};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// The manual's set-up across two hosts: setup on the master host creates the standby's
/// directories over SSH to 169.254.77.2, the archiver ships a finished segment there, a
/// standby made on the standby host (pg_basebackup over the link) replays it, and the hosts
/// are gone once the scenario is.
#[test]
fn the_master_host_archives_to_the_standby_host_over_ssh() {
    let s = Shipping::two_hosts(
        WALMGR,
        &Pg::major(15),
        "2hosts-archive",
        &["--wal-segsize=1"],
        "",
    );
    let names = s.hosts().names();
    let port = s.sshd().port();
    let slave = format!("ssh:postgres@169.254.77.2:{port}");

    let out = s.setup();
    assert!(
        out.contains("create directories") && out.contains(&slave),
        "setup said:\n{out}"
    );
    assert!(s.completed_wals.is_dir());

    s.master
        .execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    let segment = s.switch_and_wait();
    assert!(s.archived().contains(&segment));
    // The archiver logged in from the master host's address, across the link.
    assert!(
        s.sshd()
            .log()
            .contains("Accepted publickey for postgres from 169.254.77.1"),
        "{}",
        s.sshd().log()
    );
    let transport: String = s.master.query_one("SELECT transport FROM walmgr.status");
    assert!(transport.starts_with(&format!("{slave} ")), "{transport}");
    let (_, _, error) = s.status();
    assert_eq!(error, None);

    // The standby host's own PostgreSQL, copied from the master over the link; psql on the
    // master host reaches it there by TCP.
    let standby = s.standby("standby");
    let listening: String = s
        .command(standby.pg.bin("psql"))
        .args([
            "-h",
            "169.254.77.2",
            "-p",
            &standby.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "SELECT pg_is_in_recovery(), host(inet_server_addr())",
        ])
        .as_postgres()
        .ok();
    assert_eq!(listening, "t|169.254.77.2\n");
    s.master.pgbench(&["-i", "-s", "1", "-q"]);
    let expected = pgbench_aggregate(&s.master);
    s.switch_and_wait();
    standby.wait_until(
        "the standby host replays what the master host archived",
        WAIT,
        || standby.try_connect().is_ok() && pgbench_aggregate(&standby) == expected,
    );

    drop(standby);
    drop(s);
    let listed = netns_list();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "{names:?} still in {listed:?}"
    );
}
