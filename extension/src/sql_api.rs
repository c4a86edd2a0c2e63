//! The SQL functions of schema walmgr that change the server or ship WAL. Superuser only.

// pgrx raises an ErrorReport with its own SQLSTATE only when it is the Err itself, not a
// Box of it: the size is the price of the right error code.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use walmgr_core::changes::Changes;
use walmgr_core::config::{Config, Role};
use walmgr_core::remote;
use walmgr_core::server::{SyncReplication, WalSource, Walsender};
use walmgr_core::setup::server_settings::{self, Plan, SettingChange};
use walmgr_core::setup::synch_standby;
use walmgr_core::shipping::periodic::Periodic;
use walmgr_core::shipping::{Round, Shipper};
use walmgr_core::wal::Lsn;
use walmgr_core::Error;

use crate::error::report;
use crate::{alter_system, settings, status, worker};

/// Configures the server to archive through walmgr with the master config at `config_path`
/// (default: the current `walmgr.config`) and creates the slave directories. One line per
/// change, then a last line saying whether a restart is needed. Nothing changes in a dry run.
#[pg_extern(volatile, parallel_unsafe)]
fn setup(
    config_path: default!(Option<String>, "NULL"),
    dry_run: default!(bool, false),
) -> Result<String, ErrorReport> {
    require_superuser("walmgr.setup()")?;
    let path = config_path
        .map(PathBuf::from)
        .or_else(settings::config_path)
        .ok_or_else(|| {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "walmgr.config is not set: pass the master config, e.g. \
                 SELECT walmgr.setup('/etc/walmgr/master.toml')",
                "walmgr.setup",
            )
        })?;
    if !path.is_absolute() {
        return Err(ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{}: give the config as an absolute path (the server does not share your working directory)",
                path.display()
            ),
            "walmgr.setup",
        ));
    }
    let config = Config::load(&path, &[]).map_err(report)?;
    if config.role != Role::Master {
        return Err(ErrorReport::new(
            PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
            format!(
                "{}: not a master config (it has no master_data)",
                path.display()
            ),
            "walmgr.setup",
        ));
    }

    let mut changes = Changes::new(dry_run);
    let mut transport = remote::for_master(&config).map_err(report)?;
    transport.create_dirs(&mut changes).map_err(report)?;
    let plan = server_settings::for_setup(&alter_system::server(), &path);
    apply_settings(&plan, &mut changes)?;
    Ok(summary(&changes, &plan))
}

/// Turns archiving off again (archive_mode off, archive_library reset). Waiting for the files
/// not yet archived is the caller's part (`walmgr <config> stop` does it).
#[pg_extern(volatile, parallel_unsafe)]
fn stop(dry_run: default!(bool, false)) -> Result<String, ErrorReport> {
    require_superuser("walmgr.stop()")?;
    let mut changes = Changes::new(dry_run);
    let plan = server_settings::for_stop(&alter_system::server());
    apply_settings(&plan, &mut changes)?;
    Ok(summary(&changes, &plan))
}

/// The functions that run ALTER SYSTEM and write on the standby check for themselves, before
/// any side effect: a DBA who grants EXECUTE to a role must not hand it the server's
/// configuration (ALTER SYSTEM here runs with the extension's rights, not the caller's).
fn require_superuser(function: &str) -> Result<(), ErrorReport> {
    // SAFETY: a plain check of the current user, in a backend.
    if unsafe { pg_sys::superuser() } {
        return Ok(());
    }
    Err(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "{function} is for superusers only: it changes server settings with ALTER SYSTEM \
             (granting EXECUTE on it is not enough)"
        ),
        "walmgr",
    ))
}

fn apply_settings(plan: &Plan, changes: &mut Changes) -> Result<(), ErrorReport> {
    for change in &plan.changes {
        changes
            .apply(change.to_sql(), || {
                alter_system::apply(change).map_err(|m| Error::server("ALTER SYSTEM", m))
            })
            .map_err(report)?;
    }
    if !changes.is_dry_run() && !plan.changes.is_empty() {
        Spi::run("SELECT pg_reload_conf()")
            .map_err(|e| report(Error::server("pg_reload_conf()", e.to_string())))?;
    }
    Ok(())
}

fn summary(changes: &Changes, plan: &Plan) -> String {
    let restart = &plan.restart_for;
    let mut lines: Vec<String> = changes.described().to_vec();
    lines.push(if restart.is_empty() {
        "no restart needed".to_string()
    } else {
        format!("restart needed for {}", restart.join(", "))
    });
    lines.join("\n")
}

/// Makes commits wait for the named standbys (synchronous_standby_names), after checking that
/// enough of them are connected and streaming; `''` switches it off. One line per change
/// (ALTER SYSTEM, the reload), then what it means for commits. Refused (and nothing
/// changed) when the standbys are not there; nothing changes in a dry run either.
#[pg_extern(volatile, parallel_unsafe)]
fn synch_standby(names: &str, dry_run: default!(bool, false)) -> Result<String, ErrorReport> {
    require_superuser("walmgr.synch_standby()")?;
    let mut changes = Changes::new(dry_run);
    let said = synch_standby::run(&mut InProcess, names, &mut changes).map_err(report)?;
    Ok(synch_standby::report(&changes, &said))
}

/// This backend's server, for core's synch-standby workflow.
struct InProcess;

impl SyncReplication for InProcess {
    fn walsenders(&mut self) -> walmgr_core::Result<Vec<Walsender>> {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT coalesce(application_name, ''), coalesce(state, '') \
                 FROM pg_stat_replication",
                None,
                &[],
            )?;
            let mut found = Vec::new();
            for row in rows {
                found.push(Walsender {
                    application_name: row.get::<String>(1)?.unwrap_or_default(),
                    state: row.get::<String>(2)?.unwrap_or_default(),
                });
            }
            Ok::<_, pgrx::spi::SpiError>(found)
        })
        .map_err(|e| Error::server("read pg_stat_replication", e.to_string()))
    }

    fn setting(&mut self, name: &str) -> walmgr_core::Result<String> {
        Ok(alter_system::running_value(name))
    }

    fn alter_system(&mut self, change: &SettingChange) -> walmgr_core::Result<()> {
        alter_system::apply(change).map_err(|m| Error::server("ALTER SYSTEM", m))
    }

    fn reload(&mut self) -> walmgr_core::Result<()> {
        Spi::run("SELECT pg_reload_conf()")
            .map_err(|e| Error::server("pg_reload_conf()", e.to_string()))
    }
}

/// Ships in-progress WAL up to the current flush position now, from this backend, and
/// returns the LSN the standby then holds (as text; `walmgr.sync()` returns it as pg_lsn).
#[pg_extern(volatile, parallel_unsafe)]
fn sync_lsn() -> Result<String, ErrorReport> {
    let config = master_config()?;
    let mut shipper = Shipper::new(worker::this_cluster());
    let mut source = worker::InProcess::new();
    let resumed = status::acknowledged()
        .and_then(|(lsn, tli)| shipper.position_of(Lsn(lsn), tli))
        .map(|p| shipper.resume_at(p))
        .is_some();
    let mut transport = remote::for_master(&config).map_err(report)?;
    let target = source.flush().map_err(report)?;
    let mut retried = !resumed;
    loop {
        match shipper.round(&mut source, transport.as_mut()) {
            Ok(Round::Shipped { to, .. }) if to < target.lsn => continue,
            Ok(_) => break,
            // The worker's position may be stale (the standby restarted the copy): once
            // more from the segment's start.
            Err(_) if !retried => retried = true,
            Err(e) => return Err(report(e)),
        }
    }
    let held = shipper.acknowledged().unwrap_or(target.lsn);
    status::record_synced(held.0, target.timeline);
    Ok(held.to_string())
}

/// Runs periodic_command now; false when none is configured.
#[pg_extern(volatile, parallel_unsafe)]
fn periodic() -> Result<bool, ErrorReport> {
    let config = master_config()?;
    Periodic::run_now(&config).map_err(report)
}

/// The master config `walmgr.config` names.
fn master_config() -> Result<Config, ErrorReport> {
    let path = settings::config_path().ok_or_else(|| {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "walmgr.config is not set (run `walmgr <master config> setup`)",
            "walmgr",
        )
    })?;
    let config = Config::load(&path, &[]).map_err(report)?;
    config
        .require_role(Role::Master, "walmgr.sync()")
        .map_err(report)?;
    Ok(config)
}

extension_sql!(
    r#"
CREATE FUNCTION sync() RETURNS pg_lsn LANGUAGE sql VOLATILE
    AS $$ SELECT @extschema@.sync_lsn()::pg_lsn $$;
COMMENT ON FUNCTION sync() IS 'ships in-progress WAL up to the current flush position; returns the LSN the standby holds';
REVOKE ALL ON FUNCTION setup(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION stop(boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION sync_lsn() FROM PUBLIC;
REVOKE ALL ON FUNCTION sync() FROM PUBLIC;
REVOKE ALL ON FUNCTION periodic() FROM PUBLIC;
REVOKE ALL ON FUNCTION synch_standby(text, boolean) FROM PUBLIC;
"#,
    name = "superuser_only",
    requires = [setup, stop, sync_lsn, periodic, synch_standby]
);
