//! `xrestore SRCNAME DSTPATH [LAST]`: PostgreSQL's restore_command.
//!
//! Exit status is the whole protocol: 0 only when the complete file is at DSTPATH, 1 when
//! the archive does not have it (yet) or cannot give it. Never above 125: PostgreSQL takes
//! that as "stop recovery".

use std::path::Path;

use walmgr_core::store::ArchiveStore;
use walmgr_core::wal_name::WalFileName;

use super::standby::{PAUSE_FILE, STOP_FILE};
use super::Context;
use crate::error::{CliError, Result};

pub fn run(ctx: &mut Context, srcname: &str, dstpath: &Path, last: Option<&str>) -> Result<()> {
    let name = WalFileName::parse(srcname)?;
    check_destination(dstpath)?;
    if let Some(last) = last {
        // %r: validated so a wrong restore_command shows up. Before the first restartpoint
        // PostgreSQL passes 24 zeros, which is no file but is no mistake either.
        if last != "000000000000000000000000" {
            let last = WalFileName::parse(last)?;
            let dir = ctx.config.completed_wals.clone();
            // The restartpoint only protects WAL from a later purge. Refusing the segment
            // because it could not be recorded (read-only copy, full disk, a purge holding
            // the file) would stall replay, or, while `boot` promotes, end recovery short.
            if let Err(e) = super::slave_side::record_restartpoint(ctx, &dir, &last) {
                ctx.log.warning(&format!(
                    "restartpoint {last} not recorded ({e}); handing out {name} anyway"
                ));
            }
        }
    }
    // `walmgr pause` holds replay back through PAUSE. STOP (written by `walmgr boot`) does
    // not hold anything back: recovery ends at the first name the archive lacks, so every
    // complete file it has is still handed out, and PostgreSQL promotes only after them.
    let completed_wals = &ctx.config.completed_wals;
    if completed_wals.join(PAUSE_FILE).exists() && !completed_wals.join(STOP_FILE).exists() {
        return Err(CliError::Declined(format!(
            "{name} not handed out: replay is paused (walmgr pause)"
        )));
    }
    let store = ArchiveStore::new(&ctx.config.completed_wals);
    let what = format!(
        "copy {} to {}",
        store.path_of(&name).display(),
        dstpath.display()
    );
    match ctx.changes.apply(what, || store.restore_to(&name, dstpath)) {
        Ok(Some(bytes)) => {
            ctx.log.debug(&format!("restored {name} ({bytes} bytes)"));
            Ok(())
        }
        // A dry run put nothing at %p: to PostgreSQL that is "not available".
        Ok(None) => Err(CliError::Declined(format!(
            "{name}: not restored (--not-really)"
        ))),
        Err(e) if e.is_not_found() => Err(CliError::Declined(format!(
            "{name} is not in {} (yet)",
            store.dir().display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// PostgreSQL asks for RECOVERYXLOG / RECOVERYHISTORY (or a WAL name) in pg_wal; anything
/// else means the command line is wrong, and nothing gets written there.
fn check_destination(dst: &Path) -> Result<()> {
    let file = dst.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let ok = matches!(file, "RECOVERYXLOG" | "RECOVERYHISTORY") || WalFileName::parse(file).is_ok();
    if ok {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "refusing to restore to {}: PostgreSQL's %p is pg_wal/RECOVERYXLOG, \
             pg_wal/RECOVERYHISTORY or a WAL file name (is restore_command `walmgr <config> xrestore %f %p %r`?)",
            dst.display()
        )))
    }
}
