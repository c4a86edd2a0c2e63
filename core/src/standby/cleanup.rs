//! `cleanup` on the standby: after `stop` on the master and `boot` here, remove what walmgr
//! left: the walmgr_data directories and the data directories `restore` set aside.

use std::fs;
use std::path::{Path, PathBuf};

use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::remote::slave_dirs;
use crate::server::Standby;

/// `server` is the standby's own server, when the config names its data directory.
pub fn cleanup(
    config: &Config,
    server: Option<&mut dyn Standby>,
    changes: &mut Changes,
) -> Result<()> {
    if config.role == Role::Master {
        return Err(Error::refused(
            "cleanup runs on the standby with its slave config; on the master, `stop` has \
             already turned walmgr's archiving off",
        ));
    }
    if let (Some(data), Some(server)) = (&config.slave_data, server) {
        if server.is_running() {
            // A server we cannot ask might still replay from the archive: refuse.
            let state = server.state()?.ok_or_else(|| {
                Error::refused(format!(
                    "the standby on {} accepts no connection: it may still replay from the \
                     archive; boot or stop it first",
                    data.display()
                ))
            })?;
            if state.in_recovery {
                return Err(Error::refused(format!(
                    "the standby on {} still replays from the archive: boot or stop it first",
                    data.display()
                )));
            }
        }
    }
    let mut doomed: Vec<PathBuf> = slave_dirs(config);
    doomed.extend(config.walmgr_data.clone());
    if let Some(data) = &config.slave_data {
        doomed.extend(set_aside_copies(data));
    }
    for dir in doomed.iter().filter(|d| d.exists()) {
        changes.apply(format!("remove {}", dir.display()), || {
            fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))
        })?;
    }
    Ok(())
}

/// `<slave_data>.<digits>`: the old data directories `restore` renamed aside.
fn set_aside_copies(data: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (data.parent(), data.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    fs::read_dir(parent)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix(&prefix).is_some_and(|rest| {
                        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                    })
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}
