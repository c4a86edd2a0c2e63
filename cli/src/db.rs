//! Connecting to the master with `master_db`, libpq-style: what the conninfo leaves out comes
//! from the PG* environment variables, then from libpq's defaults.

use std::env;
use std::str::FromStr;

use postgres::{Client, Config, NoTls};

use crate::error::{CliError, Result};

pub fn connect(conninfo: &str) -> Result<Client> {
    let mut config = Config::from_str(conninfo)
        .map_err(|e| CliError::db(format!("master_db {conninfo:?}"), e))?;
    if config.get_hosts().is_empty() {
        let host = env::var("PGHOST").unwrap_or_else(|_| "/var/run/postgresql".into());
        for h in host.split(',') {
            config.host(h);
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env::var("PGPORT").ok().and_then(|p| p.parse().ok()) {
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env::var("PGUSER")
            .ok()
            .or_else(os_user)
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        if let Ok(db) = env::var("PGDATABASE") {
            config.dbname(&db);
        }
    }
    if config.get_password().is_none() {
        if let Ok(pw) = env::var("PGPASSWORD") {
            config.password(pw);
        }
    }
    config
        .application_name("walmgr")
        .connect(NoTls)
        .map_err(|e| CliError::db(format!("cannot connect to the master ({conninfo})"), e))
}

fn os_user() -> Option<String> {
    walmgr_core::system::effective_user_name()
}
