//! Per-test directories under /tmp, owned by the `postgres` user.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use walmgr_core::os::process::{start_time, stat};

use crate::process::{become_subreaper, pid_alive, signal, wait_gone};

/// Where test directories go, and how their names start.
const TMP: &str = "/tmp";
const PREFIX: &str = "wm-";
/// The file in each test directory that names the test process owning it (`pid=`, and
/// `started=`, its start time in clock ticks since boot, so that a reused pid is not taken
/// for it). A directory without one (kept with `WALMGR_KEEP_TEST_DIRS`, or made by an older
/// harness) is never removed by another test process.
const OWNER_FILE: &str = ".wm-owner";

/// (uid, gid) of the OS user `postgres`; panics if there is no such user.
pub fn postgres_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let name = CString::new("postgres").expect("no NUL in a literal");
        // SAFETY: getpwnam with a valid C string; the result is read at once, before any other
        // getpw* call could overwrite it (OnceLock serializes this initialization).
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        assert!(
            !pw.is_null(),
            "the OS user `postgres` does not exist; the servers the tests start run as that user"
        );
        // SAFETY: pw is non-null and points to a valid passwd struct.
        unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
    })
}

/// Makes `path` (not following a symlink) owned by postgres; panics with the path on failure.
pub fn chown_to_postgres(path: &Path) {
    let (uid, gid) = postgres_ids();
    let c = CString::new(path.as_os_str().as_bytes()).expect("path without NUL bytes");
    // SAFETY: valid C string; plain syscall.
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
        panic!(
            "chown postgres {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// A private directory `/tmp/wm-<label>-XXXXXX`, owned by postgres, mode 0755, that records
/// which test process owns it.
///
/// Dropping it removes it with everything inside, after stopping whatever still runs from it
/// (a safety net: [`crate::Cluster`] and [`crate::Sshd`] stop their own servers on drop).
/// Declare it before the clusters that live in it, so that it is dropped after them.
/// With the environment variable `WALMGR_KEEP_TEST_DIRS` set, it is kept and its path printed.
///
/// A test process killed before its drops ran (a timeout's SIGKILL, ^C) leaves its
/// directories and their servers behind: the first `TestDir::new` of every test process
/// removes those, once their owner is gone.
#[derive(Debug)]
pub struct TestDir {
    pub path: PathBuf,
    label: String,
}

impl TestDir {
    pub fn new(label: &str) -> TestDir {
        let short: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(16)
            .collect();
        become_subreaper();
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(remove_orphaned_test_dirs);
        // Kept short: Unix socket paths inside it are limited to about 107 bytes.
        let path = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{short}-"))
            .rand_bytes(6)
            .tempdir_in(TMP)
            .unwrap_or_else(|e| panic!("cannot create a test directory in {TMP}: {e}"))
            .keep();
        let me = std::process::id();
        let owner = path.join(OWNER_FILE);
        std::fs::write(
            &owner,
            format!("pid={me}\nstarted={}\n", start_time(me).unwrap_or(0)),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", owner.display()));
        chown_to_postgres(&path);
        chmod(&path, 0o755);
        TestDir {
            path,
            label: label.to_string(),
        }
    }

    /// `self.path.join(p)` (an absolute `p` is returned as it is).
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Creates directory `p` (relative to this dir) and any missing parents, all owned by
    /// postgres, mode 0755. Returns its path. Fine if it exists already.
    pub fn mkdir(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        let target = self.join(p);
        let rel = target.strip_prefix(&self.path).ok().map(Path::to_path_buf);
        let mut cur = if rel.is_some() {
            self.path.clone()
        } else {
            PathBuf::from("/")
        };
        let rest = rel.unwrap_or_else(|| target.clone());
        for comp in rest.components() {
            match comp {
                Component::Normal(c) => cur.push(c),
                Component::RootDir => continue,
                other => panic!("mkdir {}: unsupported component {other:?}", p.display()),
            }
            if !cur.exists() {
                std::fs::create_dir(&cur)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", cur.display()));
                chown_to_postgres(&cur);
                chmod(&cur, 0o755);
            }
        }
        target
    }

    /// Writes `contents` to file `p` (relative to this dir, missing parents created), owned by
    /// postgres, mode 0644. Returns its path.
    pub fn write(&self, p: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let target = self.join(p);
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                self.mkdir(parent);
            }
        }
        std::fs::write(&target, contents)
            .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
        chown_to_postgres(&target);
        chmod(&target, 0o644);
        target
    }

    /// A recursive listing of `sub` (relative to this dir; "" or "." for all of it): one line
    /// per entry, `path size` for files, `path/` for directories, `path -> target` for symlinks,
    /// sorted. For failure messages.
    pub fn listing(&self, sub: impl AsRef<Path>) -> String {
        let root = self.join(sub);
        let Some(lines) = entries(&root) else {
            return format!("{} (does not exist)", root.display());
        };
        let mut s = format!("{}:\n", root.display());
        for l in lines {
            let _ = writeln!(s, "  {l}");
        }
        s
    }
}

/// Everything below `root`, one entry per line, sorted: `path size` for files, `path/` for
/// directories, `path -> target` for symlinks (paths relative to `root`). None if `root`
/// does not exist.
pub(crate) fn entries(root: &Path) -> Option<Vec<String>> {
    if !root.exists() {
        return None;
    }
    let mut lines = Vec::new();
    list_into(root, root, &mut lines);
    lines.sort();
    Some(lines)
}

fn list_into(root: &Path, dir: &Path, lines: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&path).unwrap_or_default();
                lines.push(format!("{rel} -> {}", target.display()));
            }
            Ok(m) if m.is_dir() => {
                lines.push(format!("{rel}/"));
                list_into(root, &path, lines);
            }
            Ok(m) => lines.push(format!("{rel} {}", m.len())),
            Err(err) => lines.push(format!("{rel} ({err})")),
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        stop_everything_running_from(&self.path);
        if std::env::var_os("WALMGR_KEEP_TEST_DIRS").is_some() {
            // Without an owner, no later test process takes it for an orphan.
            let _ = std::fs::remove_file(self.path.join(OWNER_FILE));
            eprintln!(
                "WALMGR_KEEP_TEST_DIRS: keeping test dir of {:?}: {}",
                self.label,
                self.path.display()
            );
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Removes the test directories in /tmp whose owning test process is gone, after stopping
/// whatever still runs from them. A directory of a live test process, or one that names no
/// owner, is left alone.
fn remove_orphaned_test_dirs() {
    let Ok(entries) = std::fs::read_dir(TMP) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(PREFIX)
            || !e.file_type().is_ok_and(|t| t.is_dir())
        {
            continue;
        }
        let dir = e.path();
        let Some((pid, started)) = recorded_owner(&dir) else {
            continue;
        };
        if owner_alive(pid, started) {
            continue;
        }
        eprintln!(
            "removing test directory {} left by test process {pid}, which is gone",
            dir.display()
        );
        stop_everything_running_from(&dir);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            // Another test process starting at the same time removed it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("warning: cannot remove {}: {e}", dir.display()),
        }
    }
}

/// The (pid, start time) a test directory's owner file records.
fn recorded_owner(dir: &Path) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let pid = u32::try_from(field("pid")?).ok().filter(|&p| p > 0)?;
    Some((pid, field("started").unwrap_or(0)))
}

/// Is the process that recorded (pid, start time) still running? A start time of 0 (not
/// readable when recorded) trusts the pid alone.
fn owner_alive(pid: u32, started: u64) -> bool {
    pid_alive(pid as i32) && (started == 0 || start_time(pid) == Some(started))
}

/// Stops every process that runs from `root`, and their descendants (an sshd's sessions):
/// whose working directory or executable lies in it (a postmaster and its children work in
/// their data directory; walmgr runs as `ROOT/bin/walmgr`), or whose command line names a
/// path in it (sshd runs with `-f ROOT/...`). A postmaster first gets SIGQUIT, an immediate
/// shutdown that still removes its shared memory; what runs 5 s later gets SIGKILL.
/// Never this process or one of its ancestors.
fn stop_everything_running_from(root: &Path) {
    let processes = all_processes();
    let mut spared = vec![std::process::id() as i32];
    while let Some(parent) = stat(*spared.last().unwrap_or(&0)).map(|s| s.ppid) {
        if parent <= 1 || spared.contains(&parent) {
            break;
        }
        spared.push(parent);
    }
    let mut doomed: Vec<i32> = processes
        .iter()
        .map(|&(pid, _)| pid)
        .filter(|&pid| !spared.contains(&pid) && runs_from(pid, root))
        .collect();
    let mut i = 0;
    while i < doomed.len() {
        let parent = doomed[i];
        for &(pid, ppid) in &processes {
            if ppid == parent && !doomed.contains(&pid) && !spared.contains(&pid) {
                doomed.push(pid);
            }
        }
        i += 1;
    }
    if doomed.is_empty() {
        return;
    }
    let postmasters: Vec<i32> = postmaster_pids_under(root)
        .into_iter()
        .filter(|pid| doomed.contains(pid))
        .collect();
    for &pid in &postmasters {
        eprintln!(
            "{}: immediate shutdown of postmaster {pid} still running there",
            root.display()
        );
        signal(pid, libc::SIGQUIT);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for &pid in &postmasters {
        wait_dead(pid, deadline);
    }
    for &pid in &doomed {
        if pid_alive(pid) {
            eprintln!("{}: SIGKILL to {pid} still running there", root.display());
            signal(pid, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for &pid in &doomed {
        if !wait_dead(pid, deadline) {
            eprintln!("{}: {pid} still alive 10 s after SIGKILL", root.display());
        }
    }
}

/// Polls until `pid` has exited (reaped, if it is our zombie; another process's zombie counts
/// as exited: an orphan of a killed test process may wait long for its reaper). False if it
/// still runs at `deadline`.
fn wait_dead(pid: i32, deadline: Instant) -> bool {
    loop {
        if wait_gone(pid, Duration::ZERO) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// (pid, parent pid) of every live process.
fn all_processes() -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).filter(|s| s.state != 'Z').map(|s| (pid, s.ppid)))
        .collect()
}

/// Does process `pid` work in `root`, run a program from it, or name a path in it?
fn runs_from(pid: i32, root: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let in_root = |link: &str| {
        std::fs::read_link(proc_dir.join(link)).is_ok_and(|target| target.starts_with(root))
    };
    if in_root("cwd") || in_root("exe") {
        return true;
    }
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    let root = root.as_os_str().as_bytes();
    cmdline
        .split(|&b| b == 0)
        .any(|arg| names_path_in(arg, root))
}

/// Does `arg` contain `root` as a whole path, or the start of one (`-f ROOT/sshd_config`,
/// `-o '-k ROOT/x.sock'`), not as the start of a longer name (`ROOT-other`)?
fn names_path_in(arg: &[u8], root: &[u8]) -> bool {
    if root.is_empty() {
        return false;
    }
    arg.windows(root.len())
        .enumerate()
        .filter(|(_, w)| *w == root)
        .any(|(at, _)| match arg.get(at + root.len()) {
            None => true,
            Some(&next) => !(next.is_ascii_alphanumeric() || matches!(next, b'-' | b'_' | b'.')),
        })
}

/// The pids in postmaster.pid files up to two levels below `root` (data directories of its
/// clusters, and of clusters restored into a subdirectory) that name a data directory in it.
fn postmaster_pids_under(root: &Path) -> Vec<i32> {
    let mut pid_files = Vec::new();
    if let Ok(level1) = std::fs::read_dir(root) {
        for d in level1.flatten() {
            pid_files.push(d.path().join("postmaster.pid"));
            if let Ok(level2) = std::fs::read_dir(d.path()) {
                pid_files.extend(level2.flatten().map(|e| e.path().join("postmaster.pid")));
            }
        }
    }
    pid_files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let mut lines = text.lines();
            let pid = lines.next()?.trim().parse::<i32>().ok()?;
            let data_dir = Path::new(lines.next()?);
            data_dir.starts_with(root).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_named_only_as_a_whole() {
        let root = b"/tmp/wm-x-abc123";
        for arg in [
            &b"/tmp/wm-x-abc123"[..],
            b"/tmp/wm-x-abc123/standby/sshd_config",
            b"-p 5 -k /tmp/wm-x-abc123/master.sock",
            b"'/tmp/wm-x-abc123'",
        ] {
            assert!(names_path_in(arg, root), "{}", String::from_utf8_lossy(arg));
        }
        for arg in [
            &b"/tmp/wm-x-abc1234"[..],
            b"/tmp/wm-x-abc123-other/x",
            b"/tmp/wm-x-abc12",
            b"",
        ] {
            assert!(
                !names_path_in(arg, root),
                "{}",
                String::from_utf8_lossy(arg)
            );
        }
    }

    #[test]
    fn an_owner_record_reads_back_and_a_reused_pid_is_not_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(recorded_owner(dir.path()), None, "no record: no owner");
        let me = std::process::id();
        let started = start_time(me).expect("our own start time");
        std::fs::write(
            dir.path().join(OWNER_FILE),
            format!("pid={me}\nstarted={started}\n"),
        )
        .unwrap();
        assert_eq!(recorded_owner(dir.path()), Some((me, started)));
        assert!(owner_alive(me, started));
        assert!(
            !owner_alive(me, started + 1),
            "a later process with our pid"
        );
    }
}
