//! `backup`: a base backup into full_backup, from the master or the in-recovery standby;
//! here only the progress display (crate::progress).

use walmgr_core::backup::datadir::Progress;
use walmgr_core::backup::take::{self, Side};
use walmgr_core::config::Role;

use super::Context;
use crate::error::Result;
use crate::progress::Display;
use crate::server::Connection;

pub fn run(ctx: &mut Context, quiet: bool) -> Result<()> {
    let side = Side::of(&ctx.config);
    let mut server = match ctx.config.role {
        Role::Master => Connection::master(ctx.config.required(
            &ctx.config.master_db,
            "master_db",
            "backup",
        )?)?,
        Role::Slave => Connection::local(take::source_data(&ctx.config)?)?,
    };
    let mut area = walmgr_core::remote::backup_area(&ctx.config)?;
    let mut display = Display::new("backup", "copied", quiet, ctx.changes.is_dry_run());
    let done = take::take(
        &ctx.config,
        area.as_mut(),
        &mut server,
        &mut ctx.changes,
        &mut |p: &Progress| display.update(p),
    );
    display.finish();
    if let Some(set) = done? {
        println!("backup from the {} done: {}", side.name(), set.display());
    }
    Ok(())
}
