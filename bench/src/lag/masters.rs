//! The masters the variants run on, one of each per PostgreSQL major: walmgr's worker
//! shipping to a local standby directory, the same over SSH (harness scenarios), and a plain
//! master streaming to `pg_receivewal --synchronous`. All three get the same settings and the
//! same pgbench database, and what the sampler, the CPU counters and the drain need from each.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::types::PgLsn;
use walmgr_tests::shipping::Shipping;
use walmgr_tests::{pid_alive, send_signal, Cluster, Pg, Sig, TestDir};

use crate::cpu::descendants;
use crate::log;

/// Appended to every master's postgresql.conf, so that the variants differ only in who
/// ships the WAL. Shipping::new already keeps 4 GB of WAL and checkpoints hourly; the bench
/// checkpoints before every variant itself.
const SETTINGS: &str = "# walmgr lag benchmark: the same on every master\n\
     shared_buffers = 256MB\n\
     wal_compression = off\n\
     # Autovacuum's WAL would land in some variants and not others.\n\
     autovacuum = off\n\
     synchronous_commit = on";

/// pgbench -i's scale: 1M accounts, about 160 MB, a few seconds to load.
pub const SCALE: &str = "10";

/// What a variant needs from the master it runs on.
pub trait Source {
    fn cluster(&self) -> &Cluster;
    /// One row: the master's flush `pg_lsn`, the `pg_lsn` the standby acknowledged (or NULL).
    fn sample_sql(&self) -> &'static str;
    /// The process that ships: walmgr's worker, or the walsender serving pg_receivewal.
    fn sender_pid(&self) -> i32;
    /// The processes on the standby's side, if they are not the sender: sshd's sessions and
    /// `walmgr xserve`, or pg_receivewal.
    fn receiver_pids(&self) -> Option<Vec<i32>>;
    /// Bytes shipped so far: walmgr.status's partial_shipped_bytes (which counts a segment
    /// restarted from offset 0 again), or the LSN pg_receivewal flushed.
    fn shipped(&self) -> u64;
    /// Errors the shipping loop counted so far (walmgr only).
    fn errors(&self) -> Option<i64>;
}

/// (flush, acknowledged) now, through `sql` on a connection of its own.
pub fn read_lsns(source: &dyn Source) -> (u64, Option<u64>) {
    let row = source
        .cluster()
        .connect()
        .query_one(source.sample_sql(), &[])
        .unwrap_or_else(|e| source.cluster().fail(&format!("read the LSNs: {e}")));
    let flush: PgLsn = row.get(0);
    let ack: Option<PgLsn> = row.get(1);
    (u64::from(flush), ack.map(u64::from))
}

pub fn caught_up(source: &dyn Source) -> bool {
    let (flush, ack) = read_lsns(source);
    ack.is_some_and(|a| a >= flush)
}

/// Writes a commit record (so that there is WAL to ship) and waits until the standby holds
/// everything flushed.
pub fn wait_caught_up(source: &dyn Source, within: Duration) {
    let cluster = source.cluster();
    cluster.execute("SELECT txid_current()");
    cluster.wait_until("the standby to acknowledge all flushed WAL", within, || {
        caught_up(source)
    });
}

/// pgbench -i at [`SCALE`], then a checkpoint.
pub fn load_database(cluster: &Cluster) {
    cluster.pgbench(&["-i", "-s", SCALE, "-q"]);
    cluster.checkpoint();
}

/// A harness [`Shipping`] scenario whose worker ships in-progress WAL, to a local directory
/// or over SSH to a harness sshd on 127.0.0.1.
pub struct WalmgrMaster {
    pub scenario: Shipping,
    pub ssh: bool,
}

impl WalmgrMaster {
    /// The scenario, set up (`walmgr master.toml setup`: walmgr preloaded, archiving through
    /// the module), with the bench's settings.
    pub fn start(cli: &Path, pg: &Pg, ssh: bool) -> WalmgrMaster {
        let label = format!("lag{}-{}", pg.major, if ssh { "ssh" } else { "local" });
        log(&format!("{label}: master, walmgr setup"));
        let scenario = if ssh {
            Shipping::over_ssh(cli, pg, &label, &[], "")
        } else {
            Shipping::new(cli, pg, &label, &[])
        };
        scenario.master.set(SETTINGS);
        // Restarts the master, which applies SETTINGS too.
        scenario.setup();
        WalmgrMaster { scenario, ssh }
    }

    pub fn transport(&self) -> &'static str {
        if self.ssh {
            "ssh"
        } else {
            "local"
        }
    }

    /// Sets loop_delay in master.toml and reloads: the worker rereads its config on SIGHUP
    /// (within its 100 ms sleep slice) and starts its segment again from offset 0; then
    /// waits until it caught up under the new setting.
    pub fn set_loop_delay(&self, seconds: f64) {
        let config = &self.scenario.master_config;
        let text =
            fs::read_to_string(config).unwrap_or_else(|e| panic!("read {}: {e}", config.display()));
        let mut kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("loop_delay"))
            .collect();
        let line = format!("loop_delay = {seconds:?}");
        kept.push(&line);
        fs::write(config, kept.join("\n") + "\n")
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        self.scenario.master.reload();
        // The reload is noticed within one sleep slice (100 ms); its "reloading the config"
        // goes to the server log at LOG, below the harness's log_min_messages.
        std::thread::sleep(Duration::from_millis(500));
        wait_caught_up(self, Duration::from_secs(60));
    }

    fn status_i64(&self, column: &str) -> i64 {
        self.scenario
            .master
            .query_one::<Option<i64>>(&format!("SELECT {column}::bigint FROM walmgr.status"))
            .unwrap_or(0)
    }
}

impl Source for WalmgrMaster {
    fn cluster(&self) -> &Cluster {
        &self.scenario.master
    }

    fn sample_sql(&self) -> &'static str {
        "SELECT pg_current_wal_flush_lsn(), partial_lsn FROM walmgr.status"
    }

    fn sender_pid(&self) -> i32 {
        let pid = self.status_i64("shipper_pid") as i32;
        if pid <= 0 || !pid_alive(pid) {
            self.scenario.master.fail(&format!(
                "walmgr.status names no live worker (shipper_pid {pid}); children: {:?}",
                self.scenario.master.children()
            ));
        }
        pid
    }

    fn receiver_pids(&self) -> Option<Vec<i32>> {
        let sshd = self.scenario.sshd.as_ref()?;
        Some(sshd.pid().map(descendants).unwrap_or_default())
    }

    fn shipped(&self) -> u64 {
        self.status_i64("partial_shipped_bytes").max(0) as u64
    }

    fn errors(&self) -> Option<i64> {
        Some(self.status_i64("shipper_errors"))
    }
}

/// A plain master (no walmgr) and `pg_receivewal --synchronous` streaming its WAL into a
/// directory. Field order is drop order: pg_receivewal, the master, then their directory.
pub struct Receivewal {
    process: Receiver,
    pub cluster: Cluster,
    _dir: TestDir,
}

impl Receivewal {
    pub fn start(pg: &Pg) -> Receivewal {
        let dir = TestDir::new(&format!("lag{}-recv", pg.major));
        log(&format!("lag{}-recv: master, pg_receivewal", pg.major));
        let cluster = Cluster::init(pg, &dir, "master", &[]);
        // What Shipping::new sets, then the bench's settings; no archiving: pg_receivewal
        // is the only consumer of the WAL (the walmgr masters also archive whole segments).
        cluster.set("wal_keep_size = '4GB'\nmax_wal_size = '4GB'\ncheckpoint_timeout = '1h'");
        cluster.set(SETTINGS);
        cluster.start();
        let process = Receiver::start(pg, &cluster, &dir);
        let r = Receivewal {
            process,
            cluster,
            _dir: dir,
        };
        r.cluster.wait_until(
            "pg_receivewal to stream (pg_stat_replication)",
            Duration::from_secs(30),
            || {
                r.process.check_alive(&r.cluster);
                r.cluster.query_one::<i64>(
                    "SELECT count(*) FROM pg_stat_replication \
                     WHERE application_name = 'pg_receivewal' AND state = 'streaming'",
                ) == 1
            },
        );
        r
    }

    pub fn check_alive(&self) {
        self.process.check_alive(&self.cluster);
    }
}

impl Source for Receivewal {
    fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn sample_sql(&self) -> &'static str {
        "SELECT pg_current_wal_flush_lsn(), (SELECT flush_lsn FROM pg_stat_replication \
         WHERE application_name = 'pg_receivewal')"
    }

    fn sender_pid(&self) -> i32 {
        let pids: Vec<i32> = self.cluster.query_column(
            "SELECT pid FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
        );
        match pids.as_slice() {
            [pid] => *pid,
            other => self.cluster.fail(&format!(
                "expected one walsender for pg_receivewal, found {other:?}; its log:\n{}",
                self.process.log_text()
            )),
        }
    }

    fn receiver_pids(&self) -> Option<Vec<i32>> {
        Some(vec![self.process.pid])
    }

    fn shipped(&self) -> u64 {
        let (_, ack) = read_lsns(self);
        ack.unwrap_or(0)
    }

    fn errors(&self) -> Option<i64> {
        None
    }
}

/// pg_receivewal, run as postgres; SIGTERMed (then SIGKILLed) when dropped.
struct Receiver {
    child: Child,
    /// pg_receivewal itself (runuser may run it as its child).
    pid: i32,
    log: PathBuf,
}

impl Receiver {
    fn start(pg: &Pg, cluster: &Cluster, dir: &TestDir) -> Receiver {
        let dest = dir.mkdir("receivewal");
        let log = dir.write("pg_receivewal.log", "");
        let out = fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("dup {}: {e}", log.display()));
        let program = pg.bin("pg_receivewal");
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"])
            .arg(&program)
            .arg("-D")
            .arg(&dest)
            .arg("-h")
            .arg(&cluster.socket_dir)
            .args(["-p", &cluster.port.to_string(), "-U", "postgres"])
            // fsync after every write, and report the flush position at once.
            .arg("--synchronous")
            // Fail rather than reconnect quietly: a gap would make its lag look smaller.
            .args(["--no-loop", "--no-password"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/tmp")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start runuser -u postgres -- {}: {e}",
                program.display()
            )
        });
        let runuser = child.id() as i32;
        let mut receiver = Receiver {
            child,
            pid: runuser,
            log,
        };
        // runuser forks when it opens a PAM session: then pg_receivewal is its child.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if comm(runuser).as_deref() == Some("pg_receivewal") {
                break;
            }
            if let Some(pid) = descendants(runuser)
                .into_iter()
                .find(|&p| comm(p).as_deref() == Some("pg_receivewal"))
            {
                receiver.pid = pid;
                break;
            }
            receiver.check_alive(cluster);
            if Instant::now() > deadline {
                cluster.fail("pg_receivewal did not start within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        receiver
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn check_alive(&self, cluster: &Cluster) {
        if !pid_alive(self.pid) {
            cluster.fail(&format!(
                "pg_receivewal (pid {}) exited; its log {}:\n{}",
                self.pid,
                self.log.display(),
                self.log_text()
            ));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        send_signal(self.pid, Sig::Term);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) && !pid_alive(self.pid) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        send_signal(self.pid, Sig::Kill);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command name of `pid` (/proc/PID/comm).
fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}
