//! Configuring a master and a standby: the server settings `setup`/`stop` change, the
//! configs `--init-master`/`--init-slave` write, the cluster they describe, the master's
//! key in the standby's authorized_keys, synchronous replication (`synch-standby`) and the
//! standby's replication password in ~/.pgpass.

pub mod archiving;
pub mod authorized_keys;
pub mod cluster_location;
pub mod host_layout;
pub mod init_config;
pub mod pgpass;
pub mod quick_start;
pub mod server_settings;
pub mod synch_standby;
