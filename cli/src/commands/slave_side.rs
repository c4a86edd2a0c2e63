//! What a backup does to the standby's directories: lock, rotate, purge. The master's
//! `backup` runs these in-process for the local transport; the x-commands run them alone.

use std::fs;
use std::path::{Path, PathBuf};

use walmgr_core::backup_catalog;
use walmgr_core::config::{Config, Role};
use walmgr_core::lock::{self, Holder, Taken};
use walmgr_core::wal_name::{SegmentName, WalFileName};

use super::Context;
use crate::error::Result;

/// The config that describes the standby's side: a master config names it in
/// `slave_config`; without one, its own keys are used.
///
/// With `slave` set, the standby's directories are on another host, which only archiving
/// reaches (over SSH): the commands that read or write them directly refuse, by name,
/// rather than act on paths of this host.
pub fn slave_view(ctx: &Context, command: &str) -> Result<Config> {
    if let (Role::Master, Some(slave)) = (&ctx.config.role, &ctx.config.slave) {
        return Err(crate::error::CliError::failed(format!(
            "`{command}` works on the standby's directories, which are on {slave}; this walmgr \
             reaches them over SSH only to archive. Run it on the standby with its slave config \
             (there, `backup` copies the replaying standby)"
        )));
    }
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

/// Takes BACKUPLOCK in `dir` (the standby's completed_wals) for this process; released when
/// the guard drops (also on error).
pub fn take_lock(ctx: &mut Context, dir: PathBuf, what: &str) -> Result<Option<LockGuard>> {
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
    let dir = slave_view(ctx, "xlock")?.completed_wals;
    if let Some(mut guard) = take_lock(ctx, dir, "xlock")? {
        // xlock's lock outlives this process by design: xrelease removes it.
        guard.armed = false;
    }
    Ok(())
}

pub fn xrelease(ctx: &mut Context) -> Result<()> {
    let dir = slave_view(ctx, "xrelease")?.completed_wals;
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
    let slave = slave_view(ctx, "xrotate")?;
    backup_catalog::rotate(
        &slave.full_backup,
        slave.keep_backups,
        slave.archive_command.as_deref(),
        &mut ctx.changes,
    )?;
    Ok(())
}

pub fn xpurgewals(ctx: &mut Context, last: Option<&str>) -> Result<()> {
    let slave = slave_view(ctx, "xpurgewals")?;
    if let Some(Ok(last)) = last.map(WalFileName::parse) {
        record_restartpoint(ctx, &slave.completed_wals, &last)?;
    }
    purge(ctx, &slave)
}

/// Where the standby's recovery must be able to restart from. xrestore and xpurgewals
/// record %r here, and no purge removes WAL from this segment on: a standby that lags
/// behind the newest backup keeps what it still needs.
pub const RESTARTPOINT_FILE: &str = "RESTARTPOINT";

pub fn record_restartpoint(
    ctx: &mut Context,
    completed_wals: &Path,
    last: &WalFileName,
) -> Result<()> {
    let WalFileName::Segment(segment) = last else {
        return Ok(()); // nothing usable for purge
    };
    if recorded_restartpoint(completed_wals) == Some(*segment) {
        return Ok(());
    }
    let path = completed_wals.join(RESTARTPOINT_FILE);
    ctx.changes.apply(
        format!("record restartpoint {segment} in {}", path.display()),
        || walmgr_core::store::replace_file(&path, format!("{segment}\n").as_bytes()),
    )?;
    Ok(())
}

fn recorded_restartpoint(completed_wals: &Path) -> Option<SegmentName> {
    let text = fs::read_to_string(completed_wals.join(RESTARTPOINT_FILE)).ok()?;
    match WalFileName::parse(text.trim()) {
        Ok(WalFileName::Segment(s)) => Some(s),
        _ => None,
    }
}

/// Purges WAL older than the oldest kept backup.
pub fn purge(ctx: &mut Context, slave: &Config) -> Result<()> {
    let sets = backup_catalog::list(&slave.full_backup)?;
    let Some(oldest) = sets.last() else {
        ctx.log.debug("no backup set: no WAL file is purged");
        return Ok(());
    };
    let mut keep_from = oldest.label.start_segment;
    if let Some(restart) = recorded_restartpoint(&slave.completed_wals) {
        if (restart.log, restart.seg) < (keep_from.log, keep_from.seg) {
            ctx.log.info(&format!(
                "keeping WAL from {restart}: the standby restarts from there"
            ));
            keep_from = restart;
        }
    }
    let dirs: Vec<&Path> = vec![&slave.completed_wals, &slave.partial_wals];
    let removed = backup_catalog::purge_wals(&keep_from, &dirs, &mut ctx.changes)?;
    if !removed.is_empty() {
        ctx.log.info(&format!(
            "purged {} WAL file(s) older than {} (oldest backup: {})",
            removed.len(),
            keep_from,
            oldest.name()
        ));
    }
    Ok(())
}

pub fn listbackups(ctx: &mut Context) -> Result<()> {
    let slave = slave_view(ctx, "listbackups")?;
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
