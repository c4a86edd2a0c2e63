//! BACKUPLOCK: one backup at a time, and no crash leaves the lock wedged.
//!
//! The lock file records who holds it (host, pid, the process's start time, command). A
//! second backup finds a live holder and fails at once naming it; it finds a dead holder
//! (the pid is gone, or reused by a process that started later) and takes the lock over,
//! saying so. The file is created with O_EXCL, so two takers cannot both win.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::changes::Changes;
use crate::error::{Error, Result};
use crate::os::process;
use crate::os::users::host_name;

pub const LOCK_FILE: &str = "BACKUPLOCK";

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Process start time in clock ticks since boot (/proc/PID/stat field 22): tells a live
    /// holder from a new process that got the same pid.
    pub started: u64,
    pub what: String,
    /// Held until `xrelease` says so, whatever becomes of the process that took it (`xlock`
    /// takes the lock for a DBA's script, and exits).
    pub until_release: bool,
}

impl Holder {
    /// This process, doing `what`.
    pub fn me(what: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            host: host_name(),
            pid,
            started: process::start_time(pid).unwrap_or(0),
            what: what.to_string(),
            until_release: false,
        }
    }

    /// A holder that holds until `xrelease`: no pid check judges it dead.
    pub fn until_release(what: &str) -> Holder {
        Holder {
            until_release: true,
            ..Holder::me(what)
        }
    }

    fn encode(&self) -> String {
        format!(
            "host={}\npid={}\nstarted={}\nwhat={}\n{}",
            self.host,
            self.pid,
            self.started,
            self.what,
            if self.until_release {
                "until=xrelease\n"
            } else {
                ""
            }
        )
    }

    fn decode(text: &str) -> Option<Holder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_string)
        };
        Some(Holder {
            host: field("host")?,
            pid: field("pid")?.parse().ok()?,
            started: field("started")?.parse().ok()?,
            what: field("what").unwrap_or_default(),
            until_release: field("until").as_deref() == Some("xrelease"),
        })
    }

    /// Alive means: on this host, the pid exists and started when the holder did. A holder
    /// on another host cannot be checked from here and counts as alive.
    pub fn is_alive(&self) -> bool {
        if self.until_release || self.host != host_name() {
            return true;
        }
        match process::start_time(self.pid) {
            Some(started) => self.started == 0 || started == self.started,
            None => false,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.until_release {
            write!(f, "{} (on {}, held until xrelease)", self.what, self.host)
        } else {
            write!(f, "{} (pid {} on {})", self.what, self.pid, self.host)
        }
    }
}

/// What taking the lock found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Free,
    /// The previous holder had died; its lock was replaced.
    TakenOver(Holder),
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE)
}

/// Takes the lock in `dir` for `me`.
pub fn acquire(dir: &Path, me: &Holder) -> Result<Taken> {
    let path = lock_path(dir);
    // The holder is written to a private file first and linked into place: link(2) never
    // replaces, and a reader never sees a lock without its holder.
    let draft = dir.join(format!(".{LOCK_FILE}.{}.tmp", me.pid));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(crate::os::files::NO_FOLLOW)
        .open(&draft)
        .map_err(|e| Error::io("create", &draft, e))?;
    f.write_all(me.encode().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("write", &draft, e))?;
    // One taker at a time judges and replaces a stale lock: with three, one could move
    // aside the lock another had just taken over while a third took the empty place, and
    // two would hold it. Held for microseconds; the kernel drops it if we die.
    let guard_path = dir.join(format!(".{LOCK_FILE}.guard"));
    let guard = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(crate::os::files::NO_FOLLOW)
        .open(&guard_path)
        .map_err(|e| Error::io("create", &guard_path, e))?;
    let _guard = Flock::lock(guard, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io("lock", &guard_path, io::Error::from(errno)))?;
    let result = publish(dir, &path, &draft);
    let _ = fs::remove_file(&draft);
    result
}

fn publish(dir: &Path, path: &Path, draft: &Path) -> Result<Taken> {
    let mut found = Taken::Free;
    for _ in 0..3 {
        match fs::hard_link(draft, path) {
            Ok(()) => {
                crate::archive::store::fsync_dir(dir)?;
                return Ok(found);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let holder = read_holder(path)?;
                if let Some(h) = holder.as_ref().filter(|h| h.is_alive()) {
                    return Err(busy(h, path));
                }
                // Move the stale lock aside (one taker wins the rename), then make sure
                // what we moved is the stale lock we judged, not a fresh one just taken.
                let aside = dir.join(format!(".{LOCK_FILE}.stale.{}", std::process::id()));
                // In tests, a moment between judging and acting: the window in which
                // other takers used to race.
                #[cfg(test)]
                std::thread::sleep(std::time::Duration::from_millis(1));
                match fs::rename(path, &aside) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("move stale lock", path, e)),
                }
                let moved = read_holder(&aside)?;
                if moved != holder {
                    let _ = fs::hard_link(&aside, path);
                    let _ = fs::remove_file(&aside);
                    if let Some(h) = moved {
                        return Err(busy(&h, path));
                    }
                    continue;
                }
                let _ = fs::remove_file(&aside);
                found = Taken::TakenOver(holder.unwrap_or(Holder {
                    host: "?".into(),
                    pid: 0,
                    started: 0,
                    what: "an unreadable lock".into(),
                    until_release: false,
                }));
            }
            Err(e) => return Err(Error::io("create", path, e)),
        }
    }
    Err(Error::LockBusy {
        holder: "another backup starting at the same time".into(),
        path: path.to_path_buf(),
    })
}

fn busy(h: &Holder, path: &Path) -> Error {
    Error::LockBusy {
        holder: h.to_string(),
        path: path.to_path_buf(),
    }
}

/// Releases the lock; only the holder's own lock is removed (a lock taken over by someone
/// else stays theirs).
pub fn release(dir: &Path, me: &Holder) -> Result<()> {
    let path = lock_path(dir);
    match read_holder(&path)? {
        None => Ok(()),
        Some(h) if h.pid == me.pid && h.host == me.host => {
            fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            crate::archive::store::fsync_dir(dir)
        }
        Some(h) => Err(Error::refused(format!(
            "{} is held by {h}, not by this process: left in place",
            path.display()
        ))),
    }
}

/// Removes the lock whoever holds it (the `xrelease` command, a DBA's decision).
pub fn force_release(dir: &Path) -> Result<Option<Holder>> {
    let path = lock_path(dir);
    let holder = read_holder(&path)?;
    match fs::remove_file(&path) {
        Ok(()) => Ok(holder),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("remove", &path, e)),
    }
}

/// BACKUPLOCK held by this process; released when dropped, also on an error path.
pub struct LockGuard {
    dir: PathBuf,
    holder: Holder,
    armed: bool,
}

impl LockGuard {
    /// Leaves the lock in place when the guard goes: `xlock`'s lock outlives its process
    /// by design, until `xrelease`.
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = release(&self.dir, &self.holder) {
                tracing::warn!("{e}");
            }
        }
    }
}

/// Takes BACKUPLOCK in `dir` (the standby's completed_wals) for this process, doing
/// `what`; a dead holder's lock is taken over with a warning. None in a dry run.
pub fn take(dir: &Path, what: &str, changes: &mut Changes) -> Result<Option<LockGuard>> {
    take_as(dir, Holder::me(what), changes)
}

/// `xlock`: takes BACKUPLOCK until `xrelease`, for a DBA's script.
pub fn take_until_release(dir: &Path, changes: &mut Changes) -> Result<()> {
    if let Some(guard) = take_as(dir, Holder::until_release("xlock"), changes)? {
        guard.keep();
    }
    Ok(())
}

fn take_as(dir: &Path, me: Holder, changes: &mut Changes) -> Result<Option<LockGuard>> {
    let taken = changes.apply(
        format!("take backup lock {}", lock_path(dir).display()),
        || acquire(dir, &me),
    )?;
    let Some(found) = taken else {
        return Ok(None);
    };
    if let Taken::TakenOver(old) = found {
        tracing::warn!("took over the backup lock of {old}, which is no longer running");
    }
    Ok(Some(LockGuard {
        dir: dir.to_path_buf(),
        holder: me,
        armed: true,
    }))
}

/// The current holder, if the lock exists.
pub fn holder(dir: &Path) -> Result<Option<Holder>> {
    read_holder(&lock_path(dir))
}

fn read_holder(path: &Path) -> Result<Option<Holder>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Holder::decode(&text)
            .or(Some(Holder {
                host: "?".into(),
                pid: 0,
                started: 0,
                what: format!(
                    "unreadable lock content {:?}",
                    text.chars().take(60).collect::<String>()
                ),
                until_release: false,
            }))
            // An unreadable lock (e.g. walmgr3's empty file) has no checkable holder: stale.
            .filter(|h| h.pid != 0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_fails_at_once_naming_a_live_holder() {
        let dir = tempfile::tempdir().unwrap();
        let me = Holder::me("backup");
        assert_eq!(acquire(dir.path(), &me).unwrap(), Taken::Free);
        let err = acquire(dir.path(), &Holder::me("backup"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("another backup is running"), "{err}");
        assert!(err.contains(&format!("pid {}", me.pid)), "{err}");
        release(dir.path(), &me).unwrap();
        assert!(!dir.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn an_xlock_outlives_its_process_until_xrelease() {
        let dir = tempfile::tempdir().unwrap();
        let mut dead = Holder::until_release("xlock");
        dead.pid = 999_999_999;
        dead.started = 1;
        assert_eq!(acquire(dir.path(), &dead).unwrap(), Taken::Free);
        let err = acquire(dir.path(), &Holder::me("backup"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("held until xrelease"), "{err}");
        assert_eq!(force_release(dir.path()).unwrap(), Some(dead));
        assert_eq!(
            acquire(dir.path(), &Holder::me("backup")).unwrap(),
            Taken::Free
        );
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Holder {
            host: host_name(),
            pid,
            started: 1,
            what: "backup".into(),
            until_release: false,
        };
        fs::write(dir.path().join(LOCK_FILE), dead.encode()).unwrap();
        let taken = acquire(dir.path(), &Holder::me("backup")).unwrap();
        assert_eq!(taken, Taken::TakenOver(dead));
    }

    /// Three takers at once over a dead holder's lock, many times: exactly one wins each
    /// time, and the lock names the winner (before, a third taker could slip in while a
    /// second moved the first's fresh lock aside, and two held it).
    #[test]
    fn three_takers_of_a_stale_lock_leave_exactly_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleepers: Vec<_> = (0..3)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let takers: Vec<Holder> = sleepers
            .iter()
            .enumerate()
            .map(|(i, c)| Holder {
                host: host_name(),
                pid: c.id(),
                started: process::start_time(c.id()).unwrap(),
                what: format!("backup {i}"),
                until_release: false,
            })
            .collect();
        let dead = Holder {
            host: host_name(),
            pid: u32::MAX - 1,
            started: 1,
            what: "a backup that died".into(),
            until_release: false,
        };
        for round in 0..40 {
            fs::write(dir.path().join(LOCK_FILE), dead.encode()).unwrap();
            let start = std::sync::Barrier::new(takers.len());
            let won: Vec<usize> = std::thread::scope(|s| {
                let handles: Vec<_> = takers
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let start = &start;
                        let dir = dir.path();
                        s.spawn(move || {
                            start.wait();
                            acquire(dir, h).ok().map(|_| i)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|t| t.join().unwrap())
                    .collect()
            });
            assert_eq!(won.len(), 1, "round {round}: {won:?} all hold the lock");
            assert_eq!(
                read_holder(&dir.path().join(LOCK_FILE)).unwrap(),
                Some(takers[won[0]].clone()),
                "round {round}"
            );
            fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        }
        for s in &mut sleepers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    #[test]
    fn a_reused_pid_does_not_keep_a_lock_alive() {
        let dir = tempfile::tempdir().unwrap();
        let mut impostor = Holder::me("backup");
        impostor.started += 1; // same pid, different process start
        fs::write(dir.path().join(LOCK_FILE), impostor.encode()).unwrap();
        assert!(matches!(
            acquire(dir.path(), &Holder::me("b")).unwrap(),
            Taken::TakenOver(_)
        ));
    }

    #[test]
    fn walmgr3s_empty_lock_file_counts_as_stale() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOCK_FILE), "").unwrap();
        assert!(matches!(
            acquire(dir.path(), &Holder::me("b")).unwrap(),
            Taken::TakenOver(_)
        ));
    }
}
