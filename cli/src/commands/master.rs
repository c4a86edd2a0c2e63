//! `setup` and `stop` on the master.

use std::time::Duration;

use walmgr_core::setup::archiving::{self, StopOptions};

use super::Context;
use crate::error::Result;
use crate::server::Connection;

fn master(ctx: &Context, command: &str) -> Result<Connection> {
    let conninfo = ctx
        .config
        .required(&ctx.config.master_db, "master_db", command)?;
    Ok(Connection::master(conninfo)?)
}

pub fn setup(ctx: &mut Context) -> Result<()> {
    ctx.config
        .require_role(walmgr_core::config::Role::Master, "setup")?;
    let mut server = master(ctx, "setup")?;
    let said = archiving::setup(&ctx.config, &mut server, &mut ctx.changes)?;
    said.iter().for_each(|line| println!("{line}"));
    Ok(())
}

pub fn stop(ctx: &mut Context, wait: u64, drop_waiting: bool) -> Result<()> {
    ctx.config
        .require_role(walmgr_core::config::Role::Master, "stop")?;
    let mut server = master(ctx, "stop")?;
    let options = StopOptions {
        wait: Duration::from_secs(wait),
        drop_waiting,
    };
    let said = archiving::stop(&ctx.config, &mut server, options, &mut ctx.changes)?;
    said.iter().for_each(|line| println!("{line}"));
    Ok(())
}
