//! The walmgr CLI, copied into the test dir so that the postgres user can run it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::dirs::{chown_to_postgres, TestDir};
use crate::process::{
    clean_env, describe, failure_report, postgres_command, run_command, CMD_TIMEOUT,
};

/// The walmgr binary of this build, as `<dir>/bin/walmgr` (mode 0755, owned by postgres).
#[derive(Debug, Clone)]
pub struct Walmgr {
    pub bin: PathBuf,
}

impl Walmgr {
    /// Copies the CLI into `dir/bin/walmgr`. The source is `$WALMGR_BIN` if set, else
    /// `$CARGO_TARGET_DIR/debug/walmgr` or `<workspace>/target/debug/walmgr`; panics if it is
    /// missing.
    pub fn new(dir: &TestDir) -> Walmgr {
        let src = source_binary();
        dir.mkdir("bin");
        let bin = dir.join("bin/walmgr");
        std::fs::copy(&src, &bin)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), bin.display()));
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", bin.display()));
        chown_to_postgres(&bin);
        Walmgr { bin }
    }

    /// Runs `walmgr args...` as root (working dir /tmp, caller's PG* variables removed).
    pub fn run(&self, args: &[&str]) -> Output {
        run_command(self.root_command(args), CMD_TIMEOUT)
    }

    /// Runs `walmgr args...` as the postgres user.
    pub fn run_as_postgres(&self, args: &[&str]) -> Output {
        run_command(postgres_command(&self.bin, args, &[]), CMD_TIMEOUT)
    }

    /// Runs `walmgr args...` as root and returns stdout; panics with the command, exit status,
    /// stdout and stderr unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        checked(self.root_command(args))
    }

    /// [`Walmgr::ok`] as the postgres user.
    pub fn ok_as_postgres(&self, args: &[&str]) -> String {
        checked(postgres_command(&self.bin, args, &[]))
    }

    fn root_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args).current_dir("/tmp");
        clean_env(&mut c);
        c
    }
}

fn checked(cmd: Command) -> String {
    let desc = describe(&cmd);
    let out = run_command(cmd, CMD_TIMEOUT);
    if !out.status.success() {
        panic!("{}", failure_report(&desc, &out));
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn source_binary() -> PathBuf {
    let path = match std::env::var_os("WALMGR_BIN") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => Path::new(&t).join("debug/walmgr"),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/walmgr"),
        },
    };
    assert!(
        path.is_file(),
        "walmgr binary not found at {} (from {}): build it first: cargo build -p walmgr-cli",
        path.display(),
        if std::env::var_os("WALMGR_BIN").is_some() {
            "$WALMGR_BIN"
        } else {
            "the default target dir"
        }
    );
    path
}
