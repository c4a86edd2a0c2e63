//! Smoke tests of the test harness itself: clusters of every installed major come up, take
//! writes and pgbench load, and are torn down even when a test panics; the sshd fixture lets
//! postgres in by key, refuses a changed host key, and drops sessions on demand.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use walmgr_tests::{pid_alive, Cluster, Context, Pg, Sshd, TestCommand, TestDir};

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

/// `ssh postgres@127.0.0.1 <command>` run as postgres with `key`, trusting only the host keys
/// in `known_hosts`, with no config file or agent (nothing from postgres's real ~/.ssh).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `ssh` and returns its stdout; panics, with both streams and the sshd log, unless it
/// succeeds.
fn ssh_ok(sshd: &Sshd, key: &Path, known_hosts: &Path, command: &str) -> String {
    let out = Sshd::ssh(sshd.port(), key, known_hosts, command);
    if !out.status.success() {
        sshd.fail(&format!(
            "ssh `{command}` failed with {}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        ));
    }
    text(&out.stdout)
}

/// A test dir with a running sshd that knows one client key, and a known_hosts file that
/// knows the sshd: (dir, sshd, private key, known_hosts).
fn sshd_with_client(label: &str) -> (TestDir, Sshd, PathBuf, PathBuf) {
    let dir = TestDir::new(label);
    let sshd = Sshd::start(&dir, "standby");
    let (key, public) = Sshd::client_key(&dir, "id_master");
    sshd.authorize(&public);
    let known_hosts = dir.write("known_hosts", format!("{}\n", sshd.known_hosts_line()));
    (dir, sshd, key, known_hosts)
}

#[test]
fn sshd_lets_postgres_in_by_key_and_survives_an_outage() {
    let (dir, sshd, key, known_hosts) = sshd_with_client("sshd");
    assert!(sshd.authorized_keys().starts_with(sshd.home()));
    assert!(sshd.home().starts_with(&dir.path));
    assert!(sshd.session_pids().is_empty(), "{:?}", sshd.session_pids());

    assert_eq!(
        ssh_ok(&sshd, &key, &known_hosts, "echo hi; id -un"),
        "hi\npostgres\n"
    );
    assert!(
        sshd.log().contains("Accepted publickey for postgres"),
        "{}",
        sshd.log()
    );

    let (stranger, _) = Sshd::client_key(&dir, "id_stranger");
    let refused = Sshd::ssh(sshd.port(), &stranger, &known_hosts, "echo hi");
    assert_eq!(refused.status.code(), Some(255));
    assert!(
        text(&refused.stderr).contains("Permission denied (publickey)"),
        "a key not in authorized_keys: {}",
        text(&refused.stderr)
    );

    let port = sshd.port();
    let listener = sshd.pid().expect("listener pid of a running sshd");
    sshd.stop();
    assert!(!pid_alive(listener), "listener {listener} survived stop()");
    assert!(sshd.pid().is_none());
    assert_eq!(
        TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| e.kind())
            .err(),
        Some(ErrorKind::ConnectionRefused)
    );
    let down = Sshd::ssh(port, &key, &known_hosts, "echo hi");
    assert_eq!(down.status.code(), Some(255));
    assert!(
        text(&down.stderr).contains("Connection refused"),
        "{}",
        text(&down.stderr)
    );

    sshd.start_again();
    assert_eq!(sshd.port(), port);
    assert_eq!(ssh_ok(&sshd, &key, &known_hosts, "echo hi"), "hi\n");
}

#[test]
fn ssh_refuses_sshd_after_a_host_key_change() {
    let (dir, sshd, key, known_hosts) = sshd_with_client("sshd-hostkey");
    let old_key = sshd.host_key_pub();
    assert!(
        sshd.known_hosts_line()
            .starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 AAAA", sshd.port())),
        "{}",
        sshd.known_hosts_line()
    );
    assert_eq!(ssh_ok(&sshd, &key, &known_hosts, "echo hi"), "hi\n");

    sshd.new_host_key();
    assert_ne!(sshd.host_key_pub(), old_key);
    let out = Sshd::ssh(sshd.port(), &key, &known_hosts, "echo hi");
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{stderr}"
    );
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
    assert!(out.stdout.is_empty());

    let known_hosts = dir.write("known_hosts", format!("{}\n", sshd.known_hosts_line()));
    assert_eq!(ssh_ok(&sshd, &key, &known_hosts, "echo hi"), "hi\n");
}

/// `sleep <secs>` run over ssh from another thread.
struct RemoteSleep {
    /// The ssh client's output, sent when it exits.
    client: mpsc::Receiver<Output>,
    /// The remote sleep.
    sleep: i32,
    /// Its parent, the session's `sshd: postgres@notty`.
    session_child: i32,
}

impl RemoteSleep {
    /// Starts it and waits until the remote sleep runs.
    fn start(sshd: &Sshd, dir: &TestDir, key: &Path, known_hosts: &Path, secs: u32) -> Self {
        let marker = dir.join(format!("sleep-{}.pids", sshd.port()));
        let _ = std::fs::remove_file(&marker);
        // The shell writes its pid and its parent's, then becomes the sleep.
        let command = format!("echo $$ $PPID > {}; exec sleep {secs}", marker.display());
        let (tx, client) = mpsc::channel();
        let (port, key, known_hosts) = (sshd.port(), key.to_path_buf(), known_hosts.to_path_buf());
        std::thread::spawn(move || {
            let _ = tx.send(Sshd::ssh(port, &key, &known_hosts, &command));
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&marker).unwrap_or_default();
            let pids: Vec<i32> = text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            if let [sleep, session_child] = pids[..] {
                return RemoteSleep {
                    client,
                    sleep,
                    session_child,
                };
            }
            if Instant::now() >= deadline {
                sshd.fail("the remote sleep did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The ssh client's output; panics if it is still running after 20 s.
    fn client_output(&self, sshd: &Sshd) -> Output {
        self.client
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| sshd.fail("ssh client still running after 20 s"))
    }

    /// Asserts that the ssh client exited because its connection dropped (well before its
    /// `sleep 60` could end), and that the remote processes are gone, zombies included.
    fn assert_dropped(&self, sshd: &Sshd) {
        let out = self.client_output(sshd);
        assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
        assert!(gone(self.sleep), "remote sleep {} survived", self.sleep);
        assert!(gone(self.session_child), "{} survived", self.session_child);
    }
}

/// True once `pid` has left the process table (a zombie counts as present).
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn sshd_drops_established_sessions_on_kill_sessions_and_stop() {
    let (dir, sshd, key, known_hosts) = sshd_with_client("sshd-sessions");
    let listener = sshd.pid().expect("listener pid of a running sshd");

    let remote = RemoteSleep::start(&sshd, &dir, &key, &known_hosts, 60);
    let sessions = sshd.session_pids();
    assert_eq!(sessions.len(), 1, "one connection, one sshd: {sessions:?}");
    sshd.kill_sessions();
    remote.assert_dropped(&sshd);
    assert!(sessions.iter().all(|&p| gone(p)), "{sessions:?}");
    assert!(sshd.session_pids().is_empty(), "{:?}", sshd.session_pids());
    // The listener stayed: same process, new logins work.
    assert_eq!(sshd.pid(), Some(listener));
    assert_eq!(ssh_ok(&sshd, &key, &known_hosts, "echo hi"), "hi\n");

    let remote = RemoteSleep::start(&sshd, &dir, &key, &known_hosts, 60);
    let sessions = sshd.session_pids();
    sshd.stop();
    remote.assert_dropped(&sshd);
    assert!(sessions.iter().all(|&p| gone(p)), "{sessions:?}");
    assert!(gone(listener));
}

#[test]
fn a_session_that_ends_leaves_no_zombie_behind() {
    let (dir, sshd, key, known_hosts) = sshd_with_client("sshd-zombie");
    let remote = RemoteSleep::start(&sshd, &dir, &key, &known_hosts, 1);
    let out = remote.client_output(&sshd);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // sshd's monitor exits without reaping this child; its zombie comes to the test process.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(remote.session_child) {
        assert!(
            Instant::now() < deadline,
            "session process {} not reaped",
            remote.session_child
        );
        sshd.session_pids(); // reaps
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_panicking_test_still_tears_its_sshd_down() {
    let (tx, rx) = mpsc::channel::<(i32, u16)>();
    let result = std::thread::spawn(move || {
        let dir = TestDir::new("sshd-panics");
        let sshd = Sshd::start(&dir, "doomed");
        let pid = sshd.pid().expect("listener pid of a running sshd");
        tx.send((pid, sshd.port()))
            .expect("send pid to the test thread");
        panic!("deliberate panic with sshd {pid} running");
    })
    .join();
    assert!(result.is_err(), "the thread was supposed to panic");
    let (pid, port) = rx.recv().expect("the thread sent the pid before panicking");
    assert!(!pid_alive(pid), "sshd {pid} still alive after the panic");
    assert_eq!(
        TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| e.kind())
            .err(),
        Some(ErrorKind::ConnectionRefused)
    );
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .expect_err("the command was supposed to fail the test");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn a_failing_command_reports_what_ran_what_it_said_and_its_context() {
    let dir = TestDir::new("report");
    let archive = dir.mkdir("archive");
    dir.write("archive/000000010000000000000001", "x");
    let log = dir.write(
        "server.log",
        "first line\nLOG:  the line that explains it\n",
    );
    let context = Context::default();
    context.listing("completed_wals", &archive);
    context.log("server log", &log);
    let failing = TestCommand::new("/bin/sh")
        .args(["-c", "echo on stdout; echo on stderr >&2; exit 3"])
        .env("HOME", "/nonexistent")
        .as_postgres()
        .with_context(&context);

    assert_eq!(failing.clone().fails_with(3), "on stderr\n");
    let report = panic_message(|| {
        failing.ok();
    });
    for part in [
        "runuser -u postgres -- /usr/bin/env HOME=/nonexistent /bin/sh -c",
        "exit status: 3",
        "--- stdout ---\non stdout",
        "--- stderr ---\non stderr",
        "--- completed_wals: ",
        "000000010000000000000001 1",
        "--- server log: ",
        "LOG:  the line that explains it",
    ] {
        assert!(report.contains(part), "{part:?} missing from:\n{report}");
    }

    let report = panic_message(|| {
        TestCommand::new("/bin/true").fails_with(1);
    });
    assert!(
        report.contains("expected to fail with exit code 1"),
        "{report}"
    );
}

#[test]
fn commands_run_in_tmp_as_root_or_postgres_with_the_environment_they_are_given() {
    // runuser resets HOME to postgres's own; the harness passes a test's HOME through.
    let said = TestCommand::new("/bin/sh")
        .args(["-c", "id -un; pwd; echo \"PGPORT=$PGPORT HOME=$HOME\""])
        .env("PGPORT", "5499")
        .env("HOME", "/tmp/home")
        .as_postgres()
        .ok();
    assert_eq!(said, "postgres\n/tmp\nPGPORT=5499 HOME=/tmp/home\n");
    let said = TestCommand::new("/bin/sh")
        .args(["-c", "id -un; pwd; echo \"PGPORT=$PGPORT\""])
        .env("PGPORT", "5499")
        .ok();
    assert_eq!(said, "root\n/tmp\nPGPORT=5499\n");
}

#[test]
fn a_command_that_outlives_its_timeout_is_killed_with_its_group() {
    let started = Instant::now();
    let report = panic_message(|| {
        TestCommand::new("/bin/sh")
            .args(["-c", "echo started; sleep 60 & sleep 60"])
            .timeout(Duration::from_millis(500))
            .run();
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for the sleeps"
    );
    assert!(report.contains("did not finish within"), "{report}");
    assert!(report.contains("started"), "{report}");
}

/// Which part a copy of this test binary plays in
/// `what_a_killed_test_process_left_behind_is_removed_by_the_next_one`.
const CHILD_ROLE: &str = "WALMGR_HARNESS_TEST_CHILD";
const KILLED_TEST: &str = "what_a_killed_test_process_left_behind_is_removed_by_the_next_one";
/// Starts what the test process to be killed says it left running.
const LEFT_RUNNING: &str = "left running:";

/// The arguments with which a copy of this test binary runs only KILLED_TEST.
const ONLY_KILLED_TEST: [&str; 4] = ["--exact", KILLED_TEST, "--nocapture", "--test-threads=1"];

/// A test process with a cluster and an sshd running in its test dir, which is then killed
/// (SIGKILL, as a timeout kills one) before any drop runs: its dir, postmaster and sshd
/// stay behind. The next test process to start removes them. A dir whose test process still
/// runs, and one that names no test process, stay.
#[test]
fn what_a_killed_test_process_left_behind_is_removed_by_the_next_one() {
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("to be killed") => return run_until_killed(),
        Ok("next") => {
            // Every test starts so: the first TestDir of a test process sweeps.
            let _dir = TestDir::new("next");
            return;
        }
        _ => {}
    }
    let live = TestDir::new("live-owner");
    let no_owner = tempfile::Builder::new()
        .prefix("wm-no-owner-")
        .tempdir_in("/tmp")
        .expect("a test dir that names no owner");

    let log = live.join("killed-test.log");
    let mut doomed = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(ONLY_KILLED_TEST)
        .env(CHILD_ROLE, "to be killed")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log of the test process to be killed"))
        .spawn()
        .expect("start the test process to be killed");
    let stdout = doomed.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let said = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest's own "test NAME ... " may start the line.
            .find_map(|l| l.split_once(LEFT_RUNNING).map(|(_, said)| said.to_owned()));
        let _ = tx.send(said);
    });
    let said = rx.recv_timeout(Duration::from_secs(120));
    let Ok(Some(said)) = said else {
        let _ = doomed.kill();
        let _ = doomed.wait();
        panic!(
            "the test process to be killed never said what it left running:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let mut fields = said.split_whitespace();
    let mut next = |what: &str| {
        fields
            .next()
            .unwrap_or_else(|| panic!("no {what} in {said:?}"))
            .to_owned()
    };
    let dir = PathBuf::from(next("dir"));
    let postmaster: i32 = next("postmaster pid").parse().expect("postmaster pid");
    let sshd: i32 = next("sshd pid").parse().expect("sshd pid");
    doomed.kill().expect("SIGKILL the test process");
    doomed.wait().expect("reap the killed test process");
    assert!(dir.is_dir() && pid_alive(postmaster) && pid_alive(sshd));

    TestCommand::new(std::env::current_exe().expect("this test binary"))
        .args(ONLY_KILLED_TEST)
        .env(CHILD_ROLE, "next")
        .ok();
    assert!(
        !pid_alive(postmaster),
        "postmaster {postmaster} left running"
    );
    assert!(!pid_alive(sshd), "sshd {sshd} left running");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        live.path.is_dir(),
        "the dir of a running test process was removed"
    );
    assert!(
        no_owner.path().is_dir(),
        "a dir that names no owner was removed"
    );
}

/// The test process that gets killed: says what it runs, then waits (on its own it would
/// give up after two minutes, and clean up).
fn run_until_killed() {
    let dir = TestDir::new("killed");
    let pg = Pg::installed().remove(0);
    let cluster = Cluster::init(&pg, &dir, "db", &[]);
    cluster.start();
    let sshd = Sshd::start(&dir, "sshd");
    println!(
        "{LEFT_RUNNING} {} {} {}",
        dir.path.display(),
        cluster.pid().expect("a running postmaster"),
        sshd.pid().expect("a running sshd")
    );
    std::thread::sleep(Duration::from_secs(120));
}
