//! Connections to PostgreSQL: to the master with `master_db`, libpq-style (what the
//! conninfo leaves out comes from the PG* environment variables, then libpq's defaults),
//! and to a local data directory's server through the socket its postmaster.pid names.

use std::env;
use std::path::Path;
use std::str::FromStr;

use postgres::{Client, Config, NoTls};
use walmgr_core::conninfo::Conninfo;
use walmgr_core::{cluster, Error};

pub fn connect(conninfo: &Conninfo) -> Result<Client, Error> {
    // Displayed, a Conninfo hides its password.
    let shown = conninfo.to_string();
    let mut config = Config::from_str(conninfo.expose())
        .map_err(|e| server_error(format!("master_db {shown:?}"), &e))?;
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
            .or_else(walmgr_core::os::users::effective_user_name)
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
        .map_err(|e| server_error(format!("cannot connect to the master ({shown})"), &e))
}

/// Connects to the server of the local data directory `data` as the directory's owner,
/// through the socket its postmaster.pid names (a path, spaces and all, never parsed).
pub fn connect_local(data: &Path) -> Result<Client, Error> {
    let found = cluster::running(data).ok_or_else(|| {
        Error::refused(format!(
            "no PostgreSQL server is running on {} (start it, or check slave_data)",
            data.display()
        ))
    })?;
    let socket = found.socket.unwrap_or_else(|| "/var/run/postgresql".into());
    let user = cluster::owner_name(data).unwrap_or_else(|| "postgres".into());
    Config::new()
        .host_path(&socket)
        .port(found.port)
        .user(&user)
        .dbname("postgres")
        .application_name("walmgr")
        .connect(NoTls)
        .map_err(|e| {
            server_error(
                format!("cannot connect to the server on {}", data.display()),
                &e,
            )
        })
}

/// What the server said (message, detail, hint and SQLSTATE) rather than the driver's
/// generic text.
pub fn server_error(context: impl Into<String>, e: &postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(d) = db.detail() {
                message.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                message.push_str(&format!(" hint: {h}"));
            }
            Error::Server {
                context: context.into(),
                message,
                sqlstate: Some(db.code().code().to_string()),
            }
        }
        None => Error::server(context, e.to_string()),
    }
}
