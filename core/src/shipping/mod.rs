//! In-progress WAL shipping, the master's side: the standby also holds the master's
//! current, unfinished segment, as far as it is flushed, so that a failover loses at most
//! the last moments of commits instead of a segment.
//!
//! One loop, two drivers: the extension's background worker (in-process, woken on flush)
//! and `walmgr syncdaemon` (over a connection, polling). Each round reads what was flushed
//! since the last one from pg_wal, checks it really is this segment's WAL, and ships it
//! through the config's transport into the standby's partial_wals.

pub mod driver;
pub mod periodic;
pub mod reader;
pub mod shipper;

pub use shipper::{Position, Round, Shipper};
