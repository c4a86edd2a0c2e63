//! `status --prometheus`: the status in Prometheus' text exposition format (version
//! 0.0.4), for node_exporter's textfile collector: run it from cron into a `.prom` file
//! (written to a temp name and renamed, as the collector reads whatever is there).
//!
//! Conventions kept: every metric is `walmgr_`-prefixed, in base units (seconds, bytes),
//! counters end in `_total`, times are `_timestamp_seconds` since 1970; each family has its
//! HELP and TYPE line before its one sample. A value walmgr does not know (nothing
//! archived yet, the server down) is left out rather than exported as 0, which would
//! read as "very old" or "no lag" on a dashboard.

use super::{BackupSetStatus, MasterStatus, StandbyStatus, Status};

/// The exposition of `status`, ending in a newline.
pub fn render(status: &Status) -> String {
    let mut out = Exposition::default();
    match status {
        Status::Master(s) => master(&mut out, s),
        Status::Slave(s) => standby(&mut out, s),
    }
    out.text
}

fn master(out: &mut Exposition, s: &MasterStatus) {
    out.info("master");
    out.counter(
        "walmgr_archived_total",
        "WAL files the walmgr archive module archived since the server started.",
        s.archive.archived_count as f64,
    );
    out.counter(
        "walmgr_archive_failures_total",
        "Failed archive attempts since the server started (see walmgr.status last_error).",
        s.archive.failed_count as f64,
    );
    out.gauge(
        "walmgr_files_waiting",
        "WAL files ready in pg_wal that are not archived yet.",
        Some(s.archive.files_waiting as f64),
    );
    out.gauge(
        "walmgr_archive_lag_bytes",
        "Bytes of WAL written after the end of the last archived segment.",
        s.archive.bytes_behind.map(|b| b as f64),
    );
    out.gauge(
        "walmgr_last_archived_timestamp_seconds",
        "When the last WAL file was archived, seconds since 1970.",
        s.archive.last_archived_time_unix,
    );
    out.gauge(
        "walmgr_partial_lag_bytes",
        "Bytes of flushed WAL the standby's partial copy does not hold yet.",
        s.archive.partial_bytes_behind.map(|b| b as f64),
    );
    out.gauge(
        "walmgr_partial_shipped_timestamp_seconds",
        "When in-progress WAL was last shipped to the standby, seconds since 1970.",
        s.archive.partial_time_unix,
    );
    out.counter(
        "walmgr_partial_ship_failures_total",
        "Failed attempts to ship in-progress WAL since the server started.",
        s.archive.shipper_errors as f64,
    );
    out.gauge(
        "walmgr_backups_listed",
        "1 when the standby's backup sets could be listed; 0 when not (then no other \
         walmgr_backup metric is exported).",
        Some(if s.backups_error.is_none() { 1.0 } else { 0.0 }),
    );
    if s.backups_error.is_none() {
        backups(out, &s.backups);
    }
}

fn standby(out: &mut Exposition, s: &StandbyStatus) {
    out.info("slave");
    let running = s.in_recovery.is_some();
    out.gauge(
        "walmgr_server_up",
        "1 when the standby's server accepts connections, else 0.",
        Some(flag(running)),
    );
    out.gauge(
        "walmgr_in_recovery",
        "1 while the standby's server is in recovery (replaying), 0 once it is promoted.",
        s.in_recovery.map(flag),
    );
    out.gauge(
        "walmgr_replay_paused",
        "1 while replay is paused (walmgr pause or pg_wal_replay_pause()).",
        s.replay_paused.map(flag),
    );
    out.gauge(
        "walmgr_replay_lag_seconds",
        "Age of the newest replayed commit (grows while the master commits nothing).",
        s.replay_lag_seconds,
    );
    out.gauge(
        "walmgr_archived_segments",
        "WAL segments in the standby's completed_wals.",
        Some(s.archived_segments as f64),
    );
    out.gauge(
        "walmgr_pause_file",
        "1 while the PAUSE file holds back archive replay.",
        Some(flag(s.pause_file)),
    );
    out.gauge(
        "walmgr_stop_file",
        "1 while the STOP file (written by boot) ends archive replay.",
        Some(flag(s.stop_file)),
    );
    out.gauge(
        "walmgr_backup_lock_held",
        "1 while a live process holds BACKUPLOCK (a backup is running).",
        Some(flag(s.backup_lock.is_some())),
    );
    backups(out, &s.backups);
}

fn backups(out: &mut Exposition, sets: &[BackupSetStatus]) {
    out.gauge(
        "walmgr_backups",
        "Backup sets kept on the standby.",
        Some(sets.len() as f64),
    );
    // Sets are listed newest first.
    let newest = sets.first();
    out.gauge(
        "walmgr_backup_last_success_timestamp_seconds",
        "When the newest backup set finished, seconds since 1970.",
        newest.and_then(|s| s.finished_unix).map(|t| t as f64),
    );
    out.gauge(
        "walmgr_backup_last_size_bytes",
        "Size of the newest backup set.",
        newest.map(|s| s.size_bytes as f64),
    );
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str, sample: &str, value: f64) {
        // HELP text escapes only backslash and newline; the format has no other quoting.
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        self.text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {}\n",
            number(value)
        ));
    }

    fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help, name, value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: Option<f64>) {
        if let Some(value) = value {
            self.family(name, "gauge", help, name, value);
        }
    }

    /// The info-metric convention: a gauge of 1 whose labels carry the facts.
    fn info(&mut self, role: &str) {
        let sample = format!(
            "walmgr_info{{role=\"{}\",version=\"{}\"}}",
            label(role),
            label(env!("CARGO_PKG_VERSION"))
        );
        self.family(
            "walmgr_info",
            "gauge",
            "Which side this walmgr status describes (role) and walmgr's version.",
            &sample,
            1.0,
        );
    }
}

/// A label value: backslash, double quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whole numbers without a fraction; others as Rust prints them (never an exponent).
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn master_status() -> MasterStatus {
        MasterStatus {
            archive: crate::server::ArchiveStatus {
                last_archived_wal: Some("000000010000000000000003".into()),
                last_archived_time: Some("2026-11-30 18:00:00.5+00".into()),
                last_archived_time_unix: Some(1_796_061_600.5),
                files_waiting: 2,
                bytes_behind: Some(4096),
                last_failed_wal: None,
                last_error: None,
                last_error_time: None,
                transport: Some("local".into()),
                archived_count: 17,
                failed_count: 1,
                shipper_state: Some("idle".into()),
                partial_lsn: Some("0/3000100".into()),
                partial_time: None,
                partial_time_unix: None,
                partial_bytes_behind: Some(0),
                shipper_errors: 0,
                shipper_last_error: None,
            },
            backups: vec![BackupSetStatus {
                set: "data.master".into(),
                label: "walmgr".into(),
                start_lsn: "0/2000028".into(),
                stop_lsn: Some("0/2000100".into()),
                start_time: "2026-11-30 17:00:00 UTC".into(),
                first_wal: "000000010000000000000002".into(),
                size_bytes: 31_457_280,
                finished_unix: Some(1_796_058_000),
            }],
            backups_error: None,
        }
    }

    #[test]
    fn a_master_exports_counters_gauges_and_the_newest_backup() {
        let text = render(&Status::Master(master_status()));
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.starts_with(&format!(
            "# HELP walmgr_info Which side this walmgr status describes (role) and walmgr's version.\n\
             # TYPE walmgr_info gauge\n\
             walmgr_info{{role=\"master\",version=\"{version}\"}} 1\n"
        )));
        for expected in [
            "# TYPE walmgr_archived_total counter\nwalmgr_archived_total 17\n",
            "# TYPE walmgr_archive_failures_total counter\nwalmgr_archive_failures_total 1\n",
            "walmgr_last_archived_timestamp_seconds 1796061600.5\n",
            "walmgr_partial_lag_bytes 0\n",
            "walmgr_backup_last_success_timestamp_seconds 1796058000\n",
            "walmgr_backup_last_size_bytes 31457280\n",
            "walmgr_backups_listed 1\n",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
        assert!(
            !text.contains("walmgr_partial_shipped_timestamp_seconds"),
            "an unknown time is left out, not exported as 0:\n{text}"
        );
    }

    #[test]
    fn unlisted_backups_export_no_backup_figures() {
        let mut s = master_status();
        s.backups.clear();
        s.backups_error = Some("cannot list: ssh:postgres@standby:22: cannot connect".into());
        let text = render(&Status::Master(s));
        assert!(text.contains("walmgr_backups_listed 0\n"), "{text}");
        assert!(!text.contains("walmgr_backups "), "{text}");
    }

    #[test]
    fn a_standby_that_is_down_says_so_and_leaves_replay_figures_out() {
        let s = StandbyStatus {
            server: "not running or not accepting connections".into(),
            in_recovery: None,
            replay_lsn: None,
            replay_paused: None,
            last_replayed_xact: None,
            replay_lag_seconds: None,
            pause_file: true,
            stop_file: false,
            backup_lock: None,
            archived_segments: 12,
            newest_archived: Some("00000001000000000000000C".into()),
            newest_partial: None,
            partial_reaches: None,
            backups: Vec::new(),
        };
        let text = render(&Status::Slave(s));
        assert!(text.contains("walmgr_server_up 0\n"), "{text}");
        assert!(text.contains("walmgr_pause_file 1\n"), "{text}");
        assert!(text.contains("walmgr_archived_segments 12\n"), "{text}");
        assert!(text.contains("walmgr_backups 0\n"), "{text}");
        assert!(!text.contains("walmgr_replay_lag_seconds"), "{text}");
        assert!(!text.contains("walmgr_backup_last_success"), "{text}");
    }

    #[test]
    fn numbers_and_labels_are_written_as_the_format_reads_them() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1_796_061_600.5), "1796061600.5");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
