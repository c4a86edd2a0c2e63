//! The config-less set-up of the manual's quick start:
//!
//! ```text
//! master$ walmgr --ssh-keygen --init-master --slave standby
//! standby$ walmgr --init-slave --ssh-add-key=/tmp/id_ed25519.pub
//! standby$ walmgr ~/conf/wal-slave.toml --add-password=/tmp/replication-password
//! ```
//! Configs are written once and never overwritten (a DBA's edits outlive a second run);
//! the master's key is installed restricted to walmgr's receiving end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::archive::store;
use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::os::{files, shell, users as system};
use crate::remote::ssh_target::SshTarget;
use crate::setup::authorized_keys::{self, Added, PublicKey};
use crate::setup::cluster_location::ClusterLocation;
use crate::setup::init_config::{self, MasterInit, SlaveInit, MASTER_FILE, SLAVE_FILE};
use crate::setup::pgpass;

pub struct Options {
    pub init_master: bool,
    pub init_slave: bool,
    pub config_dir: String,
    pub slave: Option<String>,
    pub pgdata: Option<PathBuf>,
    pub ssh_keygen: bool,
    pub ssh_add_key: Option<PathBuf>,
    pub ssh_remove_key: Option<String>,
    pub primary_conninfo: Option<String>,
    /// `walmgr CONFIG --ssh-add-key=F`: the slave config the key's forced command uses
    /// (default: the one --init-slave writes into --config-dir); `walmgr CONFIG
    /// --add-password=F`: the slave config whose primary_conninfo the line is for.
    pub config: Option<PathBuf>,
    /// A file whose first line is the replication password, for ~/.pgpass.
    pub add_password: Option<PathBuf>,
    pub remove_password: bool,
}

/// Does what the options ask; returns what to print on stdout (the public key, for one).
/// `walmgr` is this walmgr's path, for the configs and the key's forced command.
pub fn run(opts: &Options, walmgr: &Path, changes: &mut Changes) -> Result<Vec<String>> {
    let mut said = Vec::new();
    // Before anything is written: --init-slave puts it in the slave config, which would
    // then fail to load.
    if let Some(conninfo) = &opts.primary_conninfo {
        crate::libpq::validate(conninfo)
            .map_err(|m| Error::Usage(format!("--primary-conninfo: {m}")))?;
    }
    let home = system::home_dir()
        .ok_or_else(|| Error::refused("cannot tell this user's home directory ($HOME)"))?;
    let config_dir = system::expand_tilde(&opts.config_dir)
        .map_err(|m| Error::Usage(format!("--config-dir: {m}")))?;
    let config_dir =
        std::path::absolute(&config_dir).map_err(|e| Error::io("make absolute", &config_dir, e))?;
    if opts.init_master {
        let slave = opts
            .slave
            .as_deref()
            .ok_or_else(|| Error::Usage("--init-master needs --slave HOST".into()))?;
        SshTarget::parse(slave).map_err(|m| Error::Usage(format!("--slave: {m}")))?;
        let cluster = ClusterLocation::find(opts.pgdata.as_deref())?;
        let text = init_config::master_toml(&MasterInit {
            cluster: &cluster,
            home: &home,
            slave,
            slave_config: config_dir.join(SLAVE_FILE),
            slave_walmgr: walmgr,
        });
        write_config(&config_dir.join(MASTER_FILE), &text, &home, changes)?;
    }
    if opts.ssh_keygen {
        said.extend(ssh_keygen(&home, changes)?);
    }
    if opts.init_slave {
        let cluster = ClusterLocation::find(opts.pgdata.as_deref())?;
        let text = init_config::slave_toml(&SlaveInit {
            cluster: &cluster,
            home: &home,
            primary_conninfo: opts.primary_conninfo.as_deref(),
        });
        write_config(&config_dir.join(SLAVE_FILE), &text, &home, changes)?;
    }
    if let Some(pubkey) = &opts.ssh_add_key {
        let slave_config = match &opts.config {
            Some(path) => path
                .canonicalize()
                .map_err(|e| Error::io("find", path, e))?,
            None => config_dir.join(SLAVE_FILE),
        };
        add_key(pubkey, &slave_config, walmgr, &home, changes)?;
    }
    if let Some(which) = &opts.ssh_remove_key {
        remove_key(which, &home, changes)?;
    }
    if opts.add_password.is_some() || opts.remove_password {
        let conninfo = replication_conninfo(opts, &config_dir)?;
        let user = pgpass::default_user()?;
        let request = pgpass::Request {
            home: &home,
            conninfo: &conninfo,
            default_user: &user,
        };
        if let Some(file) = &opts.add_password {
            said.push(pgpass::add(&request, file, changes)?);
        }
        if opts.remove_password {
            said.push(pgpass::remove(&request, changes)?);
        }
    }
    if opts.init_master {
        tracing::info!(
            "next: trust the standby's host key (check its fingerprint on the standby, then \
             `ssh-keyscan -p PORT HOST >> {}`), and on the standby run \
             `walmgr --init-slave --ssh-add-key=FILE` with this host's public key",
            home.join(".ssh/known_hosts").display()
        );
    }
    Ok(said)
}

/// The standby's primary_conninfo: `--primary-conninfo`, else the slave config's (the one
/// given, else the one --init-slave writes into --config-dir).
fn replication_conninfo(opts: &Options, config_dir: &Path) -> Result<String> {
    if let Some(conninfo) = &opts.primary_conninfo {
        return Ok(conninfo.clone());
    }
    let path = match &opts.config {
        Some(path) => path.clone(),
        None => config_dir.join(SLAVE_FILE),
    };
    if opts.config.is_none() && !path.is_file() {
        return Err(Error::Usage(format!(
            "--add-password and --remove-password need the primary's conninfo: give \
             --primary-conninfo, or the standby's slave config (`walmgr SLAVE_CONFIG \
             --add-password=FILE`); there is none at {}",
            path.display()
        )));
    }
    let config = Config::load(&path, &[])?;
    let conninfo = config.primary_conninfo.map(|c| c.expose().to_owned());
    conninfo.ok_or_else(|| {
        Error::refused(format!(
            "{} has no primary_conninfo: the .pgpass line is for the connection it names; \
             add it to the standby's slave config, or give --primary-conninfo",
            path.display()
        ))
    })
}

/// Writes a new config; an existing one is kept (same text: nothing to do; other text: an
/// error, as it may hold the DBA's edits).
fn write_config(path: &Path, text: &str, home: &Path, changes: &mut Changes) -> Result<()> {
    match fs::read_to_string(path) {
        Ok(existing) if existing == text => {
            tracing::info!("{} is already as --init would write it", path.display());
            return Ok(());
        }
        Ok(_) => {
            return Err(Error::refused(format!(
                "{} already exists and differs from what --init would write; walmgr does not \
                 overwrite configs: edit it, or move it aside and run again",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", path, e)),
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    for d in [dir, &home.join("log")] {
        files::ensure_private_dir(d, changes)?;
    }
    changes.apply(format!("write {}", path.display()), || {
        store::replace_file(path, text.as_bytes())
    })?;
    if !changes.is_dry_run() {
        tracing::info!("wrote {}", path.display());
    }
    Ok(())
}

/// ~/.ssh/id_ed25519 without a passphrase (the archiver cannot type one), made by
/// OpenSSH's own ssh-keygen; an existing key is kept.
fn ssh_keygen(home: &Path, changes: &mut Changes) -> Result<Vec<String>> {
    let key = home.join(".ssh/id_ed25519");
    let public = home.join(".ssh/id_ed25519.pub");
    if key.exists() {
        tracing::info!("SSH key {} exists, kept", key.display());
    } else {
        ensure_ssh_dir(home, changes)?;
        let comment = format!("walmgr@{}", system::host_name());
        changes.apply(
            format!(
                "generate SSH key {} (ed25519, no passphrase)",
                key.display()
            ),
            || {
                let out = Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", &comment, "-f"])
                    .arg(&key)
                    .output()
                    .map_err(|e| Error::io("run", "ssh-keygen (install openssh-client)", e))?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(Error::CommandFailed {
                        what: "ssh-keygen".into(),
                        command: format!("ssh-keygen -t ed25519 -f {}", key.display()),
                        status: format!(
                            "{}: {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    })
                }
            },
        )?;
    }
    let mut said = Vec::new();
    if let Ok(text) = fs::read_to_string(&public) {
        said.push(text.trim().to_string());
        tracing::info!(
            "public key: {} (copy it to the standby for --ssh-add-key)",
            public.display()
        );
    }
    Ok(said)
}

fn ensure_ssh_dir(home: &Path, changes: &mut Changes) -> Result<PathBuf> {
    let dir = home.join(".ssh");
    files::ensure_private_dir(&dir, changes)?;
    Ok(dir)
}

fn add_key(
    pubkey: &Path,
    slave_config: &Path,
    walmgr: &Path,
    home: &Path,
    changes: &mut Changes,
) -> Result<()> {
    let text = fs::read_to_string(pubkey).map_err(|e| Error::io("read", pubkey, e))?;
    let key = PublicKey::parse(&text)
        .map_err(|m| Error::refused(format!("{}: {m}", pubkey.display())))?;
    if !slave_config.is_file() && !changes.is_dry_run() {
        return Err(Error::refused(format!(
            "no slave config at {}: the key's forced command runs walmgr with it; \
             run with --init-slave, or point --config-dir at it",
            slave_config.display()
        )));
    }
    if slave_config.is_file() {
        let config = Config::load(slave_config, &[])?;
        if config.role != Role::Slave {
            return Err(Error::refused(format!(
                "{} is a master config (it has master_data); the key's forced command needs \
                 the standby's slave config",
                slave_config.display()
            )));
        }
    }
    let command = format!(
        "{} {} xserve",
        shell::quote(&walmgr.to_string_lossy()),
        shell::quote(&slave_config.to_string_lossy())
    );
    let file = ensure_ssh_dir(home, changes)?.join("authorized_keys");
    let existing = read_if_present(&file)?;
    let (updated, outcome) = authorized_keys::add(&existing, &key, &command);
    let what = match outcome {
        Added::Unchanged => {
            tracing::info!(
                "{} is already restricted to walmgr in {}",
                key.comment,
                file.display()
            );
            return Ok(());
        }
        Added::New => "add",
        Added::Restricted => "restrict the existing entry of",
    };
    changes.apply(
        format!(
            "{what} key {} {} in {}: it may only run `{command}`",
            key.kind,
            key.comment,
            file.display()
        ),
        || store::replace_file(&file, updated.as_bytes()),
    )?;
    Ok(())
}

fn remove_key(which: &str, home: &Path, changes: &mut Changes) -> Result<()> {
    // A .pub file names its key; anything else is the key or a piece of its line.
    let which = match fs::read_to_string(which) {
        Ok(text) if Path::new(which).is_file() => text,
        _ => which.to_owned(),
    };
    let file = home.join(".ssh/authorized_keys");
    let existing = read_if_present(&file)?;
    let (updated, gone) = authorized_keys::remove(&existing, &which).map_err(Error::refused)?;
    if gone.is_empty() {
        return Err(Error::refused(format!(
            "no key matching {:?} in {}; nothing removed",
            which.trim(),
            file.display()
        )));
    }
    for line in &gone {
        tracing::debug!("removing: {line}");
    }
    changes.apply(
        format!("remove {} key line(s) from {}", gone.len(), file.display()),
        || store::replace_file(&file, updated.as_bytes()),
    )?;
    Ok(())
}

fn read_if_present(file: &Path) -> Result<String> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("read", file, e)),
    }
}
