//! `setup` and `stop` on the master: the extension does the server side
//! (`walmgr.setup()` / `walmgr.stop()`); here we connect, wait, and restart when configured.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use postgres::Client;
use walmgr_core::config::Role;

use super::Context;
use crate::db;
use crate::error::{CliError, Result};

fn connect(ctx: &Context, command: &str) -> Result<Client> {
    let conninfo = ctx
        .config
        .master_db
        .as_deref()
        .ok_or_else(|| ctx.config.missing("master_db", command))?;
    db::connect(conninfo)
}

fn extension_installed(client: &mut Client) -> Result<bool> {
    client
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'walmgr'", &[])
        .map(|row| row.is_some())
        .map_err(|e| CliError::db("cannot read pg_extension", e))
}

/// The server reads the config itself, so it needs the absolute path of the same file.
fn server_config_path(ctx: &Context) -> Result<PathBuf> {
    let source = &ctx.config.source;
    source
        .canonicalize()
        .map_err(|e| walmgr_core::Error::io("resolve", source, e).into())
}

pub fn setup(ctx: &mut Context) -> Result<()> {
    ctx.require_role(Role::Master, "setup")?;
    let path = server_config_path(ctx)?;
    let mut client = connect(ctx, "setup")?;

    let installed = extension_installed(&mut client)?;
    if !installed {
        ctx.changes.apply("CREATE EXTENSION walmgr", || {
            client
                .batch_execute("CREATE EXTENSION IF NOT EXISTS walmgr")
                .map_err(|e| walmgr_core::Error::Usage(format!("CREATE EXTENSION walmgr: {e}")))
        })?;
    }
    if !installed && ctx.changes.is_dry_run() {
        // Without the extension its own dry run cannot be asked; say what would be called.
        ctx.changes.record(format!(
            "SELECT walmgr.setup('{}') (it lists its own changes once the extension exists)",
            path.display()
        ));
        return Ok(());
    }
    let report: String = client
        .query_one(
            "SELECT walmgr.setup($1, dry_run => $2)",
            &[&path.to_string_lossy().as_ref(), &ctx.changes.is_dry_run()],
        )
        .map_err(|e| CliError::db("walmgr.setup()", e))?
        .get(0);
    finish(ctx, &report, "setup")
}

pub fn stop(ctx: &mut Context, wait: u64, drop_waiting: bool) -> Result<()> {
    ctx.require_role(Role::Master, "stop")?;
    let mut client = connect(ctx, "stop")?;
    if !extension_installed(&mut client)? {
        return Err(CliError::failed(
            "the walmgr extension is not installed on the master: archiving was not set up by walmgr",
        ));
    }
    let remaining = wait_for_archiving(ctx, &mut client, Duration::from_secs(wait))?;
    if remaining > 0 {
        let message = format!(
            "{remaining} file(s) still wait to be archived after {wait} s (see SELECT * FROM walmgr.status)"
        );
        if !drop_waiting {
            return Err(CliError::failed(format!(
                "{message}; nothing changed. Fix archiving and run stop again, \
                 or pass --drop-waiting to stop without archiving them"
            )));
        }
        ctx.log.warning(&format!(
            "{message}; stopping anyway (--drop-waiting): they will not be archived"
        ));
    }
    let row = client
        .query_one(
            "SELECT walmgr.stop(dry_run => $1)",
            &[&ctx.changes.is_dry_run()],
        )
        .map_err(|e| CliError::db("walmgr.stop()", e))?;
    finish(ctx, &row.get::<_, String>(0), "stop")
}

/// Polls `walmgr.status` until no file waits or `limit` passes; returns how many still wait.
fn wait_for_archiving(ctx: &Context, client: &mut Client, limit: Duration) -> Result<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let row = client
            .query_one("SELECT files_waiting, last_error FROM walmgr.status", &[])
            .map_err(|e| CliError::db("SELECT FROM walmgr.status", e))?;
        let waiting: i64 = row.get(0);
        if waiting == 0 || Instant::now() >= deadline {
            if waiting > 0 {
                if let Some(err) = row.get::<_, Option<String>>(1) {
                    ctx.log.warning(&format!("last archiving error: {err}"));
                }
            }
            return Ok(waiting);
        }
        ctx.log
            .debug(&format!("{waiting} file(s) wait to be archived"));
        sleep(Duration::from_millis(250));
    }
}

/// Prints what the server did (or would do) and restarts it when that is needed and allowed.
fn finish(ctx: &mut Context, report: &str, command: &str) -> Result<()> {
    let dry = ctx.changes.is_dry_run();
    let mut lines: Vec<&str> = report.lines().collect();
    let last = lines.pop().unwrap_or("");
    for line in &lines {
        ctx.changes.record(*line);
        if !dry {
            println!("{line}");
        }
    }
    if let Some(settings) = last.strip_prefix("restart needed for ") {
        match ctx.config.master_restart_cmd.clone() {
            Some(cmd) => {
                ctx.run_shell("master_restart_cmd", &cmd)?;
                if !dry {
                    println!("restarted the master ({settings} changed)");
                }
            }
            None => println!(
                "restart PostgreSQL for {settings} to take effect \
                 (set master_restart_cmd to let walmgr {command} do it)"
            ),
        }
    } else if lines.is_empty() {
        println!(
            "nothing to change: the master is already {}",
            if command == "setup" {
                "set up"
            } else {
                "stopped"
            }
        );
    }
    Ok(())
}
