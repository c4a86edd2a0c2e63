//! `cleanup` on the standby: after `stop` on the master and `boot` here, remove what walmgr
//! left: the walmgr_data directories and the data directories `restore` set aside.

use std::fs;
use std::path::PathBuf;

use walmgr_core::config::Role;
use walmgr_core::transport;
use walmgr_core::Error;

use super::{standby_conn, Context};
use crate::error::{CliError, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    if ctx.config.role == Role::Master {
        return Err(CliError::failed(
            "cleanup runs on the standby with its slave config; on the master, `stop` has \
             already turned walmgr's archiving off",
        ));
    }
    if let Some(data) = ctx.config.slave_data.clone() {
        if standby_conn::running(&data).is_some() {
            // A server we cannot ask might still replay from the archive: refuse.
            let recovering: bool = standby_conn::connect(&data)?
                .query_one("SELECT pg_is_in_recovery()", &[])
                .map(|r| r.get(0))
                .map_err(|e| CliError::db("SELECT pg_is_in_recovery()", e))?;
            if recovering {
                return Err(CliError::failed(format!(
                    "the standby on {} still replays from the archive: boot or stop it first",
                    data.display()
                )));
            }
        }
    }
    let mut doomed: Vec<PathBuf> = transport::slave_dirs(&ctx.config);
    if let Some(root) = ctx.config.walmgr_data.clone() {
        doomed.push(root);
    }
    if let Some(data) = &ctx.config.slave_data {
        doomed.extend(set_aside_copies(data));
    }
    for dir in doomed {
        if !dir.exists() {
            continue;
        }
        ctx.changes.apply(format!("remove {}", dir.display()), || {
            fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))
        })?;
    }
    Ok(())
}

/// `<slave_data>.<digits>`: the old data directories `restore` renamed aside.
fn set_aside_copies(data: &std::path::Path) -> Vec<PathBuf> {
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
