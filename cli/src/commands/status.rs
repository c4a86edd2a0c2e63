//! `status [--json | --prometheus]`: the master's archiving, or the standby's replay,
//! archive and backups.

use serde_json::Value;
use walmgr_core::config::Role;
use walmgr_core::status::{self, prometheus, Status};

use super::Context;
use crate::error::{CliError, Result};
use crate::server::Connection;

pub fn run(ctx: &mut Context, as_json: bool, as_prometheus: bool) -> Result<()> {
    let report = match ctx.config.role {
        Role::Master => {
            let conninfo = ctx
                .config
                .required(&ctx.config.master_db, "master_db", "status")?;
            Status::Master(status::master(
                &mut Connection::master(conninfo)?,
                Some(&ctx.config),
            )?)
        }
        Role::Slave => {
            let mut server = match ctx.config.slave_data {
                Some(_) => Some(ctx.standby("status")?),
                None => None,
            };
            let server = server
                .as_mut()
                .map(|s| s as &mut dyn walmgr_core::server::Standby);
            Status::Slave(status::standby(&ctx.config, server)?)
        }
    };
    if as_prometheus {
        print!("{}", prometheus::render(&report));
        return Ok(());
    }
    let value = serde_json::to_value(&report)
        .map_err(|e| CliError::Declined(format!("cannot print the status: {e}")))?;
    if as_json {
        println!("{value}");
        return Ok(());
    }
    let Value::Object(fields) = value else {
        return Ok(());
    };
    for (key, value) in &fields {
        let text = match value {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            Value::Array(items) if items.is_empty() => "-".to_string(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n    "),
            other => other.to_string(),
        };
        println!("{key:<24} {text}");
    }
    Ok(())
}
