//! The standby's lifecycle: restore a backup set, pause and continue replay, boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use walmgr_core::backup_catalog;
use walmgr_core::backup_label::BackupLabel;
use walmgr_core::config::Role;
use walmgr_core::datadir;
use walmgr_core::lsn::Lsn;
use walmgr_core::recovery::{self, Target};
use walmgr_core::wal_name::{SegmentName, WalFileName};
use walmgr_core::Error;

use super::{standby_conn, Context};
use crate::error::{CliError, Result};

pub const PAUSE_FILE: &str = "PAUSE";
pub const STOP_FILE: &str = "STOP";

fn slave_data(ctx: &Context, command: &str) -> Result<PathBuf> {
    ctx.config
        .slave_data
        .clone()
        .ok_or_else(|| ctx.config.missing("slave_data", command).into())
}

pub fn restore(
    ctx: &mut Context,
    src: Option<&str>,
    dst: Option<&Path>,
    target: Option<Target>,
) -> Result<()> {
    ctx.require_role(Role::Slave, "restore")?;
    let data = match dst {
        Some(d) => d.to_path_buf(),
        None => slave_data(ctx, "restore")?,
    };
    let full_backup = ctx.config.full_backup.clone();
    let (set, moving) = match src {
        None => (full_backup.clone(), true),
        Some(name) if name.contains('/') => (PathBuf::from(name), false),
        Some(name) => (full_backup.with_file_name(name), false),
    };
    let label_path = set.join("backup_label");
    if !label_path.is_file() {
        let sets: Vec<String> = backup_catalog::list(&full_backup)?
            .iter()
            .map(|s| s.name())
            .collect();
        return Err(CliError::failed(format!(
            "{} is not a backup set (no backup_label); sets: {}",
            set.display(),
            if sets.is_empty() {
                "none".into()
            } else {
                sets.join(", ")
            }
        )));
    }

    let label = fs::read_to_string(&label_path)
        .map_err(|e| Error::io("read", &label_path, e))
        .and_then(|text| BackupLabel::parse(&text, &label_path))?;

    // slave_stop_cmd / slave_start_cmd are about slave_data, not another destination.
    let own_server = dst.is_none();
    if let Some(cmd) = ctx.config.slave_stop_cmd.clone().filter(|_| own_server) {
        if standby_conn::running(&data).is_some() {
            ctx.run_shell("slave_stop_cmd", &cmd)?;
        }
    }
    if standby_conn::running(&data).is_some() && !ctx.changes.is_dry_run() {
        return Err(CliError::failed(format!(
            "a server is still running on {}: stop it (or set slave_stop_cmd) before restore",
            data.display()
        )));
    }

    if data.exists() {
        if ctx.config.backup_datadir {
            let aside = PathBuf::from(format!("{}.{}", data.display(), timestamp()));
            ctx.changes.apply(
                format!("rename {} to {}", data.display(), aside.display()),
                || fs::rename(&data, &aside).map_err(|e| Error::io("rename", &data, e)),
            )?;
        } else {
            ctx.changes.apply(
                format!("remove {} (backup_datadir = no)", data.display()),
                || fs::remove_dir_all(&data).map_err(|e| Error::io("remove", &data, e)),
            )?;
        }
    }
    if moving {
        ctx.changes.apply(
            format!("move {} to {}", set.display(), data.display()),
            || match fs::rename(&set, &data) {
                // Another filesystem: copy, and drop the set only once the copy is whole.
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    datadir::copy_tree(&set, &data)?;
                    fs::remove_dir_all(&set).map_err(|e| Error::io("remove", &set, e))
                }
                other => other.map_err(|e| Error::io("move", &set, e)),
            },
        )?;
    } else {
        ctx.changes.apply(
            format!("copy {} to {}", set.display(), data.display()),
            || datadir::copy_tree(&set, &data).map(|_| ()),
        )?;
    }

    if let Some(pg_xlog) = ctx.config.slave_pg_xlog.clone() {
        link_pg_wal(ctx, &data, &pg_xlog)?;
    }
    if let (Some(conf_dir), Some(backup)) = (
        ctx.config.slave_config_dir.clone(),
        ctx.config.config_backup.clone(),
    ) {
        restore_config_files(ctx, &backup, &conf_dir)?;
    }

    let walmgr = std::env::current_exe().map_err(|e| Error::io("find", "walmgr binary", e))?;
    let config = ctx
        .config
        .source
        .canonicalize()
        .map_err(|e| Error::io("resolve", &ctx.config.source, e))?;
    let plan = recovery::plan(
        &walmgr,
        &config,
        ctx.config.primary_conninfo.as_deref(),
        target.as_ref(),
    );
    let what = format!(
        "write {} and set {} in postgresql.auto.conf",
        data.join(plan.signal_file).display(),
        plan.settings
            .iter()
            .map(|(k, v)| format!("{k} = '{v}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ctx.changes.apply(what, || recovery::write(&data, &plan))?;
    // Until its first restartpoint the restored server reports none (%r is all zeros), yet
    // it needs the archive from the backup's start on: no purge may take that meanwhile.
    let completed_wals = ctx.config.completed_wals.clone();
    super::slave_side::record_restartpoint(
        ctx,
        &completed_wals,
        &WalFileName::Segment(label.start_segment),
    )?;
    for control in [STOP_FILE, PAUSE_FILE] {
        let path = ctx.config.completed_wals.join(control);
        if path.exists() {
            ctx.changes
                .apply(format!("remove {}", path.display()), || {
                    fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))
                })?;
        }
    }
    if let Some(cmd) = ctx.config.slave_start_cmd.clone().filter(|_| own_server) {
        ctx.run_shell("slave_start_cmd", &cmd)?;
    } else {
        ctx.log.info(&format!(
            "restored into {}: start PostgreSQL there (slave_start_cmd is not set)",
            data.display()
        ));
    }
    Ok(())
}

fn link_pg_wal(ctx: &mut Context, data: &Path, target: &Path) -> Result<()> {
    let pg_wal = data.join("pg_wal");
    ctx.changes.apply(
        format!(
            "replace {} by a symlink to {}",
            pg_wal.display(),
            target.display()
        ),
        || {
            fs::remove_dir_all(&pg_wal).map_err(|e| Error::io("remove", &pg_wal, e))?;
            walmgr_core::transport::create_private_dir(&target.join("archive_status"))?;
            std::os::unix::fs::symlink(target, &pg_wal)
                .map_err(|e| Error::io("symlink", &pg_wal, e))?;
            if let Ok(meta) = fs::metadata(data) {
                use std::os::unix::fs::MetadataExt;
                for p in [target.to_path_buf(), target.join("archive_status")] {
                    let _ = std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid()));
                }
                let _ = std::os::unix::fs::lchown(&pg_wal, Some(meta.uid()), Some(meta.gid()));
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Configuration files saved by backup go back where the standby's server reads them.
/// Archiving stays off through postgresql.auto.conf, which overrides these files.
fn restore_config_files(ctx: &mut Context, backup: &Path, conf_dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(backup) else {
        return Ok(());
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let from = entry.path();
        let to = conf_dir.join(entry.file_name());
        ctx.changes.apply(
            format!("copy {} to {}", from.display(), to.display()),
            || {
                fs::copy(&from, &to)
                    .map(|_| ())
                    .map_err(|e| Error::io("copy", &from, e))
            },
        )?;
    }
    Ok(())
}

/// Seconds and nanoseconds since the epoch, digits only: unique even for two restores in
/// the same second, and recognisable by `cleanup`.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}{:09}", now.as_secs(), now.subsec_nanos())
}

fn control_file(ctx: &Context, name: &str) -> PathBuf {
    ctx.config.completed_wals.join(name)
}

pub fn pause(ctx: &mut Context) -> Result<()> {
    ctx.require_role(Role::Slave, "pause")?;
    let data = slave_data(ctx, "pause")?;
    let file = control_file(ctx, PAUSE_FILE);
    ctx.changes.apply(
        format!("create {} (xrestore hands out no WAL)", file.display()),
        || fs::write(&file, "").map_err(|e| Error::io("create", &file, e)),
    )?;
    if let Some(mut client) = standby_conn::try_connect(&data) {
        ctx.changes.apply("SELECT pg_wal_replay_pause()", || {
            client
                .execute("SELECT pg_wal_replay_pause()", &[])
                .map(|_| ())
                .map_err(|e| Error::Usage(format!("pg_wal_replay_pause: {e}")))
        })?;
    }
    Ok(())
}

pub fn resume(ctx: &mut Context) -> Result<()> {
    ctx.require_role(Role::Slave, "continue")?;
    let data = slave_data(ctx, "continue")?;
    let file = control_file(ctx, PAUSE_FILE);
    if file.exists() {
        ctx.changes
            .apply(format!("remove {}", file.display()), || {
                fs::remove_file(&file).map_err(|e| Error::io("remove", &file, e))
            })?;
    }
    if let Some(mut client) = standby_conn::try_connect(&data) {
        ctx.changes.apply("SELECT pg_wal_replay_resume()", || {
            client
                .execute("SELECT pg_wal_replay_resume()", &[])
                .map(|_| ())
                .map_err(|e| Error::Usage(format!("pg_wal_replay_resume: {e}")))
        })?;
    }
    Ok(())
}

/// Ends recovery without dropping anything the archive holds.
///
/// STOP tells xrestore that recovery is ending (it keeps handing out every file it has),
/// and `pg_ctl promote` asks the server to open. PostgreSQL acts on a promotion request
/// only once it fails to find the next WAL file, so a standby that is far behind first
/// replays the whole archive and opens at its end. That can take long: boot shows progress
/// and waits as long as the server keeps recovering, never cutting replay short on a timer.
pub fn boot(ctx: &mut Context) -> Result<()> {
    ctx.require_role(Role::Slave, "boot")?;
    let data = slave_data(ctx, "boot")?;
    if standby_conn::running(&data).is_none() {
        return Err(CliError::failed(format!(
            "no server is running on {}: start the standby, then boot it",
            data.display()
        )));
    }
    if let Some(mut client) = standby_conn::try_connect(&data) {
        let in_recovery: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .map_err(|e| CliError::db("SELECT pg_is_in_recovery()", e))?
            .get(0);
        if !in_recovery {
            return Err(CliError::failed(format!(
                "the server on {} is not in recovery: it is already booted",
                data.display()
            )));
        }
    }
    // Targeted (point-in-time) recovery stops short of the archive's end by design.
    let follows_archive = data.join("standby.signal").exists();
    if control_file(ctx, PAUSE_FILE).exists() {
        resume(ctx)?;
    }
    let stop = control_file(ctx, STOP_FILE);
    ctx.changes
        .apply(format!("create {}", stop.display()), || {
            fs::write(&stop, "").map_err(|e| Error::io("create", &stop, e))
        })?;
    let pg_ctl = ctx
        .config
        .slave_bin
        .as_ref()
        .map(|b| b.join("pg_ctl"))
        .unwrap_or_else(|| PathBuf::from("pg_ctl"));
    // -W: the promotion finishes only after the archive is replayed; boot watches it below
    // rather than letting pg_ctl give up after its own timeout.
    let cmd = format!(
        "{} -D {} -W promote",
        walmgr_core::shell::quote(&pg_ctl.to_string_lossy()),
        walmgr_core::shell::quote(&data.to_string_lossy())
    );
    let as_owner = if unsafe { libc::geteuid() } == 0 {
        format!("runuser -u {} -- {cmd}", owner(&data))
    } else {
        cmd
    };
    ctx.run_shell("promote", &as_owner)?;

    let opened = if ctx.changes.is_dry_run() {
        None
    } else {
        Some(watch_promotion(ctx, &data)?)
    };
    // A booted server restarts from nothing in the archive: its restartpoint no longer
    // holds WAL back from purging. Kept until now, as replay needed it until the end.
    let restart = control_file(ctx, super::slave_side::RESTARTPOINT_FILE);
    if restart.exists() {
        ctx.changes
            .apply(format!("remove {}", restart.display()), || {
                fs::remove_file(&restart).map_err(|e| Error::io("remove", &restart, e))
            })?;
    }
    let Some(opened) = opened else {
        return Ok(());
    };
    ctx.log.info(&format!(
        "booted: {} opened for writes at {} on timeline {}",
        data.display(),
        opened.lsn.map_or("?".to_string(), |l| l.to_string()),
        opened.timeline
    ));
    if let (true, Some(lsn), Some(reach)) = (follows_archive, opened.lsn, archive_reach(ctx)) {
        if lsn < reach.start {
            return Err(CliError::failed(format!(
                "the standby opened at {lsn}, but the archive holds {} (from {}): replay \
                 stopped before it; the standby's server log says why",
                reach.segment, reach.start
            )));
        }
    }
    Ok(())
}

/// Where a promoted standby opened: its new timeline and the LSN that timeline starts at.
struct Opened {
    timeline: u32,
    lsn: Option<Lsn>,
}

/// Waits until the server has left recovery, reporting replay progress every few seconds.
/// A server that stops running ends the wait with an error; nothing else does.
fn watch_promotion(ctx: &Context, data: &Path) -> Result<Opened> {
    const REPORT_EVERY: Duration = Duration::from_secs(5);
    let mut last_report = Instant::now();
    loop {
        if standby_conn::running(data).is_none() {
            return Err(CliError::failed(format!(
                "the server on {} stopped while it was being booted: its log says why",
                data.display()
            )));
        }
        // Before the standby is consistent it accepts no connection; that is progress too.
        let state = standby_conn::try_connect(data).and_then(|mut c| {
            c.query_one(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
                 pg_walfile_name(CASE WHEN pg_is_in_recovery() THEN NULL \
                                      ELSE pg_current_wal_lsn() END)",
                &[],
            )
            .ok()
        });
        match state {
            Some(row) if !row.get::<_, bool>(0) => {
                let file: String = row.get(2);
                let timeline = u32::from_str_radix(&file[..8.min(file.len())], 16).unwrap_or(0);
                return Ok(Opened {
                    timeline,
                    lsn: timeline_start(data, timeline),
                });
            }
            state if last_report.elapsed() >= REPORT_EVERY => {
                let replayed = state.and_then(|row| row.get::<_, Option<String>>(1));
                let reach = archive_reach(ctx)
                    .map(|r| format!(", the archive reaches {}", r.end))
                    .unwrap_or_default();
                ctx.log.info(&format!(
                    "replaying what the archive holds before opening: at {}{reach}",
                    replayed.as_deref().unwrap_or("(not yet consistent)")
                ));
                last_report = Instant::now();
            }
            _ => {}
        }
        sleep(Duration::from_millis(200));
    }
}

/// The LSN at which `timeline` branched off, from its history file in pg_wal: the end of
/// what recovery replayed.
fn timeline_start(data: &Path, timeline: u32) -> Option<Lsn> {
    let history = fs::read_to_string(data.join(format!("pg_wal/{timeline:08X}.history"))).ok()?;
    let last = history
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    last.split_whitespace().nth(1)?.parse().ok()
}

/// The newest complete segment in the archive.
struct ArchiveReach {
    segment: SegmentName,
    start: Lsn,
    end: Lsn,
}

fn archive_reach(ctx: &Context) -> Option<ArchiveReach> {
    let dir = &ctx.config.completed_wals;
    let seg_size = backup_catalog::segment_size_in(dir)?;
    let newest = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(
            |e| match WalFileName::parse(&e.file_name().to_string_lossy()) {
                Ok(WalFileName::Segment(s)) => Some(s),
                _ => None,
            },
        )
        .max_by_key(|s| (s.segno(seg_size), s.tli))?;
    let start = newest.start_lsn(seg_size);
    Some(ArchiveReach {
        segment: newest,
        start: Lsn(start),
        end: Lsn(start + u64::from(seg_size)),
    })
}

fn owner(path: &Path) -> String {
    standby_conn::owner_name(path).unwrap_or_else(|| "postgres".into())
}
