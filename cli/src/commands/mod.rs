//! One module per command. Each takes the loaded config and does its work through
//! walmgr-core; every change goes through `Changes` so `--not-really` is exact.

pub mod backup;
pub mod cleanup;
pub mod init;
pub mod master;
pub mod slave_side;
pub mod standby;
pub mod standby_conn;
pub mod status;
pub mod xarchive;
pub mod xrestore;
pub mod xserve;

use std::process::Command as Process;

use walmgr_core::changes::Changes;
use walmgr_core::config::{Config, Role};

use crate::error::{CliError, Result};
use crate::log::Log;

pub struct Context {
    pub config: Config,
    pub log: Log,
    pub changes: Changes,
}

impl Context {
    pub fn require_role(&self, role: Role, command: &str) -> Result<()> {
        if self.config.role == role {
            return Ok(());
        }
        let (want, why) = match role {
            Role::Master => ("a master config", "it has no master_data"),
            Role::Slave => ("a slave config", "it has master_data"),
        };
        Err(CliError::failed(format!(
            "{}: `{command}` needs {want}, and {why}",
            self.config.source.display()
        )))
    }

    /// Runs a shell command from the config (e.g. master_restart_cmd) as a planned change.
    pub fn run_shell(&mut self, key: &str, command: &str) -> Result<()> {
        self.changes.apply(format!("run {key}: {command}"), || {
            let status = Process::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .status()
                .map_err(|e| walmgr_core::Error::io("run", "/bin/sh", e))?;
            if status.success() {
                Ok(())
            } else {
                Err(walmgr_core::Error::Usage(format!(
                    "{key} ({command:?}) failed with {status}"
                )))
            }
        })?;
        Ok(())
    }
}
