//! The pidfile of a daemon (`syncdaemon -d`), and signals to the daemon it names.
//!
//! The daemon holds an exclusive flock on its pidfile for as long as it runs: a pidfile
//! whose lock anyone can take is stale (its daemon died without removing it, even by
//! SIGKILL) and is taken over, whatever pid it names; a pid alone could have been reused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
pub use nix::sys::signal::Signal;

use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// A pidfile held by this process; removed when dropped.
pub struct Pidfile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Pidfile {
    /// Takes `path` for this process: refused while another live daemon holds it; a stale
    /// one is taken over.
    pub fn take(path: &Path) -> Result<Pidfile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::os::files::create_private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(crate::os::files::NO_FOLLOW)
            .open(path)
            .map_err(|e| Error::io("open pidfile", path, e))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let pid = read_pid(&mut file).map_or("?".into(), |p| p.to_string());
                return Err(Error::refused(format!(
                    "already running (pid {pid}, {}): stop it first with -s",
                    path.display()
                )));
            }
        };
        if let Some(old) = read_pid(&mut lock) {
            tracing::info!(
                "{} named pid {old}, which is gone: taking it over",
                path.display()
            );
        }
        lock.set_len(0)
            .and_then(|_| lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0))
            .and_then(|_| lock.sync_data())
            .map_err(|e| Error::io("write pidfile", path, e))?;
        Ok(Pidfile {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Sends `signal` to the daemon that holds `path`; returns its pid.
pub fn signal(path: &Path, signal: Signal) -> Result<i32> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::refused(format!(
                "not running: there is no pidfile {}",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io("open pidfile", path, e)),
    };
    // If the lock is free, nobody holds the pidfile: the daemon is gone.
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => Err(Error::refused(format!(
            "not running: {} is stale (its daemon is gone)",
            path.display()
        ))),
        Err((mut file, _)) => {
            let pid = read_pid(&mut file)
                .ok_or_else(|| Error::damaged(path, "names no pid".to_string()))?;
            kill(Pid::from_raw(pid), signal)
                .map_err(|e| Error::io("signal", path, io::Error::from(e)))?;
            Ok(pid)
        }
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_pidfile_is_refused_and_a_stale_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid/daemon.pid");
        let held = Pidfile::take(&path).unwrap();
        let err = Pidfile::take(&path).err().unwrap().to_string();
        assert!(err.contains("already running"), "{err}");
        drop(held);
        assert!(!path.exists(), "a clean exit removes the pidfile");

        // A daemon killed with SIGKILL leaves its pidfile, unlocked.
        fs::write(&path, "999999\n").unwrap();
        let err = signal(&path, Signal::SIGHUP).unwrap_err().to_string();
        assert!(err.contains("stale"), "{err}");
        let _taken = Pidfile::take(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
