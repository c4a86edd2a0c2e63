//! `backup`: a base backup into full_backup, from the master or the in-recovery standby;
//! here only the progress display (a bar on a terminal, a line per 10% elsewhere).

use std::io::IsTerminal;
use std::time::Instant;

use walmgr_core::backup::datadir::Progress;
use walmgr_core::backup::take::{self, Side};
use walmgr_core::config::Role;

use super::Context;
use crate::error::Result;
use crate::server::Connection;

pub fn run(ctx: &mut Context, quiet: bool) -> Result<()> {
    let side = Side::of(&ctx.config);
    let mut server = match ctx.config.role {
        Role::Master => Connection::master(ctx.config.required(
            &ctx.config.master_db,
            "master_db",
            "backup",
        )?)?,
        Role::Slave => Connection::local(take::source_data(&ctx.config)?)?,
    };
    let mut area = walmgr_core::remote::backup_area(&ctx.config)?;
    let tty = std::io::stderr().is_terminal() && !ctx.changes.is_dry_run();
    let mut last_tenth = 0;
    let started = Instant::now();
    let mut report = |p: &Progress| {
        if quiet || p.bytes_total == 0 {
            return;
        }
        let pct = (p.bytes_done * 100 / p.bytes_total).min(100);
        let rate = (p.bytes_done >> 20) as f64 / started.elapsed().as_secs_f64().max(0.001);
        if tty {
            let filled = (pct / 5) as usize;
            eprint!(
                "\r[{}{}] {pct:>3}% {} / {} MB, {} files, {rate:.0} MB/s",
                "#".repeat(filled),
                " ".repeat(20 - filled),
                p.bytes_done >> 20,
                p.bytes_total >> 20,
                p.files
            );
        } else if pct / 10 > last_tenth {
            last_tenth = pct / 10;
            eprintln!(
                "copied {pct}% ({} MB of {} MB, {} files, {rate:.0} MB/s)",
                p.bytes_done >> 20,
                p.bytes_total >> 20,
                p.files
            );
        }
    };
    let done = take::take(
        &ctx.config,
        area.as_mut(),
        &mut server,
        &mut ctx.changes,
        &mut report,
    );
    if tty && !quiet {
        eprintln!();
    }
    if let Some(set) = done? {
        println!("backup from the {} done: {}", side.name(), set.display());
    }
    Ok(())
}
