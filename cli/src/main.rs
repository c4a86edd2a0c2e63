//! `walmgr`: the command line. Parses, loads the config, hands the work to a command.

mod args;
mod commands;
mod db;
mod error;
mod log;

use std::process::ExitCode;

use clap::Parser;
use walmgr_core::changes::Changes;
use walmgr_core::config::{self, Config};

use args::{Cli, Command};
use commands::Context;
use error::{CliError, Result};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut log = log::Log::new(cli.quiet, cli.verbose);
    match run(cli, &mut log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Declined(why)) => {
            log.debug(&why);
            ExitCode::from(1)
        }
        Err(e) => {
            log.error(&e.to_string());
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, log: &mut log::Log) -> Result<()> {
    if cli.ini {
        print!(
            "{}\n{}",
            config::sample_master_toml(),
            config::sample_slave_toml()
        );
        return Ok(());
    }
    let (Some(config_path), Some(command)) = (cli.config, cli.command) else {
        usage_exit(
            "a config file and a command are required (or a config-less option such as --ini)",
        );
    };
    let overrides = config::parse_overrides(&cli.set)?;
    let config = Config::load(&config_path, &overrides)?;
    log.also_to_file(config.logfile.clone(), config.job_name.as_deref());
    let mut ctx = Context {
        config,
        log: std::mem::replace(log, log::Log::new(cli.quiet, cli.verbose)),
        changes: Changes::new(cli.not_really),
    };
    let result = match &command {
        Command::Setup => commands::master::setup(&mut ctx),
        Command::Stop { wait, drop_waiting } => {
            commands::master::stop(&mut ctx, *wait, *drop_waiting)
        }
        Command::Xarchive { srcpath, srcname } => {
            commands::xarchive::run(&mut ctx, srcpath, srcname)
        }
        Command::Xrestore {
            srcname,
            dstpath,
            last,
        } => commands::xrestore::run(&mut ctx, srcname, dstpath, last.as_deref()),
    };
    if ctx.changes.is_dry_run() {
        for change in ctx.changes.described() {
            println!("would: {change}");
        }
    }
    ctx.log.debug(&format!("{} done", command.name()));
    *log = ctx.log;
    result
}

fn usage_exit(message: &str) -> ! {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}
