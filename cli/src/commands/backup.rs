//! `backup`: a base backup into full_backup, from the master (master config) or from the
//! in-recovery standby (slave config), with lock, rotation and WAL purge around it.
//!
//! The copy goes into `<full_backup>.inprogress` and becomes `data.master` only when
//! complete, so a failed or killed backup never costs an existing one.

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use postgres::Client;
use walmgr_core::backup_catalog;
use walmgr_core::config::Role;
use walmgr_core::datadir::{self, CopyOptions, Progress};
use walmgr_core::Error;

use super::slave_side::{self, purge, take_lock};
use super::{standby_conn, Context};
use crate::db;
use crate::error::{CliError, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let (source, mut client, from) = match ctx.config.role {
        Role::Master => {
            let data = ctx
                .config
                .master_data
                .clone()
                .ok_or_else(|| ctx.config.missing("master_data", "backup"))?;
            let conninfo = ctx
                .config
                .master_db
                .clone()
                .ok_or_else(|| ctx.config.missing("master_db", "backup"))?;
            (data, db::connect(&conninfo)?, "master")
        }
        Role::Slave => {
            let data = ctx
                .config
                .slave_data
                .clone()
                .ok_or_else(|| ctx.config.missing("slave_data", "backup"))?;
            let client = standby_conn::connect(&data)?;
            (data, client, "standby")
        }
    };
    let slave = slave_side::slave_view(ctx, "backup")?;
    let _lock = take_lock(
        ctx,
        slave.completed_wals.clone(),
        &format!("backup from the {from}"),
    )?;

    let full_backup = slave.full_backup.clone();
    let staging = PathBuf::from(format!("{}.inprogress", full_backup.display()));
    if staging.join("backup_label").exists() && !full_backup.exists() {
        // A backup that completed but was killed before its rename: it is the newest set.
        ctx.changes.apply(
            format!(
                "rename {} (complete, left by a killed backup) to {}",
                staging.display(),
                full_backup.display()
            ),
            || fs::rename(&staging, &full_backup).map_err(|e| Error::io("rename", &staging, e)),
        )?;
    } else if staging.exists() {
        ctx.changes.apply(
            format!("remove {} left by an interrupted backup", staging.display()),
            || fs::remove_dir_all(&staging).map_err(|e| Error::io("remove", &staging, e)),
        )?;
    }

    let label = format!(
        "walmgr {}",
        ctx.config.job_name.as_deref().unwrap_or("backup")
    );
    ctx.changes.apply(
        format!("SELECT pg_backup_start('{label}', fast => true)"),
        || {
            client
                .query_one("SELECT pg_backup_start($1, fast => true)::text", &[&label])
                .map(|_| ())
                .map_err(|e| Error::Usage(format!("pg_backup_start: {}", db_error(&e))))
        },
    )?;

    let copy = copy_step(ctx, &source, &staging);
    if let Err(e) = copy {
        // The session's end aborts the backup on the server; only our copy is left to drop.
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }

    let stopped = ctx.changes.apply("SELECT pg_backup_stop(wait_for_archive => true)", || {
        let row = client
            .query_one(
                "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(wait_for_archive => true)",
                &[],
            )
            .map_err(|e| Error::Usage(format!("pg_backup_stop: {}", db_error(&e))))?;
        Ok((row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, Option<String>>(2)))
    })?;
    if let Some((stop_lsn, labelfile, spcmap)) = stopped {
        write_backup_files(&staging, &stop_lsn, &labelfile, spcmap.as_deref())?;
    }

    backup_catalog::rotate(
        &full_backup,
        slave.keep_backups,
        slave.archive_command.as_deref(),
        &mut ctx.changes,
    )?;
    if full_backup.exists() && slave.keep_backups == 0 {
        // keep_backups = 0: the new set replaces the newest one, once it is complete.
        ctx.changes.apply(
            format!("remove the previous backup {}", full_backup.display()),
            || fs::remove_dir_all(&full_backup).map_err(|e| Error::io("remove", &full_backup, e)),
        )?;
    }
    ctx.changes.apply(
        format!("rename {} to {}", staging.display(), full_backup.display()),
        || fs::rename(&staging, &full_backup).map_err(|e| Error::io("rename", &staging, e)),
    )?;

    if let Some(dir) = slave.config_backup.clone() {
        backup_config_files(ctx, &mut client, &dir)?;
    }
    purge(ctx, &slave)?;
    if !ctx.changes.is_dry_run() {
        println!("backup from the {from} done: {}", full_backup.display());
    }
    Ok(())
}

fn copy_step(ctx: &mut Context, source: &Path, staging: &Path) -> Result<()> {
    let options = CopyOptions {
        keep_symlinks: ctx.config.keep_symlinks,
    };
    let tty = std::io::stderr().is_terminal() && !ctx.changes.is_dry_run();
    let quiet = !ctx.log.enabled(crate::log::Level::Info);
    let mut last_tenth = 0;
    let mut report = |p: &Progress| {
        if quiet || p.bytes_total == 0 {
            return;
        }
        let pct = (p.bytes_done * 100 / p.bytes_total).min(100);
        if tty {
            let filled = (pct / 5) as usize;
            eprint!(
                "\r[{}{}] {pct:>3}% {} / {} MB",
                "#".repeat(filled),
                " ".repeat(20 - filled),
                p.bytes_done >> 20,
                p.bytes_total >> 20
            );
        } else if pct / 10 > last_tenth {
            last_tenth = pct / 10;
            eprintln!(
                "copied {pct}% ({} MB of {} MB)",
                p.bytes_done >> 20,
                p.bytes_total >> 20
            );
        }
    };
    let done = ctx.changes.apply(
        format!("copy {} to {}", source.display(), staging.display()),
        || datadir::copy_data_dir(source, staging, options, &mut report),
    )?;
    if tty && !quiet {
        eprintln!();
    }
    if let Some(p) = done {
        ctx.log.info(&format!(
            "copied {} files, {} MB",
            p.files,
            p.bytes_done >> 20
        ));
    }
    Ok(())
}

fn write_backup_files(dir: &Path, stop_lsn: &str, label: &str, spcmap: Option<&str>) -> Result<()> {
    let owner = fs::metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
    let mut files = vec![
        ("backup_label", label.to_string()),
        (backup_catalog::INFO_FILE, format!("STOP LSN: {stop_lsn}\n")),
    ];
    // Tablespaces are copied in place (pg_tblspc/OID as directories); a tablespace_map
    // would make recovery re-link them to the master's paths. The map is kept for the DBA.
    if let Some(map) = spcmap.filter(|m| !m.is_empty()) {
        files.push(("walmgr_tablespace_map.txt", map.to_string()));
    }
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
        chown_like(&path, &owner);
    }
    datadir::sync_filesystem(dir)?;
    Ok(())
}

fn chown_like(path: &Path, meta: &fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    let _ = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()));
}

/// postgresql.conf, pg_hba.conf and pg_ident.conf, wherever the server keeps them.
fn backup_config_files(ctx: &mut Context, client: &mut Client, dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    for setting in ["config_file", "hba_file", "ident_file"] {
        let row = client
            .query_one(&format!("SHOW {setting}"), &[])
            .map_err(|e| CliError::db(format!("SHOW {setting}"), e))?;
        files.push(PathBuf::from(row.get::<_, String>(0)));
    }
    if let Some(extra) = ctx.config.master_config.clone() {
        if !files.contains(&extra) {
            files.push(extra);
        }
    }
    for file in files {
        let Some(name) = file.file_name() else {
            continue;
        };
        let to = dir.join(name);
        ctx.changes.apply(
            format!("copy {} to {}", file.display(), to.display()),
            || {
                walmgr_core::transport::create_private_dir(dir)?;
                fs::copy(&file, &to).map_err(|e| Error::io("copy", &file, e))?;
                if let Ok(meta) = fs::metadata(&file) {
                    chown_like(&to, &meta);
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

fn db_error(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}
