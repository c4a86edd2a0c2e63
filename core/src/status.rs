//! `status`: what a DBA or a monitoring system asks first. On the master, walmgr.status;
//! on the standby, replay position, pause/stop, lock holder, archive and backups.

use serde_json::{json, Map, Value};

use crate::archive::control::{Control, ControlFiles};
use crate::archive::partial::PartialStore;
use crate::archive::{listing, lock};
use crate::backup::catalog;
use crate::config::Config;
use crate::error::Result;
use crate::server::{Master, Standby};
use crate::wal::Lsn;

/// One flat object, keys in name order.
pub type Report = Map<String, Value>;

/// The master's status; with `config`, also the standby's backup sets (here, or over SSH:
/// an unreachable standby is reported, not a failure of status).
pub fn master(server: &mut dyn Master, config: Option<&Config>) -> Result<Report> {
    let s = server.archive_status()?;
    let mut m = Map::new();
    m.insert("role".into(), json!("master"));
    m.insert("last_archived_wal".into(), json!(s.last_archived_wal));
    m.insert("last_archived_time".into(), json!(s.last_archived_time));
    m.insert("files_waiting".into(), json!(s.files_waiting));
    m.insert("bytes_behind".into(), json!(s.bytes_behind));
    m.insert("last_failed_wal".into(), json!(s.last_failed_wal));
    m.insert("last_error".into(), json!(s.last_error));
    m.insert("last_error_time".into(), json!(s.last_error_time));
    m.insert("transport".into(), json!(s.transport));
    m.insert("archived_count".into(), json!(s.archived_count));
    m.insert("failed_count".into(), json!(s.failed_count));
    m.insert("shipper_state".into(), json!(s.shipper_state));
    m.insert("partial_lsn".into(), json!(s.partial_lsn));
    m.insert("partial_time".into(), json!(s.partial_time));
    m.insert("partial_bytes_behind".into(), json!(s.partial_bytes_behind));
    m.insert("shipper_errors".into(), json!(s.shipper_errors));
    m.insert("shipper_last_error".into(), json!(s.shipper_last_error));
    if let Some(config) = config {
        match backup_sets(config) {
            Ok((_, sets)) => m.insert("backups".into(), Value::Array(sets)),
            Err(e) => m.insert("backups".into(), json!(format!("cannot list: {e}"))),
        };
    }
    Ok(m)
}

/// `server` is the standby's own server, when the config names its data directory.
pub fn standby(config: &Config, server: Option<&mut dyn Standby>) -> Result<Report> {
    let mut m = Map::new();
    m.insert("role".into(), json!("slave"));
    let state = match server {
        Some(server) => server.state()?,
        None => None,
    };
    match state {
        Some(state) => {
            m.insert("server".into(), json!("running"));
            m.insert("in_recovery".into(), json!(state.in_recovery));
            m.insert(
                "replay_lsn".into(),
                json!(state.replay_lsn.map(|l| l.to_string())),
            );
            m.insert("replay_paused".into(), json!(state.replay_paused));
            m.insert("last_replayed_xact".into(), json!(state.last_replayed_xact));
        }
        None => {
            m.insert(
                "server".into(),
                json!("not running or not accepting connections"),
            );
        }
    }
    let controls = ControlFiles::in_archive(&config.completed_wals);
    m.insert("pause_file".into(), json!(controls.is_set(Control::Pause)));
    m.insert("stop_file".into(), json!(controls.is_set(Control::Stop)));
    m.insert(
        "backup_lock".into(),
        json!(lock::holder(&config.completed_wals)?.map(|h| h.to_string())),
    );
    let mut segments: Vec<String> = listing::segments(&config.completed_wals)
        .iter()
        .map(|s| s.to_string())
        .collect();
    segments.sort();
    m.insert("archived_segments".into(), json!(segments.len()));
    m.insert("newest_archived".into(), json!(segments.last()));
    // The newest partial copy: the master's in-progress segment, as far as it reaches.
    let newest_partial = PartialStore::new(&config.partial_wals).newest();
    m.insert(
        "newest_partial".into(),
        json!(newest_partial.map(|(s, _)| s.to_string())),
    );
    m.insert(
        "partial_reaches".into(),
        json!(newest_partial
            .map(|(s, held)| { Lsn(s.start_lsn(held.seg_size as u32) + held.len).to_string() })),
    );
    let backups: Vec<Value> = catalog::list(&config.full_backup)?
        .iter()
        .map(set_json)
        .collect();
    m.insert("backups".into(), Value::Array(backups));
    Ok(m)
}

/// One backup set, as `status --json`, `listbackups` and the wire describe it.
pub fn set_json(set: &catalog::BackupSet) -> Value {
    json!({
        "set": set.name(),
        "label": set.label.label,
        "start_lsn": set.label.start_lsn.to_string(),
        "stop_lsn": set.stop_lsn,
        "start_time": set.label.start_time,
        "first_wal": set.label.start_segment.to_string(),
        "size_bytes": set.size,
    })
}

/// The standby's backup sets, wherever they are: from its directories on this host, or
/// over SSH when a master config names another host. Returns where, and the sets.
pub fn backup_sets(config: &Config) -> Result<(String, Vec<Value>)> {
    use crate::config::Role;
    match (&config.role, config.slave.as_deref()) {
        (Role::Master, Some(slave)) => {
            let ssh = crate::remote::Ssh::new(config, slave)?;
            let place = ssh.peer().to_string();
            let sets = crate::remote::backup::RemoteArea::new(ssh).list()?;
            Ok((place, sets))
        }
        _ => {
            let standby = crate::backup::standby_side(config, "listbackups")?;
            let sets = catalog::list(&standby.full_backup)?
                .iter()
                .map(set_json)
                .collect();
            Ok((standby.full_backup.display().to_string(), sets))
        }
    }
}
