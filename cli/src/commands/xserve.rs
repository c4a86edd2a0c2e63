//! `xserve`: the standby's receiving end of the master's connection. Files arrive on stdin
//! and go through the same store as every other archive write; stdout carries one reply
//! per file (see walmgr_core::wire). Logs go to stderr, never into the reply stream.

use std::io::{self, BufReader};

use walmgr_core::store::ArchiveStore;
use walmgr_core::wire;

use super::Context;
use crate::error::{CliError, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    if ctx.changes.is_dry_run() {
        return Err(CliError::failed(
            "xserve writes what the master sends; it has no --not-really mode",
        ));
    }
    let store = ArchiveStore::new(&ctx.config.completed_wals);
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    let served = wire::serve(&store, BufReader::with_capacity(1 << 20, stdin), stdout)?;
    ctx.log.debug(&format!("xserve: {served} file(s) received"));
    Ok(())
}
