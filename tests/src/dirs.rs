//! Per-test directories under /tmp, owned by the `postgres` user.

use std::ffi::CString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{become_subreaper, children_of, pid_alive, signal, wait_gone};

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

/// A private directory `/tmp/wm-<label>-XXXXXX`, owned by postgres, mode 0755.
///
/// Dropping it removes it with everything inside, after SIGKILLing any postmaster still running
/// from a data directory in it (a safety net: [`crate::Cluster`] stops its own server on drop).
/// Declare it before the clusters that live in it, so that it is dropped after them.
/// With the environment variable `WALMGR_KEEP_TEST_DIRS` set, it is kept and its path printed.
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
        // Kept short: Unix socket paths inside it are limited to about 107 bytes.
        let path = tempfile::Builder::new()
            .prefix(&format!("wm-{short}-"))
            .rand_bytes(6)
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a test directory in /tmp: {e}"))
            .keep();
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
        kill_postmasters_under(&self.path);
        if std::env::var_os("WALMGR_KEEP_TEST_DIRS").is_some() {
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

/// SIGKILLs every live postmaster whose postmaster.pid lies (up to two levels) below `root` and
/// names a data directory below `root`, and its children.
fn kill_postmasters_under(root: &Path) {
    let mut pid_files = Vec::new();
    if let Ok(level1) = std::fs::read_dir(root) {
        for d in level1.flatten() {
            pid_files.push(d.path().join("postmaster.pid"));
            if let Ok(level2) = std::fs::read_dir(d.path()) {
                pid_files.extend(level2.flatten().map(|e| e.path().join("postmaster.pid")));
            }
        }
    }
    for f in pid_files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let mut lines = text.lines();
        let pid = lines.next().and_then(|l| l.trim().parse::<i32>().ok());
        let data_dir = lines.next().map(Path::new);
        if let (Some(pid), Some(data_dir)) = (pid, data_dir) {
            if data_dir.starts_with(root) && pid_alive(pid) {
                eprintln!("TestDir drop: killing postmaster {pid} still running in {data_dir:?}");
                let kids = children_of(pid);
                signal(pid, libc::SIGKILL);
                for (k, _) in kids {
                    signal(k, libc::SIGKILL);
                }
                wait_gone(pid, Duration::from_secs(10));
            }
        }
    }
}
