//! `walmgr CONFIG check` end to end: on a master and standby set up as the manual says,
//! every check passes (locally and over SSH), a real segment makes the round trip; and
//! each way a DBA breaks a setup fails the check that names it, with what to do.

use std::fs;
use std::path::Path;
use std::process::Output;

use walmgr_tests::shipping::{path, Shipping};
use walmgr_tests::{Pg, TestCommand};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// What one `check` said: its exit status and its lines.
struct Checked {
    passed: bool,
    stdout: String,
    described: String,
}

impl Checked {
    /// The line of check `name`; panics with the whole output if there is none.
    fn line(&self, name: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.split("  ").next() == Some(name))
            .unwrap_or_else(|| panic!("no line {name:?} from {}:\n{}", self.described, self.stdout))
    }

    /// Asserts that check `name` reported `status` (ok, FAIL, skip) and mentions each of
    /// `words`.
    fn says(&self, name: &str, status: &str, words: &[&str]) {
        let line = self.line(name);
        let rest = line[name.len()..].trim_start();
        assert!(
            rest.starts_with(&format!("{status} ")),
            "{name} should be {status}:\n{}",
            self.stdout
        );
        for word in words {
            assert!(
                line.contains(word),
                "{name}: {word:?} missing in:\n{}",
                self.stdout
            );
        }
    }

    fn all_passed(&self) {
        assert!(
            self.passed && self.stdout.contains("checks passed"),
            "{} should pass:\n{}",
            self.described,
            self.stdout
        );
        assert!(!self.stdout.contains("FAIL"), "{}", self.stdout);
    }

    fn failed(&self) {
        assert!(
            !self.passed,
            "{} should have failed:\n{}",
            self.described, self.stdout
        );
    }
}

/// `walmgr CONFIG check` as postgres (who runs the server and owns the archive), with
/// `extra` options before the config.
fn check(s: &Shipping, config: &Path, extra: &[&str]) -> Checked {
    run_check(
        s.walmgr()
            .args(extra)
            .args([path(config), "check", "--timeout", "30"])
            .as_postgres(),
    )
}

fn run_check(command: TestCommand) -> Checked {
    let described = command.describe();
    let out: Output = command.run();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "{described} exited with {:?}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Checked {
        passed: code == Some(0),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        described,
    }
}

/// Master and standby on one machine, set up as the quick start does: every check passes,
/// the round trip finds the switched segment in the archive, and --json says the same.
fn check_passes_on_a_set_up_master_and_standby(major: u32) {
    let s = Shipping::with_module(
        WALMGR,
        &Pg::major(major),
        &format!("check-ok{major}"),
        &["--wal-segsize=1"],
    );
    s.switch_and_wait();
    let _standby = s.standby("standby");

    let master = check(&s, &s.master_config, &[]);
    println!("{}", master.stdout);
    master.all_passed();
    master.says("config", "ok", &["master config"]);
    master.says("database", "ok", &[&format!("PostgreSQL {major}")]);
    master.says("setting archive_library", "ok", &["'walmgr'"]);
    master.says("setting shared_preload_libraries", "ok", &["walmgr"]);
    master.says("dir completed_wals", "ok", &["owner postgres, mode 0700"]);
    master.says("round trip", "ok", &["pg_switch_wal()", "durable"]);
    // The segment the round trip switched is in the archive, whole.
    let line = master.line("round trip");
    let segment = line
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.len() == 24 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("the round trip names its segment");
    assert!(s.archived().contains(segment), "{segment} not archived");

    let json = s
        .walmgr()
        .args([path(&s.master_config), "check", "--json"])
        .as_postgres()
        .ok();
    let report: serde_json::Value = serde_json::from_str(&json).expect("check --json");
    assert_eq!(report["ok"], true, "{json}");
    assert_eq!(report["role"], "master");
    assert!(report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "ok"));

    // --not-really switches no segment: it says it would, and the round trip is not run.
    let archived = s.archived();
    let dry = check(&s, &s.master_config, &["-n"]);
    dry.failed();
    dry.says("round trip", "skip", &["--not-really"]);
    assert!(
        dry.stdout.contains("would: write a WAL record"),
        "{}",
        dry.stdout
    );
    assert_eq!(s.archived(), archived);

    let standby = check(&s, &s.slave_config, &[]);
    standby.all_passed();
    standby.says("standby server", "ok", &[&format!("PostgreSQL {major}")]);
    standby.says("recovery", "ok", &["xrestore"]);
}

#[test]
fn check_passes_on_a_set_up_master_and_standby_on_postgresql_15() {
    check_passes_on_a_set_up_master_and_standby(15);
}

/// PostgreSQL 16+ has the new archive-module API and refuses archive_command beside
/// archive_library; pg_logical_emit_message has a flush argument since 17.
#[test]
fn check_passes_on_a_set_up_master_and_standby_on_postgresql_18() {
    check_passes_on_a_set_up_master_and_standby(18);
}

/// archive_library emptied behind walmgr's back (ALTER SYSTEM, reload): the setting's
/// check fails and says to run setup; the round trip is not attempted.
#[test]
fn check_fails_naming_archive_library_when_it_is_not_set() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "check-lib", &["--wal-segsize=1"]);
    s.master.execute("ALTER SYSTEM SET archive_library = ''");
    s.master.reload();

    let out = check(&s, &s.master_config, &[]);
    out.failed();
    out.says(
        "setting archive_library",
        "FAIL",
        &["is ''", "'walmgr'", "setup"],
    );
    out.says("setting shared_preload_libraries", "ok", &[]);
    out.says("round trip", "skip", &["settings"]);
    assert!(out.stdout.contains("1 of "), "{}", out.stdout);
}

/// The archive's directories broken on the standby's side: one missing, one with the wrong
/// owner and mode. Each directory's line names it and the command that fixes it.
#[test]
fn check_fails_naming_a_missing_or_foreign_archive_directory() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "check-dirs", &["--wal-segsize=1"]);
    let partial_wals = s.partial_wals.clone();
    fs::rename(&partial_wals, s.dir.join("partial_wals.aside")).unwrap();
    // root's, open to all: the archiver (postgres) could not write there.
    let completed = &s.completed_wals;
    std::os::unix::fs::chown(completed, Some(0), Some(0)).unwrap();
    fs::set_permissions(
        completed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let out = check(&s, &s.master_config, &[]);
    out.failed();
    out.says("dir partial_wals", "FAIL", &["missing", "setup"]);
    out.says(
        "dir completed_wals",
        "FAIL",
        &[
            "owned by root",
            "chown -R postgres",
            "mode 0755",
            "chmod 700",
        ],
    );
    out.says("round trip", "skip", &["directories"]);

    // The standby's own check judges the same directories the same way.
    let standby = check(&s, &s.slave_config, &[]);
    standby.failed();
    standby.says("dir partial_wals", "FAIL", &["missing"]);
}

/// Over SSH: every step of the session has its line and passes, and the round trip goes
/// through the standby's walmgr. Then the standby's host key is unknown, and then the
/// standby is gone: each fails at its own step, and the later steps are not claimed.
#[test]
fn check_over_ssh_passes_then_names_an_unknown_host_key_and_an_unreachable_standby() {
    let s = Shipping::over_ssh(
        WALMGR,
        &Pg::major(15),
        "check-ssh",
        &["--wal-segsize=1"],
        "",
    );
    s.setup();

    let out = check(&s, &s.master_config, &[]);
    println!("{}", out.stdout);
    out.all_passed();
    out.says("ssh connect", "ok", &["ssh:postgres@127.0.0.1"]);
    out.says("ssh host key", "ok", &["known in"]);
    out.says("ssh login", "ok", &[]);
    out.says("standby walmgr", "ok", &["xserve"]);
    out.says("dir completed_wals", "ok", &["owner postgres, mode 0700"]);
    out.says("round trip", "ok", &["durable"]);

    // A directory judged on the standby, by the standby's walmgr.
    std::os::unix::fs::chown(&s.completed_wals, Some(0), Some(0)).unwrap();
    let foreign = check(&s, &s.master_config, &[]);
    foreign.failed();
    foreign.says("dir completed_wals", "FAIL", &["owned by root", "chown"]);
    std::os::unix::fs::chown(&s.completed_wals, Some(postgres_uid(&s)), None).unwrap();

    let empty = s.dir.write("empty_known_hosts", "");
    let set = format!("ssh_known_hosts={}", path(&empty));
    let unknown = check(&s, &s.master_config, &["--set", &set]);
    println!("{}", unknown.stdout);
    unknown.failed();
    unknown.says("ssh connect", "ok", &[]);
    unknown.says(
        "ssh host key",
        "FAIL",
        &[
            "host key not trusted",
            &s.sshd().fingerprint(),
            "ssh-keyscan",
        ],
    );
    assert!(!unknown.stdout.contains("ssh login"), "{}", unknown.stdout);
    unknown.says("directories", "skip", &["standby link"]);
    unknown.says("round trip", "skip", &[]);

    s.sshd().stop();
    let gone = check(&s, &s.master_config, &[]);
    gone.failed();
    gone.says("ssh connect", "FAIL", &["cannot connect"]);
    gone.says("database", "ok", &[]);
    gone.says("round trip", "skip", &["directories"]);
}

/// A config that does not parse is the first (and only) failed check, in check's format.
#[test]
fn check_reports_an_unreadable_config_as_its_first_check() {
    let dir = walmgr_tests::TestDir::new("check-config");
    let config = dir.write("master.toml", "[walmgr]\nloop_delay = \"soon\"\n");
    let out = run_check(TestCommand::new(WALMGR).args([path(&config), "check"]));
    out.failed();
    out.says("config", "FAIL", &["master.toml", "loop_delay"]);
}

fn postgres_uid(s: &Shipping) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(&s.master.data).unwrap().uid()
}
