//! `createslave`: a streaming standby made from the master over the replication protocol.
//! PostgreSQL's own `pg_basebackup` (from slave_bin) copies the data directory with the WAL
//! streamed alongside; then the same steps as `restore`: the recovery settings, with
//! primary_conninfo to stream and walmgr's archive (`xrestore`) as the fallback when
//! streaming lags or the master's WAL is gone, standby.signal, and the start.
//!
//! The password is not walmgr's business here: libpq finds it in ~/.pgpass (see
//! `--add-password`), never on a command line.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::archive::control::{Control, ControlFiles};
use crate::backup::datadir::Progress;
use crate::backup::label::BackupLabel;
use crate::changes::Changes;
use crate::cluster;
use crate::config::{Config, Role};
use crate::conninfo::{self, redacted, Conninfo};
use crate::error::{Error, Result};
use crate::os::{shell, users};
use crate::standby::recovery;
use crate::standby::restore::set_aside;
use crate::standby::tablespaces;

/// Makes slave_data a streaming standby of the master `primary_conninfo` names (or
/// `conninfo`, from --primary-conninfo). `walmgr` goes into restore_command. `report` is
/// called with pg_basebackup's progress as it copies.
pub fn createslave(
    config: &Config,
    conninfo: Option<&str>,
    walmgr: &Path,
    changes: &mut Changes,
    report: &mut dyn FnMut(&Progress),
) -> Result<PathBuf> {
    config.require_role(Role::Slave, "createslave")?;
    let data = config
        .required(&config.slave_data, "slave_data", "createslave")?
        .clone();
    let configured = config.primary_conninfo.as_ref().map(Conninfo::expose);
    let conninfo = match conninfo.or(configured) {
        Some(c) => c.to_string(),
        None => return Err(config.missing("primary_conninfo", "createslave")),
    };
    // pg_basebackup's libpq and then the standby's read it: refuse here what they would.
    crate::libpq::validate(&conninfo)
        .map_err(|m| Error::Usage(format!("--primary-conninfo: {m}")))?;
    let mapping = tablespaces::parse_mapping(config.tablespace_mapping.as_deref().unwrap_or(""))?;

    if let Some(cmd) = config.slave_stop_cmd.as_deref() {
        if cluster::running(&data).is_some() {
            changes.apply(format!("run slave_stop_cmd: {cmd}"), || {
                shell::run("slave_stop_cmd", cmd)
            })?;
        }
    }
    if cluster::running(&data).is_some() && !changes.is_dry_run() {
        return Err(Error::refused(format!(
            "a server is still running on {}: stop it (or set slave_stop_cmd) before createslave",
            data.display()
        )));
    }
    set_aside(&data, config.backup_datadir, changes)?;

    let pg_basebackup = config.slave_bin.as_ref().map_or_else(
        || PathBuf::from("pg_basebackup"),
        |b| b.join("pg_basebackup"),
    );
    // A password in the conninfo goes in PGPASSWORD, not in the arguments any user can read.
    let (dsn, password) = conninfo::password_apart(&conninfo)
        .map_err(|m| Error::refused(format!("primary_conninfo: {m}")))?;
    let mut args: Vec<String> = vec![
        "-D".into(),
        data.display().to_string(),
        "-d".into(),
        dsn.clone(),
        // WAL streamed alongside: the copy is consistent without the archive.
        "-X".into(),
        "stream".into(),
        "-c".into(),
        "fast".into(),
        // Never a prompt: a password comes from ~/.pgpass.
        "--no-password".into(),
        // Its progress, for walmgr's own display (pg_basebackup writes a line a second
        // when stderr is not a terminal, and here it is a pipe).
        "--progress".into(),
    ];
    for (old, new) in &mapping {
        args.push(format!(
            "--tablespace-mapping={}={}",
            escape_mapping(old),
            escape_mapping(new)
        ));
    }
    let shown = args
        .iter()
        .map(|a| {
            if *a == dsn {
                redacted(a)
            } else {
                shell::quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let passed = if password.is_some() {
        " (with primary_conninfo's password in PGPASSWORD)"
    } else {
        ""
    };
    changes.apply(
        format!("run {} {shown}{passed}", pg_basebackup.display()),
        || run_as_owner(&pg_basebackup, &args, password.as_deref(), &data, report),
    )?;

    let config_path = config
        .source
        .canonicalize()
        .map_err(|e| Error::io("resolve", &config.source, e))?;
    let plan = recovery::plan(walmgr, &config_path, Some(&conninfo), None);
    let what = format!(
        "write {} and set {} in postgresql.auto.conf",
        data.join(plan.signal_file).display(),
        plan.settings
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ")
    );
    changes.apply(what, || recovery::write(&data, &plan))?;

    let controls = ControlFiles::in_archive(&config.completed_wals);
    if !changes.is_dry_run() {
        // The archive must keep what the copy needs until its first restartpoint.
        let label_path = data.join("backup_label");
        if let Ok(text) = std::fs::read_to_string(&label_path) {
            let label = BackupLabel::parse(&text, &label_path)?;
            if config.completed_wals.is_dir() {
                controls.record_restartpoint(label.start_segment, changes)?;
            }
        }
    }
    if config.completed_wals.is_dir() {
        for control in [Control::Stop, Control::StopSeen, Control::Pause] {
            controls.clear(control, changes)?;
        }
    }
    match config.slave_start_cmd.as_deref() {
        Some(cmd) => {
            changes.apply(format!("run slave_start_cmd: {cmd}"), || {
                shell::run("slave_start_cmd", cmd)
            })?;
        }
        None => tracing::info!(
            "created {}: start PostgreSQL there (slave_start_cmd is not set)",
            data.display()
        ),
    }
    Ok(data)
}

/// pg_basebackup's mapping escapes `=` in a path as `\=`.
fn escape_mapping(path: &Path) -> String {
    path.display().to_string().replace('=', "\\=")
}

/// Runs `program args` as the owner of where the data directory goes (root runs it as
/// that user: a data directory must belong to the server's user), passing its progress
/// lines to `report`, failing with what else it printed, the connection string's password
/// hidden.
fn run_as_owner(
    program: &Path,
    args: &[String],
    password: Option<&str>,
    data: &Path,
    report: &mut dyn FnMut(&Progress),
) -> Result<()> {
    let mut cmd = if users::is_root() {
        let owner = data
            .parent()
            .and_then(cluster::owner_name)
            .unwrap_or_else(|| "postgres".into());
        let mut c = Command::new("runuser");
        c.args(["-u", &owner, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let mut child = cmd
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("run", program, e))?;
    let mut said = String::new();
    if let Some(stderr) = child.stderr.take() {
        // Lines end in \n here, but a terminal's \r is taken too: nothing depends on how
        // pg_basebackup judged its stderr.
        let mut line = Vec::new();
        for byte in BufReader::new(stderr).bytes() {
            let Ok(byte) = byte else { break };
            if byte != b'\n' && byte != b'\r' {
                line.push(byte);
                continue;
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            line.clear();
            match basebackup_progress(&text) {
                Some(p) => report(&p),
                None if !text.trim().is_empty() => {
                    said.push_str(text.trim());
                    said.push('\n');
                }
                None => {}
            }
        }
        said.push_str(String::from_utf8_lossy(&line).trim());
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for", program, e))?;
    if status.success() {
        return Ok(());
    }
    Err(Error::CommandFailed {
        what: "pg_basebackup".into(),
        command: format!("{} -D {} ...", program.display(), data.display()),
        status: format!("{status}: {}", said.trim()),
    })
}

/// pg_basebackup's `--progress` line, "  12345/56789 kB (21%), 0/1 tablespace", as
/// [`Progress`] (no file count: it does not say).
fn basebackup_progress(line: &str) -> Option<Progress> {
    let (sizes, _) = line.split_once(" kB (")?;
    let (done, total) = sizes.trim().split_once('/')?;
    Some(Progress {
        bytes_done: done.trim().parse::<u64>().ok()? * 1024,
        bytes_total: total.trim().parse::<u64>().ok()? * 1024,
        files: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_basebackup_progress_lines_are_read_and_others_are_not() {
        let p = basebackup_progress("   23161/1234567 kB (1%), 0/1 tablespace").unwrap();
        assert_eq!(
            (p.bytes_done, p.bytes_total),
            (23161 * 1024, 1234567 * 1024)
        );
        let p = basebackup_progress("1234567/1234567 kB (100%), 1/1 tablespace (...pg_control)");
        assert_eq!(p.map(|p| p.bytes_done), Some(1234567 * 1024));
        assert!(basebackup_progress("pg_basebackup: error: connection failed").is_none());
        assert!(basebackup_progress("").is_none());
    }
}
