//! Running commands (as root or as `postgres`; see [`crate::TestCommand`]), process checks,
//! free ports.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use walmgr_core::os::process::stat;

/// How long any command the harness runs may take before it is killed and the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `cmd` to completion (stdin is /dev/null, stdout and stderr captured) and returns its
/// output, whatever the exit status. The command runs in its own process group; if it is still
/// running after `timeout`, the whole group is SIGKILLed and the result is `Err` with the
/// output captured so far, as is a failure to start.
pub(crate) fn try_run_command(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let desc = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {desc}: {e}"))?;
    let pid = child.id() as i32;
    // Readers fill shared buffers, so that output is available even if a daemon the command
    // started keeps the pipes open after the command itself has exited.
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = spawn_reader(
        child.stdout.take().expect("stdout is piped"),
        done_tx.clone(),
    );
    let stderr = spawn_reader(child.stderr.take().expect("stderr is piped"), done_tx);
    let (status_tx, status_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let status = status_rx.recv_timeout(timeout);
    if status.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = status_rx.recv_timeout(Duration::from_secs(10));
    }
    // Give the readers a moment to drain what is left in the pipes.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let take =
        |b: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner()));
    let (stdout, stderr) = (take(&stdout), take(&stderr));
    let Ok(status) = status else {
        return Err(format!(
            "{desc} did not finish within {timeout:?} and was killed\n{}",
            format_streams(&stdout, &stderr)
        ));
    };
    let status = status.map_err(|e| format!("cannot wait for {desc}: {e}"))?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// `runuser -u postgres -- [/usr/bin/env K=V...] cmd args...`, with the caller's `PG*`
/// variables removed and `/tmp` as working directory.
pub(crate) fn postgres_command<S: AsRef<OsStr>>(
    cmd: &Path,
    args: &[S],
    env: &[(&str, &str)],
) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]);
    // runuser resets HOME, SHELL, USER and LOGNAME to postgres's own: `env` sets ours after
    // it, so a test's HOME keeps walmgr away from the real ~postgres.
    if !env.is_empty() {
        c.arg("/usr/bin/env");
        c.args(env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    c.arg(cmd).args(args);
    clean_env(&mut c);
    c.current_dir("/tmp");
    c
}

/// Removes the caller's `PG*` variables (PGDATA, PGHOST, ...) so they cannot redirect a command
/// to another cluster, and starts it in `/tmp` (the repository may be unreadable by postgres).
pub(crate) fn clean_env(c: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            c.env_remove(k);
        }
    }
}

/// A one-line description of a command for failure messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = format!("`{}", cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s.push('`');
    let env: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    if !env.is_empty() {
        s.push_str(&format!(" (env {})", env.join(" ")));
    }
    s
}

/// Both streams of a command, for failure reports.
pub(crate) fn format_streams(out: &[u8], err: &[u8]) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(out).trim_end(),
        String::from_utf8_lossy(err).trim_end()
    )
}

/// True if process `pid` exists and is not a zombie (an unreaped zombie counts as gone: in a
/// container nobody may reap a daemonized postmaster).
pub fn pid_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// (state, ppid) of a process, from core's reading of /proc/<pid>/stat.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, i32)> {
    stat(pid).map(|s| (s.state, s.ppid))
}

/// Live (non-zombie) children of `parent`, with their command line (NULs turned into spaces).
pub fn children_of(parent: i32) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut kids = Vec::new();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        match stat(pid) {
            Some(s) if s.ppid == parent && s.state != 'Z' => {}
            _ => continue,
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .trim()
            .to_string();
        kids.push((pid, cmdline));
    }
    kids
}

/// Sends `sig` to `pid`, ignoring errors (the process may already be gone).
pub(crate) fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: plain syscall on a positive pid.
        unsafe { libc::kill(pid, sig) };
    }
}

fn spawn_reader(mut r: impl Read + Send + 'static, done: mpsc::Sender<()>) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
    buf
}

/// The signals tests send to the processes they started.
#[derive(Debug, Clone, Copy)]
pub enum Sig {
    Term,
    Kill,
    Int,
    Hup,
}

/// Sends `sig` to `pid` (a process this test started, or one of its cluster's children).
pub fn send_signal(pid: i32, sig: Sig) {
    let sig = match sig {
        Sig::Term => libc::SIGTERM,
        Sig::Kill => libc::SIGKILL,
        Sig::Int => libc::SIGINT,
        Sig::Hup => libc::SIGHUP,
    };
    signal(pid, sig);
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: plain syscall; a negative pid addresses a process group.
        unsafe { libc::kill(-pgid, sig) };
    }
}

/// Makes this test process the "child subreaper" of everything it starts (once per process):
/// a daemonized postmaster is then reparented to us instead of to init, and [`wait_gone`] can
/// reap it. A zombie postmaster still counts as running for PostgreSQL's lock-file check, so
/// without reaping, a restart right after a crash could fail with "lock file already exists".
pub(crate) fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: plain prctl on this process.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            eprintln!(
                "warning: PR_SET_CHILD_SUBREAPER failed: {}",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// Reaps `pid` if it is a zombie child of this process (never one std::process waits for: only
/// called for servers' processes, which are reparented to us, not spawned by us).
fn reap_if_ours(pid: i32) {
    if let Some(('Z', ppid)) = proc_stat(pid) {
        // SAFETY: plain syscalls.
        if ppid == unsafe { libc::getpid() } {
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

/// Polls until `pid` has left the process table (reaping it if it is our zombie). Returns
/// false if it is still alive after `timeout`; a zombie some other process fails to reap by
/// then counts as gone.
pub(crate) fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        reap_if_ours(pid);
        if proc_stat(pid).is_none() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return !pid_alive(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read, close). Never 5432,
/// and never a port this process has handed out before, so concurrent tests do not collide.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
        let port = listener
            .local_addr()
            .expect("local address of a bound socket")
            .port();
        if port != 5432 && given.insert(port) {
            return port;
        }
    }
    panic!("no free TCP port found on 127.0.0.1 after 1000 tries");
}
