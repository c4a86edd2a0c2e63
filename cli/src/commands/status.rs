//! `status`: what a DBA or a monitoring system asks first. On the master, walmgr.status; on
//! the standby, replay position, pause/stop, lock holder, archive and backups.

use std::fs;

use serde_json::{json, Map, Value};
use walmgr_core::backup_catalog;
use walmgr_core::config::Role;
use walmgr_core::lock;
use walmgr_core::wal_name::WalFileName;

use super::standby::{PAUSE_FILE, STOP_FILE};
use super::{standby_conn, Context};
use crate::db;
use crate::error::{CliError, Result};

pub fn run(ctx: &mut Context, as_json: bool) -> Result<()> {
    let report = match ctx.config.role {
        Role::Master => master(ctx)?,
        Role::Slave => slave(ctx)?,
    };
    if as_json {
        println!("{}", Value::Object(report));
    } else {
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
    }
    Ok(())
}

fn master(ctx: &Context) -> Result<Map<String, Value>> {
    let conninfo = ctx
        .config
        .master_db
        .as_deref()
        .ok_or_else(|| ctx.config.missing("master_db", "status"))?;
    let mut client = db::connect(conninfo)?;
    let row = client
        .query_one(
            "SELECT last_archived_wal, last_archived_time::text, files_waiting, bytes_behind, \
             last_failed_wal, last_error, last_error_time::text, transport, archived_count, \
             failed_count FROM walmgr.status",
            &[],
        )
        .map_err(|e| CliError::db("SELECT FROM walmgr.status", e))?;
    let mut m = Map::new();
    m.insert("role".into(), json!("master"));
    m.insert(
        "last_archived_wal".into(),
        json!(row.get::<_, Option<String>>(0)),
    );
    m.insert(
        "last_archived_time".into(),
        json!(row.get::<_, Option<String>>(1)),
    );
    m.insert("files_waiting".into(), json!(row.get::<_, i64>(2)));
    m.insert("bytes_behind".into(), json!(row.get::<_, Option<i64>>(3)));
    m.insert(
        "last_failed_wal".into(),
        json!(row.get::<_, Option<String>>(4)),
    );
    m.insert("last_error".into(), json!(row.get::<_, Option<String>>(5)));
    m.insert(
        "last_error_time".into(),
        json!(row.get::<_, Option<String>>(6)),
    );
    m.insert("transport".into(), json!(row.get::<_, Option<String>>(7)));
    m.insert("archived_count".into(), json!(row.get::<_, i64>(8)));
    m.insert("failed_count".into(), json!(row.get::<_, i64>(9)));
    Ok(m)
}

fn slave(ctx: &Context) -> Result<Map<String, Value>> {
    let cfg = &ctx.config;
    let mut m = Map::new();
    m.insert("role".into(), json!("slave"));
    let data = cfg.slave_data.clone();
    let server = data.as_deref().and_then(standby_conn::try_connect);
    match server {
        Some(mut client) => {
            let row = client
                .query_one(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
                     CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, \
                     pg_last_xact_replay_timestamp()::text",
                    &[],
                )
                .map_err(|e| CliError::db("read replay position", e))?;
            m.insert("server".into(), json!("running"));
            m.insert("in_recovery".into(), json!(row.get::<_, bool>(0)));
            m.insert("replay_lsn".into(), json!(row.get::<_, Option<String>>(1)));
            m.insert("replay_paused".into(), json!(row.get::<_, Option<bool>>(2)));
            m.insert(
                "last_replayed_xact".into(),
                json!(row.get::<_, Option<String>>(3)),
            );
        }
        None => {
            m.insert(
                "server".into(),
                json!("not running or not accepting connections"),
            );
        }
    }
    let control = |name: &str| cfg.completed_wals.join(name).exists();
    m.insert("pause_file".into(), json!(control(PAUSE_FILE)));
    m.insert("stop_file".into(), json!(control(STOP_FILE)));
    m.insert(
        "backup_lock".into(),
        json!(lock::holder(&cfg.completed_wals)?.map(|h| h.to_string())),
    );
    let mut segments: Vec<String> = fs::read_dir(&cfg.completed_wals)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| matches!(WalFileName::parse(n), Ok(WalFileName::Segment(_))))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    m.insert("archived_segments".into(), json!(segments.len()));
    m.insert("newest_archived".into(), json!(segments.last()));
    let backups: Vec<Value> = backup_catalog::list(&cfg.full_backup)?
        .iter()
        .map(|s| {
            json!({
                "set": s.name(),
                "start_lsn": s.label.start_lsn.to_string(),
                "start_time": s.label.start_time,
                "first_wal": s.label.start_segment.to_string(),
                "size_bytes": s.size,
            })
        })
        .collect();
    m.insert("backups".into(), Value::Array(backups));
    Ok(m)
}
