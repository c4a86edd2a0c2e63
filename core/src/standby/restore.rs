//! `restore [set [dst]]`: a backup set becomes the standby's data directory, set up to
//! replay from the archive through `walmgr xrestore` (or to recover to a point in time).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::archive::control::{Control, ControlFiles};
use crate::archive::lock;
use crate::backup::datadir::{self, Progress};
use crate::backup::{catalog, label::BackupLabel};
use crate::changes::Changes;
use crate::cluster;
use crate::config::{Config, Role};
use crate::conninfo::Conninfo;
use crate::error::{Error, Result};
use crate::os::files::{create_private_dir, give_to_owner_of};
use crate::os::shell;
use crate::standby::recovery::{self, Target};
use crate::standby::tablespaces;

/// In a data directory, the sign of a restore that moved the newest set there and did not
/// finish: the next `restore` finishes it.
const UNFINISHED: &str = "walmgr_restore_unfinished";

/// What to restore and where.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// A set's name in full_backup's directory (`data.master.1`) or a path; None: the
    /// newest set, moved rather than copied.
    pub set: Option<&'a str>,
    /// Another destination than slave_data (then slave_stop_cmd/slave_start_cmd, which
    /// are about slave_data, are not run).
    pub dst: Option<&'a Path>,
    /// Recover to this point and open, instead of following the archive as a standby.
    pub target: Option<Target>,
}

/// Restores into the data directory and starts the server there if slave_start_cmd is
/// set. `walmgr` and the config's path go into restore_command. `report` is called now and
/// then while a set is copied (a move is one rename). Returns the directory.
pub fn restore(
    config: &Config,
    walmgr: &Path,
    request: &Request,
    changes: &mut Changes,
    report: &mut dyn FnMut(&Progress),
) -> Result<PathBuf> {
    config.require_role(Role::Slave, "restore")?;
    let data = match request.dst {
        Some(d) => d.to_path_buf(),
        None => config
            .required(&config.slave_data, "slave_data", "restore")?
            .clone(),
    };
    let full_backup = &config.full_backup;
    let (set, moving) = match request.set {
        None => (full_backup.clone(), true),
        Some(name) if name.contains('/') => (PathBuf::from(name), false),
        Some(name) => (full_backup.with_file_name(name), false),
    };
    // A restore killed after it moved the newest set into place left it there, marked:
    // this run finishes that one (there is no set left to move).
    let resuming = moving && !set.join("backup_label").exists() && data.join(UNFINISHED).is_file();
    let from = if resuming { &data } else { &set };
    let label = read_label(from, full_backup)?;
    if resuming {
        tracing::info!(
            "finishing the interrupted restore into {}: the set is already there",
            data.display()
        );
    }
    // Where the set's tablespaces go, checked before anything changes (those an interrupted
    // restore placed already are links now).
    let mapping = tablespaces::parse_mapping(config.tablespace_mapping.as_deref().unwrap_or(""))?;
    let placements: Vec<_> =
        tablespaces::plan(from, &mapping, &tablespaces::linked_targets(&data))?
            .into_iter()
            .filter(|p| !data.join("pg_tblspc").join(&p.oid).is_symlink())
            .collect();

    let own_server = request.dst.is_none();
    if let Some(cmd) = config.slave_stop_cmd.as_deref().filter(|_| own_server) {
        if cluster::running(&data).is_some() {
            changes.apply(format!("run slave_stop_cmd: {cmd}"), || {
                shell::run("slave_stop_cmd", cmd)
            })?;
        }
    }
    if cluster::running(&data).is_some() && !changes.is_dry_run() {
        return Err(Error::refused(format!(
            "a server is still running on {}: stop it (or set slave_stop_cmd) before restore",
            data.display()
        )));
    }

    // No backup may rotate or remove the set while it is moved or copied.
    let _lock = if config.completed_wals.is_dir() && !resuming {
        lock::take(&config.completed_wals, "restore", changes)?
    } else {
        None
    };
    if !resuming {
        set_aside(&data, config.backup_datadir, changes)?;
        if moving {
            // Moved with the set: until the last step removes it, the data directory is
            // a restore to finish, not a standby.
            let marker = set.join(UNFINISHED);
            changes.apply(format!("mark {} as being restored", set.display()), || {
                fs::write(&marker, b"").map_err(|e| Error::io("create", &marker, e))
            })?;
            changes.apply(
                format!("move {} to {}", set.display(), data.display()),
                || move_tree(&set, &data, report),
            )?;
        } else {
            changes.apply(
                format!("copy {} to {}", set.display(), data.display()),
                || datadir::copy_tree(&set, &data, report).map(|_| ()),
            )?;
        }
    }

    tablespaces::place(&data, &placements, changes)?;
    if let Some(pg_xlog) = &config.slave_pg_xlog {
        link_pg_wal(&data, pg_xlog, changes)?;
    }
    if let (Some(conf_dir), Some(backup)) = (&config.slave_config_dir, &config.config_backup) {
        restore_config_files(backup, conf_dir, changes)?;
    }

    let config_path = config
        .source
        .canonicalize()
        .map_err(|e| Error::io("resolve", &config.source, e))?;
    let plan = recovery::plan(
        walmgr,
        &config_path,
        config.primary_conninfo.as_ref().map(Conninfo::expose),
        request.target.as_ref(),
    );
    let what = format!(
        "write {} and set {} in postgresql.auto.conf",
        data.join(plan.signal_file).display(),
        plan.settings
            .iter()
            .map(|(k, v)| match *k {
                // A plan is printed (-n) and logged: the password stays out of it.
                "primary_conninfo" => format!("{k} = '{}'", crate::conninfo::redacted(v)),
                _ => format!("{k} = '{v}'"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    changes.apply(what, || recovery::write(&data, &plan))?;

    let controls = ControlFiles::in_archive(&config.completed_wals);
    // Until its first restartpoint the restored server reports none (%r is all zeros), yet
    // it needs the archive from the backup's start on: no purge may take that meanwhile.
    controls.record_restartpoint(label.start_segment, changes)?;
    for control in [Control::Stop, Control::StopSeen, Control::Pause] {
        controls.clear(control, changes)?;
    }
    let marker = data.join(UNFINISHED);
    if marker.exists() || (moving && changes.is_dry_run()) {
        changes.apply(
            format!("remove {}: the restore is complete", marker.display()),
            || fs::remove_file(&marker).map_err(|e| Error::io("remove", &marker, e)),
        )?;
    }
    match config.slave_start_cmd.as_deref().filter(|_| own_server) {
        Some(cmd) => {
            changes.apply(format!("run slave_start_cmd: {cmd}"), || {
                shell::run("slave_start_cmd", cmd)
            })?;
        }
        None => tracing::info!(
            "restored into {}: start PostgreSQL there (slave_start_cmd is not set)",
            data.display()
        ),
    }
    Ok(data)
}

/// The set's backup_label, or an error naming the sets there are.
fn read_label(set: &Path, full_backup: &Path) -> Result<BackupLabel> {
    let path = set.join("backup_label");
    if !path.is_file() {
        let sets: Vec<String> = catalog::list(full_backup)?
            .iter()
            .map(|s| s.name())
            .collect();
        return Err(Error::refused(format!(
            "{} is not a backup set (no backup_label); sets: {}",
            set.display(),
            if sets.is_empty() {
                "none".into()
            } else {
                sets.join(", ")
            }
        )));
    }
    let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    BackupLabel::parse(&text, &path)
}

/// The old data directory goes aside (backup_datadir) or away.
pub(crate) fn set_aside(data: &Path, keep: bool, changes: &mut Changes) -> Result<()> {
    if !data.exists() {
        return Ok(());
    }
    if keep {
        let stamp = timestamp();
        tablespaces::replace_old(data, Some(&stamp), changes)?;
        let aside = PathBuf::from(format!("{}.{stamp}", data.display()));
        changes.apply(
            format!("rename {} to {}", data.display(), aside.display()),
            || fs::rename(data, &aside).map_err(|e| Error::io("rename", data, e)),
        )?;
    } else {
        tablespaces::replace_old(data, None, changes)?;
        changes.apply(
            format!("remove {} (backup_datadir = no)", data.display()),
            || fs::remove_dir_all(data).map_err(|e| Error::io("remove", data, e)),
        )?;
    }
    Ok(())
}

/// Seconds and nanoseconds since the epoch, digits only: unique even for two restores in
/// the same second, and recognisable by `cleanup`.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}{:09}", now.as_secs(), now.subsec_nanos())
}

/// Renames `set` to `data`; across filesystems, copies, and drops the set only once the
/// copy is whole.
fn move_tree(set: &Path, data: &Path, report: &mut dyn FnMut(&Progress)) -> Result<()> {
    match fs::rename(set, data) {
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EXDEV as i32) => {
            datadir::copy_tree(set, data, report)?;
            fs::remove_dir_all(set).map_err(|e| Error::io("remove", set, e))
        }
        other => other.map_err(|e| Error::io("move", set, e)),
    }
}

/// slave_pg_xlog: the standby keeps its WAL elsewhere, through a pg_wal symlink.
fn link_pg_wal(data: &Path, target: &Path, changes: &mut Changes) -> Result<()> {
    let pg_wal = data.join("pg_wal");
    changes.apply(
        format!(
            "replace {} by a symlink to {} (emptied of an earlier standby's WAL)",
            pg_wal.display(),
            target.display()
        ),
        || {
            fs::remove_dir_all(&pg_wal).map_err(|e| Error::io("remove", &pg_wal, e))?;
            // What an earlier standby left there (segments, history files, archive_status
            // of perhaps another timeline) must not be replayed by this one.
            if target.is_dir() {
                for entry in fs::read_dir(target).map_err(|e| Error::io("list", target, e))? {
                    let path = entry.map_err(|e| Error::io("list", target, e))?.path();
                    let removed = if path.is_dir() {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    };
                    removed.map_err(|e| Error::io("remove", &path, e))?;
                }
            }
            create_private_dir(&target.join("archive_status"))?;
            std::os::unix::fs::symlink(target, &pg_wal)
                .map_err(|e| Error::io("symlink", &pg_wal, e))?;
            for p in [
                target.to_path_buf(),
                target.join("archive_status"),
                pg_wal.clone(),
            ] {
                give_to_owner_of(&p, data)?;
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// Configuration files saved by backup go back where the standby's server reads them.
/// Archiving stays off through postgresql.auto.conf, which overrides these files.
fn restore_config_files(backup: &Path, conf_dir: &Path, changes: &mut Changes) -> Result<()> {
    let Ok(entries) = fs::read_dir(backup) else {
        return Ok(());
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let from = entry.path();
        let to = conf_dir.join(entry.file_name());
        changes.apply(
            format!("copy {} to {}", from.display(), to.display()),
            || {
                fs::copy(&from, &to)
                    .map(|_| ())
                    .map_err(|e| Error::io("copy", &from, e))
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\n\
                         CHECKPOINT LOCATION: 0/5000060\nBACKUP METHOD: streamed\n\
                         BACKUP FROM: primary\nSTART TIME: 2026-11-30 12:00:00 UTC\n\
                         LABEL: walmgr test\nSTART TIMELINE: 1\n";

    struct Scene {
        dir: tempfile::TempDir,
        config: Config,
    }

    impl Scene {
        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }
    }

    /// A standby config with one backup set and PAUSE and STOP left by an earlier life.
    fn scene(extra: &str) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let wd = dir.path().join("walshipping");
        let set = wd.join("data.master");
        fs::create_dir_all(set.join("pg_wal")).unwrap();
        fs::write(set.join("backup_label"), LABEL).unwrap();
        fs::write(set.join("PG_VERSION"), "15\n").unwrap();
        fs::create_dir_all(wd.join("logs.complete")).unwrap();
        fs::write(wd.join("logs.complete/PAUSE"), "").unwrap();
        fs::write(wd.join("logs.complete/STOP"), "").unwrap();
        let path = dir.path().join("slave.toml");
        fs::write(
            &path,
            format!(
                "[walmgr]\nslave_data = \"{}\"\nwalmgr_data = \"{}\"\n{extra}\n",
                dir.path().join("standby").display(),
                wd.display()
            ),
        )
        .unwrap();
        let config = Config::load(&path, &[]).unwrap();
        Scene { dir, config }
    }

    #[test]
    fn the_newest_set_becomes_a_standby_that_replays_through_xrestore() {
        let s = scene("");
        let data = restore(
            &s.config,
            Path::new("/usr/bin/walmgr"),
            &Request::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(data, s.path("standby"));
        assert!(!s.path("walshipping/data.master").exists(), "the set moves");
        assert!(data.join("standby.signal").exists());
        let auto = fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        assert!(auto.contains("/usr/bin/walmgr"), "{auto}");
        assert!(auto.contains("xrestore %f %p %r"), "{auto}");
        let controls = ControlFiles::in_archive(&s.path("walshipping/logs.complete"));
        assert!(!controls.is_set(Control::Pause) && !controls.is_set(Control::Stop));
        assert_eq!(
            controls.restartpoint().map(|s| s.to_string()).as_deref(),
            Some("000000010000000000000005"),
            "the backup's start segment protects the WAL it needs from purges"
        );
    }

    /// kill -9 of a restore right after it moved the newest set into place: the set is
    /// gone from full_backup, the data directory holds it, marked, without its recovery
    /// settings. The next restore finishes that one instead of failing for want of a set.
    #[test]
    fn a_restore_killed_after_the_move_is_finished_by_the_next_one() {
        let s = scene("backup_datadir = true");
        let set = s.path("walshipping/data.master");
        fs::write(set.join(UNFINISHED), "").unwrap();
        fs::rename(&set, s.path("standby")).unwrap();

        let data = restore(
            &s.config,
            Path::new("/usr/bin/walmgr"),
            &Request::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert!(
            data.join("backup_label").exists(),
            "the set stayed where it was"
        );
        assert!(data.join("standby.signal").exists());
        assert!(!data.join(UNFINISHED).exists());
        let auto = fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        assert!(auto.contains("xrestore %f %p %r"), "{auto}");
        let aside: Vec<_> = fs::read_dir(s.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("standby."))
            .collect();
        assert!(
            aside.is_empty(),
            "the set itself was set aside as an old data directory"
        );

        // Finished, it is a standby like any other: a restore without a set says so.
        let err = restore(
            &s.config,
            Path::new("/usr/bin/walmgr"),
            &Request::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a backup set"), "{err}");
    }

    #[test]
    fn the_old_data_directory_is_set_aside_and_a_named_set_is_copied() {
        let s = scene("backup_datadir = true");
        fs::create_dir_all(s.path("standby")).unwrap();
        fs::write(s.path("standby/old"), "old").unwrap();
        restore(
            &s.config,
            Path::new("/w"),
            &Request {
                set: Some("data.master"),
                ..Request::default()
            },
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert!(
            s.path("walshipping/data.master").exists(),
            "a named set stays"
        );
        let aside: Vec<String> = fs::read_dir(s.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("standby."))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            fs::read_to_string(s.dir.path().join(&aside[0]).join("old")).unwrap(),
            "old"
        );
    }

    #[test]
    fn a_point_in_time_target_means_recovery_signal_and_the_target_setting() {
        let s = scene("");
        let data = restore(
            &s.config,
            Path::new("/w"),
            &Request {
                target: Some(Target::Name("before_batch".into())),
                ..Request::default()
            },
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap();
        assert!(data.join("recovery.signal").exists());
        let auto = fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        assert!(
            auto.contains("recovery_target_name = 'before_batch'"),
            "{auto}"
        );
    }

    #[test]
    fn a_missing_set_is_refused_naming_the_sets_there_are() {
        let s = scene("");
        let err = restore(
            &s.config,
            Path::new("/w"),
            &Request {
                set: Some("data.master.7"),
                ..Request::default()
            },
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("data.master.7 is not a backup set"), "{err}");
        assert!(err.contains("sets: data.master"), "{err}");
    }

    #[test]
    fn a_running_server_on_the_destination_is_refused_and_nothing_moves() {
        let s = scene("");
        // A postmaster.pid naming a live process: this test's own.
        fs::create_dir_all(s.path("standby")).unwrap();
        fs::write(
            s.path("standby/postmaster.pid"),
            format!("{}\n/x\n0\n5999\n/tmp\n", std::process::id()),
        )
        .unwrap();
        let err = restore(
            &s.config,
            Path::new("/w"),
            &Request::default(),
            &mut Changes::new(false),
            &mut |_| {},
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a server is still running"), "{err}");
        assert!(s.path("walshipping/data.master/backup_label").exists());
    }

    #[test]
    fn the_plan_never_shows_the_replication_password() {
        let s = scene("primary_conninfo = \"host=m user=rep password=s3cret\"");
        let mut changes = Changes::new(true);
        restore(
            &s.config,
            Path::new("/w"),
            &Request::default(),
            &mut changes,
            &mut |_| {},
        )
        .unwrap();
        let plan = changes.described().join("\n");
        assert!(
            plan.contains("primary_conninfo = 'host=m user=rep password=***'"),
            "{plan}"
        );
        assert!(!plan.contains("s3cret"), "{plan}");
    }

    #[test]
    fn a_dry_run_restore_prints_the_plan_and_changes_nothing() {
        let s = scene("");
        let mut changes = Changes::new(true);
        restore(
            &s.config,
            Path::new("/w"),
            &Request::default(),
            &mut changes,
            &mut |_| {},
        )
        .unwrap();
        assert!(s.path("walshipping/data.master").exists());
        assert!(!s.path("standby").exists());
        assert!(s.path("walshipping/logs.complete/PAUSE").exists());
        let plan = changes.described().join("\n");
        for step in ["move ", "standby.signal", "restore_command", "remove "] {
            assert!(plan.contains(step), "plan lacks {step:?}:\n{plan}");
        }
    }
}
