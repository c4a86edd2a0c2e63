//! The SSH transport between two real hosts: the master runs in one network namespace, the
//! standby's sshd and PostgreSQL in another, joined by a veth pair (master 169.254.77.1,
//! standby 169.254.77.2), so the archive reaches the standby over TCP and nothing else.

use std::fs;
use std::path::Path;

use walmgr_tests::shipping::{path, pgbench_aggregate, Shipping, WAIT};
use walmgr_tests::{
    netns_list, Cluster, PeerAuth, Pg, Sshd, TestCommand, TestDir, TwoHosts, Walmgr,
};

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

/// The manual's streaming standby across two hosts: the master asks for a scram password
/// from the replication role; `--add-password` puts it in the standby host's ~/.pgpass
/// (beside a line of the DBA's own); `createslave` there copies the master over the link
/// with pg_basebackup and starts a standby that streams, has the master's data and follows
/// new writes; `--remove-password` then leaves the DBA's line exactly as it was.
#[test]
fn createslave_on_the_standby_host_streams_with_the_password_add_password_wrote() {
    let s = Shipping::two_hosts(
        WALMGR,
        &Pg::major(15),
        "2hosts-create",
        &["--wal-segsize=1"],
        "",
    );
    s.setup();
    s.master
        .execute("CREATE ROLE rep REPLICATION LOGIN PASSWORD 'rep:se\\cret'");
    s.master.peer_auth(PeerAuth::ScramSha256);
    s.master.pgbench(&["-i", "-s", "2", "-q"]);

    let standby_host = &s.hosts().standby;
    let standby = Cluster::planned_on(standby_host, &s.master.pg, &s.dir, "standby");
    let home = s.dir.mkdir("standby-home");
    let pgpass = home.join(".pgpass");
    let theirs = "otherhost:5432:*:someone:other-secret\n";
    fs::write(&pgpass, theirs).unwrap();
    walmgr_tests::chown_to_postgres(&pgpass);
    let conninfo = format!(
        "host=169.254.77.1 port={} user=rep application_name=s1 passfile={}",
        s.master.port,
        pgpass.display()
    );
    let config = s.dir.write(
        "createslave.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nslave_bin = \"{}\"\nslave_start_cmd = \"{}\"\n\
             walmgr_data = \"{}\"\nprimary_conninfo = \"{conninfo}\"\n",
            standby.data.display(),
            standby.pg.bindir.display(),
            standby.start_command(),
            s.dir.join("walshipping").display()
        ),
    );
    let password = s.dir.write("password", "rep:se\\cret\n");
    let on_standby = |args: &[&str]| {
        s.walmgr()
            .args(args)
            .env("HOME", &home)
            .on(standby_host)
            .as_postgres()
            .ok()
    };
    on_standby(&[
        path(&config),
        &format!("--add-password={}", password.display()),
    ]);
    let created = on_standby(&[path(&config), "createslave"]);
    assert!(!created.contains("se\\cret"), "{created}");

    s.master.wait_until_streaming("s1", WAIT);
    let from: String = s.master.query_one(
        "SELECT host(client_addr) || ' ' || usename FROM pg_stat_replication \
         WHERE application_name = 's1'",
    );
    assert_eq!(
        from, "169.254.77.2 rep",
        "streams from the standby host as rep"
    );
    let expected = pgbench_aggregate(&s.master);
    standby.wait_until("the new standby has the master's data", WAIT, || {
        standby.try_connect().is_ok() && pgbench_aggregate(&standby) == expected
    });
    s.master.pgbench(&["-c", "2", "-T", "2", "-n"]);
    let expected = pgbench_aggregate(&s.master);
    standby.wait_until("the standby follows new writes", WAIT, || {
        pgbench_aggregate(&standby) == expected
    });
    let in_recovery: bool = standby.query_one("SELECT pg_is_in_recovery()");
    assert!(in_recovery);

    on_standby(&[path(&config), "--remove-password"]);
    assert_eq!(fs::read_to_string(&pgpass).unwrap(), theirs);
}

/// The manual's quick start, across two hosts, with the configs `--init-*` wrote and
/// nothing else: keys and configs on each host, setup, pgbench, the master's `backup`
/// (sent to the standby host), `restore` there, replay, `boot`: every committed row.
#[test]
fn the_manuals_quick_start_across_two_hosts() {
    let pg = Pg::major(15);
    let dir = TestDir::new("2hosts-quick");
    let hosts = TwoHosts::new();
    let walmgr = Walmgr::new(&dir, WALMGR);
    let master = Cluster::init_on(&hosts.master, &pg, &dir, "master", &["--wal-segsize=1"]);
    master.set("wal_keep_size = '1GB'");
    master.start();
    // The standby host's own cluster, as a fresh install has one (restore replaces it),
    // started once with its own port, socket and address on the command line: postmaster.opts
    // keeps them, --init-slave puts them in slave_start_cmd, and so the restored copy listens
    // there too, whatever the master's postgresql.conf it carries says.
    let standby = Cluster::init_on(&hosts.standby, &pg, &dir, "standby", &["--wal-segsize=1"]);
    TestCommand::new("/bin/sh")
        .args(["-c", &standby.start_command()])
        .on(&hosts.standby)
        .as_postgres()
        .ok();
    standby.stop();
    let sshd = Sshd::start_on(&hosts.standby, &dir, "standby");
    let master_home = dir.mkdir("master-home");
    let master_conf = dir.join("master-conf");
    let slave_conf = dir.join("slave-conf");
    let on = |host, home: &Path, args: &[&str]| {
        walmgr
            .command()
            .args(args)
            .env("HOME", home)
            .on(host)
            .as_postgres()
            .ok()
    };

    let public = on(
        &hosts.master,
        &master_home,
        &[
            "--ssh-keygen",
            "--init-master",
            "--slave",
            &format!("postgres@169.254.77.2:{}", sshd.port()),
            "--pgdata",
            path(&master.data),
            "--config-dir",
            path(&master_conf),
        ],
    );
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    on(
        &hosts.standby,
        sshd.home(),
        &[
            "--init-slave",
            &format!(
                "--ssh-add-key={}",
                master_home.join(".ssh/id_ed25519.pub").display()
            ),
            "--pgdata",
            path(&standby.data),
            "--config-dir",
            path(&slave_conf),
        ],
    );
    let master_toml = master_conf.join("wal-master.toml");
    let slave_toml = slave_conf.join("wal-slave.toml");
    let written = (
        fs::read(&master_toml).unwrap(),
        fs::read(&slave_toml).unwrap(),
    );
    // The DBA trusts the standby's host key after checking its fingerprint.
    let known_hosts = master_home.join(".ssh/known_hosts");
    fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    walmgr_tests::chown_to_postgres(&known_hosts);

    let setup = on(&hosts.master, &master_home, &[path(&master_toml), "setup"]);
    if setup.contains("restart PostgreSQL") {
        master.restart();
    }
    master.pgbench(&["-i", "-s", "2", "-q"]);
    let backup = on(&hosts.master, &master_home, &[path(&master_toml), "backup"]);
    assert!(backup.contains("backup from the master done"), "{backup}");
    master.pgbench(&["-c", "2", "-T", "2", "-n"]);
    let expected = pgbench_aggregate(&master);
    let last = master.switch_wal();
    let archive = sshd.home().join("walshipping/logs.complete");
    master.wait_until(
        &format!("{last} archived on the standby host"),
        WAIT,
        || archive.join(&last).exists(),
    );

    on(&hosts.standby, sshd.home(), &[path(&slave_toml), "restore"]);
    standby.wait_until("the standby host replays the master's writes", WAIT, || {
        standby.try_connect().is_ok() && pgbench_aggregate(&standby) == expected
    });
    on(&hosts.standby, sshd.home(), &[path(&slave_toml), "boot"]);
    let in_recovery: bool = standby.query_one("SELECT pg_is_in_recovery()");
    assert!(!in_recovery);
    assert_eq!(pgbench_aggregate(&standby), expected, "every committed row");
    assert_eq!(
        written,
        (
            fs::read(&master_toml).unwrap(),
            fs::read(&slave_toml).unwrap()
        ),
        "the configs were used as --init-* wrote them"
    );
}
