//! What walmgr's workflows need from a PostgreSQL server, as small traits.
//!
//! Core decides what to ask and when; the drivers decide how: the CLI over a connection
//! (and `pg_ctl` where no connection is possible), the extension in-process. Workflows are
//! unit tested against fakes of these traits, and end to end against real servers.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::setup::server_settings::SettingChange;
use crate::wal::Lsn;

/// The master, as `setup`, `stop` and `status` reach it (through the extension's SQL API).
pub trait Master {
    /// Is `CREATE EXTENSION walmgr` done in master_db?
    fn extension_installed(&mut self) -> Result<bool>;
    fn create_extension(&mut self) -> Result<()>;
    /// `walmgr.setup(config, dry_run)`: the changes made (or planned), one per line; the
    /// last line says whether a restart is needed.
    fn setup(&mut self, config: &Path, dry_run: bool) -> Result<String>;
    /// `walmgr.stop(dry_run)`, reported like [`Master::setup`].
    fn stop(&mut self, dry_run: bool) -> Result<String>;
    /// The `walmgr.status` view.
    fn archive_status(&mut self) -> Result<ArchiveStatus>;
}

/// One row of `walmgr.status`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ArchiveStatus {
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    /// last_archived_time as seconds since 1970.
    pub last_archived_time_unix: Option<f64>,
    pub files_waiting: i64,
    pub bytes_behind: Option<i64>,
    pub last_failed_wal: Option<String>,
    pub last_error: Option<String>,
    pub last_error_time: Option<String>,
    pub transport: Option<String>,
    pub archived_count: i64,
    pub failed_count: i64,
    /// The in-progress shipping loop: its state, the LSN the standby holds and since when,
    /// how far the flush is ahead of it, errors.
    pub shipper_state: Option<String>,
    pub partial_lsn: Option<String>,
    pub partial_time: Option<String>,
    /// partial_time as seconds since 1970.
    pub partial_time_unix: Option<f64>,
    pub partial_bytes_behind: Option<i64>,
    pub shipper_errors: i64,
    pub shipper_last_error: Option<String>,
}

/// The server a base backup copies: the master, or a standby in recovery.
pub trait BackupSource {
    /// `pg_backup_start(label, fast => true)`; the session must stay open until stop.
    fn backup_start(&mut self, label: &str) -> Result<()>;
    /// `pg_backup_stop(wait_for_archive => true)`.
    fn backup_stop(&mut self) -> Result<BackupStop>;
    /// The server's configuration files (config_file, hba_file, ident_file).
    fn config_files(&mut self) -> Result<Vec<PathBuf>>;
}

/// What `pg_backup_stop()` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStop {
    pub lsn: Lsn,
    /// The backup_label file's contents.
    pub label: String,
    /// The tablespace_map file's contents (empty without tablespaces).
    pub tablespace_map: Option<String>,
}

/// The standby's own server, as restore, `pause`, `continue`, `boot`, `cleanup` and
/// `status` steer and watch it.
pub trait Standby {
    /// Does a postmaster run on the standby's data directory?
    fn is_running(&self) -> bool;
    /// Its state, or None while it accepts no connection (starting, not yet consistent,
    /// hot_standby = off, or not running).
    fn state(&mut self) -> Result<Option<ServerState>>;
    /// `pg_wal_replay_pause()`.
    fn pause_replay(&mut self) -> Result<()>;
    /// `pg_wal_replay_resume()`.
    fn resume_replay(&mut self) -> Result<()>;
    /// Asks the server to end recovery and open, without waiting for it: it opens only
    /// once it has replayed everything it can find.
    fn promote(&mut self) -> Result<()>;
}

/// Where a reachable server stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerState {
    pub in_recovery: bool,
    /// `pg_last_wal_replay_lsn()`: None before replay started, or on a server that never
    /// recovered from an archive.
    pub replay_lsn: Option<Lsn>,
    /// `pg_is_wal_replay_paused()`, in recovery only.
    pub replay_paused: Option<bool>,
    /// `pg_last_xact_replay_timestamp()`, as text.
    pub last_replayed_xact: Option<String>,
    /// The timeline it writes on, once out of recovery.
    pub timeline: Option<u32>,
    /// `now() - pg_last_xact_replay_timestamp()` in seconds, in recovery: how old the
    /// newest replayed commit is (it grows while the master commits nothing).
    pub replay_lag_seconds: Option<f64>,
}

/// The master's WAL as the shipping loop reads it: how far it is flushed, and where the
/// files are. In-process (the background worker) or over a connection (`syncdaemon`).
pub trait WalSource {
    /// How far WAL is flushed to disk, and on which timeline.
    fn flush(&mut self) -> Result<Flush>;
    /// The newest segment number the server has removed or recycled, when it can tell
    /// (in-process only); a segment at or below it may hold other WAL by now.
    fn last_removed_segno(&mut self) -> Option<u64>;
}

/// A flush position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flush {
    pub lsn: Lsn,
    pub timeline: u32,
}

/// The master's synchronous replication, as `synch-standby` reads and sets it: in-process
/// (the extension's `walmgr.synch_standby()`) or over a connection (the CLI on a master
/// without the extension).
pub trait SyncReplication {
    /// Every walsender of `pg_stat_replication`: who is connected, and how far along.
    fn walsenders(&mut self) -> Result<Vec<Walsender>>;
    /// The value a setting runs with now.
    fn setting(&mut self, name: &str) -> Result<String>;
    /// ALTER SYSTEM for one setting.
    fn alter_system(&mut self, change: &SettingChange) -> Result<()>;
    /// `pg_reload_conf()`.
    fn reload(&mut self) -> Result<()>;
}

/// One row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walsender {
    /// The standby's application_name (from its primary_conninfo; the cluster_name or
    /// `walreceiver` when it sets none).
    pub application_name: String,
    /// `startup`, `catchup`, `streaming`, `backup` or `stopping`.
    pub state: String,
}

/// What `check` asks any server it reaches: the master, or the standby's own server.
pub trait Inspect {
    /// `server_version`, e.g. `15.14 (Debian 15.14-0+deb12u1)`.
    fn version(&mut self) -> Result<String>;
    /// The value a setting runs with now (`current_setting`).
    fn setting(&mut self, name: &str) -> Result<String>;
    /// `pg_is_in_recovery()`.
    fn in_recovery(&mut self) -> Result<bool>;
}

/// The master, as `check` drives its round trip.
pub trait CheckedMaster: Master + Inspect {
    /// Writes a little WAL, so that there is always a segment to finish, then
    /// `pg_switch_wal()`: the name of the segment that switch finished.
    fn switch_wal(&mut self) -> Result<String>;
    /// The cluster's WAL segment size in bytes.
    fn segment_size(&mut self) -> Result<u64>;
}
