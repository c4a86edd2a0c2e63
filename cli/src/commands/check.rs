//! `check [--json] [--timeout SECONDS]`: core's checks, with connections made here.

use std::time::Duration;

use walmgr_core::check::{self, Reach, Report};
use walmgr_core::server::{CheckedMaster, Inspect};
use walmgr_core::Result as CoreResult;

use super::Context;
use crate::error::{CliError, Result};
use crate::server::Connection;

pub fn run(ctx: &mut Context, as_json: bool, timeout: u64) -> Result<()> {
    let options = check::Options {
        round_trip_timeout: Duration::from_secs(timeout),
    };
    let mut reach = Connections {
        config: &ctx.config,
    };
    let report = check::run(&ctx.config, &mut reach, options, &mut ctx.changes);
    self::report(&report, as_json)
}

/// Prints the report; a failed check makes the exit status 1 without another message:
/// the lines already said what failed.
pub fn report(report: &Report, as_json: bool) -> Result<()> {
    if as_json {
        match serde_json::to_string(report) {
            Ok(json) => println!("{json}"),
            Err(e) => return Err(CliError::Declined(format!("cannot print JSON: {e}"))),
        }
    } else {
        print!("{}", report.to_text());
    }
    if report.ok {
        Ok(())
    } else {
        Err(CliError::Declined("a check failed".into()))
    }
}

struct Connections<'a> {
    config: &'a walmgr_core::config::Config,
}

impl Reach for Connections<'_> {
    fn master(&mut self) -> CoreResult<Box<dyn CheckedMaster>> {
        let conninfo = self
            .config
            .required(&self.config.master_db, "master_db", "check")?;
        Ok(Box::new(Connection::master(conninfo)?))
    }

    fn standby_server(&mut self) -> CoreResult<Box<dyn Inspect>> {
        let data = self
            .config
            .required(&self.config.slave_data, "slave_data", "check")?;
        Ok(Box::new(Connection::local(data)?))
    }
}
