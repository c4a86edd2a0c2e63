//! The standby's lifecycle: restore a backup set into its data directory, feed its
//! recovery from the archive (restore_command), hold replay back and let it go, boot it
//! into a master, clean up after. The recovery settings restore writes live here too.

pub mod boot;
pub mod cleanup;
pub mod createslave;
pub mod recovery;
pub mod replay;
pub mod restore;
pub mod restore_command;
pub mod tablespaces;
