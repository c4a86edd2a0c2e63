//! docs/monitoring.md documents `status --json` and `status --prometheus` field by field;
//! these tests read its tables and hold the output to them, both ways: no field printed
//! that the page does not list, none listed that is not printed, each of the listed type.

use serde_json::Value;

use super::*;

const DOC: &str = include_str!("../../../docs/monitoring.md");

/// The rows of the first table after the line starting with `heading`.
fn table(heading: &str) -> Vec<Vec<String>> {
    let mut lines = DOC.lines().skip_while(|l| !l.starts_with(heading));
    assert!(
        lines.next().is_some(),
        "docs/monitoring.md has no {heading:?}"
    );
    lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its |---| line
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

fn conforms(value: &Value, doc_type: &str) -> bool {
    let (base, nullable) = match doc_type.strip_suffix(" or null") {
        Some(base) => (base, true),
        None => (doc_type, false),
    };
    match (base, value) {
        (_, Value::Null) => nullable,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("number", Value::Number(_)) => true,
        ("array of backup sets", Value::Array(sets)) => {
            sets.iter().all(|set| check_object(set, "### Backup set"))
        }
        _ => false,
    }
}

/// Checks `value` against the table under `heading`; panics naming what differs.
fn check_object(value: &Value, heading: &str) -> bool {
    let rows = table(heading);
    let documented: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let object = value.as_object().expect("an object");
    let mut printed: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut listed = documented.clone();
    printed.sort();
    listed.sort();
    assert_eq!(
        printed, listed,
        "fields printed vs documented under {heading:?}"
    );
    for row in &rows {
        let (field, doc_type) = (&row[0], &row[1]);
        assert!(
            conforms(&object[field], doc_type),
            "{heading} {field}: {} is not {doc_type}",
            object[field]
        );
    }
    true
}

fn set(finished_unix: Option<i64>, stop_lsn: Option<&str>) -> BackupSetStatus {
    BackupSetStatus {
        set: "data.master".into(),
        label: "walmgr".into(),
        start_lsn: "0/2000028".into(),
        stop_lsn: stop_lsn.map(str::to_string),
        start_time: "2026-11-30 17:00:00 UTC".into(),
        first_wal: "000000010000000000000002".into(),
        size_bytes: 31_457_280,
        finished_unix,
    }
}

/// Every optional field set (`full`) or none (`!full`).
fn master(full: bool) -> MasterStatus {
    let some = |s: &str| full.then(|| s.to_string());
    MasterStatus {
        archive: ArchiveStatus {
            last_archived_wal: some("000000010000000000000003"),
            last_archived_time: some("2026-11-30 18:00:00.5+00"),
            last_archived_time_unix: full.then_some(1_796_061_600.5),
            files_waiting: 2,
            bytes_behind: full.then_some(4096),
            last_failed_wal: some("000000010000000000000004"),
            last_error: some("ssh:postgres@standby:22: cannot connect"),
            last_error_time: some("2026-11-30 18:00:01+00"),
            transport: some("local"),
            archived_count: 17,
            failed_count: 1,
            shipper_state: some("idle"),
            partial_lsn: some("0/3000100"),
            partial_time: some("2026-11-30 18:00:02+00"),
            partial_time_unix: full.then_some(1_796_061_602.0),
            partial_bytes_behind: full.then_some(0),
            shipper_errors: 0,
            shipper_last_error: some("the standby answered nothing"),
        },
        backups: if full {
            vec![set(Some(1_796_058_000), Some("0/2000100"))]
        } else {
            vec![set(None, None)]
        },
        backups_error: some("cannot list"),
    }
}

fn standby(full: bool) -> StandbyStatus {
    let some = |s: &str| full.then(|| s.to_string());
    StandbyStatus {
        server: "running".into(),
        in_recovery: full.then_some(true),
        replay_lsn: some("0/3000100"),
        replay_paused: full.then_some(false),
        last_replayed_xact: some("2026-11-30 18:00:00+00"),
        replay_lag_seconds: full.then_some(1.25),
        pause_file: false,
        stop_file: false,
        backup_lock: some("pid 4242 on standby"),
        archived_segments: 3,
        newest_archived: some("000000010000000000000003"),
        newest_partial: some("000000010000000000000004"),
        partial_reaches: some("0/4000100"),
        backups: if full {
            vec![set(Some(1), None)]
        } else {
            Vec::new()
        },
    }
}

#[test]
fn status_json_of_a_master_has_exactly_the_documented_fields_and_types() {
    for full in [true, false] {
        let json = serde_json::to_value(Status::Master(master(full))).unwrap();
        assert_eq!(json["role"], "master");
        check_object(&json, "### Master");
    }
}

#[test]
fn status_json_of_a_standby_has_exactly_the_documented_fields_and_types() {
    for full in [true, false] {
        let json = serde_json::to_value(Status::Slave(standby(full))).unwrap();
        assert_eq!(json["role"], "slave");
        check_object(&json, "### Standby");
    }
}

#[test]
fn every_prometheus_metric_is_documented_with_its_type_and_side() {
    let rows = table("## `status --prometheus`");
    let documented: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    let mut seen = Vec::new();
    let mut without_error = master(true);
    without_error.backups_error = None;
    for (side, status) in [
        ("master", Status::Master(without_error)),
        ("slave", Status::Slave(standby(true))),
    ] {
        for line in prometheus::render(&status).lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, kind) = rest.split_once(' ').unwrap();
            let doc = documented.iter().find(|d| d.0 == name);
            let Some((_, doc_kind, doc_side)) = doc else {
                panic!("{name} is exported but not in docs/monitoring.md");
            };
            assert_eq!(kind, *doc_kind, "{name}'s type");
            assert!(*doc_side == side || *doc_side == "both", "{name} on {side}");
            seen.push(name.to_string());
        }
    }
    for (name, ..) in &documented {
        assert!(
            seen.iter().any(|s| s == name),
            "{name} documented, never exported"
        );
    }
}

#[test]
fn check_json_is_documented() {
    let fields: Vec<String> = table("## `check --json`")
        .iter()
        .map(|r| r[0].clone())
        .collect();
    let report = crate::check::config_unreadable(&crate::Error::refused("x"));
    let json = serde_json::to_value(&report).unwrap();
    let mut printed: Vec<&String> = json.as_object().unwrap().keys().collect();
    printed.sort();
    let mut fields_sorted: Vec<&String> = fields.iter().collect();
    fields_sorted.sort();
    assert_eq!(printed, fields_sorted);
    let line = json["checks"][0].as_object().unwrap();
    let mut keys: Vec<&String> = line.keys().collect();
    keys.sort();
    assert_eq!(keys, ["detail", "name", "status"]);
}
