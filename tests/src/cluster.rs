//! One PostgreSQL server in a test directory, run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use postgres::types::FromSqlOwned;
use postgres::{Client, NoTls};

use crate::command::{log_tail, TestCommand};
use crate::dirs::TestDir;
use crate::netns::Host;
use crate::pg::Pg;
use crate::process::{children_of, free_port, pid_alive, signal, wait_gone};

/// How long `connect` keeps retrying while a server starts up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// `pg_ctl -t` for start, stop, restart and promote.
const PG_CTL_WAIT_SECS: &str = "120";
/// How long a new streaming standby may take to connect and catch up.
const STREAMING_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of server log quoted in failure messages.
const LOG_LINES: usize = 30;
/// Longest Unix socket path PostgreSQL accepts (sizeof(sun_path) - 1).
const MAX_SOCKET_PATH: usize = 107;
/// Starts the harness's block at the end of pg_hba.conf of a cluster in a host.
const HBA_MARK: &str = "# --- walmgr test harness: the link between the two hosts ---";

/// How a cluster in one of [`crate::TwoHosts`] authenticates connections from the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAuth {
    Trust,
    ScramSha256,
}

/// One PostgreSQL cluster (data directory + server) in a [`TestDir`].
///
/// Dropping it tears the server down, also while a test panics: `pg_ctl stop -m immediate`,
/// then SIGKILL of the postmaster and its children if they are still alive. While panicking,
/// drop also prints the tail of the server log.
///
/// A cluster made with [`Cluster::init_on`] (or `base_backup_on`, `planned_on`) runs in one of
/// [`crate::TwoHosts`]: every program the harness runs for it runs in that host, and the server
/// listens on the host's address besides its Unix socket, which the test process still uses.
#[derive(Debug)]
pub struct Cluster {
    pub pg: Pg,
    pub name: String,
    /// The host it runs in; None: the machine's own namespace, Unix socket only.
    pub host: Option<Host>,
    pub data: PathBuf,
    pub port: u16,
    pub socket_dir: PathBuf,
    /// Server log (`pg_ctl -l`), `<dir>/<name>.log`.
    pub log: PathBuf,
}

impl Cluster {
    /// `initdb` (as postgres, `-A trust --no-sync --no-locale -E UTF8 -U postgres`, then
    /// `initdb_args`, e.g. `["--wal-segsize=1"]`) into `dir/<name>`, with the harness's base
    /// settings (port, socket dir, logging, wal_level = replica, fsync = on, ...) appended to
    /// postgresql.conf. The server is not started.
    pub fn init(pg: &Pg, dir: &TestDir, name: &str, initdb_args: &[&str]) -> Cluster {
        Cluster::init_in(None, pg, dir, name, initdb_args)
    }

    /// [`Cluster::init`] for a server in `host`: it listens on the host's address (and its
    /// Unix socket), and pg_hba.conf lets the link in, for every database and for
    /// replication, with `trust` (see [`Cluster::peer_auth`]).
    pub fn init_on(
        host: &Host,
        pg: &Pg,
        dir: &TestDir,
        name: &str,
        initdb_args: &[&str],
    ) -> Cluster {
        let c = Cluster::init_in(Some(host), pg, dir, name, initdb_args);
        c.peer_auth(PeerAuth::Trust);
        c
    }

    fn init_in(
        host: Option<&Host>,
        pg: &Pg,
        dir: &TestDir,
        name: &str,
        initdb_args: &[&str],
    ) -> Cluster {
        let c = Cluster::new_in(host, pg, dir, name);
        let mut args = vec![
            "-D",
            path_str(&c.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--no-locale",
            "-E",
            "UTF8",
        ];
        args.extend_from_slice(initdb_args);
        c.command(pg.bin("initdb")).args(&args).as_postgres().ok();
        c.set(&format!(
            "# --- walmgr test harness ---\n\
             logging_collector = off\n\
             fsync = on\n\
             max_wal_senders = 5\n\
             wal_level = replica\n\
             log_min_messages = warning\n\
             log_line_prefix = '%m [%p] %b '\n\
             shared_buffers = 32MB\n\
             max_connections = 30\n\
             {}",
            c.address_conf()
        ));
        c
    }

    /// A copy of `primary` made with `pg_basebackup -X fetch -c fast` into `dir/<name>`, with its
    /// own port, socket dir and log. It inherits the primary's postgresql.conf (override with
    /// [`Cluster::set`]); it is not started and has no standby.signal/recovery.signal yet.
    pub fn base_backup_of(primary: &Cluster, dir: &TestDir, name: &str) -> Cluster {
        Cluster::base_backup_with(primary, dir, name, &[])
    }

    /// [`Cluster::base_backup_of`] with extra pg_basebackup arguments; `-X`/`--wal-method` in
    /// them replaces the default `-X fetch` (e.g. `["-X", "none"]` for a backup that needs the
    /// WAL archive to become consistent).
    pub fn base_backup_with(
        primary: &Cluster,
        dir: &TestDir,
        name: &str,
        extra_args: &[&str],
    ) -> Cluster {
        Cluster::base_backup_in(None, primary, dir, name, extra_args)
    }

    /// [`Cluster::base_backup_with`] for a copy in `host`: pg_basebackup runs in that host and,
    /// when the primary runs in the other one, connects to it over the link by TCP (which
    /// needs the replication line [`Cluster::init_on`] puts in pg_hba.conf). The copy listens
    /// on its own host's address.
    pub fn base_backup_on(
        host: &Host,
        primary: &Cluster,
        dir: &TestDir,
        name: &str,
        extra_args: &[&str],
    ) -> Cluster {
        Cluster::base_backup_in(Some(host), primary, dir, name, extra_args)
    }

    fn base_backup_in(
        host: Option<&Host>,
        primary: &Cluster,
        dir: &TestDir,
        name: &str,
        extra_args: &[&str],
    ) -> Cluster {
        let c = Cluster::new_in(host, &primary.pg, dir, name);
        let port = primary.port.to_string();
        let primary_host = match (&primary.host, host) {
            (Some(theirs), Some(ours)) if theirs != ours => theirs.addr.to_string(),
            _ => path_str(&primary.socket_dir).to_owned(),
        };
        let mut args = vec![
            "-D",
            path_str(&c.data),
            "-h",
            &primary_host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-c",
            "fast",
            "--no-sync",
        ];
        let has_wal_method = extra_args
            .iter()
            .any(|a| *a == "-X" || a.starts_with("--wal-method") || a.starts_with("-X"));
        if !has_wal_method {
            args.extend_from_slice(&["-X", "fetch"]);
        }
        args.extend_from_slice(extra_args);
        let backup = c
            .command(c.pg.bin("pg_basebackup"))
            .args(&args)
            .as_postgres();
        if let Err(report) = backup.try_ok() {
            primary.fail(&report);
        }
        c.set(&format!(
            "# --- walmgr test harness: copy {name} of {} ---\n{}",
            primary.name,
            c.address_conf()
        ));
        c
    }

    /// A standby of `primary` streaming from it, as a DBA makes one: `pg_basebackup -R -X
    /// stream`, whose primary_conninfo (postgresql.auto.conf, beside standby.signal) carries
    /// `application_name`, the name synchronous_standby_names refers to. Started; returns once
    /// `primary` lists it as streaming in pg_stat_replication.
    pub fn streaming_standby_of(
        primary: &Cluster,
        dir: &TestDir,
        name: &str,
        application_name: &str,
    ) -> Cluster {
        let conninfo = format!(
            "host={} port={} user=postgres application_name={application_name}",
            primary.socket_dir.display(),
            primary.port
        );
        let c =
            Cluster::base_backup_with(primary, dir, name, &["-R", "-X", "stream", "-d", &conninfo]);
        let auto = std::fs::read_to_string(c.data.join("postgresql.auto.conf")).unwrap_or_default();
        if !auto.contains(&format!("application_name={application_name}")) {
            c.fail(&format!(
                "pg_basebackup -R wrote no application_name={application_name} into \
                 postgresql.auto.conf:\n{auto}"
            ));
        }
        c.start();
        primary.wait_until_streaming(application_name, STREAMING_TIMEOUT);
        c
    }

    /// Waits until a standby with `application_name` streams from this server.
    pub fn wait_until_streaming(&self, application_name: &str, timeout: Duration) {
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication \
             WHERE application_name = '{}' AND state = 'streaming'",
            application_name.replace('\'', "''")
        );
        self.wait_until(
            &format!("standby {application_name} streaming"),
            timeout,
            || self.query_one::<i64>(&sql) > 0,
        );
    }

    /// A cluster whose data directory something else creates (e.g. `walmgr restore`): port,
    /// socket dir and log are reserved, nothing is on disk yet.
    pub fn planned(pg: &Pg, dir: &TestDir, name: &str) -> Cluster {
        Cluster::new_in(None, pg, dir, name)
    }

    /// [`Cluster::planned`] for a server that will run in `host`.
    pub fn planned_on(host: &Host, pg: &Pg, dir: &TestDir, name: &str) -> Cluster {
        Cluster::new_in(Some(host), pg, dir, name)
    }

    /// The shell command that starts this cluster on its own port and socket whatever its
    /// postgresql.conf says (a restored master's copy names the master's), for
    /// `slave_start_cmd`. Run it as postgres (in the cluster's host, if it has one: then it
    /// also listens on that host's address, not on the one a copied config names).
    pub fn start_command(&self) -> String {
        let listen = match &self.host {
            Some(host) => format!(" -h {}", host.addr),
            None => String::new(),
        };
        format!(
            "{} -D {} -l {} -w -t {} -o '-p {} -k {}{listen}' start",
            self.pg.bin("pg_ctl").display(),
            self.data.display(),
            self.log.display(),
            PG_CTL_WAIT_SECS,
            self.port,
            self.socket_dir.display()
        )
    }

    /// `pg_ctl stop -m fast` as a shell command, for `slave_stop_cmd`.
    pub fn stop_command(&self) -> String {
        format!(
            "{} -D {} -w -m fast stop",
            self.pg.bin("pg_ctl").display(),
            self.data.display()
        )
    }

    fn new_in(host: Option<&Host>, pg: &Pg, dir: &TestDir, name: &str) -> Cluster {
        assert!(
            !name.is_empty() && !name.contains('/') && name != "." && name != "..",
            "cluster name {name:?} must be a plain file name"
        );
        let data = dir.join(name);
        assert!(
            !data.exists(),
            "{} exists already: cluster names must be unique in a TestDir",
            data.display()
        );
        let socket_dir = dir.mkdir(format!("{name}.sock"));
        let port = free_port();
        let socket_len = socket_dir
            .join(format!(".s.PGSQL.{port}.lock"))
            .as_os_str()
            .len();
        assert!(
            socket_len <= MAX_SOCKET_PATH,
            "socket path in {} would be {socket_len} bytes, over the {MAX_SOCKET_PATH} \
             PostgreSQL accepts: use a shorter cluster name or TestDir label",
            socket_dir.display()
        );
        let log = dir.write(format!("{name}.log"), "");
        Cluster {
            pg: pg.clone(),
            name: name.to_string(),
            host: host.cloned(),
            data,
            port,
            socket_dir,
            log,
        }
    }

    /// Where the server listens: its Unix socket, and its host's address if it has a host
    /// (TCP on the machine's own namespace never: that would be the real network's).
    fn address_conf(&self) -> String {
        let listen = match &self.host {
            Some(host) => host.addr.to_string(),
            None => String::new(),
        };
        format!(
            "listen_addresses = '{listen}'\nport = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.socket_dir.display()
        )
    }

    /// `program` run for this cluster: in its host, if it has one.
    fn command(&self, program: impl AsRef<Path>) -> TestCommand {
        TestCommand::new(program).on_host(self.host.as_ref())
    }

    /// Sets how connections from the link between the two hosts authenticate, for every
    /// database and for replication, by rewriting the harness's block at the end of
    /// pg_hba.conf (the link's /30: both hosts' addresses, so that a copy of this cluster in
    /// the other host lets this one in too). Reloads a running server. For
    /// [`PeerAuth::ScramSha256`] give the role a password (`ALTER ROLE ... PASSWORD`).
    pub fn peer_auth(&self, auth: PeerAuth) {
        let host = self
            .host
            .as_ref()
            .unwrap_or_else(|| self.fail("peer_auth: this cluster runs in no host"));
        let hba = self.data.join("pg_hba.conf");
        let text =
            std::fs::read_to_string(&hba).unwrap_or_else(|e| panic!("read {}: {e}", hba.display()));
        let ours = text.find(HBA_MARK).unwrap_or(text.len());
        let method = match auth {
            PeerAuth::Trust => "trust",
            PeerAuth::ScramSha256 => "scram-sha-256",
        };
        let link = host.link_cidr();
        let text = format!(
            "{}{HBA_MARK}\nhost all all {link} {method}\nhost replication all {link} {method}\n",
            &text[..ours]
        );
        // Rewritten in place: the file keeps its owner (postgres) and mode.
        std::fs::write(&hba, text).unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
        if self.pid().is_some() {
            self.reload();
        }
    }

    /// Appends `conf_lines` to postgresql.conf (later lines win). Takes effect at the next
    /// start, restart or reload, as usual.
    pub fn set(&self, conf_lines: &str) {
        use std::io::Write;
        let conf = self.data.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .unwrap_or_else(|e| panic!("open {} for append: {e}", conf.display()));
        writeln!(f, "{}", conf_lines.trim_end())
            .unwrap_or_else(|e| panic!("append to {}: {e}", conf.display()));
    }

    /// Runs `pg_ctl -D <data> args...` as postgres and returns its output (no check).
    pub fn pg_ctl(&self, args: &[&str]) -> Output {
        self.pg_ctl_command(args).run()
    }

    fn pg_ctl_command(&self, args: &[&str]) -> TestCommand {
        self.command(self.pg.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .as_postgres()
    }

    fn pg_ctl_ok(&self, args: &[&str]) {
        if let Err(e) = self.try_pg_ctl(args) {
            panic!("{e}");
        }
    }

    fn try_pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        match self.pg_ctl_command(args).try_ok() {
            Ok(_) => Ok(()),
            Err(report) => Err(format!(
                "cluster {} (PostgreSQL {}): {report}\n{}",
                self.name,
                self.pg.major,
                self.log_section()
            )),
        }
    }

    /// Starts the server and waits until it accepts connections (a standby: until pg_ctl
    /// considers it started). Panics with pg_ctl's output and the server log on failure.
    pub fn start(&self) {
        self.pg_ctl_ok(&self.start_args("start"));
    }

    /// Like [`Cluster::start`], but returns the failure (pg_ctl output + log tail) instead of
    /// panicking, for tests that expect the server not to come up.
    pub fn try_start(&self) -> Result<(), String> {
        self.try_pg_ctl(&self.start_args("start"))
    }

    fn start_args<'a>(&'a self, action: &'a str) -> Vec<&'a str> {
        let mut v = vec!["-l", path_str(&self.log), "-w", "-t", PG_CTL_WAIT_SECS];
        if action == "restart" {
            v.extend_from_slice(&["-m", "fast"]);
        }
        v.push(action);
        v
    }

    /// `pg_ctl stop -m fast`, waiting for the shutdown to complete.
    pub fn stop(&self) {
        let old = self.pid();
        self.pg_ctl_ok(&["-m", "fast", "-w", "-t", PG_CTL_WAIT_SECS, "stop"]);
        self.reap(old);
    }

    /// `pg_ctl restart -m fast`, waiting until the server is up again.
    pub fn restart(&self) {
        let old = self.pid();
        self.pg_ctl_ok(&self.start_args("restart"));
        self.reap(old);
    }

    /// Waits until a postmaster pg_ctl has stopped has left the process table (it is reparented
    /// to this process, which reaps it), so that "pid gone" holds right after stop().
    fn reap(&self, old: Option<i32>) {
        if let Some(pid) = old {
            if !wait_gone(pid, Duration::from_secs(10)) {
                self.fail(&format!("postmaster {pid} still alive after pg_ctl stop"));
            }
        }
    }

    /// `pg_ctl reload` (SIGHUP): re-reads postgresql.conf.
    pub fn reload(&self) {
        self.pg_ctl_ok(&["reload"]);
    }

    /// `pg_ctl promote -w`: ends recovery of a standby.
    pub fn promote(&self) {
        self.pg_ctl_ok(&["-w", "-t", PG_CTL_WAIT_SECS, "promote"]);
    }

    /// Crashes the server: SIGKILL to the postmaster, then waits until it and its children are
    /// gone (children exit on their own when they notice the postmaster's death; any still
    /// alive after 10 s are SIGKILLed). postmaster.pid is left behind, as in a real crash.
    pub fn kill9(&self) {
        let pid = self
            .pid()
            .unwrap_or_else(|| self.fail("kill9: the server is not running"));
        let kids = children_of(pid);
        signal(pid, libc::SIGKILL);
        if !wait_gone(pid, Duration::from_secs(10)) {
            self.fail(&format!(
                "kill9: postmaster {pid} still alive 10 s after SIGKILL"
            ));
        }
        for (kid, title) in kids {
            if !wait_gone(kid, Duration::from_secs(10)) {
                eprintln!("kill9: SIGKILL to {kid} ({title}), still alive 10 s after postmaster");
                signal(kid, libc::SIGKILL);
                wait_gone(kid, Duration::from_secs(5));
            }
        }
    }

    /// `host=<socket_dir> port=<port> user=postgres dbname=postgres`.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir.display(),
            self.port
        )
    }

    /// One connection attempt.
    pub fn try_connect(&self) -> Result<Client, postgres::Error> {
        Client::connect(&self.conninfo(), NoTls)
    }

    /// `host=<its host's address> port=<port> user=postgres dbname=postgres`: the conninfo
    /// the other host uses. Panics for a cluster in no host.
    pub fn tcp_conninfo(&self) -> String {
        let host = self
            .host
            .as_ref()
            .unwrap_or_else(|| self.fail("tcp_conninfo: this cluster runs in no host"));
        format!(
            "host={} port={} user=postgres dbname=postgres",
            host.addr, self.port
        )
    }

    /// One connection attempt over TCP from inside `from` (the other host, say), with
    /// `extra` appended to [`Cluster::tcp_conninfo`] (e.g. `"password=..."`, or "").
    /// Panics if the test process cannot enter `from`.
    pub fn try_connect_from(&self, from: &Host, extra: &str) -> Result<Client, postgres::Error> {
        let conninfo = format!("{} {extra}", self.tcp_conninfo());
        // The socket is made on a thread inside `from` and stays there; the client it
        // belongs to can be used from any thread.
        from.run_inside(|| Client::connect(&conninfo, NoTls))
            .unwrap_or_else(|e| panic!("cannot enter host {} ({}): {e}", from.role, from.netns))
    }

    /// A new connection, retrying for up to 30 s while the server starts up or is not yet
    /// accepting connections. Panics with the last error and the server log tail.
    pub fn connect(&self) -> Client {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            match self.try_connect() {
                Ok(c) => return c,
                Err(e) if Instant::now() >= deadline => self.fail(&format!(
                    "cannot connect to {} within {CONNECT_TIMEOUT:?}: {}",
                    self.conninfo(),
                    pg_error(&e)
                )),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The first column of the single row `sql` returns. Panics with the SQL, the error and the
    /// server log tail.
    pub fn query_one<T: FromSqlOwned>(&self, sql: &str) -> T {
        let row = self
            .connect()
            .query_one(sql, &[])
            .unwrap_or_else(|e| self.fail(&format!("query `{sql}` failed: {}", pg_error(&e))));
        row.try_get(0).unwrap_or_else(|e| {
            self.fail(&format!(
                "query `{sql}`: cannot read column 0: {}",
                pg_error(&e)
            ))
        })
    }

    /// The first column of every row `sql` returns.
    pub fn query_column<T: FromSqlOwned>(&self, sql: &str) -> Vec<T> {
        let rows = self
            .connect()
            .query(sql, &[])
            .unwrap_or_else(|e| self.fail(&format!("query `{sql}` failed: {}", pg_error(&e))));
        rows.iter()
            .map(|r| {
                r.try_get(0).unwrap_or_else(|e| {
                    self.fail(&format!(
                        "query `{sql}`: cannot read column 0: {}",
                        pg_error(&e)
                    ))
                })
            })
            .collect()
    }

    /// Runs `sql` (one or more statements, simple protocol). Panics like [`Cluster::query_one`].
    pub fn execute(&self, sql: &str) {
        self.connect()
            .batch_execute(sql)
            .unwrap_or_else(|e| self.fail(&format!("`{sql}` failed: {}", pg_error(&e))));
    }

    /// `CHECKPOINT`.
    pub fn checkpoint(&self) {
        self.execute("CHECKPOINT");
    }

    /// `pg_switch_wal()` after a commit record; returns the name of the segment it completed
    /// (the one now ready for archiving). The commit makes sure there is one: right after
    /// another switch (pg_backup_stop's, say) the current segment is empty, and PostgreSQL
    /// completes no segment at all.
    pub fn switch_wal(&self) -> String {
        self.execute("SELECT txid_current()");
        self.query_one("SELECT pg_walfile_name(pg_switch_wal())")
    }

    /// Runs this major's pgbench as postgres against this cluster (connection given through
    /// PGHOST/PGPORT/PGUSER/PGDATABASE), e.g. `["-i", "-s", "1"]` or `["-T", "2"]`. Returns
    /// stdout; panics with the output and the server log tail on failure.
    pub fn pgbench(&self, args: &[&str]) -> String {
        let pgbench = self
            .command(self.pg.bin("pgbench"))
            .args(args)
            .env("PGHOST", &self.socket_dir)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "postgres")
            .as_postgres();
        match pgbench.try_ok() {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(report) => self.fail(&report),
        }
    }

    /// Polls `cond` every 100 ms until it is true; panics naming `what`, with the server log
    /// tail, if it is still false after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            if Instant::now() >= deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    fn log_section(&self) -> String {
        format!(
            "--- server log {} (last {LOG_LINES} lines) ---\n{}",
            self.log.display(),
            self.log_tail(LOG_LINES)
        )
    }

    /// Panics with `msg`, naming this cluster, followed by the tail of its server log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "cluster {} (PostgreSQL {}, {}): {msg}\n{}",
            self.name,
            self.pg.major,
            self.data.display(),
            self.log_section()
        )
    }

    /// The postmaster's pid (first line of postmaster.pid), if that process is alive.
    pub fn pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        pid_alive(pid).then_some(pid)
    }

    /// The pid of a live child of the postmaster whose process title contains
    /// `backend_type_or_title` (e.g. "archiver", "checkpointer", "walmgr"), from /proc.
    pub fn child_pid(&self, backend_type_or_title: &str) -> Option<i32> {
        let pm = self.pid()?;
        children_of(pm)
            .into_iter()
            .find(|(_, title)| {
                let title = title.strip_prefix("postgres:").unwrap_or(title);
                title.contains(backend_type_or_title)
            })
            .map(|(pid, _)| pid)
    }

    /// Process titles of the postmaster's live children (for failure messages).
    pub fn children(&self) -> Vec<(i32, String)> {
        self.pid().map(children_of).unwrap_or_default()
    }

    /// Best-effort teardown; never panics.
    fn teardown(&self) {
        let Some(pid) = self.pid() else {
            return;
        };
        let kids = children_of(pid);
        let stop = self
            .pg_ctl_command(&["-m", "immediate", "-w", "-t", "20", "stop"])
            .timeout(Duration::from_secs(30));
        if let Err(e) = stop.try_run() {
            eprintln!("cluster {} teardown: {e}", self.name);
        }
        if !wait_gone(pid, Duration::from_secs(5)) {
            eprintln!(
                "cluster {} teardown: SIGKILL to postmaster {pid}",
                self.name
            );
            signal(pid, libc::SIGKILL);
            wait_gone(pid, Duration::from_secs(10));
        }
        for (kid, _) in kids {
            if pid_alive(kid) {
                signal(kid, libc::SIGKILL);
                wait_gone(kid, Duration::from_secs(5));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "cluster {} (PostgreSQL {}) torn down after a panic; {}",
                self.name,
                self.pg.major,
                self.log_section()
            );
        }
        self.teardown();
    }
}

/// A postgres error with SQLSTATE, detail and hint when the server sent them.
pub fn pg_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" DETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" HINT: {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str()
        .unwrap_or_else(|| panic!("test path {} is not UTF-8", p.display()))
}
