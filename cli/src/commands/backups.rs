//! The backup sets and their lock, on the standby's side: `listbackups`, and the internal
//! commands walmgr3 ran there (`xlock`, `xrelease`, `xrotate`, `xpurgewals`).

use walmgr_core::archive::control::ControlFiles;
use walmgr_core::archive::lock;
use walmgr_core::backup::{catalog, purge, standby_side};
use walmgr_core::wal::WalFileName;

use super::Context;
use crate::error::Result;

/// The standby's sets: from its directories here, or over SSH from the master.
pub fn listbackups(ctx: &mut Context) -> Result<()> {
    let (place, sets) = walmgr_core::status::backup_sets(&ctx.config)?;
    if sets.is_empty() {
        println!("no backups in {place}");
        return Ok(());
    }
    println!(
        "{:<18} {:<28} {:<14} {:<14} {:<25} {:>10}  first WAL needed",
        "set", "label", "start LSN", "stop LSN", "start time", "size MB"
    );
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or("?").to_string();
    for s in &sets {
        println!(
            "{:<18} {:<28} {:<14} {:<14} {:<25} {:>10}  {}",
            text(s, "set"),
            text(s, "label"),
            text(s, "start_lsn"),
            text(s, "stop_lsn"),
            text(s, "start_time"),
            s["size_bytes"].as_u64().unwrap_or(0) >> 20,
            text(s, "first_wal")
        );
    }
    Ok(())
}

pub fn xlock(ctx: &mut Context) -> Result<()> {
    let dir = standby_side(&ctx.config, "xlock")?.completed_wals;
    lock::take_until_release(&dir, &mut ctx.changes)?;
    Ok(())
}

pub fn xrelease(ctx: &mut Context) -> Result<()> {
    let dir = standby_side(&ctx.config, "xrelease")?.completed_wals;
    let holder = ctx.changes.apply(
        format!("remove backup lock {}", dir.join(lock::LOCK_FILE).display()),
        || lock::force_release(&dir),
    )?;
    if let Some(Some(h)) = holder {
        tracing::info!("released the backup lock held by {h}");
    }
    Ok(())
}

pub fn xrotate(ctx: &mut Context) -> Result<()> {
    let standby = standby_side(&ctx.config, "xrotate")?;
    catalog::rotate(
        &standby.full_backup,
        standby.keep_backups,
        standby.archive_command.as_deref(),
        &mut ctx.changes,
    )?;
    Ok(())
}

/// As archive_cleanup_command, `%r` is the standby's restartpoint: recorded first, so the
/// purge keeps what the standby needs.
pub fn xpurgewals(ctx: &mut Context, last: Option<&str>) -> Result<()> {
    let standby = standby_side(&ctx.config, "xpurgewals")?;
    if let Some(Ok(WalFileName::Segment(segment))) = last.map(WalFileName::parse) {
        ControlFiles::in_archive(&standby.completed_wals)
            .record_restartpoint(segment, &mut ctx.changes)?;
    }
    purge::purge(&standby, &mut ctx.changes)?;
    Ok(())
}
