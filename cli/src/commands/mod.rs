//! One module per group of commands. Each parses what clap left, calls core, and prints;
//! the work itself is core's. Every change goes through `Changes`, so `--not-really` is
//! exact.

pub mod backup;
pub mod backups;
pub mod check;
pub mod master;
pub mod shipping;
pub mod standby;
pub mod status;
pub mod xarchive;
pub mod xrestore;
pub mod xserve;

use walmgr_core::changes::Changes;
use walmgr_core::config::Config;

use crate::server::LocalStandby;

pub struct Context {
    pub config: Config,
    pub changes: Changes,
}

impl Context {
    /// The standby's own server (for slave configs; a master config has no slave_data).
    pub fn standby(&self, command: &str) -> crate::error::Result<LocalStandby> {
        let data = self
            .config
            .required(&self.config.slave_data, "slave_data", command)?;
        Ok(LocalStandby::new(data, self.config.slave_bin.as_deref()))
    }
}
