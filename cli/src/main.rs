//! `walmgr`: the command line. Parses, loads the config, hands the work to a command.

mod commands;
mod db;
mod error;
mod logging;
mod progress;
mod server;
mod tls;

use std::process::ExitCode;

use clap::Parser;
use walmgr_core::changes::Changes;
use walmgr_core::config::{self, Config};
use walmgr_core::setup::quick_start;
use walmgr_core::standby::recovery::Target;
use walmgr_core::Error;

use commands::Context;
use error::{CliError, Result};
use walmgr_cli::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logfile = logging::init(cli.quiet, cli.verbose);
    match run(cli, &logfile) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Declined(why)) => {
            tracing::debug!("{why}");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit_code()
        }
    }
}

fn run(mut cli: Cli, logfile: &logging::LogFile) -> Result<()> {
    // The manual's `walmgr3 .../wal-master.ini setup`, typed after --init-master wrote
    // wal-master.toml: every later use of the path (restore_command, walmgr.config) names
    // the file actually read.
    if let Some(given) = &cli.config {
        let located = config::Located::find(given);
        if let Some(note) = located.note() {
            tracing::info!("{note}");
        }
        cli.config = Some(located.path);
    }
    if cli.ini {
        let host = walmgr_core::setup::host_layout::detect();
        let samples = format!(
            "{}\n{}",
            config::sample_master_toml(&host),
            config::sample_slave_toml(&host)
        );
        // `walmgr --ini | head` closes the pipe early: not a failure worth a panic.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), samples.as_bytes());
        return Ok(());
    }
    if let Some(names) = &cli.synch_standby {
        if cli.config.is_some() || cli.command.is_some() {
            return Err(Error::Usage(
                "--synch-standby is for a master without a config: with one, run \
                 `walmgr CONFIG synch-standby NAMES`"
                    .into(),
            )
            .into());
        }
        let mut changes = Changes::new(cli.not_really);
        let result = commands::master::synch_standby_without_config(
            cli.pgdata.as_deref(),
            names,
            &mut changes,
        );
        print_dry_run(&changes);
        return result;
    }
    if cli.command.is_none()
        && (cli.init_master
            || cli.init_slave
            || cli.ssh_keygen
            || cli.ssh_add_key.is_some()
            || cli.ssh_remove_key.is_some()
            || cli.add_password.is_some()
            || cli.remove_password)
    {
        let mut changes = Changes::new(cli.not_really);
        let walmgr = this_walmgr()?;
        let result = quick_start::run(&quick_start_options(&cli), &walmgr, &mut changes);
        print_dry_run(&changes);
        result?.iter().for_each(|line| println!("{line}"));
        return Ok(());
    }
    let command = cli.command;
    let Some(config_path) = cli.config else {
        usage_exit(
            "a config file and a command are required (or a config-less option such as \
             --ini, --init-master, --init-slave, --ssh-keygen, --ssh-add-key, --ssh-remove-key, \
             --add-password, --remove-password, --synch-standby)",
        );
    };
    let overrides = config::parse_overrides(&cli.set)?;
    let config = match (Config::load(&config_path, &overrides), &command) {
        (Ok(config), _) => config,
        // check reports a broken config as its first failed check, in its own format.
        (Err(e), Some(Command::Check { json, .. })) => {
            return commands::check::report(&walmgr_core::check::config_unreadable(&e), *json)
        }
        (Err(e), _) => return Err(e.into()),
    };
    if let Some(path) = &config.logfile {
        logfile.open(path, config.job_name.as_deref().unwrap_or("walmgr"));
    }
    let mut ctx = Context {
        config,
        changes: Changes::new(cli.not_really),
    };
    if cli.reload || cli.stop || cli.kill {
        if !matches!(command, Some(Command::Syncdaemon) | None) {
            return Err(Error::Usage(
                "-r, -s and -k signal the syncdaemon of the config; give no other command".into(),
            )
            .into());
        }
        let result = commands::shipping::signal_daemon(&mut ctx, cli.reload, cli.stop);
        print_dry_run(&ctx.changes);
        return result;
    }
    let Some(command) = command else {
        usage_exit("a command is required after the config file");
    };
    let result = match &command {
        Command::Setup => commands::master::setup(&mut ctx),
        Command::Stop { wait, drop_waiting } => {
            commands::master::stop(&mut ctx, *wait, *drop_waiting)
        }
        Command::Backup => commands::backup::run(&mut ctx, cli.quiet),
        Command::Listbackups => commands::backups::listbackups(&mut ctx),
        Command::Restore {
            src,
            dst,
            target_time,
            target_lsn,
            target_xid,
            target_name,
        } => {
            let target = target_time
                .clone()
                .map(Target::Time)
                .or_else(|| target_lsn.clone().map(Target::Lsn))
                .or_else(|| target_xid.clone().map(Target::Xid))
                .or_else(|| target_name.clone().map(Target::Name));
            commands::standby::restore(&mut ctx, src.as_deref(), dst.as_deref(), target, cli.quiet)
        }
        Command::Cleanup => commands::standby::cleanup(&mut ctx),
        Command::Status { json, prometheus } => commands::status::run(&mut ctx, *json, *prometheus),
        Command::Check { json, timeout } => commands::check::run(&mut ctx, *json, *timeout),
        Command::Boot => commands::standby::boot(&mut ctx, cli.quiet),
        Command::Sync => commands::shipping::sync(&mut ctx),
        Command::Syncdaemon => commands::shipping::syncdaemon(&mut ctx, cli.daemon),
        Command::Periodic => commands::shipping::periodic(&mut ctx),
        Command::SynchStandby { names } => commands::master::synch_standby(&mut ctx, names),
        Command::Createslave => {
            commands::standby::createslave(&mut ctx, cli.primary_conninfo.as_deref(), cli.quiet)
        }
        Command::Pause => commands::standby::pause(&mut ctx),
        Command::Continue => commands::standby::resume(&mut ctx),
        Command::Xlock => commands::backups::xlock(&mut ctx),
        Command::Xrelease => commands::backups::xrelease(&mut ctx),
        Command::Xrotate => commands::backups::xrotate(&mut ctx),
        Command::Xpurgewals { last } => commands::backups::xpurgewals(&mut ctx, last.as_deref()),
        Command::Xserve => commands::xserve::run(&mut ctx),
        Command::Xpartialsync {
            file,
            offset,
            bytes,
        } => commands::xserve::partialsync(&mut ctx, file, *offset, *bytes),
        Command::Xarchive { srcpath, srcname } => {
            commands::xarchive::run(&mut ctx, srcpath, srcname)
        }
        Command::Xrestore {
            srcname,
            dstpath,
            last,
        } => commands::xrestore::run(&mut ctx, srcname, dstpath, last.as_deref()),
    };
    print_dry_run(&ctx.changes);
    tracing::debug!("{} done", command.name());
    result
}

/// This binary's path: restore_command, the configs --init writes and the forced command
/// of the master's key all run it.
fn this_walmgr() -> Result<std::path::PathBuf> {
    Ok(std::env::current_exe().map_err(|e| Error::io("find", "the walmgr executable", e))?)
}

fn quick_start_options(cli: &Cli) -> quick_start::Options {
    quick_start::Options {
        init_master: cli.init_master,
        init_slave: cli.init_slave,
        config_dir: cli.config_dir.clone(),
        slave: cli.slave.clone(),
        pgdata: cli.pgdata.clone(),
        ssh_keygen: cli.ssh_keygen,
        ssh_add_key: cli.ssh_add_key.clone(),
        ssh_remove_key: cli.ssh_remove_key.clone(),
        primary_conninfo: cli.primary_conninfo.clone(),
        config: cli.config.clone(),
        add_password: cli.add_password.clone(),
        remove_password: cli.remove_password,
    }
}

fn print_dry_run(changes: &Changes) {
    if changes.is_dry_run() {
        for change in changes.described() {
            println!("would: {change}");
        }
    }
}

fn usage_exit(message: &str) -> ! {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}
