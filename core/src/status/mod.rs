//! `status`: what a DBA or a monitoring system asks first. On the master, walmgr.status;
//! on the standby, replay position, pause/stop, lock holder, archive and backups.
//!
//! The report is typed ([`MasterStatus`], [`StandbyStatus`]); `--json` serializes it as
//! docs/monitoring.md documents field by field (a unit test holds the two together), and
//! [`prometheus`] renders it for node_exporter's textfile collector.

pub mod prometheus;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::archive::control::{Control, ControlFiles};
use crate::archive::partial::PartialStore;
use crate::archive::{listing, lock};
use crate::backup::catalog;
use crate::config::Config;
use crate::error::Result;
use crate::server::{ArchiveStatus, Master, Standby};
use crate::wal::Lsn;

/// Either host's status, as `status --json` prints it: one object whose `role` says which.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "role")]
pub enum Status {
    #[serde(rename = "master")]
    Master(MasterStatus),
    #[serde(rename = "slave")]
    Slave(StandbyStatus),
}

/// The master: the `walmgr.status` view, and the standby's backup sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterStatus {
    /// The `walmgr.status` view, its columns at the top level of the JSON.
    #[serde(flatten)]
    pub archive: ArchiveStatus,
    /// The standby's sets, newest first (empty when they could not be listed).
    pub backups: Vec<BackupSetStatus>,
    /// Why the sets could not be listed (an unreachable standby is not a failed status).
    pub backups_error: Option<String>,
}

/// The standby: its server, its archive and its backup sets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StandbyStatus {
    /// `running`, or `not running or not accepting connections`.
    pub server: String,
    pub in_recovery: Option<bool>,
    pub replay_lsn: Option<String>,
    pub replay_paused: Option<bool>,
    pub last_replayed_xact: Option<String>,
    pub replay_lag_seconds: Option<f64>,
    pub pause_file: bool,
    pub stop_file: bool,
    pub backup_lock: Option<String>,
    pub archived_segments: u64,
    pub newest_archived: Option<String>,
    pub newest_partial: Option<String>,
    pub partial_reaches: Option<String>,
    pub backups: Vec<BackupSetStatus>,
}

/// One backup set, as `status`, `listbackups` and the wire describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupSetStatus {
    pub set: String,
    pub label: String,
    pub start_lsn: String,
    pub stop_lsn: Option<String>,
    pub start_time: String,
    pub first_wal: String,
    pub size_bytes: u64,
    /// When the backup finished, seconds since 1970 (None from a standby's walmgr that
    /// does not tell).
    #[serde(default)]
    pub finished_unix: Option<i64>,
}

/// The master's status; with `config`, also the standby's backup sets (here, or over SSH:
/// an unreachable standby is reported, not a failure of status).
pub fn master(server: &mut dyn Master, config: Option<&Config>) -> Result<MasterStatus> {
    let s = server.archive_status()?;
    let (backups, backups_error) = match config.map(backup_sets) {
        None => (Vec::new(), None),
        Some(Ok((_, sets))) => match typed_sets(sets) {
            Ok(sets) => (sets, None),
            Err(e) => (Vec::new(), Some(e)),
        },
        Some(Err(e)) => (Vec::new(), Some(format!("cannot list: {e}"))),
    };
    Ok(MasterStatus {
        archive: s,
        backups,
        backups_error,
    })
}

fn typed_sets(sets: Vec<Value>) -> std::result::Result<Vec<BackupSetStatus>, String> {
    sets.into_iter()
        .map(|v| {
            serde_json::from_value(v.clone())
                .map_err(|e| format!("the standby described a backup set as {v}: {e}"))
        })
        .collect()
}

/// `server` is the standby's own server, when the config names its data directory.
pub fn standby(config: &Config, server: Option<&mut dyn Standby>) -> Result<StandbyStatus> {
    let state = match server {
        Some(server) => server.state()?,
        None => None,
    };
    let controls = ControlFiles::in_archive(&config.completed_wals);
    let mut segments: Vec<String> = listing::segments(&config.completed_wals)
        .iter()
        .map(|s| s.to_string())
        .collect();
    segments.sort();
    // The newest partial copy: the master's in-progress segment, as far as it reaches.
    let newest_partial = PartialStore::new(&config.partial_wals).newest();
    let backups = catalog::list(&config.full_backup)?
        .iter()
        .map(set_status)
        .collect();
    Ok(StandbyStatus {
        server: match state {
            Some(_) => "running".into(),
            None => "not running or not accepting connections".into(),
        },
        in_recovery: state.as_ref().map(|s| s.in_recovery),
        replay_lsn: state
            .as_ref()
            .and_then(|s| s.replay_lsn.map(|l| l.to_string())),
        replay_paused: state.as_ref().and_then(|s| s.replay_paused),
        last_replayed_xact: state.as_ref().and_then(|s| s.last_replayed_xact.clone()),
        replay_lag_seconds: state.as_ref().and_then(|s| s.replay_lag_seconds),
        pause_file: controls.is_set(Control::Pause),
        stop_file: controls.is_set(Control::Stop),
        backup_lock: lock::holder(&config.completed_wals)?.map(|h| h.to_string()),
        archived_segments: segments.len() as u64,
        newest_archived: segments.last().cloned(),
        newest_partial: newest_partial.as_ref().map(|(s, _)| s.to_string()),
        partial_reaches: newest_partial
            .map(|(s, held)| Lsn(s.start_lsn(held.seg_size as u32) + held.len).to_string()),
        backups,
    })
}

fn set_status(set: &catalog::BackupSet) -> BackupSetStatus {
    BackupSetStatus {
        set: set.name(),
        label: set.label.label.clone(),
        start_lsn: set.label.start_lsn.to_string(),
        stop_lsn: set.stop_lsn.clone(),
        start_time: set.label.start_time.clone(),
        first_wal: set.label.start_segment.to_string(),
        size_bytes: set.size,
        finished_unix: set.finished_unix,
    }
}

/// One backup set, as `listbackups` and the wire describe it.
pub fn set_json(set: &catalog::BackupSet) -> Value {
    json!(set_status(set))
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

#[cfg(test)]
mod schema_tests;
