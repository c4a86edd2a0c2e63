//! `pause` and `continue`: hold the standby's replay back, and let it go.
//!
//! Both levers are pulled: the PAUSE file stops xrestore from handing out WAL (archive
//! replay holds still even on a server walmgr cannot connect to), and
//! `pg_wal_replay_pause()` stops what the server already has or streams.

use crate::archive::control::{Control, ControlFiles};
use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::Result;
use crate::server::Standby;

pub fn pause(config: &Config, server: &mut dyn Standby, changes: &mut Changes) -> Result<()> {
    config.require_role(Role::Slave, "pause")?;
    ControlFiles::in_archive(&config.completed_wals).set(
        Control::Pause,
        "xrestore hands out no WAL",
        changes,
    )?;
    if recovering(server)? {
        changes.apply("SELECT pg_wal_replay_pause()", || server.pause_replay())?;
    }
    Ok(())
}

pub fn resume(config: &Config, server: &mut dyn Standby, changes: &mut Changes) -> Result<()> {
    config.require_role(Role::Slave, "continue")?;
    ControlFiles::in_archive(&config.completed_wals).clear(Control::Pause, changes)?;
    if recovering(server)? {
        changes.apply("SELECT pg_wal_replay_resume()", || server.resume_replay())?;
    }
    Ok(())
}

/// Is the server reachable and in recovery? The replay functions exist only then.
fn recovering(server: &mut dyn Standby) -> Result<bool> {
    Ok(server.state()?.is_some_and(|s| s.in_recovery))
}
