//! `setup` and `stop` on the master: the extension does the server side
//! (`walmgr.setup()` / `walmgr.stop()`); here we decide what to ask, wait for waiting files,
//! and restart the server when that is needed and configured.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::os::shell;
use crate::server::Master;

/// What setup or stop has to say (stdout), beyond the changes it made.
pub type Said = Vec<String>;

/// The server reads the config itself, so it needs the absolute path of the same file.
pub fn server_config_path(config: &Config) -> Result<PathBuf> {
    config
        .source
        .canonicalize()
        .map_err(|e| Error::io("resolve", &config.source, e))
}

pub fn setup(config: &Config, server: &mut dyn Master, changes: &mut Changes) -> Result<Said> {
    config.require_role(Role::Master, "setup")?;
    let path = server_config_path(config)?;
    let installed = server.extension_installed()?;
    if !installed {
        changes.apply("CREATE EXTENSION walmgr", || server.create_extension())?;
        if changes.is_dry_run() {
            // Without the extension its own dry run cannot be asked; say what would be called.
            changes.record(format!(
                "SELECT walmgr.setup('{}') (it lists its own changes once the extension exists)",
                path.display()
            ));
            return Ok(Vec::new());
        }
    }
    let report = server.setup(&path, changes.is_dry_run())?;
    finish(config, &report, "setup", changes)
}

/// How long `stop` waits for the files already waiting, and what it does if some remain.
#[derive(Debug, Clone, Copy)]
pub struct StopOptions {
    pub wait: Duration,
    /// Turn archiving off even if files still wait (they will not be archived).
    pub drop_waiting: bool,
}

pub fn stop(
    config: &Config,
    server: &mut dyn Master,
    options: StopOptions,
    changes: &mut Changes,
) -> Result<Said> {
    config.require_role(Role::Master, "stop")?;
    if !server.extension_installed()? {
        return Err(Error::refused(
            "the walmgr extension is not installed on the master: archiving was not set up by walmgr",
        ));
    }
    let remaining = wait_for_archiving(server, options.wait)?;
    if remaining > 0 {
        let message = format!(
            "{remaining} file(s) still wait to be archived after {} s (see SELECT * FROM walmgr.status)",
            options.wait.as_secs()
        );
        if !options.drop_waiting {
            return Err(Error::refused(format!(
                "{message}; nothing changed. Fix archiving and run stop again, \
                 or pass --drop-waiting to stop without archiving them"
            )));
        }
        tracing::warn!("{message}; stopping anyway (--drop-waiting): they will not be archived");
    }
    let report = server.stop(changes.is_dry_run())?;
    finish(config, &report, "stop", changes)
}

/// Polls `walmgr.status` until no file waits or `limit` passes; returns how many still wait.
fn wait_for_archiving(server: &mut dyn Master, limit: Duration) -> Result<i64> {
    let deadline = Instant::now() + limit;
    loop {
        let status = server.archive_status()?;
        if status.files_waiting == 0 || Instant::now() >= deadline {
            if status.files_waiting > 0 {
                if let Some(err) = &status.last_error {
                    tracing::warn!("last archiving error: {err}");
                }
            }
            return Ok(status.files_waiting);
        }
        tracing::debug!("{} file(s) wait to be archived", status.files_waiting);
        sleep(Duration::from_millis(250));
    }
}

/// Records what the server did (or would do), and restarts it when that is needed and
/// allowed. The server's report is one change per line, then a line saying whether a
/// restart is needed.
fn finish(config: &Config, report: &str, command: &str, changes: &mut Changes) -> Result<Said> {
    let dry = changes.is_dry_run();
    let mut said = Vec::new();
    let mut lines: Vec<&str> = report.lines().collect();
    let last = lines.pop().unwrap_or("");
    for line in &lines {
        changes.record(*line);
        if !dry {
            said.push(line.to_string());
        }
    }
    if let Some(settings) = last.strip_prefix("restart needed for ") {
        match config.master_restart_cmd.as_deref() {
            Some(cmd) => {
                changes.apply(format!("run master_restart_cmd: {cmd}"), || {
                    shell::run("master_restart_cmd", cmd)
                })?;
                if !dry {
                    said.push(format!("restarted the master ({settings} changed)"));
                }
            }
            None => said.push(format!(
                "restart PostgreSQL for {settings} to take effect \
                 (set master_restart_cmd to let walmgr {command} do it)"
            )),
        }
    } else if lines.is_empty() {
        said.push(format!(
            "nothing to change: the master is already {}",
            if command == "setup" {
                "set up"
            } else {
                "stopped"
            }
        ));
    }
    Ok(said)
}
