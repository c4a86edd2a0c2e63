//! walmgr3's QUICK START, typed as its manual prints it, with `walmgr` for `walmgr3`: each
//! step is the manual's command line, run by a shell as postgres on the host the manual
//! names, in the manual's order. Nothing is added to the commands (no --pgdata, no
//! --config-dir, no .toml paths); the test only stands in for the hosts:
//!
//! - the master and the standby are one machine: each "host" is a home directory of its own
//!   (`$HOME`, which the manual's `/var/lib/postgresql` is on Debian) and its cluster in
//!   `$PGDATA`; the standby's sshd listens on 127.0.0.1 on a free port;
//! - so `/var/lib/postgresql` becomes that host's `$HOME`, `<slave_hostname>` becomes
//!   `postgres@127.0.0.1:PORT`, and `/tmp/id_rsa.pub` (where the DBA copied the master's
//!   public key) a file in the test's dir.
//!
//! What the manual leaves to the DBA is done between the steps the way a DBA does it: copy the
//! public key over, trust the standby's host key (walmgr never accepts an unknown one), and
//! restart the master after setup (the manual's CAUTION). Step 3 (skylog.ini) is left out:
//! walmgr logs to stderr and `logfile`, and `use_skylog` does nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use walmgr_tests::shipping::{pgbench_aggregate, WAIT};
use walmgr_tests::{chown_to_postgres, Cluster, Pg, Sshd, TestCommand, TestDir, Walmgr};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// One host of the quick start: where `/var/lib/postgresql` is, and its cluster.
struct Host<'a> {
    name: &'static str,
    home: PathBuf,
    cluster: &'a Cluster,
}

/// The DBA at a host's prompt: `line` (the manual's, with its paths rewritten for this
/// host) run by `sh` as postgres, with walmgr on `$PATH`.
fn typed(walmgr: &Walmgr, host: &Host, line: &str) -> Output {
    let line = line.replace("/var/lib/postgresql", host.home.to_str().unwrap());
    let bin_dir = walmgr.bin.parent().unwrap();
    eprintln!("{}$ {line}", host.name);
    TestCommand::new("/bin/sh")
        .args(["-c", &line])
        .env("HOME", &host.home)
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("PGDATA", &host.cluster.data)
        .with_context(walmgr.context())
        .as_postgres()
        .ok_output()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The manual's `.ini` path, which walmgr reads from the `.toml` --init-* wrote beside it.
fn says_it_read_the_toml(out: &Output, home: &Path, file: &str) {
    let said = stderr(out);
    let toml = home.join("conf").join(format!("{file}.toml"));
    assert!(
        said.contains(&format!(
            "{file}.ini does not exist: reading {}",
            toml.display()
        )),
        "walmgr did not say which config it read:\n{said}"
    );
}

#[test]
fn the_manuals_quick_start_typed_as_written() {
    let pg = Pg::major(15);
    let dir = TestDir::new("quick-start");
    let walmgr = Walmgr::new(&dir, WALMGR);
    let master_cluster = Cluster::init(&pg, &dir, "master", &["--wal-segsize=1"]);
    master_cluster.start();
    walmgr
        .context()
        .log("server log of the master", &master_cluster.log);
    // The standby host's own cluster, as a fresh install has one (restore replaces it),
    // started once on its own port and socket: postmaster.opts keeps them, so the
    // slave_start_cmd --init-slave writes starts the restored copy there too.
    let standby_cluster = Cluster::init(&pg, &dir, "standby", &["--wal-segsize=1"]);
    TestCommand::new("/bin/sh")
        .args(["-c", &standby_cluster.start_command()])
        .as_postgres()
        .ok();
    standby_cluster.stop();
    walmgr
        .context()
        .log("server log of the standby", &standby_cluster.log);
    let sshd = Sshd::start(&dir, "standby");
    walmgr
        .context()
        .log("sshd log of the standby", sshd.log_path());
    let master = Host {
        name: "master",
        home: dir.mkdir("master-home"),
        cluster: &master_cluster,
    };
    let slave = Host {
        name: "slave",
        home: sshd.home().to_path_buf(),
        cluster: &standby_cluster,
    };

    // 1. Set up passwordless ssh-key on Master and write configuration file
    let out = typed(
        &walmgr,
        &master,
        &format!(
            "walmgr --ssh-keygen --init-master --slave postgres@127.0.0.1:{}",
            sshd.port()
        ),
    );
    assert!(stdout(&out).starts_with("ssh-ed25519 "), "{}", stdout(&out));
    assert!(master.home.join("conf/wal-master.toml").is_file());

    // The DBA copies the master's public key to the standby as the manual's next line
    // expects it.
    let id_rsa_pub = dir.join("id_rsa.pub");
    fs::copy(master.home.join(".ssh/id_ed25519.pub"), &id_rsa_pub).unwrap();
    chown_to_postgres(&id_rsa_pub);

    // 2. Set up passwordless ssh authentication from Master to Slave and write
    //    configuration file on Slave
    typed(
        &walmgr,
        &slave,
        &format!("walmgr --init-slave --ssh-add-key={}", id_rsa_pub.display()),
    );
    assert!(slave.home.join("conf/wal-slave.toml").is_file());

    // The DBA trusts the standby's host key after checking its fingerprint.
    let known_hosts = master.home.join(".ssh/known_hosts");
    fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    chown_to_postgres(&known_hosts);

    // 3. Logging setup on Master and Slave: skylog.ini is not walmgr's (see above).

    // 4. Start archival process and create a base backup
    let out = typed(
        &walmgr,
        &master,
        "walmgr /var/lib/postgresql/conf/wal-master.ini setup",
    );
    says_it_read_the_toml(&out, &master.home, "wal-master");
    // CAUTION: changing archive_mode requires the server to be restarted.
    assert!(
        stdout(&out).contains("restart PostgreSQL"),
        "{}",
        stdout(&out)
    );
    master_cluster.restart();
    master_cluster.pgbench(&["-i", "-s", "2", "-q"]);
    let out = typed(
        &walmgr,
        &master,
        "walmgr /var/lib/postgresql/conf/wal-master.ini backup",
    );
    says_it_read_the_toml(&out, &master.home, "wal-master");
    let archive = slave.home.join("walshipping");
    assert!(
        archive.join("data.master/backup_label").is_file(),
        "no backup on the standby:\n{}",
        stderr(&out)
    );
    master_cluster.pgbench(&["-c", "2", "-T", "2", "-n"]);
    let archived = master_cluster.switch_wal();
    master_cluster.wait_until(&format!("{archived} archived on the standby"), WAIT, || {
        archive.join("logs.complete").join(&archived).exists()
    });

    // 5. Prepare postgresql.conf and pg_hba.conf on Slave and start replay
    let out = typed(
        &walmgr,
        &slave,
        "walmgr /var/lib/postgresql/conf/wal-slave.ini restore",
    );
    says_it_read_the_toml(&out, &slave.home, "wal-slave");
    // The standby's restore_command names the file walmgr read, not the missing .ini.
    let auto_conf = fs::read_to_string(standby_cluster.data.join("postgresql.auto.conf"))
        .expect("restore writes the recovery settings");
    assert!(
        auto_conf.contains("conf/wal-slave.toml xrestore"),
        "{auto_conf}"
    );
    let before_sync = pgbench_aggregate(&master_cluster);
    standby_cluster.wait_until("the standby replays the archive", WAIT, || {
        standby_cluster.try_connect().is_ok() && pgbench_aggregate(&standby_cluster) == before_sync
    });

    // 6. In-progress WAL segments can be backup by command:
    master_cluster.execute("CREATE TABLE after_sync AS SELECT 42 AS answer");
    let out = typed(
        &walmgr,
        &master,
        "walmgr /var/lib/postgresql/conf/wal-master.ini sync",
    );
    says_it_read_the_toml(&out, &master.home, "wal-master");
    let expected = pgbench_aggregate(&master_cluster);

    // 7. If need to stop replay on Slave and boot into normal mode, do:
    let out = typed(
        &walmgr,
        &slave,
        "walmgr /var/lib/postgresql/conf/wal-slave.ini boot",
    );
    says_it_read_the_toml(&out, &slave.home, "wal-slave");
    let in_recovery: bool = standby_cluster.query_one("SELECT pg_is_in_recovery()");
    assert!(!in_recovery, "boot opened the standby for writes");
    assert_eq!(
        pgbench_aggregate(&standby_cluster),
        expected,
        "every row committed before the backup, after it, and before sync"
    );
    let answer: i32 = standby_cluster.query_one("SELECT answer FROM after_sync");
    assert_eq!(
        answer, 42,
        "the in-progress segment sync shipped was replayed"
    );
}
