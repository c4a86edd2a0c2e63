//! The config-less set-up of the manual's quick start:
//!
//! ```text
//! master$ walmgr --ssh-keygen --init-master --slave standby
//! standby$ walmgr --init-slave --ssh-add-key=/tmp/id_ed25519.pub
//! ```
//! Configs are written once and never overwritten (a DBA's edits outlive a second run);
//! the master's key is installed restricted to walmgr's receiving end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use walmgr_core::authorized_keys::{self, Added, PublicKey};
use walmgr_core::changes::Changes;
use walmgr_core::cluster_location::ClusterLocation;
use walmgr_core::init_config::{self, MasterInit, SlaveInit, MASTER_FILE, SLAVE_FILE};
use walmgr_core::{shell, store, system, transport, Error};

use crate::error::{CliError, Result};
use crate::log::Log;

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
    /// (default: the one --init-slave writes into --config-dir).
    pub config: Option<PathBuf>,
}

pub fn run(opts: &Options, changes: &mut Changes, log: &Log) -> Result<()> {
    let home = system::home_dir()
        .ok_or_else(|| CliError::failed("cannot tell this user's home directory ($HOME)"))?;
    let config_dir = system::expand_tilde(&opts.config_dir)
        .map_err(|m| CliError::failed(format!("--config-dir: {m}")))?;
    let config_dir =
        std::path::absolute(&config_dir).map_err(|e| Error::io("make absolute", &config_dir, e))?;
    if opts.init_master {
        let slave = opts.slave.as_deref().expect("clap requires --slave");
        transport::ssh_target::SshTarget::parse(slave)
            .map_err(|m| CliError::failed(format!("--slave: {m}")))?;
        let cluster = ClusterLocation::find(opts.pgdata.as_deref())?;
        let exe =
            std::env::current_exe().map_err(|e| Error::io("find", "the walmgr executable", e))?;
        let text = init_config::master_toml(&MasterInit {
            cluster: &cluster,
            home: &home,
            slave,
            slave_config: config_dir.join(SLAVE_FILE),
            slave_walmgr: &exe,
        });
        write_config(&config_dir.join(MASTER_FILE), &text, &home, changes, log)?;
    }
    if opts.ssh_keygen {
        ssh_keygen(&home, changes, log)?;
    }
    if opts.init_slave {
        let cluster = ClusterLocation::find(opts.pgdata.as_deref())?;
        let text = init_config::slave_toml(&SlaveInit {
            cluster: &cluster,
            home: &home,
            primary_conninfo: opts.primary_conninfo.as_deref(),
        });
        write_config(&config_dir.join(SLAVE_FILE), &text, &home, changes, log)?;
    }
    if let Some(pubkey) = &opts.ssh_add_key {
        let slave_config = match &opts.config {
            Some(path) => path
                .canonicalize()
                .map_err(|e| Error::io("find", path, e))?,
            None => config_dir.join(SLAVE_FILE),
        };
        add_key(pubkey, &slave_config, &home, changes, log)?;
    }
    if let Some(which) = &opts.ssh_remove_key {
        remove_key(which, &home, changes, log)?;
    }
    if opts.init_master {
        log.info(&format!(
            "next: trust the standby's host key (check its fingerprint on the standby, then \
             `ssh-keyscan -p PORT HOST >> {}`), and on the standby run \
             `walmgr --init-slave --ssh-add-key=FILE` with this host's public key",
            home.join(".ssh/known_hosts").display()
        ));
    }
    Ok(())
}

/// Writes a new config; an existing one is kept (same text: nothing to do; other text: an
/// error, as it may hold the DBA's edits).
fn write_config(
    path: &Path,
    text: &str,
    home: &Path,
    changes: &mut Changes,
    log: &Log,
) -> Result<()> {
    match fs::read_to_string(path) {
        Ok(existing) if existing == text => {
            log.info(&format!(
                "{} is already as --init would write it",
                path.display()
            ));
            return Ok(());
        }
        Ok(_) => {
            return Err(CliError::failed(format!(
                "{} already exists and differs from what --init would write; walmgr does not \
                 overwrite configs: edit it, or move it aside and run again",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", path, e).into()),
    }
    let dir = path.parent().expect("config path has a directory");
    for d in [dir, &home.join("log")] {
        transport::ensure_private_dir(d, changes)?;
    }
    changes.apply(format!("write {}", path.display()), || {
        store::replace_file(path, text.as_bytes())
    })?;
    if !changes.is_dry_run() {
        log.info(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// ~/.ssh/id_ed25519 without a passphrase (the archiver cannot type one), made by
/// OpenSSH's own ssh-keygen; an existing key is kept.
fn ssh_keygen(home: &Path, changes: &mut Changes, log: &Log) -> Result<()> {
    let key = home.join(".ssh/id_ed25519");
    let public = home.join(".ssh/id_ed25519.pub");
    if key.exists() {
        log.info(&format!("SSH key {} exists, kept", key.display()));
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
                    Err(Error::Usage(format!(
                        "ssh-keygen failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )))
                }
            },
        )?;
    }
    if let Ok(text) = fs::read_to_string(&public) {
        println!("{}", text.trim());
        log.info(&format!(
            "public key: {} (copy it to the standby for --ssh-add-key)",
            public.display()
        ));
    }
    Ok(())
}

fn ensure_ssh_dir(home: &Path, changes: &mut Changes) -> Result<PathBuf> {
    let dir = home.join(".ssh");
    transport::ensure_private_dir(&dir, changes)?;
    Ok(dir)
}

fn add_key(
    pubkey: &Path,
    slave_config: &Path,
    home: &Path,
    changes: &mut Changes,
    log: &Log,
) -> Result<()> {
    let text = fs::read_to_string(pubkey).map_err(|e| Error::io("read", pubkey, e))?;
    let key = PublicKey::parse(&text)
        .map_err(|m| CliError::failed(format!("{}: {m}", pubkey.display())))?;
    if !slave_config.is_file() && !changes.is_dry_run() {
        return Err(CliError::failed(format!(
            "no slave config at {}: the key's forced command runs walmgr with it; \
             run with --init-slave, or point --config-dir at it",
            slave_config.display()
        )));
    }
    if slave_config.is_file() {
        let config = walmgr_core::config::Config::load(slave_config, &[])?;
        if config.role != walmgr_core::config::Role::Slave {
            return Err(CliError::failed(format!(
                "{} is a master config (it has master_data); the key's forced command needs \
                 the standby's slave config",
                slave_config.display()
            )));
        }
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("find", "the walmgr executable", e))?;
    let command = format!(
        "{} {} xserve",
        shell::quote(&exe.to_string_lossy()),
        shell::quote(&slave_config.to_string_lossy())
    );
    let file = ensure_ssh_dir(home, changes)?.join("authorized_keys");
    let existing = read_if_present(&file)?;
    let (updated, outcome) = authorized_keys::add(&existing, &key, &command);
    let what = match outcome {
        Added::Unchanged => {
            log.info(&format!(
                "{} is already restricted to walmgr in {}",
                key.comment,
                file.display()
            ));
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

fn remove_key(which: &str, home: &Path, changes: &mut Changes, log: &Log) -> Result<()> {
    // A .pub file names its key; anything else is the key or a piece of its line.
    let which = match fs::read_to_string(which) {
        Ok(text) if Path::new(which).is_file() => text,
        _ => which.to_owned(),
    };
    let file = home.join(".ssh/authorized_keys");
    let existing = read_if_present(&file)?;
    let (updated, gone) = authorized_keys::remove(&existing, &which).map_err(CliError::failed)?;
    if gone.is_empty() {
        return Err(CliError::failed(format!(
            "no key matching {:?} in {}; nothing removed",
            which.trim(),
            file.display()
        )));
    }
    for line in &gone {
        log.debug(&format!("removing: {line}"));
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
        Err(e) => Err(Error::io("read", file, e).into()),
    }
}
