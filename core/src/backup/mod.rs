//! Base backups in full_backup: the catalog of sets and their rotation, backup_label, the
//! copy of a data directory, the WAL purge that follows, and the backup workflow itself.

pub mod area;
pub mod catalog;
pub mod datadir;
pub mod label;
pub mod purge;
pub mod take;

use crate::config::{Config, Role};
use crate::error::{Error, Result};

/// The config that describes the standby's side of a backup: a master config names it in
/// `slave_config`; without one, its own keys are used.
///
/// With `slave` set, the standby's directories are on another host, which only archiving
/// reaches (over SSH): the commands that read or write them directly refuse, by name,
/// rather than act on paths of this host.
pub fn standby_side(config: &Config, command: &str) -> Result<Config> {
    if let (Role::Master, Some(slave)) = (&config.role, &config.slave) {
        return Err(Error::refused(format!(
            "`{command}` works on the standby's directories, which are on {slave}; this walmgr \
             reaches them over SSH only to archive. Run it on the standby with its slave config \
             (there, `backup` copies the replaying standby)"
        )));
    }
    match (&config.role, &config.slave_config) {
        (Role::Master, Some(path)) if path.exists() => Config::load(path, &[]),
        _ => Ok(config.clone()),
    }
}
