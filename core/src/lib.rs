//! walmgr-core: everything walmgr knows that does not need a running server.
//!
//! The extension and the CLI are thin adapters around this crate: they parse and validate
//! their input, then call in here. Nothing in this crate links against PostgreSQL.

pub mod authorized_keys;
pub mod backup_catalog;
pub mod backup_label;
pub mod changes;
pub mod cluster_location;
pub mod config;
pub mod datadir;
pub mod error;
pub mod init_config;
pub mod lock;
pub mod lsn;
pub mod recovery;
pub mod server_settings;
pub mod shell;
pub mod store;
pub mod system;
pub mod transport;
pub mod wal_name;
pub mod wal_segment;
pub mod wire;

pub use error::{Error, Result};
