//! The SQL functions of schema walmgr that change the server. Superuser only.

use std::path::PathBuf;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use walmgr_core::changes::Changes;
use walmgr_core::config::{Config, Role};
use walmgr_core::remote;
use walmgr_core::setup::server_settings::{self, Plan};
use walmgr_core::Error;

use crate::error::report;
use crate::{alter_system, settings};

/// Configures the server to archive through walmgr with the master config at `config_path`
/// (default: the current `walmgr.config`) and creates the slave directories. One line per
/// change, then a last line saying whether a restart is needed. Nothing changes in a dry run.
#[pg_extern(volatile, parallel_unsafe)]
fn setup(
    config_path: default!(Option<String>, "NULL"),
    dry_run: default!(bool, false),
) -> Result<String, ErrorReport> {
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
    let mut changes = Changes::new(dry_run);
    let plan = server_settings::for_stop(&alter_system::server());
    apply_settings(&plan, &mut changes)?;
    Ok(summary(&changes, &plan))
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

extension_sql!(
    r#"
REVOKE ALL ON FUNCTION setup(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION stop(boolean) FROM PUBLIC;
"#,
    name = "superuser_only",
    requires = [setup, stop]
);
