//! Core's server traits over real connections: the master through `master_db`, the
//! standby's own server through its data directory (and `pg_ctl` where no connection is
//! possible yet).

use std::path::{Path, PathBuf};
use std::process::Command;

use postgres::Client;
use walmgr_core::conninfo::Conninfo;
use walmgr_core::server::{
    ArchiveStatus, BackupSource, BackupStop, CheckedMaster, Flush, Inspect, Master, ServerState,
    Standby, SyncReplication, WalSource, Walsender,
};
use walmgr_core::setup::server_settings::SettingChange;
use walmgr_core::shipping::reader::Cluster;
use walmgr_core::wal::Lsn;
use walmgr_core::{cluster, os, Error, Result};

use crate::db::{self, server_error};

/// A connection to the master (for setup, stop, status) or to any server a backup copies.
pub struct Connection {
    client: Client,
}

impl Connection {
    pub fn master(conninfo: &Conninfo) -> Result<Connection> {
        Ok(Connection {
            client: db::connect(conninfo)?,
        })
    }

    pub fn local(data: &Path) -> Result<Connection> {
        Ok(Connection {
            client: db::connect_local(data)?,
        })
    }

    fn one(&mut self, sql: &str) -> Result<postgres::Row> {
        self.client
            .query_one(sql, &[])
            .map_err(|e| server_error(sql, &e))
    }

    /// `walmgr.sync()`: the master ships its in-progress WAL now; the LSN the standby holds.
    pub fn sync(&mut self) -> Result<String> {
        Ok(self.one("SELECT walmgr.sync()::text")?.get(0))
    }

    /// Does this database have `walmgr.synch_standby()` (the extension, new enough)?
    pub fn has_synch_standby(&mut self) -> Result<bool> {
        Ok(self
            .one("SELECT to_regprocedure('walmgr.synch_standby(text, boolean)') IS NOT NULL")?
            .get(0))
    }

    /// `walmgr.synch_standby(names, dry_run)`: its report (core's `synch_standby::report`).
    pub fn synch_standby(&mut self, names: &str, dry_run: bool) -> Result<String> {
        self.client
            .query_one(
                "SELECT walmgr.synch_standby($1, dry_run => $2)",
                &[&names, &dry_run],
            )
            .map(|row| row.get(0))
            .map_err(|e| server_error("walmgr.synch_standby()", &e))
    }
}

/// synch-standby on a master without the extension: plain ALTER SYSTEM, which runs here
/// outside any transaction block.
impl SyncReplication for Connection {
    fn walsenders(&mut self) -> Result<Vec<Walsender>> {
        let sql = "SELECT coalesce(application_name, ''), coalesce(state, '') \
                   FROM pg_stat_replication";
        let rows = self
            .client
            .query(sql, &[])
            .map_err(|e| server_error("read pg_stat_replication", &e))?;
        Ok(rows
            .iter()
            .map(|row| Walsender {
                application_name: row.get(0),
                state: row.get(1),
            })
            .collect())
    }

    fn setting(&mut self, name: &str) -> Result<String> {
        self.client
            .query_one("SELECT current_setting($1)", &[&name])
            .map(|row| row.get(0))
            .map_err(|e| server_error(format!("current_setting('{name}')"), &e))
    }

    fn alter_system(&mut self, change: &SettingChange) -> Result<()> {
        let sql = change.to_sql();
        self.client
            .batch_execute(&sql)
            .map_err(|e| server_error(sql, &e))
    }

    fn reload(&mut self) -> Result<()> {
        self.one("SELECT pg_reload_conf()").map(|_| ())
    }
}

impl Master for Connection {
    fn extension_installed(&mut self) -> Result<bool> {
        self.client
            .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'walmgr'", &[])
            .map(|row| row.is_some())
            .map_err(|e| server_error("cannot read pg_extension", &e))
    }

    fn create_extension(&mut self) -> Result<()> {
        self.client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS walmgr")
            .map_err(|e| server_error("CREATE EXTENSION walmgr", &e))
    }

    fn setup(&mut self, config: &Path, dry_run: bool) -> Result<String> {
        self.client
            .query_one(
                "SELECT walmgr.setup($1, dry_run => $2)",
                &[&config.to_string_lossy().as_ref(), &dry_run],
            )
            .map(|row| row.get(0))
            .map_err(|e| server_error("walmgr.setup()", &e))
    }

    fn stop(&mut self, dry_run: bool) -> Result<String> {
        self.client
            .query_one("SELECT walmgr.stop(dry_run => $1)", &[&dry_run])
            .map(|row| row.get(0))
            .map_err(|e| server_error("walmgr.stop()", &e))
    }

    fn archive_status(&mut self) -> Result<ArchiveStatus> {
        let row = self.one(
            "SELECT last_archived_wal, last_archived_time::text, files_waiting, bytes_behind, \
             last_failed_wal, last_error, last_error_time::text, transport, archived_count, \
             failed_count, shipper_state, partial_lsn::text, partial_time::text, \
             partial_bytes_behind, shipper_errors, shipper_last_error, \
             extract(epoch FROM last_archived_time)::float8, \
             extract(epoch FROM partial_time)::float8 FROM walmgr.status",
        )?;
        Ok(ArchiveStatus {
            last_archived_wal: row.get(0),
            last_archived_time: row.get(1),
            last_archived_time_unix: row.get(16),
            files_waiting: row.get(2),
            bytes_behind: row.get(3),
            last_failed_wal: row.get(4),
            last_error: row.get(5),
            last_error_time: row.get(6),
            transport: row.get(7),
            archived_count: row.get(8),
            failed_count: row.get(9),
            shipper_state: row.get(10),
            partial_lsn: row.get(11),
            partial_time: row.get(12),
            partial_time_unix: row.get(17),
            partial_bytes_behind: row.get(13),
            shipper_errors: row.get(14),
            shipper_last_error: row.get(15),
        })
    }
}

impl Inspect for Connection {
    fn version(&mut self) -> Result<String> {
        Ok(self.one("SHOW server_version")?.get(0))
    }

    fn setting(&mut self, name: &str) -> Result<String> {
        SyncReplication::setting(self, name)
    }

    fn in_recovery(&mut self) -> Result<bool> {
        Ok(self.one("SELECT pg_is_in_recovery()")?.get(0))
    }
}

impl CheckedMaster for Connection {
    fn switch_wal(&mut self) -> Result<String> {
        // A non-transactional message is WAL written at once, with no table touched: after
        // it the current segment is never empty, so the switch always finishes a segment.
        self.one("SELECT pg_logical_emit_message(false, 'walmgr', 'check')::text")?;
        Ok(self.one("SELECT pg_walfile_name(pg_switch_wal())")?.get(0))
    }

    fn segment_size(&mut self) -> Result<u64> {
        let bytes: String = self
            .one("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")?
            .get(0);
        bytes.parse().map_err(|_| {
            Error::server(
                "read wal_segment_size",
                format!("not a number of bytes: {bytes:?}"),
            )
        })
    }
}

impl BackupSource for Connection {
    fn backup_start(&mut self, label: &str) -> Result<()> {
        self.client
            .query_one("SELECT pg_backup_start($1, fast => true)::text", &[&label])
            .map(|_| ())
            .map_err(|e| server_error("pg_backup_start", &e))
    }

    fn backup_stop(&mut self) -> Result<BackupStop> {
        let sql =
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(wait_for_archive => true)";
        let row = self
            .client
            .query_one(sql, &[])
            .map_err(|e| server_error("pg_backup_stop", &e))?;
        Ok(BackupStop {
            lsn: row.get::<_, String>(0).parse()?,
            label: row.get(1),
            tablespace_map: row.get(2),
        })
    }

    fn config_files(&mut self) -> Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        for setting in ["config_file", "hba_file", "ident_file"] {
            let row = self.one(&format!("SHOW {setting}"))?;
            files.push(PathBuf::from(row.get::<_, String>(0)));
        }
        Ok(files)
    }
}

/// The standby's own server, found through its data directory. Each question connects
/// anew: the server may come and go (restore starts it, boot restarts its connections).
pub struct LocalStandby {
    data: PathBuf,
    pg_ctl: PathBuf,
}

impl LocalStandby {
    /// `slave_bin`'s pg_ctl, else the one on $PATH.
    pub fn new(data: &Path, slave_bin: Option<&Path>) -> LocalStandby {
        LocalStandby {
            data: data.to_path_buf(),
            pg_ctl: slave_bin.map_or_else(|| PathBuf::from("pg_ctl"), |b| b.join("pg_ctl")),
        }
    }

    fn connect(&self) -> Option<Client> {
        if !self.is_running() {
            return None;
        }
        db::connect_local(&self.data).ok()
    }

    fn execute(&mut self, sql: &str) -> Result<()> {
        let mut client = db::connect_local(&self.data)?;
        client
            .query_one(sql, &[])
            .map(|_| ())
            .map_err(|e| server_error(sql, &e))
    }
}

impl Standby for LocalStandby {
    fn is_running(&self) -> bool {
        cluster::running(&self.data).is_some()
    }

    fn state(&mut self) -> Result<Option<ServerState>> {
        let Some(mut client) = self.connect() else {
            return Ok(None);
        };
        let sql = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
                   CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, \
                   pg_last_xact_replay_timestamp()::text, \
                   CASE WHEN NOT pg_is_in_recovery() \
                        THEN pg_walfile_name(pg_current_wal_lsn()) END, \
                   extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8";
        let row = client
            .query_one(sql, &[])
            .map_err(|e| server_error("read the standby's replay position", &e))?;
        let replay_lsn = row
            .get::<_, Option<String>>(1)
            .map(|l| l.parse::<Lsn>())
            .transpose()?;
        // A WAL file name starts with its timeline, eight hex digits.
        let timeline = row
            .get::<_, Option<String>>(4)
            .and_then(|f| u32::from_str_radix(f.get(..8)?, 16).ok());
        Ok(Some(ServerState {
            in_recovery: row.get(0),
            replay_lsn,
            replay_paused: row.get(2),
            last_replayed_xact: row.get(3),
            timeline,
            replay_lag_seconds: row.get(5),
        }))
    }

    fn pause_replay(&mut self) -> Result<()> {
        self.execute("SELECT pg_wal_replay_pause()")
    }

    fn resume_replay(&mut self) -> Result<()> {
        self.execute("SELECT pg_wal_replay_resume()")
    }

    /// `pg_ctl promote -W`: works before the standby accepts connections (a standby far
    /// behind right after restore is not yet consistent), and does not wait, since the
    /// promotion finishes only after the whole archive is replayed.
    fn promote(&mut self) -> Result<()> {
        let mut cmd = if os::users::is_root() {
            let owner = cluster::owner_name(&self.data).unwrap_or_else(|| "postgres".into());
            let mut c = Command::new("runuser");
            c.args(["-u", &owner, "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        cmd.arg("-D").arg(&self.data).args(["-W", "promote"]);
        let out = cmd
            .output()
            .map_err(|e| Error::io("run", &self.pg_ctl, e))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::CommandFailed {
            what: "pg_ctl promote".into(),
            command: format!("{cmd:?}"),
            status: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The master's WAL as `syncdaemon` sees it: the flush position over a connection (made
/// again after the master restarted), the bytes from master_data's pg_wal.
pub struct SqlWal {
    conninfo: Conninfo,
    client: Option<Client>,
}

impl SqlWal {
    pub fn new(conninfo: &Conninfo) -> SqlWal {
        SqlWal {
            conninfo: conninfo.clone(),
            client: None,
        }
    }

    fn client(&mut self) -> Result<&mut Client> {
        if self.client.is_none() {
            self.client = Some(db::connect(&self.conninfo)?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    fn one(&mut self, sql: &str) -> Result<postgres::Row> {
        let result = self.client()?.query_one(sql, &[]);
        result.map_err(|e| {
            // A broken connection is made again at the next question.
            self.client = None;
            server_error(sql, &e)
        })
    }

    /// Segment size and system identifier from the server, pg_wal from master_data.
    pub fn cluster(&mut self, master_data: &Path) -> Result<Cluster> {
        let row = self.one(
            "SELECT (SELECT setting::int FROM pg_settings WHERE name = 'wal_segment_size'), \
             (SELECT system_identifier FROM pg_control_system())::text",
        )?;
        let seg_size: i32 = row.get(0);
        let system_id: String = row.get(1);
        Ok(Cluster {
            pg_wal: master_data.join("pg_wal"),
            seg_size: seg_size as u32,
            system_id: system_id
                .parse()
                .map_err(|_| Error::server("pg_control_system()", "no system identifier"))?,
        })
    }
}

impl WalSource for SqlWal {
    fn flush(&mut self) -> Result<Flush> {
        let row = self.one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN NULL \
                    ELSE pg_current_wal_flush_lsn()::text END, \
                    CASE WHEN pg_is_in_recovery() THEN NULL \
                    ELSE pg_walfile_name(pg_current_wal_flush_lsn()) END",
        )?;
        let (Some(lsn), Some(file)) = (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<String>>(1),
        ) else {
            // A master in recovery has nothing of its own to ship.
            return Ok(Flush {
                lsn: Lsn(0),
                timeline: 0,
            });
        };
        let timeline = file
            .get(..8)
            .and_then(|t| u32::from_str_radix(t, 16).ok())
            .ok_or_else(|| Error::server("pg_walfile_name()", format!("unexpected {file:?}")))?;
        Ok(Flush {
            lsn: lsn.parse()?,
            timeline,
        })
    }

    /// Not visible over a connection: the reader's own checks (page addresses, the file
    /// still under its name) catch a recycled segment.
    fn last_removed_segno(&mut self) -> Option<u64> {
        None
    }
}
