//! `xserve` and `xpartialsync`: the standby's receiving ends.
//!
//! `xserve`: the standby's receiving end of the master's SSH session. Requests arrive on
//! stdin and files go through the same store as every other archive write; stdout carries
//! one reply per request (see walmgr_core::wire). Logs go to stderr, never into the replies.
//!
//! `--ssh-add-key` installs the master's key with this command forced, so it is all the key
//! can run. When sshd forced it, SSH_ORIGINAL_COMMAND holds what the client asked for:
//! anything but an xserve request is refused before a byte is read.

use std::io::{self, BufReader};
use std::time::Duration;

use walmgr_core::archive::partial::PartialStore;
use walmgr_core::archive::store::ArchiveStore;
use walmgr_core::config::Role;
use walmgr_core::os::timed_read::TimedRead;
use walmgr_core::remote;
use walmgr_core::remote::wire::Receiver;
use walmgr_core::wal::WalFileName;

use super::Context;
use walmgr_core::Error;

use crate::error::Result;

pub fn run(ctx: &mut Context) -> Result<()> {
    if let Ok(asked) = std::env::var("SSH_ORIGINAL_COMMAND") {
        if asked.split_whitespace().last() != Some("xserve") {
            return Err(Error::refused(format!(
                "this SSH key may only run walmgr's receiving end (xserve); refused {asked:?}"
            ))
            .into());
        }
    }
    ctx.config.require_role(Role::Slave, "xserve")?;
    if ctx.changes.is_dry_run() {
        return Err(Error::Usage(
            "xserve writes what the master sends; it has no --not-really mode".into(),
        )
        .into());
    }
    let receiver = Receiver {
        store: ArchiveStore::new(&ctx.config.completed_wals),
        partials: PartialStore::new(&ctx.config.partial_wals),
        dirs: remote::slave_dirs(&ctx.config),
        standby: Some(ctx.config.clone()),
    };
    // A master that vanished without closing the connection must not hold this session's
    // locks until TCP keepalive gives up: every read waits at most network_timeout.
    let limit = Duration::from_secs_f64(ctx.config.network_timeout);
    let stdin = TimedRead::new(io::stdin(), limit, "the master")
        .map_err(|e| Error::io("read", "stdin", e))?;
    let stdout = io::stdout().lock();
    let served = receiver.serve(BufReader::with_capacity(1 << 20, stdin), stdout)?;
    tracing::debug!("xserve: {served} file(s) received");
    Ok(())
}

/// `xpartialsync FILE OFFSET BYTES`: one piece of in-progress WAL from stdin.
pub fn partialsync(ctx: &mut Context, file: &str, offset: u64, bytes: u64) -> Result<()> {
    ctx.config.require_role(Role::Slave, "xpartialsync")?;
    let WalFileName::Segment(segment) = WalFileName::parse(file)? else {
        return Err(Error::refused(format!(
            "{file} is not a segment: only segments have partial copies"
        ))
        .into());
    };
    let partials = PartialStore::new(&ctx.config.partial_wals);
    let what = format!(
        "write {bytes} bytes from stdin at offset {offset} into {}",
        partials.path_of(&segment).display()
    );
    ctx.changes.apply(what, || {
        partials.write(&segment, offset, io::stdin().lock(), bytes)
    })?;
    Ok(())
}
