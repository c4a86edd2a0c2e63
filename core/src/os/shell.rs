//! Shell commands: configs hold them (slave_start_cmd, archive_command, the forced command
//! of the master's key), built from paths that may hold anything.

use std::process::Command;

use crate::error::{Error, Result};

/// Runs `command` with `/bin/sh -c`, as the config's commands (master_restart_cmd,
/// slave_start_cmd, archive_command, ...) are written for a shell. `what` names the command
/// in the error, e.g. the config key it came from.
pub fn run(what: &str, command: &str) -> Result<()> {
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .status()
        .map_err(|e| Error::io("run", "/bin/sh", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            what: what.to_owned(),
            command: command.to_owned(),
            status: status.to_string(),
        })
    }
}

/// `s` as one shell word: unchanged when it is plainly safe, else single-quoted.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@%,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(quote("/etc/walmgr/slave.toml"), "/etc/walmgr/slave.toml");
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote(""), "''");
    }
}
