//! `check`: before a DBA trusts a setup, every link of it is tried once, the way archiving
//! and replay will use it, and each is reported on its own line: what was found, or what
//! is wrong and what to do about it.
//!
//! The checks are data ([`MASTER`], [`STANDBY`]): a name, the checks it needs to have
//! passed, and what it runs. A check whose prerequisite failed is skipped, not run against
//! a setup already known to be broken, so the first FAIL is the one to fix. `check` only
//! reads, with one exception on the master: the round trip writes a little WAL and
//! switches segments, so that a real segment travels the real way to the archive.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::changes::Changes;
use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::remote::dirs::{self, DirState};
use crate::remote::{Local, SessionStep, Ssh, Transport};
use crate::server::{CheckedMaster, Inspect};
use crate::setup::archiving::server_config_path;
use crate::setup::server_settings::{self, LIBRARY};
use crate::wal::WalFileName;

/// How the servers are reached; the CLI connects, core asks.
pub trait Reach {
    /// The master through master_db.
    fn master(&mut self) -> Result<Box<dyn CheckedMaster>>;
    /// The standby's own server, through its data directory.
    fn standby_server(&mut self) -> Result<Box<dyn Inspect>>;
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Not run: a check it needs failed.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    pub name: String,
    pub status: Status,
    /// For ok, what was found; for FAIL, what is wrong and what to do; for skipped, why.
    pub detail: String,
}

impl Line {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Line {
        Line {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Line {
        Line {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
        }
    }
}

/// Every line `check` printed, for `--json` and the exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `master` or `slave`; None when the config could not be read.
    pub role: Option<&'static str>,
    /// True only when every check passed.
    pub ok: bool,
    pub checks: Vec<Line>,
}

impl Report {
    fn new(role: Option<&'static str>, checks: Vec<Line>) -> Report {
        let ok = !checks.is_empty() && checks.iter().all(|l| l.status == Status::Ok);
        Report { role, ok, checks }
    }

    /// One line per check (name, ok/FAIL/skip, detail), then a summary line.
    pub fn to_text(&self) -> String {
        let width = self.checks.iter().map(|l| l.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for line in &self.checks {
            let status = match line.status {
                Status::Ok => "ok",
                Status::Fail => "FAIL",
                Status::Skipped => "skip",
            };
            out.push_str(&format!(
                "{:<width$}  {status:<4}  {}\n",
                line.name, line.detail
            ));
        }
        let failed = self
            .checks
            .iter()
            .filter(|l| l.status == Status::Fail)
            .count();
        let skipped = self
            .checks
            .iter()
            .filter(|l| l.status == Status::Skipped)
            .count();
        if self.ok {
            out.push_str(&format!("all {} checks passed\n", self.checks.len()));
        } else {
            out.push_str(&format!(
                "{failed} of {} checks failed ({skipped} skipped): fix the first FAIL first\n",
                self.checks.len()
            ));
        }
        out
    }
}

/// The report when the config itself cannot be read: nothing else can be checked.
pub fn config_unreadable(error: &Error) -> Report {
    Report::new(
        None,
        vec![Line::fail(
            "config",
            format!("{error}: fix the file, `walmgr --ini` prints a commented sample"),
        )],
    )
}

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long the round trip waits for the switched segment in the archive.
    pub round_trip_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            round_trip_timeout: Duration::from_secs(60),
        }
    }
}

/// One check: its name, the checks that must have passed before it runs, and what it does
/// (one line or several, e.g. one per directory).
pub struct Check {
    pub name: &'static str,
    pub needs: &'static [&'static str],
    run: fn(&mut Probe) -> Vec<Line>,
}

/// The master's checks, in order.
pub const MASTER: &[Check] = &[
    Check {
        name: "config",
        needs: &[],
        run: master_config,
    },
    Check {
        name: "database",
        needs: &["config"],
        run: master_database,
    },
    Check {
        name: "extension",
        needs: &["database"],
        run: extension,
    },
    Check {
        name: "settings",
        needs: &["database"],
        run: settings,
    },
    Check {
        name: "standby link",
        needs: &["config"],
        run: standby_link,
    },
    Check {
        name: "directories",
        needs: &["standby link"],
        run: directories,
    },
    Check {
        name: "round trip",
        needs: &["extension", "settings", "directories"],
        run: round_trip,
    },
];

/// The standby's checks, in order.
pub const STANDBY: &[Check] = &[
    Check {
        name: "config",
        needs: &[],
        run: standby_config,
    },
    Check {
        name: "directories",
        needs: &["config"],
        run: directories,
    },
    Check {
        name: "standby server",
        needs: &["config"],
        run: standby_server,
    },
    Check {
        name: "recovery",
        needs: &["standby server"],
        run: recovery,
    },
];

/// Runs every check of the config's role. The round trip's WAL switch goes through
/// `changes`, so `--not-really` prints it and skips the round trip.
pub fn run(
    config: &Config,
    reach: &mut dyn Reach,
    options: Options,
    changes: &mut Changes,
) -> Report {
    let (role, checks) = match config.role {
        Role::Master => ("master", MASTER),
        Role::Slave => ("slave", STANDBY),
    };
    let mut probe = Probe {
        config,
        reach,
        options,
        changes,
        master: None,
        standby: None,
    };
    let mut lines = Vec::new();
    let mut passed: Vec<&str> = Vec::new();
    for check in checks {
        if let Some(missing) = check.needs.iter().find(|n| !passed.contains(n)) {
            lines.push(Line {
                name: check.name.to_string(),
                status: Status::Skipped,
                detail: format!("skipped: needs `{missing}`, which did not pass"),
            });
            continue;
        }
        let result = (check.run)(&mut probe);
        if result.iter().all(|l| l.status == Status::Ok) {
            passed.push(check.name);
        }
        lines.extend(result);
    }
    Report::new(Some(role), lines)
}

/// What the checks share: the connections and the way to the archive, each opened once.
pub struct Probe<'a> {
    config: &'a Config,
    reach: &'a mut dyn Reach,
    options: Options,
    changes: &'a mut Changes,
    master: Option<Box<dyn CheckedMaster>>,
    standby: Option<Box<dyn Transport>>,
}

impl Probe<'_> {
    fn master(&mut self) -> Result<&mut Box<dyn CheckedMaster>> {
        if self.master.is_none() {
            self.master = Some(self.reach.master()?);
        }
        Ok(self.master.as_mut().expect("just connected"))
    }

    fn config_path(&self) -> String {
        self.config.source.display().to_string()
    }
}

fn master_config(p: &mut Probe) -> Vec<Line> {
    let c = p.config;
    let mut missing = Vec::new();
    if c.master_db.is_none() {
        missing.push("master_db");
    }
    if c.slave.is_some() && c.slave_config.is_none() {
        missing.push("slave_config");
    }
    if !missing.is_empty() {
        return vec![Line::fail(
            "config",
            format!(
                "{}: {} not set; `walmgr --ini` shows each key",
                p.config_path(),
                missing.join(", ")
            ),
        )];
    }
    let standby = match c.slave.as_deref() {
        Some(slave) => format!("the standby over SSH at {slave}"),
        None => "the standby's directories on this host".into(),
    };
    vec![Line::ok(
        "config",
        format!("master config {}, archiving to {standby}", p.config_path()),
    )]
}

fn standby_config(p: &mut Probe) -> Vec<Line> {
    if p.config.slave_data.is_none() {
        return vec![Line::fail(
            "config",
            format!(
                "{}: slave_data not set (the standby's data directory, which restore, boot \
                 and status use)",
                p.config_path()
            ),
        )];
    }
    vec![Line::ok(
        "config",
        format!("standby config {}", p.config_path()),
    )]
}

fn master_database(p: &mut Probe) -> Vec<Line> {
    let conninfo = p
        .config
        .master_db
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let asked = p
        .master()
        .and_then(|m| Ok((m.version()?, m.in_recovery()?)));
    match asked {
        Ok((version, false)) => vec![Line::ok(
            "database",
            format!("PostgreSQL {version} answers at master_db ({conninfo})"),
        )],
        Ok((_, true)) => vec![Line::fail(
            "database",
            format!(
                "master_db ({conninfo}) reaches a server in recovery, not the master: point \
                 master_db at the primary"
            ),
        )],
        Err(e) => vec![Line::fail(
            "database",
            format!(
                "cannot reach the master through master_db ({conninfo}): {e}; is it running, \
                 and does pg_hba.conf let this user in?"
            ),
        )],
    }
}

fn extension(p: &mut Probe) -> Vec<Line> {
    let path = p.config_path();
    match p.master().and_then(|m| m.extension_installed()) {
        Ok(true) => vec![Line::ok("extension", "walmgr is installed in master_db")],
        Ok(false) => vec![Line::fail(
            "extension",
            format!(
                "walmgr is not installed in master_db: `walmgr {path} setup` runs CREATE \
                 EXTENSION walmgr"
            ),
        )],
        Err(e) => vec![Line::fail("extension", e.to_string())],
    }
}

/// Each setting `setup` makes, as the server runs with it now.
fn settings(p: &mut Probe) -> Vec<Line> {
    let path = p.config_path();
    let server_path = server_config_path(p.config)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.clone());
    let mut lines = Vec::new();
    for name in server_settings::setup_setting_names() {
        let line_name = format!("setting {name}");
        let value = match p.master().and_then(|m| m.setting(name)) {
            Ok(value) => value,
            Err(e) => {
                lines.push(Line::fail(line_name, e.to_string()));
                continue;
            }
        };
        let (good, wanted, restart) = judge_setting(name, &value, &server_path);
        let shown = format!("'{value}'");
        if good {
            lines.push(Line::ok(line_name, format!("= {shown}")));
        } else {
            let then = if restart {
                ", then restart the server (setup does with master_restart_cmd)"
            } else {
                ""
            };
            lines.push(Line::fail(
                line_name,
                format!("is {shown}, setup makes it {wanted}: run `walmgr {path} setup`{then}"),
            ));
        }
    }
    lines
}

/// Whether `value` is as setup leaves `name`, what setup wants, and whether only a
/// restart brings a change into effect.
fn judge_setting(name: &str, value: &str, config_path: &str) -> (bool, String, bool) {
    let listed = |v: &str| {
        v.split(',')
            .map(|e| e.trim().trim_matches('"'))
            .any(|e| e == LIBRARY)
    };
    match name {
        "archive_mode" => (matches!(value, "on" | "always"), "'on'".into(), true),
        "wal_level" => (value != "minimal", "'replica' (or logical)".into(), true),
        "shared_preload_libraries" => (listed(value), format!("include '{LIBRARY}'"), true),
        "archive_command" => (
            value.is_empty() || value == "(disabled)",
            "'' (PostgreSQL 16+ refuses to archive with both set)".into(),
            false,
        ),
        "archive_library" => (value == LIBRARY, format!("'{LIBRARY}'"), false),
        "walmgr.config" => (value == config_path, format!("'{config_path}'"), false),
        _ => (true, String::new(), false),
    }
}

/// Over SSH: one line per step of opening a session (connect, host key, login, the
/// standby's walmgr answering). A local standby has nothing to open.
fn standby_link(p: &mut Probe) -> Vec<Line> {
    let Some(slave) = p.config.slave.clone() else {
        p.standby = Some(Box::new(Local::new(p.config)));
        return vec![Line::ok(
            "standby link",
            "local: slave is empty, the standby's directories are on this host",
        )];
    };
    let mut ssh = match Ssh::new(p.config, &slave) {
        Ok(ssh) => ssh,
        Err(e) => return vec![Line::fail("standby link", e.to_string())],
    };
    let steps = [
        (SessionStep::Connect, "ssh connect"),
        (SessionStep::HostKey, "ssh host key"),
        (SessionStep::Login, "ssh login"),
        (SessionStep::Walmgr, "standby walmgr"),
    ];
    let passed = |step: SessionStep, ssh: &Ssh| match step {
        SessionStep::Connect => format!("{} answers", ssh.peer()),
        SessionStep::HostKey => format!("known in {}", p.config.ssh_known_hosts.display()),
        SessionStep::Login => "the key is accepted".into(),
        SessionStep::Walmgr => format!("`{}` answers", ssh.command()),
    };
    match ssh.open() {
        Ok(()) => {
            let lines = steps
                .iter()
                .map(|(step, name)| Line::ok(*name, passed(*step, &ssh)))
                .collect();
            p.standby = Some(Box::new(ssh));
            lines
        }
        Err((failed, e)) => {
            let mut lines = Vec::new();
            for (step, name) in steps {
                if step == failed {
                    lines.push(Line::fail(name, e.to_string()));
                    break;
                }
                lines.push(Line::ok(name, passed(step, &ssh)));
            }
            lines
        }
    }
}

/// The standby's directories, judged where they are (over SSH by the standby's walmgr).
fn directories(p: &mut Probe) -> Vec<Line> {
    let states = match p.config.role {
        Role::Master => match p.standby.as_mut() {
            Some(standby) => standby.inspect_dirs(),
            None => Err(Error::refused("no way to the standby was opened")),
        },
        Role::Slave => Ok(dirs::inspect_all(p.config, standby_writer(p.config))),
    };
    match states {
        Ok(states) => states.iter().map(dir_line).collect(),
        // A standby's walmgr older than check answers "unknown request".
        Err(e) if e.to_string().contains("unknown request") => vec![Line::fail(
            "directories",
            format!("{e}: the standby's walmgr is older than this one; update it there"),
        )],
        Err(e) => vec![Line::fail("directories", e.to_string())],
    }
}

/// On the standby, files arrive as the user the master's key logs in as, who owns the
/// standby's data directory (the same user replays them); without one, this user.
fn standby_writer(config: &Config) -> u32 {
    config
        .slave_data
        .as_ref()
        .and_then(|data| fs::metadata(data).ok())
        .map_or_else(|| nix::unistd::geteuid().as_raw(), |m| m.uid())
}

fn dir_line(state: &DirState) -> Line {
    let name = format!("dir {}", state.key);
    match &state.problem {
        None => Line::ok(name, format!("{}: {}", state.path.display(), state.found)),
        Some(problem) => Line::fail(name, format!("{}: {problem}", state.path.display())),
    }
}

/// A real segment, the real way: write a little WAL, switch, and wait until the archiver
/// has put the finished segment in the standby's archive. A file under its final name
/// there is whole and fsynced (the store renames only then), so finding it is the proof.
fn round_trip(p: &mut Probe) -> Vec<Line> {
    let name = "round trip";
    let timeout = p.options.round_trip_timeout;
    if let Err(e) = p.master() {
        return vec![Line::fail(name, e.to_string())];
    }
    let Probe {
        master, changes, ..
    } = &mut *p;
    let master = master.as_mut().expect("connected above");
    let switched = changes.apply(
        "write a WAL record (pg_logical_emit_message) and switch WAL segments \
         (pg_switch_wal()) on the master, to see the finished segment archived",
        || Ok((master.switch_wal()?, master.segment_size()?)),
    );
    let (segment, seg_size) = match switched {
        Ok(Some(s)) => s,
        Ok(None) => {
            return vec![Line {
                name: name.into(),
                status: Status::Skipped,
                detail: "skipped: --not-really switches no WAL segment".into(),
            }]
        }
        Err(e) => {
            return vec![Line::fail(
                name,
                format!(
                    "could not switch WAL segments: {e} (check needs a superuser in master_db)"
                ),
            )]
        }
    };
    let wal = match WalFileName::parse(&segment) {
        Ok(wal) => wal,
        Err(e) => return vec![Line::fail(name, e.to_string())],
    };
    let Some(standby) = p.standby.as_mut() else {
        return vec![Line::fail(name, "no way to the standby was opened")];
    };
    let started = Instant::now();
    loop {
        match standby.archived_len(&wal) {
            Ok(Some(len)) if len == seg_size => {
                return vec![Line::ok(
                    name,
                    format!(
                        "pg_switch_wal() finished {segment}; durable in the standby's \
                         completed_wals after {:.1} s",
                        started.elapsed().as_secs_f64()
                    ),
                )]
            }
            Ok(Some(len)) => {
                return vec![Line::fail(
                    name,
                    format!(
                        "{segment} is in the standby's completed_wals with {len} bytes, not \
                         the segment size {seg_size}: two clusters may archive into one \
                         directory"
                    ),
                )]
            }
            Ok(None) if started.elapsed() < timeout => sleep(Duration::from_millis(200)),
            Ok(None) => break,
            Err(e) => {
                return vec![Line::fail(
                    name,
                    format!("could not look for {segment} in the archive: {e}"),
                )]
            }
        }
    }
    let why = match p.master().and_then(|m| m.archive_status()) {
        Ok(s) => match s.last_error {
            Some(error) => format!("the archiver's last error: {error}"),
            None => format!(
                "{} files wait and the archiver reports no error: is archive_mode on in the \
                 running server (restart after setup)?",
                s.files_waiting
            ),
        },
        Err(e) => format!("walmgr.status could not be read: {e}"),
    };
    vec![Line::fail(
        name,
        format!(
            "pg_switch_wal() finished {segment}, but it was not in the standby's \
             completed_wals within {} s; {why} (see `walmgr {} status` and the server log)",
            timeout.as_secs(),
            p.config_path()
        ),
    )]
}

fn standby_server(p: &mut Probe) -> Vec<Line> {
    let name = "standby server";
    let data = p
        .config
        .slave_data
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let path = p.config_path();
    match p.reach.standby_server().and_then(|mut s| s.version()) {
        Ok(version) => vec![Line::ok(
            name,
            format!("PostgreSQL {version} answers on {data}"),
        )],
        Err(e) => vec![Line::fail(
            name,
            format!(
                "no server answers on slave_data {data}: {e}; `walmgr {path} restore` puts a \
                 backup in place and starts it"
            ),
        )],
    }
}

/// The standby replays walmgr's archive: in recovery, with xrestore as restore_command.
fn recovery(p: &mut Probe) -> Vec<Line> {
    let name = "recovery";
    let path = p.config_path();
    let asked = p.reach.standby_server().and_then(|mut s| {
        let in_recovery = s.in_recovery()?;
        Ok((in_recovery, s.setting("restore_command")?))
    });
    match asked {
        Ok((false, _)) => vec![Line::fail(
            name,
            "the server is not in recovery (booted or promoted): it replays nothing from the \
             archive; `walmgr CONFIG restore` makes a new standby",
        )],
        Ok((true, command)) if command.contains("xrestore") => vec![Line::ok(
            name,
            format!("in recovery, restore_command = '{command}'"),
        )],
        Ok((true, command)) => vec![Line::fail(
            name,
            format!(
                "in recovery, but restore_command = '{command}' does not run walmgr xrestore: \
                 set it to `walmgr {path} xrestore %f %p %r` (restore writes it)"
            ),
        )],
        Err(e) => vec![Line::fail(name, e.to_string())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lines: Vec<Line>) -> Report {
        Report::new(Some("master"), lines)
    }

    #[test]
    fn one_aligned_line_per_check_then_a_summary() {
        let text = report(vec![
            Line::ok("config", "master config /etc/walmgr/master.toml"),
            Line::fail(
                "setting archive_library",
                "is '', setup makes it 'walmgr': run `walmgr m.toml setup`",
            ),
            Line {
                name: "round trip".into(),
                status: Status::Skipped,
                detail: "skipped: needs `settings`, which did not pass".into(),
            },
        ])
        .to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "config                   ok    master config /etc/walmgr/master.toml",
                "setting archive_library  FAIL  is '', setup makes it 'walmgr': run `walmgr m.toml setup`",
                "round trip               skip  skipped: needs `settings`, which did not pass",
                "1 of 3 checks failed (1 skipped): fix the first FAIL first",
            ]
        );
    }

    #[test]
    fn all_passed_only_when_every_line_is_ok() {
        let good = report(vec![Line::ok("config", "x"), Line::ok("database", "y")]);
        assert!(good.ok);
        assert!(good.to_text().ends_with("all 2 checks passed\n"));
        let skipped = report(vec![
            Line::ok("config", "x"),
            Line {
                name: "database".into(),
                status: Status::Skipped,
                detail: "skipped".into(),
            },
        ]);
        assert!(!skipped.ok, "a skipped check is not a passed one");
        assert!(!report(Vec::new()).ok, "nothing checked is nothing passed");
    }

    #[test]
    fn json_names_role_verdict_and_each_check() {
        let json = serde_json::to_value(report(vec![Line::fail("dir completed_wals", "missing")]))
            .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "role": "master",
                "ok": false,
                "checks": [{"name": "dir completed_wals", "status": "fail", "detail": "missing"}],
            })
        );
    }

    #[test]
    fn settings_are_judged_as_setup_leaves_them() {
        let path = "/etc/walmgr/master.toml";
        assert!(
            judge_setting(
                "shared_preload_libraries",
                "pg_stat_statements, walmgr",
                path
            )
            .0
        );
        assert!(!judge_setting("shared_preload_libraries", "pg_stat_statements", path).0);
        assert!(judge_setting("archive_library", "walmgr", path).0);
        let (ok, wanted, restart) = judge_setting("archive_library", "", path);
        assert!(!ok && wanted == "'walmgr'" && !restart);
        assert!(judge_setting("archive_mode", "always", path).0);
        assert!(judge_setting("wal_level", "logical", path).0);
        assert!(!judge_setting("wal_level", "minimal", path).0);
        assert!(!judge_setting("walmgr.config", "/elsewhere.toml", path).0);
        let every = server_settings::setup_setting_names();
        assert!(every.contains(&"archive_library") && every.contains(&"shared_preload_libraries"));
    }

    /// A master that answers as `setup` leaves it, but whose archiver never archives:
    /// it reports `last_error`.
    struct Stuck {
        config_path: String,
        last_error: Option<String>,
    }

    impl crate::server::Master for Stuck {
        fn extension_installed(&mut self) -> Result<bool> {
            Ok(true)
        }
        fn create_extension(&mut self) -> Result<()> {
            unreachable!("check creates nothing")
        }
        fn setup(&mut self, _: &std::path::Path, _: bool) -> Result<String> {
            unreachable!("check sets nothing up")
        }
        fn stop(&mut self, _: bool) -> Result<String> {
            unreachable!("check stops nothing")
        }
        fn archive_status(&mut self) -> Result<crate::server::ArchiveStatus> {
            Ok(crate::server::ArchiveStatus {
                files_waiting: 1,
                last_error: self.last_error.clone(),
                ..Default::default()
            })
        }
    }

    impl Inspect for Stuck {
        fn version(&mut self) -> Result<String> {
            Ok("15.20".into())
        }
        fn setting(&mut self, name: &str) -> Result<String> {
            Ok(match name {
                "archive_mode" => "on",
                "wal_level" => "replica",
                "shared_preload_libraries" => "walmgr",
                "archive_command" => "",
                "archive_library" => "walmgr",
                "walmgr.config" => &self.config_path,
                other => panic!("check asked for {other}"),
            }
            .to_string())
        }
        fn in_recovery(&mut self) -> Result<bool> {
            Ok(false)
        }
    }

    impl CheckedMaster for Stuck {
        fn switch_wal(&mut self) -> Result<String> {
            Ok("000000010000000000000005".into())
        }
        fn segment_size(&mut self) -> Result<u64> {
            Ok(16 << 20)
        }
    }

    struct Servers(Option<Stuck>);

    impl Reach for Servers {
        fn master(&mut self) -> Result<Box<dyn CheckedMaster>> {
            Ok(Box::new(
                self.0.take().expect("one connection per check run"),
            ))
        }
        fn standby_server(&mut self) -> Result<Box<dyn Inspect>> {
            unreachable!("a master's check")
        }
    }

    #[test]
    fn a_round_trip_that_times_out_names_the_archivers_last_error() {
        use std::os::unix::fs::DirBuilderExt;
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("master");
        fs::create_dir(&data).unwrap();
        let path = root.path().join("master.toml");
        fs::write(
            &path,
            format!(
                "[walmgr]\nmaster_db = \"dbname=postgres\"\nmaster_data = \"{}\"\n\
                 walmgr_data = \"{}\"\n",
                data.display(),
                root.path().join("walshipping").display()
            ),
        )
        .unwrap();
        let config = Config::load(&path, &[]).unwrap();
        for dir in crate::remote::slave_dirs(&config) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .unwrap();
        }
        let stuck = Stuck {
            config_path: path.canonicalize().unwrap().display().to_string(),
            last_error: Some("could not write logs.complete: No space left on device".into()),
        };
        let report = run(
            &config,
            &mut Servers(Some(stuck)),
            Options {
                round_trip_timeout: Duration::from_millis(300),
            },
            &mut Changes::new(false),
        );
        let failed: Vec<&Line> = report
            .checks
            .iter()
            .filter(|l| l.status != Status::Ok)
            .collect();
        assert_eq!(failed.len(), 1, "{}", report.to_text());
        assert_eq!(failed[0].name, "round trip");
        let detail = &failed[0].detail;
        assert!(
            detail.contains("000000010000000000000005")
                && detail.contains("No space left on device")
                && detail.contains("status"),
            "{detail}"
        );
    }

    #[test]
    fn an_unreadable_config_is_one_failed_check() {
        let e = Error::config(
            crate::error::Origin::Line("m.toml".into(), 3),
            Some("loop_delay"),
            "not a number",
        );
        let r = config_unreadable(&e);
        assert!(!r.ok);
        assert_eq!(r.role, None);
        assert!(r.checks[0].detail.contains("m.toml:3"), "{:?}", r.checks);
    }
}
