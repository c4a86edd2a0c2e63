//! The standby's lifecycle: restore, pause, continue, boot, cleanup.

use std::path::Path;

use walmgr_core::standby::boot::{self, Watch};
use walmgr_core::standby::recovery::Target;
use walmgr_core::standby::restore::{self, Request};
use walmgr_core::standby::{cleanup, replay};
use walmgr_core::Error;

use super::Context;
use crate::error::Result;
use crate::progress::Display;

pub fn restore(
    ctx: &mut Context,
    set: Option<&str>,
    dst: Option<&Path>,
    target: Option<Target>,
    quiet: bool,
) -> Result<()> {
    // restore_command runs this very binary.
    let walmgr = std::env::current_exe().map_err(|e| Error::io("find", "walmgr binary", e))?;
    let request = Request { set, dst, target };
    let mut display = Display::new("restore", "copied", quiet, ctx.changes.is_dry_run());
    let done = restore::restore(&ctx.config, &walmgr, &request, &mut ctx.changes, &mut |p| {
        display.update(p)
    });
    display.finish();
    done?;
    Ok(())
}

pub fn createslave(ctx: &mut Context, conninfo: Option<&str>, quiet: bool) -> Result<()> {
    let walmgr = std::env::current_exe().map_err(|e| Error::io("find", "walmgr binary", e))?;
    let mut display = Display::new("createslave", "copied", quiet, ctx.changes.is_dry_run());
    let done = walmgr_core::standby::createslave::createslave(
        &ctx.config,
        conninfo,
        &walmgr,
        &mut ctx.changes,
        &mut |p| display.update(p),
    );
    display.finish();
    done?;
    Ok(())
}

pub fn pause(ctx: &mut Context) -> Result<()> {
    let mut server = ctx.standby("pause")?;
    Ok(replay::pause(&ctx.config, &mut server, &mut ctx.changes)?)
}

pub fn resume(ctx: &mut Context) -> Result<()> {
    let mut server = ctx.standby("continue")?;
    Ok(replay::resume(&ctx.config, &mut server, &mut ctx.changes)?)
}

pub fn boot(ctx: &mut Context, quiet: bool) -> Result<()> {
    let mut server = ctx.standby("boot")?;
    let mut display = Display::new("boot", "replayed", quiet, ctx.changes.is_dry_run());
    let done = boot::boot(
        &ctx.config,
        &mut server,
        Watch::default(),
        &mut ctx.changes,
        &mut |p| display.update(p),
    );
    display.finish();
    done?;
    Ok(())
}

pub fn cleanup(ctx: &mut Context) -> Result<()> {
    let mut server = match &ctx.config.slave_data {
        Some(_) => Some(ctx.standby("cleanup")?),
        None => None,
    };
    let server = server
        .as_mut()
        .map(|s| s as &mut dyn walmgr_core::server::Standby);
    Ok(cleanup::cleanup(&ctx.config, server, &mut ctx.changes)?)
}
