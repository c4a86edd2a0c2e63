//! `setup`, `stop` and `synch-standby` on the master.

use std::path::Path;
use std::time::Duration;

use walmgr_core::changes::Changes;
use walmgr_core::setup::archiving::{self, StopOptions};
use walmgr_core::setup::cluster_location::ClusterLocation;
use walmgr_core::setup::synch_standby;

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

/// `synch-standby NAMES`, through master_db.
pub fn synch_standby(ctx: &mut Context, names: &str) -> Result<()> {
    ctx.config
        .require_role(walmgr_core::config::Role::Master, "synch-standby")?;
    let mut server = master(ctx, "synch-standby")?;
    set_sync_standbys(&mut server, names, &mut ctx.changes)
}

/// `--synch-standby=NAMES`: the cluster found as --init-master finds it, reached through
/// the socket and port of its postmaster.pid, as the owner of its data directory.
pub fn synch_standby_without_config(
    pgdata: Option<&Path>,
    names: &str,
    changes: &mut Changes,
) -> Result<()> {
    let cluster = ClusterLocation::find(pgdata)?;
    let mut server = Connection::local(&cluster.data)?;
    set_sync_standbys(&mut server, names, changes)
}

/// Through `walmgr.synch_standby()` where the extension has it, else core's same workflow
/// over this connection (plain ALTER SYSTEM).
fn set_sync_standbys(server: &mut Connection, names: &str, changes: &mut Changes) -> Result<()> {
    let said = if server.has_synch_standby()? {
        let report = server.synch_standby(names, changes.is_dry_run())?;
        let (done, said) = synch_standby::read_report(&report);
        done.into_iter().for_each(|line| changes.record(line));
        said.to_string()
    } else {
        synch_standby::run(server, names, changes)?
    };
    println!("{said}");
    Ok(())
}
