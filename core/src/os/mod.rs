//! What walmgr needs from the operating system, each in one place: users and the host
//! name, processes, files handed to their directory's owner, and shell commands.

pub mod files;
pub mod pidfile;
pub mod process;
pub mod shell;
pub mod timed_read;
pub mod users;
