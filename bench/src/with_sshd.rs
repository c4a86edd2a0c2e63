//! Runs a command beside a harness sshd, for the one-off measurements of
//! bench/investigations (which need an SSH server and nothing else of the bench):
//!
//!   walmgr-with-sshd COMMAND [ARGS...]
//!
//! Starts OpenSSH's sshd on 127.0.0.1 (LogLevel DEBUG, which logs each connection's cipher)
//! in a test directory, with an ed25519 client key owned by postgres that it accepts and a
//! known_hosts file that holds its host key, then runs COMMAND as root with its output
//! passed through and these in its environment:
//!
//!   WALMGR_SSHD_PORT, WALMGR_SSH_KEY, WALMGR_SSH_KNOWN_HOSTS, WALMGR_SSHD_LOG, and
//!   WALMGR_SSH_DIR (the test directory: scratch space the postgres user can read).
//!
//! Log in as postgres@127.0.0.1. Everything is torn down when COMMAND ends, also on failure.
//! Exits with COMMAND's status.

use std::process::{Command, ExitCode};

use walmgr_tests::{Sshd, TestDir};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: walmgr-with-sshd COMMAND [ARGS...]");
        return ExitCode::from(1);
    };
    let dir = TestDir::new("with-sshd");
    let sshd = Sshd::start_with(&dir, "standby", "LogLevel DEBUG");
    let (key, public) = Sshd::client_key(&dir, "id_ed25519");
    sshd.authorize(&public);
    let known_hosts = dir.write("known_hosts", format!("{}\n", sshd.known_hosts_line()));
    let status = Command::new(program)
        .args(rest)
        .env("WALMGR_SSHD_PORT", sshd.port().to_string())
        .env("WALMGR_SSH_KEY", &key)
        .env("WALMGR_SSH_KNOWN_HOSTS", &known_hosts)
        .env("WALMGR_SSHD_LOG", sshd.log_path())
        .env("WALMGR_SSH_DIR", &dir.path)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("{program} exited with {s}");
            ExitCode::from(s.code().map_or(1, |c| c.clamp(1, 255) as u8))
        }
        Err(e) => {
            eprintln!("cannot run {program}: {e}");
            ExitCode::from(1)
        }
    }
}
