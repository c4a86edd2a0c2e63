//! The SSH transport end to end: a real OpenSSH server on 127.0.0.1 stands for the standby
//! host, the master's archiver keeps one session to it, and everything the local transport
//! proves holds across it, including when sshd goes away or the connection drops mid-file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walmgr_tests::shipping::{path, pgbench_aggregate, Shipping, WAIT};
use walmgr_tests::{chown_to_postgres, Cluster, Pg, Sshd, TestCommand};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn logins(sshd: &Sshd) -> usize {
    sshd.log().matches("Accepted publickey").count()
}

/// `walmgr master.toml xarchive pg_wal/NAME NAME` as postgres (as archive_command runs it).
fn xarchive(s: &Shipping, name: &str, extra: &[&str]) -> TestCommand {
    let src = s.master.data.join("pg_wal").join(name);
    s.walmgr()
        .args(extra)
        .args([path(&s.master_config), "xarchive", path(&src), name])
        .as_postgres()
}

/// The manual's set-up over SSH: setup creates the standby's directories through the
/// standby's walmgr, the archiver ships every segment over one session, a standby replays
/// them, and stop turns archiving off again.
fn archive_and_replay_over_ssh(major: u32) {
    let pg = Pg::major(major);
    let s = Shipping::over_ssh(WALMGR, &pg, &format!("ssh-replay{major}"), &[], "");
    assert!(!s.completed_wals.exists());
    let out = s.setup();
    assert!(
        out.contains("create directories") && out.contains("ssh:postgres@127.0.0.1"),
        "setup said:\n{out}"
    );
    assert!(s.completed_wals.is_dir());

    s.master.pgbench(&["-i", "-s", "4", "-q"]);
    s.master.pgbench(&["-c", "2", "-T", "3", "-n"]);
    let last = s.switch_and_wait();
    s.assert_archive_complete_up_to(&last);

    // One session serves every later segment: no new logins.
    let before = logins(s.sshd());
    for _ in 0..3 {
        s.master
            .execute("INSERT INTO pgbench_history SELECT * FROM pgbench_history LIMIT 10");
        s.switch_and_wait();
    }
    assert_eq!(logins(s.sshd()), before, "a new SSH login per segment");

    let standby = s.standby("standby");
    s.master.pgbench(&["-c", "2", "-T", "3", "-n"]);
    let expected = pgbench_aggregate(&s.master);
    let last = s.switch_and_wait();
    standby.wait_until("the standby has replayed the master's writes", WAIT, || {
        standby.try_connect().is_ok() && pgbench_aggregate(&standby) == expected
    });
    s.assert_archive_complete_up_to(&last);

    // The standby's directories are another host's: what only works on them (the backup
    // lock by hand) refuses by name rather than act on this host's paths. (`backup` itself
    // goes over SSH: cli/tests/remote_backup.rs.)
    let err = s
        .walmgr()
        .args([path(&s.master_config), "xlock"])
        .fails_with(1);
    assert!(err.contains("Run it on the standby"), "{err}");

    let transport: String = s.master.query_one("SELECT transport FROM walmgr.status");
    assert!(
        transport.starts_with("ssh:postgres@127.0.0.1:"),
        "{transport}"
    );
    let (_, _, error) = s.status();
    assert_eq!(error, None);

    s.walmgr().args([path(&s.master_config), "stop"]).ok();
    s.master
        .wait_until("the master is back after stop", WAIT, || {
            s.master.try_connect().is_ok()
        });
    let library: String = s
        .master
        .query_one("SELECT current_setting('archive_library')");
    assert_eq!(library, "");
}

#[test]
fn archive_and_replay_over_ssh_on_postgresql_15() {
    archive_and_replay_over_ssh(15);
}

#[test]
fn archive_and_replay_over_ssh_on_postgresql_18() {
    archive_and_replay_over_ssh(18);
}

/// compression = true: zstd on the wire, and the archived files are byte-identical;
/// archive_command with xarchive works over SSH too.
#[test]
fn xarchive_with_compression_ships_identical_bytes() {
    let s = Shipping::over_ssh(
        WALMGR,
        &Pg::major(16),
        "ssh-zstd",
        &["--wal-segsize=1"],
        "compression = true",
    );
    s.archive_with_xarchive();
    s.fill_and_check_archive();
}

/// sshd down while WAL is produced: attempts fail with a clear reason, WAL waits on the
/// master; sshd back: every segment arrives.
#[test]
fn sshd_down_makes_wal_wait_and_it_catches_up_when_back() {
    let s = Shipping::over_ssh(
        WALMGR,
        &Pg::major(15),
        "ssh-outage",
        &["--wal-segsize=1"],
        "",
    );
    s.setup();
    s.switch_and_wait();

    s.sshd().stop();
    let mut stuck = Vec::new();
    for i in 0..3 {
        s.master.execute(&format!(
            "CREATE TABLE outage{i} AS SELECT g FROM generate_series(1, 1000) g"
        ));
        stuck.push(s.master.switch_wal());
    }
    s.master.wait_until("walmgr.status reports the failed attempts", WAIT, || {
        matches!(s.status(), (_, waiting, Some(e)) if waiting > 0 && e.contains("cannot connect"))
    });
    for name in &stuck {
        assert!(
            !s.completed_wals.join(name).exists(),
            "{name} archived while sshd was down"
        );
        let ready = s
            .master
            .data
            .join(format!("pg_wal/archive_status/{name}.ready"));
        assert!(ready.exists(), "{name} does not wait in pg_wal");
    }

    s.sshd().start_again();
    // A new segment wakes the archiver at once instead of after its 60 s nap.
    let last = s.switch_and_wait();
    for name in &stuck {
        s.wait_archived(name);
    }
    s.assert_archive_complete_up_to(&last);
    let (_, waiting, _) = s.status();
    assert_eq!(waiting, 0);
}

/// The connection dropped in the middle of a 128 MB segment: nothing incomplete appears
/// under a final name on the standby, and the retry completes it and leaves no litter.
#[test]
fn a_connection_dropped_mid_file_leaves_no_partial_file() {
    let s = Shipping::over_ssh(
        WALMGR,
        &Pg::major(15),
        "ssh-drop",
        &["--wal-segsize=128"],
        "",
    );
    s.setup();
    let seg_size = s.seg_size() as u64;
    let mut drops = 0;
    for round in 0..2 {
        s.master.execute(&format!(
            "CREATE TABLE drop{round} AS SELECT g FROM generate_series(1, 1000) g"
        ));
        let segment = s.master.switch_wal();
        let temp = s.completed_wals.join(format!(".{segment}.walmgr-tmp"));
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline && !s.completed_wals.join(&segment).exists() {
            let partly_there = fs::metadata(&temp).is_ok_and(|m| m.len() > 0 && m.len() < seg_size);
            if partly_there {
                s.sshd().kill_sessions();
                drops += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        for name in s.archived() {
            let len = fs::metadata(s.completed_wals.join(&name)).unwrap().len();
            if name.len() == 24 {
                assert_eq!(len, seg_size, "{name} visible with {len} bytes");
            }
        }
        s.wait_archived(&segment);
    }
    assert!(drops > 0, "never caught a transfer in the middle");
    let last = s.switch_and_wait();
    s.assert_archive_complete_up_to(&last);
    let litter: Vec<String> = walmgr_tests::shipping::list(&s.completed_wals)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(litter.is_empty(), "temp files left: {litter:?}");
}

/// Unknown and changed host keys are refused with the fingerprint; nothing is written.
#[test]
fn unknown_and_changed_host_keys_are_refused_with_the_fingerprint() {
    let s = Shipping::over_ssh(
        WALMGR,
        &Pg::major(15),
        "ssh-hostkey",
        &["--wal-segsize=1"],
        "",
    );
    fs::create_dir_all(&s.completed_wals).unwrap();
    chown_to_postgres(&s.completed_wals);
    let empty = s.dir.write("empty_known_hosts", "");
    let first = s.master.switch_wal();

    let err = xarchive(
        &s,
        &first,
        &["--set", &format!("ssh_known_hosts={}", path(&empty))],
    )
    .fails_with(1);
    assert!(err.contains("host key not trusted"), "{err}");
    assert!(err.contains(&s.sshd().fingerprint()), "{err}");
    assert!(err.contains("ssh-keyscan"), "says how to trust it: {err}");
    assert!(s.archived().is_empty());

    // Trusted, here with the host name hashed as Debian's ssh (HashKnownHosts) records it.
    let hashed = s
        .dir
        .write("hashed_known_hosts", s.sshd().known_hosts_line() + "\n");
    let hash = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&hashed)
        .output()
        .unwrap();
    assert!(hash.status.success(), "{}", text(&hash.stderr));
    assert!(fs::read_to_string(&hashed).unwrap().starts_with("|1|"));
    xarchive(
        &s,
        &first,
        &["--set", &format!("ssh_known_hosts={}", path(&hashed))],
    )
    .ok();
    assert!(s.completed_wals.join(&first).exists());

    let old = s.sshd().fingerprint();
    s.sshd().new_host_key();
    s.master.execute("CREATE TABLE t AS SELECT 1");
    let second = s.master.switch_wal();
    let err = xarchive(&s, &second, &[]).fails_with(1);
    assert!(err.contains("HOST KEY CHANGED"), "{err}");
    assert!(
        err.contains("ssh-keygen -R"),
        "says how to replace it: {err}"
    );
    assert!(
        err.contains(&s.sshd().fingerprint()) && !err.contains(&old),
        "{err}"
    );
    assert!(!s.completed_wals.join(&second).exists());
}

/// The key `--ssh-add-key` installs runs walmgr's receiving end and nothing else;
/// `--ssh-remove-key` revokes it.
#[test]
fn the_installed_key_runs_only_xserve_and_remove_key_revokes_it() {
    let s = Shipping::over_ssh(
        WALMGR,
        &Pg::major(15),
        "ssh-forced",
        &["--wal-segsize=1"],
        "",
    );
    fs::create_dir_all(&s.completed_wals).unwrap();
    chown_to_postgres(&s.completed_wals);
    let key = s.dir.join("master_key");
    let known_hosts = s.dir.join("known_hosts");
    let authorized = fs::read_to_string(s.sshd().authorized_keys()).unwrap();
    assert!(
        authorized.starts_with("restrict,command=\""),
        "{authorized}"
    );
    let mode = fs::metadata(s.sshd().authorized_keys())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "authorized_keys mode {mode:o}");

    let marker = s.dir.join("must-not-exist");
    for command in ["ls /", &format!("touch {}", marker.display())] {
        let out = Sshd::ssh(s.sshd().port(), &key, &known_hosts, command);
        assert!(!out.status.success(), "{command} ran");
        assert!(
            out.stdout.is_empty(),
            "{command} printed {}",
            text(&out.stdout)
        );
        assert!(text(&out.stderr).contains("may only run walmgr's receiving end"));
    }
    assert!(!marker.exists());

    let segment = s.master.switch_wal();
    // A standby whose own config is broken: the master's error carries what it said.
    let good = fs::read_to_string(&s.slave_config).unwrap();
    fs::write(&s.slave_config, format!("{good}no_such_key = 1\n")).unwrap();
    let err = xarchive(&s, &segment, &[]).fails_with(1);
    assert!(
        err.contains("the standby said") && err.contains("no_such_key"),
        "{err}"
    );
    fs::write(&s.slave_config, good).unwrap();
    xarchive(&s, &segment, &[]).ok();

    let home = s.sshd().home().to_str().unwrap().to_owned();
    let public = format!(
        "--ssh-remove-key={}",
        s.dir.join("master_key.pub").display()
    );
    s.walmgr()
        .arg(&public)
        .env("HOME", &home)
        .as_postgres()
        .ok();
    let next = s.master.switch_wal();
    let err = xarchive(&s, &next, &[]).fails_with(1);
    assert!(err.contains("did not accept the key"), "{err}");
    assert!(!Sshd::ssh(s.sshd().port(), &key, &known_hosts, "xserve")
        .status
        .success());
}

/// The quick start as written: `--ssh-keygen --init-master --slave` on the master,
/// `--init-slave --ssh-add-key` on the standby, trust the host key, setup, restart: the
/// configs work as written and a standby replays what the master archived.
#[test]
fn init_master_and_init_slave_write_configs_that_work_as_written() {
    let pg = Pg::major(15);
    let s = Shipping::new(WALMGR, &pg, "ssh-init", &["--wal-segsize=1"]);
    let sshd = Sshd::start(&s.dir, "standby");
    s.context().log("sshd log of the standby", sshd.log_path());
    let master_home = s.dir.mkdir("master-home");
    let home = |p: &Path| p.to_str().unwrap().to_owned();
    let master_conf = s.dir.join("master-conf");
    let slave_conf = s.dir.join("slave-conf");

    let public_key = s
        .walmgr()
        .args([
            "--ssh-keygen",
            "--init-master",
            "--slave",
            &format!("postgres@127.0.0.1:{}", sshd.port()),
            "--config-dir",
            path(&master_conf),
        ])
        .env("HOME", home(&master_home))
        .env("PGDATA", &s.master.data)
        .as_postgres()
        .ok();
    assert!(public_key.starts_with("ssh-ed25519 "), "{public_key}");
    let master_toml = master_conf.join("wal-master.toml");
    // Without --pgdata or $PGDATA, the running master would be found by its postmaster.
    let running = walmgr_core::setup::cluster_location::running_data_dirs().unwrap();
    assert!(running.contains(&s.master.data), "{running:?}");

    // The standby: a base backup set to replay through the config --init-slave will write,
    // which has run once with its own port and socket (postmaster.opts keeps them).
    let slave_toml = slave_conf.join("wal-slave.toml");
    let standby = Cluster::base_backup_of(&s.master, &s.dir, "standby");
    s.context().log("server log of the standby", &standby.log);
    standby.set(&format!(
        "restore_command = '{} {} xrestore %f %p %r'\nhot_standby = on\n\
         wal_retrieve_retry_interval = '200ms'",
        s.walmgr_bin().display(),
        slave_toml.display()
    ));
    let signal = standby.data.join("standby.signal");
    fs::write(&signal, "").unwrap();
    chown_to_postgres(&signal);
    standby.start();
    standby.stop();
    let pubkey = master_home.join(".ssh/id_ed25519.pub");
    s.walmgr()
        .args([
            "--init-slave",
            &format!("--ssh-add-key={}", pubkey.display()),
            "--pgdata",
            path(&standby.data),
            "--config-dir",
            path(&slave_conf),
        ])
        .env("HOME", home(sshd.home()))
        .as_postgres()
        .ok();
    // A second run that would write something else leaves the config alone.
    let again = s
        .walmgr()
        .args([
            "--init-slave",
            "--primary-conninfo=host=elsewhere",
            "--pgdata",
            path(&standby.data),
            "--config-dir",
            path(&slave_conf),
        ])
        .env("HOME", home(sshd.home()))
        .as_postgres()
        .fails_with(1);
    assert!(again.contains("already exists and differs"));
    assert!(!fs::read_to_string(&slave_toml)
        .unwrap()
        .contains("elsewhere"));
    let slave = walmgr_core::config::Config::load(&slave_toml, &[]).expect("wal-slave.toml loads");
    assert_eq!(slave.slave_data.as_deref(), Some(standby.data.as_path()));
    let start = slave
        .slave_start_cmd
        .expect("--init-slave writes slave_start_cmd");

    // The DBA trusts the standby's host key after checking its fingerprint.
    let known_hosts = master_home.join(".ssh/known_hosts");
    fs::write(&known_hosts, format!("{}\n", sshd.known_hosts_line())).unwrap();
    chown_to_postgres(&known_hosts);

    let setup = s
        .walmgr()
        .args([path(&master_toml), "setup"])
        .env("HOME", home(&master_home))
        .as_postgres()
        .ok();
    assert!(setup.contains("restart PostgreSQL"), "{setup}");
    s.master.restart();

    s.master.pgbench(&["-i", "-s", "2", "-q"]);
    let last = s.master.switch_wal();
    let archive: PathBuf = sshd.home().join("walshipping/logs.complete");
    s.master
        .wait_until(&format!("{last} archived over SSH"), WAIT, || {
            archive.join(&last).exists()
        });

    // Started the way walmgr restore and boot will start it.
    s.command("/bin/sh").args(["-c", &start]).as_postgres().ok();
    let expected = pgbench_aggregate(&s.master);
    s.master.switch_wal();
    standby.wait_until(
        "the standby replays what was archived over SSH",
        WAIT,
        || standby.try_connect().is_ok() && pgbench_aggregate(&standby) == expected,
    );
}
