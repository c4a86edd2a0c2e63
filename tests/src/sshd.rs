//! A real OpenSSH server in a test directory, for tests that ship WAL over ssh.
//!
//! It runs Debian's `/usr/sbin/sshd` as root on 127.0.0.1 (or, with [`Sshd::start_on`], in
//! one of [`crate::TwoHosts`] on that host's address) with a config, host key, pid file, log
//! and authorized_keys file of its own inside the [`TestDir`]: no test reads or writes a real
//! user's `~/.ssh`. Logins are by key only; the `postgres` account is the one to log in as.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::command::TestCommand;
use crate::dirs::{chown_to_postgres, TestDir};
use crate::netns::Host;
use crate::process::{
    children_of, clean_env, describe, free_port, pid_alive, proc_stat, signal, wait_gone,
};

const SSHD: &str = "/usr/sbin/sshd";
/// How long `start` waits for sshd to accept TCP connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long teardown waits for each killed process to leave the process table.
const GONE_TIMEOUT: Duration = Duration::from_secs(10);

/// One sshd listening on `127.0.0.1:<port>`, or on `<host address>:<port>` in a host.
///
/// Its files, all in the test dir: `<name>-sshd_config`, `<name>-host_ed25519_key[.pub]`,
/// `<name>-sshd.pid`, `<name>-sshd.log` (sshd's stderr, appended to across restarts) and the
/// home dir `<name>-home/` whose `.ssh/authorized_keys` is the only file sshd takes keys from,
/// for every account. Dropping it kills the listener and every session, also when the test
/// panics (then the log is printed). Declare it after the [`TestDir`].
#[derive(Debug)]
pub struct Sshd {
    pub name: String,
    /// The host it runs in; None: the machine's own namespace.
    host: Option<Host>,
    addr: Ipv4Addr,
    port: u16,
    config: PathBuf,
    host_key: PathBuf,
    log: PathBuf,
    home: PathBuf,
    authorized_keys: PathBuf,
    /// The listener; `None` while stopped. Kept as a `Child` so std reaps it.
    listener: Mutex<Option<Child>>,
}

impl Sshd {
    /// Writes the config, generates a host key and starts sshd on a free port; returns once the
    /// port answers with an SSH banner. Panics with the log if sshd does not come up.
    pub fn start(dir: &TestDir, name: &str) -> Sshd {
        Sshd::start_with(dir, name, "")
    }

    /// [`Sshd::start`] with `first_lines` at the top of the config. sshd takes the first value
    /// it reads for a keyword, so these override the harness's, e.g. `LogLevel DEBUG` (which
    /// logs the cipher every connection negotiates).
    pub fn start_with(dir: &TestDir, name: &str, first_lines: &str) -> Sshd {
        Sshd::start_in(None, dir, name, first_lines)
    }

    /// [`Sshd::start`] in `host`, listening on that host's address: the other host reaches
    /// it over the link, the test process only through [`Sshd::ssh_command`] run in a host.
    pub fn start_on(host: &Host, dir: &TestDir, name: &str) -> Sshd {
        Sshd::start_in(Some(host), dir, name, "")
    }

    fn start_in(host: Option<&Host>, dir: &TestDir, name: &str, first_lines: &str) -> Sshd {
        assert!(
            !name.is_empty() && !name.contains('/'),
            "sshd name {name:?} must be a plain file name"
        );
        allow_key_login_for_postgres();
        ensure_privsep_dir();
        let home = dir.mkdir(format!("{name}-home"));
        let dot_ssh = dir.mkdir(format!("{name}-home/.ssh"));
        std::fs::set_permissions(&dot_ssh, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod 700 {}: {e}", dot_ssh.display()));
        let sshd = Sshd {
            name: name.to_string(),
            host: host.cloned(),
            addr: host.map_or(Ipv4Addr::LOCALHOST, |h| h.addr),
            // Free on 127.0.0.1, and in a host's fresh namespace every port is.
            port: free_port(),
            config: dir.join(format!("{name}-sshd_config")),
            host_key: dir.join(format!("{name}-host_ed25519_key")),
            log: dir.join(format!("{name}-sshd.log")),
            authorized_keys: dot_ssh.join("authorized_keys"),
            home,
            listener: Mutex::new(None),
        };
        sshd.write_config(&dir.join(format!("{name}-sshd.pid")), first_lines);
        keygen(&sshd.host_key, &format!("{name} host key"));
        sshd.start_again();
        sshd
    }

    fn write_config(&self, pid_file: &Path, first_lines: &str) {
        let conf = format!(
            "# walmgr test harness: sshd {name}\n\
             {first_lines}\n\
             Port {port}\n\
             ListenAddress {addr}\n\
             HostKey {host_key}\n\
             PidFile {pid_file}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             # Without PAM, a locked password ('!' in /etc/shadow) refuses even key logins; see\n\
             # allow_key_login_for_postgres.\n\
             UsePAM no\n\
             # /tmp, above authorized_keys, is world-writable, which StrictModes rejects.\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             # Names the key that logged in, for failure messages.\n\
             LogLevel VERBOSE\n",
            name = self.name,
            first_lines = first_lines.trim_end(),
            port = self.port,
            addr = self.addr,
            host_key = self.host_key.display(),
            pid_file = pid_file.display(),
            authorized_keys = self.authorized_keys.display(),
        );
        std::fs::write(&self.config, conf)
            .unwrap_or_else(|e| panic!("write {}: {e}", self.config.display()));
    }

    /// Starts the listener again after [`Sshd::stop`], on the same port with the same host key
    /// (a server coming back after an outage). Panics if it is running.
    pub fn start_again(&self) {
        let mut listener = self.lock();
        assert!(
            listener.is_none(),
            "sshd {}: start_again while it is running",
            self.name
        );
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.log.display()));
        let _ = writeln!(log, "--- harness: starting sshd on port {} ---", self.port);
        let mut cmd = Command::new(SSHD);
        // -D: stay in the foreground as our child; -e: log to stderr, i.e. into the log file.
        cmd.args(["-D", "-e", "-f"]).arg(&self.config);
        clean_env(&mut cmd);
        // `ip netns exec` execs sshd: the child std waits for is sshd itself.
        if let Some(host) = &self.host {
            cmd = host.wrap(cmd);
        }
        cmd.stdin(Stdio::null())
            .stdout(clone_file(&log, &self.log))
            .stderr(log)
            .current_dir("/");
        let child = {
            // Registered before anything could reap it: see reap_orphaned_sshds.
            let mut listeners = listeners();
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", describe(&cmd)));
            listeners.push(child.id() as i32);
            child
        };
        *listener = Some(child);
        drop(listener);
        self.wait_listening();
    }

    /// Polls until the port answers with an SSH banner, then until the per-connection child
    /// that probe made has gone, so that `session_pids()` starts out empty.
    fn wait_listening(&self) {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        loop {
            let exited = {
                let mut listener = self.lock();
                let status = listener.as_mut().and_then(|c| c.try_wait().ok().flatten());
                if status.is_some() {
                    // Reaped: its pid may be reused, forget it.
                    let pid = listener.take().map(|c| c.id() as i32);
                    listeners().retain(|&p| Some(p) != pid);
                }
                status
            };
            if let Some(status) = exited {
                self.fail(&format!("sshd exited at start with {status}"));
            }
            if self.banner().is_some_and(|b| b.starts_with("SSH-2.0-")) {
                break;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "port {} gives no SSH banner after {LISTEN_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.session_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The first line the server sends on a fresh TCP connection, if it accepts one (from
    /// inside its host, the only place its address is reachable from).
    fn banner(&self) -> Option<String> {
        let addr = SocketAddrV4::new(self.addr, self.port);
        let timeout = Duration::from_secs(1);
        let stream = match &self.host {
            Some(host) => host.tcp_connect(addr, timeout).ok()?,
            None => TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout).ok()?,
        };
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line)
    }

    /// Kills the listener and every session (the per-connection sshd processes and whatever
    /// they run), as if the host went down: established connections drop, new ones are
    /// refused. Does nothing if it is stopped already.
    pub fn stop(&self) {
        let Some(mut child) = self.lock().take() else {
            return;
        };
        let listener = child.id() as i32;
        let sessions = freeze_descendants(listener);
        signal(listener, libc::SIGKILL);
        kill_all(&sessions);
        reap_all(&sessions);
        // Std spawned the listener, so std reaps it (wait_gone must not waitpid it).
        if let Err(e) = child.wait() {
            eprintln!(
                "sshd {}: cannot wait for listener {listener}: {e}",
                self.name
            );
        }
        listeners().retain(|&p| p != listener);
        reap_orphaned_sshds();
    }

    /// Kills the sessions established so far (per-connection sshd processes and what they
    /// run), as if the network dropped them; the listener keeps accepting new ones.
    pub fn kill_sessions(&self) {
        let Some(listener) = self.pid() else {
            return;
        };
        let sessions = freeze_descendants(listener);
        // The listener stays frozen until its children are killed, so that no new session
        // slips in between; once thawed, it reaps them itself.
        kill_all(&sessions);
        signal(listener, libc::SIGCONT);
        reap_all(&sessions);
        reap_orphaned_sshds();
    }

    /// Generates a new host key (the old one is deleted) and restarts sshd with it, on the same
    /// port: clients that know the old key must now refuse the server.
    pub fn new_host_key(&self) {
        self.stop();
        for f in [self.host_key.clone(), pub_file(&self.host_key)] {
            std::fs::remove_file(&f).unwrap_or_else(|e| panic!("remove {}: {e}", f.display()));
        }
        keygen(&self.host_key, &format!("{} new host key", self.name));
        self.start_again();
    }

    /// The pid of the listener, if it is running.
    pub fn pid(&self) -> Option<i32> {
        let pid = self.lock().as_ref()?.id() as i32;
        pid_alive(pid).then_some(pid)
    }

    /// Pids of the per-connection sshd processes (one per connection, authenticated or not),
    /// i.e. the listener's live children. Empty while stopped.
    pub fn session_pids(&self) -> Vec<i32> {
        reap_orphaned_sshds();
        let Some(listener) = self.pid() else {
            return Vec::new();
        };
        children_of(listener)
            .into_iter()
            .map(|(pid, _)| pid)
            .collect()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address it listens on: 127.0.0.1, or its host's.
    pub fn address(&self) -> Ipv4Addr {
        self.addr
    }

    /// The home directory this server stands for (owned by postgres): `<dir>/<name>-home`.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// `<home>/.ssh/authorized_keys`, the only file sshd reads keys from (it may not exist yet;
    /// its directory is owned by postgres, mode 0700).
    pub fn authorized_keys(&self) -> &Path {
        &self.authorized_keys
    }

    /// Appends the public key in `public_key_file` to [`Sshd::authorized_keys`] (created owned
    /// by postgres, mode 0600, if missing).
    pub fn authorize(&self, public_key_file: &Path) {
        let key = std::fs::read_to_string(public_key_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", public_key_file.display()));
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.authorized_keys)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.authorized_keys.display()));
        writeln!(f, "{}", key.trim_end())
            .unwrap_or_else(|e| panic!("append to {}: {e}", self.authorized_keys.display()));
        chown_to_postgres(&self.authorized_keys);
    }

    /// The host public key, `ssh-ed25519 AAAA... comment`, as in the `.pub` file.
    pub fn host_key_pub(&self) -> String {
        let path = pub_file(&self.host_key);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// `[127.0.0.1]:<port> ssh-ed25519 AAAA...` (its host's address instead of 127.0.0.1 in a
    /// host): this server's line for a known_hosts file.
    pub fn known_hosts_line(&self) -> String {
        let key = self.host_key_pub();
        let type_and_key: Vec<&str> = key.split_whitespace().take(2).collect();
        format!("[{}]:{} {}", self.addr, self.port, type_and_key.join(" "))
    }

    /// sshd's log file (its stderr, appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything sshd has logged so far (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }

    /// Generates an ed25519 key pair without passphrase, `<dir>/<name>` and `<dir>/<name>.pub`,
    /// owned by postgres (the private key mode 0600, as ssh demands), for a client running as
    /// postgres. Returns (private, public).
    pub fn client_key(dir: &TestDir, name: &str) -> (PathBuf, PathBuf) {
        let private = dir.join(name);
        keygen(&private, &format!("walmgr test key {name}"));
        let public = pub_file(&private);
        chown_to_postgres(&private);
        chown_to_postgres(&public);
        (private, public)
    }

    /// Runs OpenSSH's `ssh` as postgres against the server on `port` with `key`, trusting only
    /// the hosts in `known_hosts`, never asking, and reading no ssh config or real
    /// ~/.ssh: `command` runs (or is refused) on the other side.
    pub fn ssh(port: u16, key: &Path, known_hosts: &Path, command: &str) -> std::process::Output {
        ssh_to(Ipv4Addr::LOCALHOST, port, key, known_hosts, command).run()
    }

    /// [`Sshd::ssh`] to this server, wherever it listens, not yet run: for a server in a host,
    /// add `.on(&hosts.master)` (the test process's own namespace cannot reach it), then
    /// `.run()`, `.ok()` or `.fails_with(255)`.
    pub fn ssh_command(&self, key: &Path, known_hosts: &Path, command: &str) -> TestCommand {
        ssh_to(self.addr, self.port, key, known_hosts, command)
    }

    /// The SHA256 fingerprint of this server's host key, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let text = TestCommand::new("ssh-keygen")
            .arg("-lf")
            .arg(pub_file(&self.host_key))
            .ok();
        text.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("ssh-keygen -lf printed {text:?}"))
            .to_owned()
    }

    /// Panics with `msg`, naming this server, followed by its log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{}", self.report(msg))
    }

    fn report(&self, msg: &str) -> String {
        let place = match &self.host {
            Some(host) => format!(" in the {} host {}", host.role, host.netns),
            None => String::new(),
        };
        format!(
            "sshd {} ({}:{}{place}): {msg}\n--- sshd log {} ---\n{}",
            self.name,
            self.addr,
            self.port,
            self.log.display(),
            self.log().trim_end()
        )
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report("torn down after a panic"));
        }
        self.stop();
    }
}

/// OpenSSH's `ssh` as postgres to `postgres@addr:port` with `key`, trusting only the hosts in
/// `known_hosts`, never asking, reading no ssh config or real ~/.ssh.
fn ssh_to(addr: Ipv4Addr, port: u16, key: &Path, known_hosts: &Path, command: &str) -> TestCommand {
    let port = port.to_string();
    let known_hosts = format!("UserKnownHostsFile={}", known_hosts.display());
    let key = key.to_str().expect("UTF-8 key path");
    let target = format!("postgres@{addr}");
    let args = [
        "-F",
        "/dev/null",
        "-i",
        key,
        "-p",
        &port,
        "-o",
        &known_hosts,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        &target,
        command,
    ];
    TestCommand::new("/usr/bin/ssh").args(args).as_postgres()
}

/// SIGSTOPs `root` and every descendant, parents before children, and returns the
/// descendants' pids. A stopped process cannot fork, so once the walk is done no process can
/// join the tree unseen. `root` is left stopped: the caller kills it or sends SIGCONT.
fn freeze_descendants(root: i32) -> Vec<i32> {
    let mut frozen = Vec::new();
    freeze(root);
    let mut todo: Vec<i32> = children_of(root).into_iter().map(|(pid, _)| pid).collect();
    while let Some(pid) = todo.pop() {
        freeze(pid);
        frozen.push(pid);
        todo.extend(children_of(pid).into_iter().map(|(kid, _)| kid));
    }
    frozen
}

/// SIGSTOP, then waits (up to 5 s) until the kernel reports the process stopped or gone: a
/// fork in progress when the signal arrived finishes first, and its child must be seen.
fn freeze(pid: i32) {
    signal(pid, libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(proc_stat(pid), Some((state, _)) if !matches!(state, 'T' | 't' | 'Z' | 'X')) {
        if Instant::now() >= deadline {
            eprintln!("sshd harness: {pid} not stopped 5 s after SIGSTOP");
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Pids of the running sshd listeners of this process: std waits for them, so nothing else may
/// reap them.
fn listeners() -> MutexGuard<'static, Vec<i32>> {
    static LISTENERS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
    LISTENERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reaps the zombie sshd processes reparented to this process. When a session ends, its
/// monitor (`sshd: postgres [priv]`) exits without reaping its child, whose zombie then goes
/// to the nearest subreaper: this test process (see TestDir::new). PID 1 here reaps only when
/// the test binary has exited, late, so without this every login would leave a zombie behind.
/// Also reaps those of other Sshds in this process, which is harmless; never a listener.
fn reap_orphaned_sshds() {
    // Held throughout, so that no listener is registered or waited for meanwhile.
    let listeners = listeners();
    // SAFETY: plain syscall.
    let me = unsafe { libc::getpid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let is_our_zombie = proc_stat(pid) == Some(('Z', me));
        if is_our_zombie && !listeners.contains(&pid) {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == "sshd" {
                // SAFETY: plain syscall on a zombie child of ours that nothing else waits for.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            }
        }
    }
}

fn kill_all(pids: &[i32]) {
    for &pid in pids {
        signal(pid, libc::SIGKILL);
    }
}

/// Waits until the killed `pids` have left the process table. Orphans are reparented to this
/// test process (a child subreaper, see TestDir::new), and wait_gone reaps them.
fn reap_all(pids: &[i32]) {
    for &pid in pids {
        if !wait_gone(pid, GONE_TIMEOUT) {
            eprintln!("sshd harness: {pid} still alive {GONE_TIMEOUT:?} after SIGKILL");
        }
    }
}

/// `ssh-keygen -t ed25519 -N ''` into `path` and `path.pub`, as root (mode 0600 private key).
fn keygen(path: &Path, comment: &str) {
    assert!(!path.exists(), "{} exists already", path.display());
    TestCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .ok();
}

/// sshd started without PAM treats an account whose password field starts with `!` (locked,
/// as Debian creates `postgres`) as disabled and refuses it even with a valid key. `*` also
/// means "no password login" but not "locked", so key logins work. Changed once per process,
/// only when needed.
fn allow_key_login_for_postgres() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let entry = TestCommand::new("getent").args(["shadow", "postgres"]).ok();
        let password = entry.split(':').nth(1).unwrap_or("");
        if password.starts_with('!') {
            TestCommand::new("usermod")
                .args(["-p", "*", "postgres"])
                .ok();
        }
    });
}

/// sshd's privilege-separation directory; it refuses to start without it (normally created by
/// the sshd service unit, which does not run here).
fn ensure_privsep_dir() {
    let dir = Path::new("/run/sshd");
    if !dir.exists() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", dir.display()));
    }
}

/// `<path>.pub`, where ssh-keygen puts the public half of key `path`.
fn pub_file(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn clone_file(f: &File, path: &Path) -> File {
    f.try_clone()
        .unwrap_or_else(|e| panic!("duplicate handle of {}: {e}", path.display()))
}
