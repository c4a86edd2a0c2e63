//! walmgr's directories on the standby (completed_wals, partial_wals, full_backup and
//! config_backup): which they are, and whether each is as `setup` makes it.
//!
//! `setup` creates them mode 0700, owned by whoever writes into them: the master's archiver
//! on this host, or the user the master's SSH key logs in as on the standby. `check` asks
//! the same question on either host; over SSH the standby's `walmgr xserve` answers it
//! (`DIRS inspect`), so the verdict is made where the directories are.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::os::users;

/// The directories `setup` creates on the standby, in creation order, each with the key
/// that names it.
pub fn named(config: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut dirs = vec![
        ("completed_wals", config.completed_wals.clone()),
        ("partial_wals", config.partial_wals.clone()),
        ("full_backup", config.full_backup.clone()),
    ];
    dirs.extend(config.config_backup.clone().map(|d| ("config_backup", d)));
    dirs
}

/// The directories `setup` creates on the standby, in creation order.
pub fn slave_dirs(config: &Config) -> Vec<PathBuf> {
    named(config).into_iter().map(|(_, dir)| dir).collect()
}

/// One directory, as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirState {
    /// The config key that names it: completed_wals, partial_wals, full_backup,
    /// config_backup.
    pub key: String,
    pub path: PathBuf,
    /// What is there, e.g. `owner postgres, mode 0700`, or `absent`.
    pub found: String,
    /// What is wrong with it and what to do, or None when it is as setup makes it.
    pub problem: Option<String>,
}

/// Judges `path` (the directory named by `key`), which user `writer` must own.
///
/// full_backup may be absent: it is the newest backup set itself, which `restore` moves
/// into place and the next backup creates again.
pub fn inspect(key: &str, path: &Path, writer: u32) -> DirState {
    let state = |found: String, problem: Option<String>| DirState {
        key: key.to_owned(),
        path: path.to_path_buf(),
        found,
        problem,
    };
    let writer_name = name_of(writer);
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && key == "full_backup" => {
            return state(
                "absent: no backup set here (none taken yet, or restore took the newest); \
                 the next backup creates it"
                    .into(),
                None,
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return state(
                "absent".into(),
                Some(format!(
                    "missing: `walmgr MASTER_CONFIG setup` on the master creates it (or \
                     `install -d -m 700 -o {writer_name} {}`)",
                    path.display()
                )),
            );
        }
        Err(e) => return state("unreadable".into(), Some(format!("cannot stat it: {e}"))),
    };
    if !meta.is_dir() {
        return state(
            "not a directory".into(),
            Some("is not a directory: move it aside and run setup on the master".into()),
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    let owner = name_of(meta.uid());
    let found = format!("owner {owner}, mode {mode:04o}");
    let mut problems = Vec::new();
    if meta.uid() != writer {
        problems.push(format!(
            "owned by {owner}, but {writer_name} writes here: `chown -R {writer_name} {}`",
            path.display()
        ));
    }
    // The owner must list, create and remove; nobody else may even read: the files are
    // the cluster's WAL and data, as readable as the data directory itself (0700).
    if mode & 0o700 != 0o700 || mode & 0o077 != 0 {
        problems.push(format!(
            "mode {mode:04o}, not 0700 (the files are the cluster's WAL and data): \
             `chmod 700 {}`",
            path.display()
        ));
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    state(found, problem)
}

/// Every directory of `config`, judged for `writer`.
pub fn inspect_all(config: &Config, writer: u32) -> Vec<DirState> {
    named(config)
        .iter()
        .map(|(key, path)| inspect(key, path, writer))
        .collect()
}

fn name_of(uid: u32) -> String {
    users::user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::DirBuilderExt;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn a_directory_as_setup_makes_it_passes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("logs.complete");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let state = inspect("completed_wals", &dir, me());
        assert_eq!(state.problem, None, "{state:?}");
        assert!(state.found.ends_with("mode 0700"), "{state:?}");
    }

    #[test]
    fn missing_open_or_foreign_directories_say_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("logs.partial");
        let missing = inspect("partial_wals", &dir, me()).problem.unwrap();
        assert!(
            missing.contains("missing") && missing.contains("setup"),
            "{missing}"
        );

        fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let open = inspect("partial_wals", &dir, me()).problem.unwrap();
        assert!(
            open.contains("mode 0755") && open.contains("chmod 700"),
            "{open}"
        );

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let other = me().wrapping_add(1);
        let foreign = inspect("partial_wals", &dir, other).problem.unwrap();
        assert!(foreign.contains("chown"), "{foreign}");
    }

    #[test]
    fn full_backup_may_be_absent_as_restore_moves_the_newest_set() {
        let root = tempfile::tempdir().unwrap();
        let state = inspect("full_backup", &root.path().join("data.master"), me());
        assert_eq!(state.problem, None);
        assert!(state.found.starts_with("absent"), "{state:?}");
    }
}
