//! `xarchive SRCPATH SRCNAME`: archive one file from archive_command, for servers that
//! cannot load the archive module. Same store, same guarantees.

use std::path::Path;

use walmgr_core::archive::store::Stored;
use walmgr_core::config::Role;
use walmgr_core::remote;
use walmgr_core::wal::name::WalFileName;

use super::Context;
use crate::error::Result;

pub fn run(ctx: &mut Context, srcpath: &Path, srcname: &str) -> Result<()> {
    ctx.config.require_role(Role::Master, "xarchive")?;
    let name = WalFileName::parse(srcname)?;
    let mut transport = remote::for_master(&ctx.config)?;
    transport.check()?;
    match transport.archive(&name, srcpath, &mut ctx.changes)? {
        Stored::Written => tracing::debug!("archived {name}"),
        Stored::AlreadyPresent => {
            tracing::info!("{name} was already archived with the same content")
        }
    }
    Ok(())
}
