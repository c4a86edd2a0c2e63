//! [`TestCommand`]: the one way a test runs a program, as root or as `postgres`, and fails
//! with what a DBA needs to see why: the command, its environment, its exit status, what it
//! printed, and the [`Context`] of the scenario it ran in (archive listings, server and sshd
//! log tails).
//!
//! ```no_run
//! # use walmgr_tests::TestCommand;
//! let stdout = TestCommand::new("/usr/bin/id").arg("-un").as_postgres().ok();
//! assert_eq!(stdout, "postgres\n");
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::dirs::entries;
use crate::netns::Host;
use crate::process::{
    clean_env, describe, format_streams, postgres_command, try_run_command, CMD_TIMEOUT,
};

/// Lines of a log quoted in a failure report.
const LOG_LINES: usize = 30;
/// Entries of a directory listed in a failure report; longer listings keep the first and
/// the last ones (WAL names sort by age, so the newest are at the end).
const LISTING_HEAD: usize = 10;
const LISTING_TAIL: usize = 50;

/// A command to run once: program, arguments, extra environment, user, time limit.
///
/// It always runs with stdin from /dev/null, `/tmp` as working directory (the repository may
/// be unreadable by postgres), the caller's `PG*` variables removed (they could redirect it to
/// another cluster), in its own process group that is SIGKILLed after the time limit. With
/// [`TestCommand::on`] it runs inside one of [`crate::TwoHosts`].
#[derive(Debug, Clone)]
#[must_use = "a TestCommand does nothing until run, ok, ok_output or fails_with"]
pub struct TestCommand {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    as_postgres: bool,
    host: Option<Host>,
    timeout: Duration,
    context: Context,
}

impl TestCommand {
    /// `program` as root, with no arguments yet.
    pub fn new(program: impl AsRef<Path>) -> TestCommand {
        TestCommand {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            as_postgres: false,
            host: None,
            timeout: CMD_TIMEOUT,
            context: Context::default(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> TestCommand {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets `key=value` for the program (also as postgres, where it survives runuser's
    /// reset of HOME, USER, ...; see `postgres_command`).
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> TestCommand {
        self.env.push((
            key.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// Runs the program as the OS user `postgres` (through `runuser -u postgres --`).
    pub fn as_postgres(mut self) -> TestCommand {
        self.as_postgres = true;
        self
    }

    /// Runs the program inside `host` (`ip netns exec`, outside runuser), where it sees that
    /// host's network only. A later `on` replaces an earlier one.
    pub fn on(mut self, host: &Host) -> TestCommand {
        self.host = Some(host.clone());
        self
    }

    /// [`TestCommand::on`] `host` if there is one: in the machine's own namespace if not.
    pub(crate) fn on_host(mut self, host: Option<&Host>) -> TestCommand {
        if let Some(host) = host {
            self = self.on(host);
        }
        self
    }

    /// Kills the program (its whole process group) after `timeout` instead of
    /// [`CMD_TIMEOUT`](crate::CMD_TIMEOUT).
    pub fn timeout(mut self, timeout: Duration) -> TestCommand {
        self.timeout = timeout;
        self
    }

    /// Adds `context` (directory listings, log tails) to every failure report.
    pub fn with_context(mut self, context: &Context) -> TestCommand {
        // A copy: a clone of this command must not add to another's context.
        let merged = Context::default();
        merged.extend(&self.context);
        merged.extend(context);
        self.context = merged;
        self
    }

    /// Runs it and returns its output, whatever the exit status. Panics (with the output so
    /// far and the context) if it cannot start or runs out of time.
    pub fn run(self) -> Output {
        self.try_run().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs it and returns its stdout; panics with the full report unless it succeeds.
    pub fn ok(self) -> String {
        text(&self.ok_output().stdout)
    }

    /// Runs it and returns its output (walmgr logs to stderr); panics with the full report
    /// unless it succeeds.
    pub fn ok_output(self) -> Output {
        self.try_ok().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs it and returns its stderr; panics with the full report unless it exits with
    /// exactly `code` (a success is a failure here).
    pub fn fails_with(self, code: i32) -> String {
        let desc = self.describe();
        let context = self.context.clone();
        let out = self.run();
        if out.status.code() != Some(code) {
            panic!(
                "{desc} was expected to fail with exit code {code} but exited with {}\n{}{}",
                out.status,
                format_streams(&out.stdout, &out.stderr),
                context.report()
            );
        }
        text(&out.stderr)
    }

    /// Runs it; `Err` is the full failure report (command, environment, exit status, stdout,
    /// stderr, context) unless it succeeds. Panics like [`TestCommand::run`].
    pub fn try_ok(self) -> Result<Output, String> {
        let desc = self.describe();
        let context = self.context.clone();
        let out = self.run();
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{desc} failed with {}\n{}{}",
                out.status,
                format_streams(&out.stdout, &out.stderr),
                context.report()
            ))
        }
    }

    /// Like [`TestCommand::run`], but a failure to start or a timeout is `Err` instead of a
    /// panic (for teardown in `Drop`).
    pub fn try_run(self) -> Result<Output, String> {
        let command = self.command();
        try_run_command(command, self.timeout).map_err(|e| format!("{e}{}", self.context.report()))
    }

    /// A one-line description: the command line and the environment it sets.
    pub fn describe(&self) -> String {
        describe(&self.command())
    }

    fn command(&self) -> Command {
        let c = self.command_here();
        match &self.host {
            Some(host) => host.wrap(c),
            None => c,
        }
    }

    fn command_here(&self) -> Command {
        if self.as_postgres {
            let env: Vec<(&str, &str)> = self
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            return postgres_command(&self.program, &self.args, &env);
        }
        let mut c = Command::new(&self.program);
        c.args(&self.args).current_dir("/tmp");
        clean_env(&mut c);
        // After clean_env: a PG* variable the test sets on purpose stays.
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }
}

/// What a failure report shows besides the command's own output: listings of directories
/// and tails of logs of the scenario a command runs in (its archive, its servers, its sshd).
/// Clones share one list, so that a scenario can add a standby's log after it was created.
#[derive(Debug, Clone, Default)]
pub struct Context(Arc<Mutex<Vec<Evidence>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Evidence {
    Listing { what: String, dir: PathBuf },
    LogTail { what: String, file: PathBuf },
}

impl Context {
    /// Reports list directory `dir` (recursively, with file sizes) as `what`.
    pub fn listing(&self, what: &str, dir: impl AsRef<Path>) {
        self.add(Evidence::Listing {
            what: what.to_string(),
            dir: dir.as_ref().to_path_buf(),
        });
    }

    /// Reports quote the last lines of log `file` as `what`.
    pub fn log(&self, what: &str, file: impl AsRef<Path>) {
        self.add(Evidence::LogTail {
            what: what.to_string(),
            file: file.as_ref().to_path_buf(),
        });
    }

    /// Everything the context shows, as it is now: one section per listing and log, each
    /// starting with a `--- what path ---` line. Empty for an empty context.
    pub fn report(&self) -> String {
        let mut s = String::new();
        for e in self.lock().iter() {
            match e {
                Evidence::Listing { what, dir } => {
                    let _ = write!(s, "\n--- {what}: {} ---", dir.display());
                    match entries(dir) {
                        None => s.push_str("\n(does not exist)"),
                        Some(e) if e.is_empty() => s.push_str("\n(empty)"),
                        Some(e) => s.push_str(&shorten(&e)),
                    }
                }
                Evidence::LogTail { what, file } => {
                    let _ = write!(
                        s,
                        "\n--- {what}: {} (last {LOG_LINES} lines) ---\n{}",
                        file.display(),
                        log_tail(file, LOG_LINES)
                    );
                }
            }
        }
        s
    }

    /// True if it shows nothing.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn extend(&self, other: &Context) {
        let theirs = other.lock().clone();
        for e in theirs {
            self.add(e);
        }
    }

    fn add(&self, e: Evidence) {
        let mut list = self.lock();
        if !list.contains(&e) {
            list.push(e);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Evidence>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The last `lines` lines of `file`, or why it cannot be read.
pub(crate) fn log_tail(file: &Path, lines: usize) -> String {
    match std::fs::read(file) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", file.display()),
    }
}

/// `entries` one per line, at most LISTING_HEAD + LISTING_TAIL of them, the rest counted.
fn shorten(entries: &[String]) -> String {
    let mut s = String::new();
    let skipped = entries.len().saturating_sub(LISTING_HEAD + LISTING_TAIL);
    for (i, e) in entries.iter().enumerate() {
        if skipped > 0 && i == LISTING_HEAD {
            let _ = write!(s, "\n  ... {skipped} more entries ...");
        }
        if skipped == 0 || i < LISTING_HEAD || i >= LISTING_HEAD + skipped {
            let _ = write!(s, "\n  {e}");
        }
    }
    s
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
