//! `backup`: a base backup into full_backup, from the master (master config) or from the
//! in-recovery standby (slave config), with lock, rotation and WAL purge around it.
//!
//! The copy goes into the standby's backup area (see [`crate::backup::area`]): staged,
//! and the newest set only when complete, so a failed or killed backup never costs an
//! existing one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use crate::backup::area::BackupArea;
use crate::backup::catalog;
use crate::backup::datadir::{self, CopyOptions, Progress};
use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::server::{BackupSource, BackupStop};

/// Which server the backup copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Master,
    Standby,
}

impl Side {
    pub fn of(config: &Config) -> Side {
        match config.role {
            Role::Master => Side::Master,
            Role::Slave => Side::Standby,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Master => "master",
            Side::Standby => "standby",
        }
    }
}

/// The data directory a backup with `config` copies.
pub fn source_data(config: &Config) -> Result<&Path> {
    let (value, key) = match config.role {
        Role::Master => (&config.master_data, "master_data"),
        Role::Slave => (&config.slave_data, "slave_data"),
    };
    config.required(value, key, "backup").map(PathBuf::as_path)
}

/// Takes a base backup of `server` (whose data directory `config` names) into `area` (the
/// standby's full_backup, here or over the wire). Returns the new set's path (None in a
/// dry run). `progress` sees the copy.
pub fn take(
    config: &Config,
    area: &mut dyn BackupArea,
    server: &mut dyn BackupSource,
    changes: &mut Changes,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Option<PathBuf>> {
    let from = Side::of(config);
    let source = source_data(config)?.to_path_buf();
    area.begin(&format!("backup from the {}", from.name()), changes)?;

    let label = format!("walmgr {}", config.job_name.as_deref().unwrap_or("backup"));
    let started = changes.apply(
        format!("SELECT pg_backup_start('{label}', fast => true)"),
        || keeping_alive(area, || server.backup_start(&label)),
    );
    if let Err(e) = started {
        area.abort();
        return Err(e);
    }

    let options = CopyOptions {
        keep_symlinks: config.keep_symlinks,
    };
    let copied = changes
        .apply(
            format!("copy {} to {}", source.display(), area.describe()),
            || datadir::walk_data_dir(&source, options, area.sink(), progress),
        )
        .and_then(|copied| area.check().map(|_| copied));
    match copied {
        Ok(Some(p)) => tracing::info!("copied {} files, {} MB", p.files, p.bytes_done >> 20),
        Ok(None) => {}
        Err(e) => {
            area.abort();
            return Err(e);
        }
    }

    let stopped = changes.apply("SELECT pg_backup_stop(wait_for_archive => true)", || {
        keeping_alive(area, || server.backup_stop())
    });
    let stopped = match stopped {
        Ok(stopped) => stopped,
        Err(e) => {
            area.abort();
            return Err(e);
        }
    };
    if let Some(stop) = stopped {
        if let Err(e) = put_backup_files(area, &stop) {
            area.abort();
            return Err(e);
        }
    }
    let set = area.finish(changes)?;

    let mut files = if changes.is_dry_run() {
        Vec::new()
    } else {
        server.config_files()?
    };
    if let Some(extra) = &config.master_config {
        if !files.contains(extra) {
            files.push(extra.clone());
        }
    }
    for file in files {
        let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let contents = if changes.is_dry_run() {
            Vec::new()
        } else {
            fs::read(&file).map_err(|e| Error::io("read", &file, e))?
        };
        area.put_config(&name, &contents, changes)?;
    }
    Ok((!changes.is_dry_run()).then_some(set))
}

/// How often a waiting master speaks to the standby; well under the least network_timeout.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(5);

/// Runs `work`, a server call that may take minutes (the checkpoint of pg_backup_start,
/// pg_backup_stop waiting for the last segment to be archived), while the area's session
/// is kept alive: a standby gives up a session silent for network_timeout, and with it
/// the backup.
fn keeping_alive<T>(area: &mut dyn BackupArea, work: impl FnOnce() -> Result<T>) -> Result<T> {
    if !area.has_session() {
        return work();
    }
    let (done, stop) = mpsc::channel::<()>();
    thread::scope(|s| {
        let speaker = s.spawn(move || loop {
            match stop.recv_timeout(KEEP_ALIVE_EVERY) {
                Err(RecvTimeoutError::Timeout) => area.keep_alive()?,
                _ => return Ok(()),
            }
        });
        let result = work();
        drop(done);
        let alive = speaker
            .join()
            .unwrap_or_else(|_| Err(Error::refused("the keep-alive thread panicked")));
        // The server's answer first: a session that died meanwhile fails the next step.
        let value = result?;
        alive.map(|_| value)
    })
}

/// backup_label as pg_backup_stop() returned it, and what walmgr keeps beside it.
fn put_backup_files(area: &mut dyn BackupArea, stop: &BackupStop) -> Result<()> {
    area.put_file("backup_label", stop.label.as_bytes())?;
    area.put_file(
        catalog::INFO_FILE,
        format!("STOP LSN: {}\n", stop.lsn).as_bytes(),
    )?;
    // Tablespaces are copied in place (pg_tblspc/OID as directories); a tablespace_map
    // would make recovery re-link them to the master's paths. The map is kept: restore
    // places each tablespace by it (standby::tablespaces).
    if let Some(map) = stop.tablespace_map.as_deref().filter(|m| !m.is_empty()) {
        area.put_file(crate::standby::tablespaces::MAP_FILE, map.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::lock;
    use crate::backup::area::LocalArea;
    use crate::server::BackupStop;
    use crate::wal::Lsn;

    const LABEL: &str = "START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n\
                         CHECKPOINT LOCATION: 0/3000060\nBACKUP METHOD: streamed\n\
                         BACKUP FROM: primary\nSTART TIME: 2026-11-30 12:00:00 UTC\n\
                         LABEL: walmgr test\nSTART TIMELINE: 1\n";

    /// A server whose backup functions only record that they ran, and whose label names a
    /// start segment like PostgreSQL's.
    #[derive(Default)]
    struct FakeServer {
        calls: Vec<&'static str>,
        fail_stop: bool,
    }

    impl BackupSource for FakeServer {
        fn backup_start(&mut self, _label: &str) -> Result<()> {
            self.calls.push("start");
            Ok(())
        }
        fn backup_stop(&mut self) -> Result<BackupStop> {
            self.calls.push("stop");
            if self.fail_stop {
                return Err(Error::server("pg_backup_stop", "the server went away"));
            }
            Ok(BackupStop {
                lsn: Lsn(0x3000100),
                label: LABEL.into(),
                tablespace_map: None,
            })
        }
        fn config_files(&mut self) -> Result<Vec<PathBuf>> {
            Ok(Vec::new())
        }
    }

    struct Scene {
        _dir: tempfile::TempDir,
        config: Config,
        walmgr_data: PathBuf,
    }

    /// A master data directory with a few files, and a master config whose standby
    /// directories are local.
    fn scene(extra: &str) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("master");
        fs::create_dir_all(data.join("base/1")).unwrap();
        fs::write(data.join("PG_VERSION"), "15\n").unwrap();
        fs::write(data.join("base/1/1234"), vec![7u8; 10_000]).unwrap();
        fs::create_dir_all(data.join("global")).unwrap();
        fs::write(data.join("global/pg_control"), vec![1u8; 8192]).unwrap();
        let walmgr_data = dir.path().join("walshipping");
        fs::create_dir_all(walmgr_data.join("logs.complete")).unwrap();
        let path = dir.path().join("master.toml");
        fs::write(
            &path,
            format!(
                "[walmgr]\nmaster_db = \"dbname=x\"\nmaster_data = \"{}\"\nwalmgr_data = \"{}\"\n{extra}\n",
                data.display(),
                walmgr_data.display()
            ),
        )
        .unwrap();
        let config = Config::load(&path, &[]).unwrap();
        Scene {
            _dir: dir,
            config,
            walmgr_data,
        }
    }

    fn area(s: &Scene) -> LocalArea {
        LocalArea::new(crate::backup::standby_side(&s.config, "backup").unwrap())
    }

    fn sets(s: &Scene) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&s.walmgr_data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("data.master"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_backup_becomes_data_master_with_the_servers_label_and_frees_the_lock() {
        let s = scene("");
        let mut server = FakeServer::default();
        let set = take(
            &s.config,
            &mut area(&s),
            &mut server,
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap()
        .unwrap();
        assert_eq!(server.calls, ["start", "stop"]);
        assert_eq!(sets(&s), ["data.master"]);
        let label = fs::read_to_string(set.join("backup_label")).unwrap();
        assert!(label.contains("000000010000000000000003"), "{label}");
        assert_eq!(
            fs::read(set.join("base/1/1234")).unwrap(),
            vec![7u8; 10_000]
        );
        assert!(!s.walmgr_data.join("logs.complete/BACKUPLOCK").exists());
    }

    #[test]
    fn a_failed_backup_stop_keeps_the_previous_set_and_leaves_no_staging() {
        let s = scene("");
        take(
            &s.config,
            &mut area(&s),
            &mut FakeServer::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        let mut failing = FakeServer {
            fail_stop: true,
            ..FakeServer::default()
        };
        let err = take(
            &s.config,
            &mut area(&s),
            &mut failing,
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("the server went away"), "{err}");
        assert_eq!(sets(&s), ["data.master"], "the failed copy was dropped");
        // The next backup drops the incomplete copy (it has no backup_label) and succeeds.
        take(
            &s.config,
            &mut area(&s),
            &mut FakeServer::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(sets(&s), ["data.master"]);
    }

    #[test]
    fn a_complete_copy_left_by_a_killed_backup_becomes_the_newest_set() {
        let s = scene("keep_backups = 3");
        let staging = s.walmgr_data.join("data.master.inprogress");
        fs::create_dir_all(&staging).unwrap();
        let killed = LABEL.replace("walmgr test", "killed after pg_backup_stop");
        fs::write(staging.join("backup_label"), &killed).unwrap();
        take(
            &s.config,
            &mut area(&s),
            &mut FakeServer::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(sets(&s), ["data.master", "data.master.0"]);
        let older = fs::read_to_string(s.walmgr_data.join("data.master.0/backup_label")).unwrap();
        assert_eq!(older, killed);
    }

    #[test]
    fn a_dry_run_backup_asks_the_server_nothing_and_writes_nothing() {
        let s = scene("");
        let mut server = FakeServer::default();
        let mut changes = Changes::new(true);
        assert_eq!(
            take(
                &s.config,
                &mut area(&s),
                &mut server,
                &mut changes,
                &mut |_| {}
            )
            .unwrap(),
            None
        );
        assert!(server.calls.is_empty());
        assert!(sets(&s).is_empty());
        let plan = changes.described().join("\n");
        for step in [
            "take backup lock",
            "pg_backup_start",
            "copy ",
            "pg_backup_stop",
            "rename ",
        ] {
            assert!(plan.contains(step), "plan lacks {step:?}:\n{plan}");
        }
    }

    #[test]
    fn a_backup_while_another_holds_the_lock_fails_at_once() {
        let s = scene("");
        let completed = s.walmgr_data.join("logs.complete");
        let held = lock::take(&completed, "another backup", &mut Changes::new(false))
            .unwrap()
            .unwrap();
        let mut server = FakeServer::default();
        let err = take(
            &s.config,
            &mut area(&s),
            &mut server,
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, Error::LockBusy { .. }), "{err}");
        assert!(
            server.calls.is_empty(),
            "the server was asked to start a backup"
        );
        drop(held);
    }
}
