//! `status [--json]`: the master's archiving, or the standby's replay, archive and backups.

use serde_json::Value;
use walmgr_core::config::Role;
use walmgr_core::status;

use super::Context;
use crate::error::Result;
use crate::server::Connection;

pub fn run(ctx: &mut Context, as_json: bool) -> Result<()> {
    let report = match ctx.config.role {
        Role::Master => {
            let conninfo = ctx
                .config
                .required(&ctx.config.master_db, "master_db", "status")?;
            status::master(&mut Connection::master(conninfo)?, Some(&ctx.config))?
        }
        Role::Slave => {
            let mut server = match ctx.config.slave_data {
                Some(_) => Some(ctx.standby("status")?),
                None => None,
            };
            let server = server
                .as_mut()
                .map(|s| s as &mut dyn walmgr_core::server::Standby);
            status::standby(&ctx.config, server)?
        }
    };
    if as_json {
        println!("{}", Value::Object(report));
        return Ok(());
    }
    for (key, value) in &report {
        let text = match value {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("\n    "),
            other => other.to_string(),
        };
        println!("{key:<20} {text}");
    }
    Ok(())
}
