//! walmgr-core: everything walmgr knows and does that does not need to live inside a
//! server. The extension and the CLI are thin adapters: they parse their input, hand
//! core a way to talk to PostgreSQL (see [`server`]), and print what comes back.
//!
//! One folder per domain; dependencies point down this list, never up:
//! - [`os`]: users, processes, owner-private files, shell commands;
//! - [`config`]: walmgr3's keys in TOML or `.ini`;
//! - [`libpq`]: libpq's conventions for walmgr's own connections: .pgpass, services,
//!   sslmode, the PG* variables;
//! - [`wal`]: WAL file names, segment headers, LSNs;
//! - [`archive`]: the standby's completed_wals: the durable store, BACKUPLOCK, control files;
//! - [`remote`]: how the master reaches that archive: local, or SSH with walmgr's wire protocol;
//! - [`backup`]: base backups: catalog and rotation, backup_label, the data directory copy,
//!   WAL purge, and the backup workflow;
//! - [`standby`]: the standby's lifecycle: restore, replay control, boot;
//! - [`setup`]: configuring a master or standby: server settings, init configs, SSH keys.
//!
//! Nothing in this crate links against PostgreSQL.

pub mod archive;
pub mod backup;
pub mod changes;
pub mod check;
pub mod cluster;
pub mod config;
pub mod conninfo;
pub mod error;
pub mod libpq;
pub mod os;
pub mod remote;
pub mod server;
pub mod setup;
pub mod shipping;
pub mod standby;
pub mod status;
pub mod wal;

pub use error::{Error, Result};
