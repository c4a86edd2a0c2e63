//! Other processes: whether they run, and when they started.

use std::fs;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// True when `pid` exists, also when it belongs to another user (EPERM: e.g. the postgres
/// user's postmaster seen by root-less walmgr run as someone else).
pub fn alive(pid: i32) -> bool {
    pid > 0 && matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

/// Detaches from the terminal: forks, starts a new session, and points stdin, stdout and
/// stderr at /dev/null (logs then go to the config's logfile only).
pub fn daemonize() -> crate::error::Result<()> {
    nix::unistd::daemon(true, false)
        .map_err(|e| crate::error::Error::io("daemonize", "this process", std::io::Error::from(e)))
}

/// What /proc/PID/stat says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// R, S, D, Z (zombie: dead, not yet reaped), X, ...
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks since boot (field 22): with the pid it tells a live
    /// process from a new one that got the same pid.
    pub start_time: u64,
}

/// The process `pid`, if there is one.
pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Start time of `pid`, None if there is no such process or it is a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(i32::try_from(pid).ok()?)
        .filter(|s| !matches!(s.state, 'Z' | 'X'))
        .map(|s| s.start_time)
}

fn parse_stat(stat: &str) -> Option<Stat> {
    // The command name (field 2) may contain spaces and parentheses: count after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start_time = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        start_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_has_a_start_time() {
        assert!(alive(std::process::id() as i32));
        assert!(start_time(std::process::id()).is_some());
        assert!(!alive(0));
    }

    #[test]
    fn a_command_name_with_parentheses_and_spaces_does_not_shift_the_fields() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                state: 'S',
                ppid: 1,
                start_time: 777
            })
        );
    }
}
