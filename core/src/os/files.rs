//! Directories private to their owner, and files handed to the owner of where they live.
//!
//! walmgr often runs as root on behalf of the postgres user (a DBA's sudo, the tests):
//! whatever it creates inside a data directory or the archive must belong to whoever owns
//! that directory, or the server cannot read it.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use crate::changes::Changes;
use crate::error::{Error, Result};

/// For `OpenOptionsExt::custom_flags` on every file walmgr opens by a name it derives (temp
/// files, locks, partial copies, sidecars): a symlink planted under that name is refused
/// (ELOOP) rather than followed, so nobody can point walmgr's writes at another file.
pub const NO_FOLLOW: i32 = nix::fcntl::OFlag::O_NOFOLLOW.bits();

/// Creates `dir` and its missing parents; the new directories are private to their owner.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))
}

/// Creates `dir` (mode 0700) through `changes` unless it exists.
pub fn ensure_private_dir(dir: &Path, changes: &mut Changes) -> Result<()> {
    if !dir.is_dir() {
        changes.apply(
            format!("create directory {} (mode 0700)", dir.display()),
            || create_private_dir(dir),
        )?;
    }
    Ok(())
}

/// Gives `path` (not following a symlink) the owner and group of `like`. Only root can,
/// and only root needs to: anyone else creates files as the owner already.
pub fn give_to_owner_of(path: &Path, like: &Path) -> Result<()> {
    if !crate::os::users::is_root() {
        return Ok(());
    }
    let meta = fs::metadata(like).map_err(|e| Error::io("stat", like, e))?;
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| Error::io("chown", path, e))
}
