//! What a DBA sees when a walmgr command fails in a test: the harness's promise that a
//! failure prints the command and its output, the archive, and every server's and the sshd's
//! log, without the test asking for them.

use walmgr_tests::shipping::{path, Shipping};
use walmgr_tests::Pg;

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

#[test]
fn a_failing_walmgr_command_reports_the_archive_and_every_log() {
    let s = Shipping::over_ssh(WALMGR, &Pg::major(15), "report", &["--wal-segsize=1"], "");
    s.setup();
    let archived = s.switch_and_wait();
    let standby = s.standby("standby");

    let failing = s
        .walmgr()
        .args([
            path(&s.master_config),
            "xarchive",
            "/no/such/file",
            &archived,
        ])
        .as_postgres();
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| failing.ok()))
        .expect_err("xarchive of a missing file fails");
    let report = report.downcast_ref::<String>().cloned().unwrap_or_default();
    let sections = [
        "xarchive /no/such/file".to_string(),
        "--- stderr ---".to_string(),
        format!("--- completed_wals: {} ---", s.completed_wals.display()),
        format!("  {archived} {}", s.seg_size()),
        format!("--- partial_wals: {} ---", s.partial_wals.display()),
        format!("--- server log of the master: {}", s.master.log.display()),
        format!("--- server log of standby: {}", standby.log.display()),
        format!(
            "--- sshd log of the standby: {}",
            s.sshd().log_path().display()
        ),
        "Accepted publickey for postgres".to_string(),
    ];
    for section in sections {
        assert!(
            report.contains(&section),
            "{section:?} missing from:\n{report}"
        );
    }
}
