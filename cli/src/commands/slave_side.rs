//! What a backup does to the standby's directories: lock, rotate, purge. The master's
//! `backup` runs these in-process for the local transport; the x-commands run them alone.

use std::path::{Path, PathBuf};

use walmgr_core::backup_catalog;
use walmgr_core::config::{Config, Role};
use walmgr_core::lock::{self, Holder, Taken};

use super::Context;
use crate::error::Result;

/// The config that describes the standby's side: a master config names it in
/// `slave_config`; without one, its own keys are used.
pub fn slave_view(ctx: &Context) -> Result<Config> {
    match (&ctx.config.role, &ctx.config.slave_config) {
        (Role::Master, Some(path)) if path.exists() => Ok(Config::load(path, &[])?),
        _ => Ok(ctx.config.clone()),
    }
}

pub struct LockGuard {
    dir: PathBuf,
    holder: Holder,
    armed: bool,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = lock::release(&self.dir, &self.holder) {
                eprintln!("WARNING {e}");
            }
        }
    }
}

/// Takes BACKUPLOCK for this process; released when the guard drops (also on error).
pub fn take_lock(ctx: &mut Context, what: &str) -> Result<Option<LockGuard>> {
    let dir = ctx.config.completed_wals.clone();
    let me = Holder::me(what);
    let taken = ctx.changes.apply(
        format!("take backup lock {}", dir.join(lock::LOCK_FILE).display()),
        || lock::acquire(&dir, &me),
    )?;
    match taken {
        None => Ok(None),
        Some(found) => {
            if let Taken::TakenOver(old) = found {
                ctx.log.warning(&format!(
                    "took over the backup lock of {old}, which is no longer running"
                ));
            }
            Ok(Some(LockGuard {
                dir,
                holder: me,
                armed: true,
            }))
        }
    }
}

pub fn xlock(ctx: &mut Context) -> Result<()> {
    if let Some(mut guard) = take_lock(ctx, "xlock")? {
        // xlock's lock outlives this process by design: xrelease removes it.
        guard.armed = false;
    }
    Ok(())
}

pub fn xrelease(ctx: &mut Context) -> Result<()> {
    let dir = ctx.config.completed_wals.clone();
    let holder = ctx.changes.apply(
        format!("remove backup lock {}", dir.join(lock::LOCK_FILE).display()),
        || lock::force_release(&dir),
    )?;
    if let Some(Some(h)) = holder {
        ctx.log
            .info(&format!("released the backup lock held by {h}"));
    }
    Ok(())
}

pub fn xrotate(ctx: &mut Context) -> Result<()> {
    let slave = slave_view(ctx)?;
    backup_catalog::rotate(
        &slave.full_backup,
        slave.keep_backups,
        slave.archive_command.as_deref(),
        &mut ctx.changes,
    )?;
    Ok(())
}

pub fn xpurgewals(ctx: &mut Context) -> Result<()> {
    let slave = slave_view(ctx)?;
    purge(ctx, &slave, None)
}

/// Purges WAL older than the oldest kept backup. `seg_size` comes from the master when
/// known, else from the segments' own headers.
pub fn purge(ctx: &mut Context, slave: &Config, seg_size: Option<u32>) -> Result<()> {
    let sets = backup_catalog::list(&slave.full_backup)?;
    let Some(oldest) = sets.last() else {
        ctx.log.debug("no backup set: no WAL file is purged");
        return Ok(());
    };
    let Some(seg_size) =
        seg_size.or_else(|| backup_catalog::segment_size_in(&slave.completed_wals))
    else {
        return Ok(());
    };
    let dirs: Vec<&Path> = vec![&slave.completed_wals, &slave.partial_wals];
    let removed = backup_catalog::purge_wals(
        &oldest.label.start_segment,
        seg_size,
        &dirs,
        &mut ctx.changes,
    )?;
    if !removed.is_empty() {
        ctx.log.info(&format!(
            "purged {} WAL file(s) older than {} (start of the oldest backup, {})",
            removed.len(),
            oldest.label.start_segment,
            oldest.name()
        ));
    }
    Ok(())
}

pub fn listbackups(ctx: &mut Context) -> Result<()> {
    let slave = slave_view(ctx)?;
    let sets = backup_catalog::list(&slave.full_backup)?;
    if sets.is_empty() {
        println!("no backups in {}", slave.full_backup.display());
        return Ok(());
    }
    println!(
        "{:<18} {:<28} {:<14} {:<14} {:<25} {:>10}  first WAL needed",
        "set", "label", "start LSN", "stop LSN", "start time", "size MB"
    );
    for s in &sets {
        println!(
            "{:<18} {:<28} {:<14} {:<14} {:<25} {:>10}  {}",
            s.name(),
            s.label.label,
            s.label.start_lsn.to_string(),
            s.stop_lsn.clone().unwrap_or_else(|| "?".into()),
            s.label.start_time,
            s.size >> 20,
            s.label.start_segment
        );
    }
    Ok(())
}
