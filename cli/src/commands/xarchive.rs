//! `xarchive SRCPATH SRCNAME`: archive one file from archive_command, for servers that
//! cannot load the archive module. Same store, same guarantees.

use std::path::Path;

use walmgr_core::config::Role;
use walmgr_core::store::Stored;
use walmgr_core::transport;
use walmgr_core::wal_name::WalFileName;

use super::Context;
use crate::error::Result;

pub fn run(ctx: &mut Context, srcpath: &Path, srcname: &str) -> Result<()> {
    ctx.require_role(Role::Master, "xarchive")?;
    let name = WalFileName::parse(srcname)?;
    let mut transport = transport::for_master(&ctx.config)?;
    transport.check()?;
    match transport.archive(&name, srcpath, &mut ctx.changes)? {
        Stored::Written => ctx.log.debug(&format!("archived {name}")),
        Stored::AlreadyPresent => ctx.log.info(&format!(
            "{name} was already archived with the same content"
        )),
    }
    Ok(())
}
