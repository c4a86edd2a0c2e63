//! What PostgreSQL's restore_command (`walmgr xrestore %f %p %r`) does: hand one file
//! out of the archive to the recovering server.
//!
//! The answer is the whole protocol: handed out (exit 0), or not available (exit 1), which
//! PostgreSQL takes as "not yet" in standby mode and as "end of WAL" once it was asked to
//! promote.

use std::path::Path;

use crate::archive::control::{Control, ControlFiles};
use crate::archive::partial::PartialStore;
use crate::archive::store::ArchiveStore;
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::wal::{SegmentName, WalFileName};

/// What the archive answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The complete file is at the destination.
    HandedOut { bytes: u64 },
    /// Not handed out, and why (a normal "no", not an error).
    NotAvailable(String),
}

/// `%r` before the server's first restartpoint: no file, and no mistake either.
const NO_RESTARTPOINT: &str = "000000000000000000000000";

/// Hands `name` out to `dst`; `last` is PostgreSQL's `%r`, recorded as the standby's
/// restartpoint so no purge takes what it needs.
pub fn hand_out(
    config: &Config,
    name: &str,
    dst: &Path,
    last: Option<&str>,
    changes: &mut Changes,
) -> Result<Answer> {
    let name = WalFileName::parse(name)?;
    check_destination(dst)?;
    let controls = ControlFiles::in_archive(&config.completed_wals);
    if let Some(last) = last.filter(|l| *l != NO_RESTARTPOINT) {
        // Validated, so that a wrong restore_command shows up.
        if let WalFileName::Segment(segment) = WalFileName::parse(last)? {
            // The restartpoint only protects WAL from a later purge. Refusing the segment
            // because it could not be recorded (read-only copy, full disk, a purge holding
            // the file) would stall replay, or, while `boot` promotes, end recovery short.
            if let Err(e) = controls.record_restartpoint(segment, changes) {
                tracing::warn!(
                    "restartpoint {segment} not recorded ({e}); handing out {name} anyway"
                );
            }
        }
    }
    // PAUSE holds replay back. STOP (boot) does not hold anything back: recovery ends at
    // the first name the archive lacks, so every complete file it has is still handed out
    // and PostgreSQL promotes only after them. A PAUSE left behind does not hold boot.
    if controls.is_set(Control::Pause) && !controls.is_set(Control::Stop) {
        return Ok(Answer::NotAvailable(format!(
            "{name} not handed out: replay is paused (walmgr pause)"
        )));
    }
    if controls.is_set(Control::Stop) && !controls.is_set(Control::StopSeen) {
        // Tells boot that recovery asks for WAL since STOP (see archive::control). Not a
        // reason to refuse anything if it cannot be written.
        if let Err(e) = controls.set(Control::StopSeen, "recovery asked since STOP", changes) {
            tracing::warn!("{e}");
        }
    }
    let store = ArchiveStore::new(&config.completed_wals);
    let what = format!(
        "copy {} to {}",
        store.path_of(&name).display(),
        dst.display()
    );
    match changes.apply(what, || store.restore_to(&name, dst)) {
        Ok(Some(bytes)) => {
            if let WalFileName::Segment(segment) = name {
                // A segment's length is the cluster's segment size (checked by restore_to).
                store.read_ahead_after(&segment, bytes);
            }
            Ok(Answer::HandedOut { bytes })
        }
        // A dry run put nothing at %p: to PostgreSQL that is "not available".
        Ok(None) => Ok(Answer::NotAvailable(format!(
            "{name}: not restored (--not-really)"
        ))),
        Err(e) if e.is_not_found() => {
            if controls.is_set(Control::Stop) {
                if let WalFileName::Segment(segment) = name {
                    return hand_out_partial(config, &segment, dst, changes);
                }
            }
            Ok(Answer::NotAvailable(format!(
                "{name} is not in {} (yet)",
                store.dir().display()
            )))
        }
        Err(e) => Err(e),
    }
}

/// Recovery is ending (STOP) and the archive lacks `segment`: the partial copy of it, if
/// the master shipped one, carries the last commits. Recovery replays it up to where the
/// shipped WAL ends (the zeros after it), and opens there.
fn hand_out_partial(
    config: &Config,
    segment: &SegmentName,
    dst: &Path,
    changes: &mut Changes,
) -> Result<Answer> {
    let partials = PartialStore::new(&config.partial_wals);
    let held = partials.held(segment)?.map_or(0, |h| h.len);
    let what = format!(
        "copy {} ({held} bytes of WAL, zero-padded) to {}",
        partials.path_of(segment).display(),
        dst.display()
    );
    match changes.apply(what, || partials.restore_to(segment, dst)) {
        Ok(Some(bytes)) => {
            tracing::info!(
                "handed out the partial copy of {segment} ({held} bytes of WAL): recovery ends in it"
            );
            Ok(Answer::HandedOut { bytes })
        }
        Ok(None) => Ok(Answer::NotAvailable(format!(
            "{segment}: not restored (--not-really)"
        ))),
        Err(e) if e.is_not_found() => Ok(Answer::NotAvailable(format!(
            "{segment} is neither in {} nor in {}: recovery ends before it",
            config.completed_wals.display(),
            config.partial_wals.display()
        ))),
        Err(e) => Err(e),
    }
}

/// PostgreSQL asks for RECOVERYXLOG / RECOVERYHISTORY (or a WAL name) in pg_wal; anything
/// else means the command line is wrong, and nothing gets written there.
fn check_destination(dst: &Path) -> Result<()> {
    let file = dst.file_name().and_then(|f| f.to_str()).unwrap_or("");
    if matches!(file, "RECOVERYXLOG" | "RECOVERYHISTORY") || WalFileName::parse(file).is_ok() {
        return Ok(());
    }
    Err(Error::refused(format!(
        "refusing to restore to {}: PostgreSQL's %p is pg_wal/RECOVERYXLOG, \
         pg_wal/RECOVERYHISTORY or a WAL file name (is restore_command `walmgr <config> xrestore %f %p %r`?)",
        dst.display()
    )))
}
