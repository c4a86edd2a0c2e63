//! Monitoring end to end: a real master and standby (archiving, a backup, replay), and what
//! `status --json` and `status --prometheus` print for them. The JSON is held to the tables
//! of docs/monitoring.md; the exposition is read by a strict parser of Prometheus' text
//! format (0.0.4), written here so that nothing lenient stands between walmgr and the test.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use walmgr_core::server::ArchiveStatus;
use walmgr_core::status::{prometheus, MasterStatus, Status};
use walmgr_tests::shipping::{path, Shipping, WAIT};
use walmgr_tests::Pg;

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

const DOC: &str = include_str!("../../docs/monitoring.md");

/// A master archiving through walmgr, with one backup set, and a standby replaying from
/// the archive that has replayed a commit. Status is asked of both, as postgres.
#[test]
fn status_json_and_prometheus_describe_a_real_master_and_standby() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "monitoring", &["--wal-segsize=1"]);
    s.master.execute("CREATE TABLE watched (id int)");
    s.switch_and_wait();
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    let standby = s.standby("standby");
    s.master.execute("INSERT INTO watched VALUES (1)");
    s.switch_and_wait();
    standby.wait_until("the standby replays the insert", WAIT, || {
        standby.try_connect().is_ok()
            && standby.query_one::<i64>("SELECT count(*) FROM watched") == 1
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let recent = |t: f64| (now - 600.0..now + 60.0).contains(&t);

    let status = |config: &std::path::Path, format: &str| {
        s.walmgr()
            .args([path(config), "status", format])
            .as_postgres()
            .ok()
    };

    // The master.
    let json: Value = serde_json::from_str(&status(&s.master_config, "--json")).unwrap();
    assert_documented(&json, "### Master");
    assert_eq!(json["files_waiting"], 0, "{json}");
    assert!(json["archived_count"].as_i64().unwrap() >= 2, "{json}");
    assert_eq!(json["backups"].as_array().unwrap().len(), 1, "{json}");

    let text = status(&s.master_config, "--prometheus");
    println!("{text}");
    let metrics = parse(&text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    assert_eq!(
        metrics.value("walmgr_info", &[("role", "master")]),
        Some(1.0)
    );
    assert_eq!(metrics.kind("walmgr_archived_total"), "counter");
    assert!(metrics.single("walmgr_archived_total") >= 2.0, "{text}");
    assert_eq!(metrics.single("walmgr_archive_failures_total"), 0.0);
    assert_eq!(metrics.single("walmgr_files_waiting"), 0.0);
    assert!(recent(
        metrics.single("walmgr_last_archived_timestamp_seconds")
    ));
    assert_eq!(metrics.single("walmgr_backups"), 1.0);
    assert!(recent(
        metrics.single("walmgr_backup_last_success_timestamp_seconds")
    ));
    assert!(metrics.single("walmgr_partial_lag_bytes") >= 0.0);

    // The standby.
    let json: Value = serde_json::from_str(&status(&s.slave_config, "--json")).unwrap();
    assert_documented(&json, "### Standby");
    assert_eq!(json["in_recovery"], true, "{json}");

    let text = status(&s.slave_config, "--prometheus");
    println!("{text}");
    let metrics = parse(&text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    assert_eq!(
        metrics.value("walmgr_info", &[("role", "slave")]),
        Some(1.0)
    );
    assert_eq!(metrics.single("walmgr_server_up"), 1.0);
    assert_eq!(metrics.single("walmgr_in_recovery"), 1.0);
    assert_eq!(metrics.single("walmgr_replay_paused"), 0.0);
    let lag = metrics.single("walmgr_replay_lag_seconds");
    assert!((0.0..600.0).contains(&lag), "replay lag {lag}");
    assert!(metrics.single("walmgr_archived_segments") >= 2.0);
    assert_eq!(metrics.single("walmgr_backups"), 1.0);

    // The standby's server stopped: it says so, and what it cannot know is left out.
    standby.stop();
    let text = status(&s.slave_config, "--prometheus");
    let metrics = parse(&text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    assert_eq!(metrics.single("walmgr_server_up"), 0.0);
    assert!(!metrics.families.contains_key("walmgr_replay_lag_seconds"));
    let json: Value = serde_json::from_str(&status(&s.slave_config, "--json")).unwrap();
    assert_documented(&json, "### Standby");
    assert_eq!(json["in_recovery"], Value::Null);
}

/// Every metric family walmgr can export, with every optional value present and with a
/// label value that needs escaping, passes the strict parser.
#[test]
fn every_metric_walmgr_can_export_parses_strictly() {
    let status = MasterStatus {
        archive: ArchiveStatus {
            last_archived_wal: Some("000000010000000000000003".into()),
            last_archived_time: Some("2026-11-30 18:00:00.5+00".into()),
            last_archived_time_unix: Some(1_796_061_600.5),
            files_waiting: 0,
            bytes_behind: Some(1),
            last_failed_wal: None,
            last_error: None,
            last_error_time: None,
            transport: Some("local".into()),
            archived_count: 3,
            failed_count: 0,
            shipper_state: None,
            partial_lsn: None,
            partial_time: Some("2026-11-30 18:00:00+00".into()),
            partial_time_unix: Some(1_796_061_600.0),
            partial_bytes_behind: Some(0),
            shipper_errors: 0,
            shipper_last_error: None,
        },
        backups: Vec::new(),
        backups_error: None,
    };
    let text = prometheus::render(&Status::Master(status));
    let metrics = parse(&text).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"));
    assert_eq!(
        metrics.single("walmgr_partial_shipped_timestamp_seconds"),
        1_796_061_600.0
    );
}

/// The parser refuses what the format (or its conventions) forbids.
#[test]
fn the_parser_is_strict() {
    let bad = [
        ("walmgr_x 1\n", "sample before its TYPE"),
        ("# TYPE walmgr_x gauge\nwalmgr_x 1", "no final newline"),
        ("# TYPE walmgr_x gauge\nwalmgr_x one\n", "not a number"),
        (
            "# TYPE walmgr_x counter\nwalmgr_x 1\n",
            "counter without _total",
        ),
        (
            "# TYPE walmgr_x gauge\n# TYPE walmgr_x gauge\nwalmgr_x 1\n",
            "TYPE twice",
        ),
        (
            "# TYPE walmgr_x gauge\nwalmgr_x{a=\"1\"} 1\nwalmgr_x{a=\"1\"} 2\n",
            "same series twice",
        ),
        (
            "# TYPE walmgr_x gauge\nwalmgr_x{a=\"\\q\"} 1\n",
            "bad escape",
        ),
        ("# TYPE walmgr_x gauge\nwalmgr_x{a=1} 1\n", "unquoted label"),
        ("# TYPE 1x gauge\n1x 1\n", "bad metric name"),
        (
            "# TYPE walmgr_x gauge\nwalmgr_x 1\n# TYPE walmgr_y gauge\nwalmgr_y 1\nwalmgr_x 2\n",
            "family not contiguous",
        ),
        (
            "# TYPE walmgr_x gauge\nwalmgr_x 1\n# HELP walmgr_x late\n",
            "HELP after samples",
        ),
    ];
    for (text, why) in bad {
        assert!(parse(text).is_err(), "accepted ({why}):\n{text}");
    }
    let good = "# HELP walmgr_x Says \\\\ and \\n.\n# TYPE walmgr_x gauge\n\
                walmgr_x{a=\"q\\\"\",b=\"\"} -1.5e3 1700000000000\nwalmgr_x +Inf\n";
    let metrics = parse(good).unwrap();
    assert_eq!(
        metrics.value("walmgr_x", &[("a", "q\""), ("b", "")]),
        Some(-1500.0)
    );
}

/// `json` has exactly the fields of the table under `heading`, each of its type.
fn assert_documented(json: &Value, heading: &str) {
    let rows = doc_table(heading);
    let object = json.as_object().expect("status --json is an object");
    let mut printed: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut listed: Vec<&str> = rows.iter().map(|(f, _)| f.as_str()).collect();
    printed.sort();
    listed.sort();
    assert_eq!(printed, listed, "fields of {heading} printed vs documented");
    for (field, doc_type) in &rows {
        let value = &object[field.as_str()];
        let (base, nullable) = match doc_type.strip_suffix(" or null") {
            Some(base) => (base, true),
            None => (doc_type.as_str(), false),
        };
        let fits = match (base, value) {
            (_, Value::Null) => nullable,
            ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
            ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
            ("number", Value::Number(_)) => true,
            ("array of backup sets", Value::Array(sets)) => {
                sets.iter()
                    .for_each(|set| assert_documented(set, "### Backup set"));
                true
            }
            _ => false,
        };
        assert!(fits, "{heading} {field}: {value} is not {doc_type}");
    }
}

/// (field, type) rows of the first table after the line starting with `heading`.
fn doc_table(heading: &str) -> Vec<(String, String)> {
    DOC.lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].to_string(), cells[1].to_string())
        })
        .collect()
}

// ---- A strict parser of the Prometheus text exposition format, version 0.0.4 ----

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: Option<String>,
    /// Label set (sorted) -> value.
    samples: BTreeMap<Vec<(String, String)>, f64>,
}

#[derive(Debug, Default)]
struct Metrics {
    families: BTreeMap<String, Family>,
}

impl Metrics {
    fn kind(&self, name: &str) -> &str {
        &self.families[name].kind
    }

    /// The value of the family's one sample without labels.
    fn single(&self, name: &str) -> f64 {
        self.value(name, &[])
            .unwrap_or_else(|| panic!("no sample {name} in {:#?}", self.families.keys()))
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let family = self.families.get(name)?;
        let mut key: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        // Extra labels (walmgr_info's version) are allowed when asked for a subset.
        family
            .samples
            .iter()
            .find(|(have, _)| {
                key.iter().all(|k| have.contains(k)) && (!key.is_empty() || have.is_empty())
            })
            .map(|(_, v)| *v)
    }
}

fn metric_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Go's ParseFloat as the format uses it, plus its spellings of the specials.
fn float(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) =>
        {
            text.parse()
                .map_err(|_| format!("{text:?} is not a number"))
        }
        _ => Err(format!("{text:?} is not a number")),
    }
}

/// Reads `text` as an exposition, with walmgr's conventions on top: every family has a
/// TYPE line before its samples, names are `walmgr_`, counters end in `_total` and are
/// not negative, units are base units.
fn parse(text: &str) -> Result<Metrics, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut metrics = Metrics::default();
    // Families whose samples have ended (another family's sample came after them).
    let mut closed: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["HELP", name, help] | ["TYPE", name, help] if !metric_name_ok(name) => {
                    let _ = help;
                    return Err(at(format!("bad metric name {name:?}")));
                }
                ["HELP", name, help] => {
                    let family = metrics.families.entry(name.to_string()).or_default();
                    if family.help.is_some() || !family.samples.is_empty() {
                        return Err(at("HELP twice, or after the samples".into()));
                    }
                    let mut chars = help.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                            return Err(at("HELP escapes only \\\\ and \\n".into()));
                        }
                    }
                    family.help = Some(help.to_string());
                }
                ["TYPE", name, kind] => {
                    let family = metrics.families.entry(name.to_string()).or_default();
                    if !family.kind.is_empty() || !family.samples.is_empty() {
                        return Err(at("TYPE twice, or after the samples".into()));
                    }
                    if !matches!(
                        *kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    if *kind == "counter" && !name.ends_with("_total") {
                        return Err(at("a counter's name ends in _total".into()));
                    }
                    family.kind = kind.to_string();
                }
                _ => {} // a plain comment
            }
            continue;
        }
        // name{labels} value [timestamp]
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("a sample needs a value".into()))?;
        let name = &line[..name_end];
        if !metric_name_ok(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        if !name.starts_with("walmgr_") {
            return Err(at("walmgr's metrics start with walmgr_".into()));
        }
        for unit in [
            "_milliseconds",
            "_ms",
            "_kilobytes",
            "_megabytes",
            "_minutes",
        ] {
            if name.contains(unit) {
                return Err(at(format!("{unit}: use base units (seconds, bytes)")));
            }
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            loop {
                let start = match chars.peek() {
                    Some((_, '}')) => {
                        chars.next();
                        break;
                    }
                    Some((i, _)) => *i,
                    None => return Err(at("unterminated label set".into())),
                };
                let eq = after[start..]
                    .find('=')
                    .ok_or_else(|| at("label without =".into()))?
                    + start;
                let label = &after[start..eq];
                if !label_name_ok(label) {
                    return Err(at(format!("bad label name {label:?}")));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(at("a label value is quoted".into()));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => {
                                return Err(at(
                                    "a label value escapes only \\\\, \\\" and \\n".into()
                                ))
                            }
                        },
                        Some((_, '\n')) | None => {
                            return Err(at("unterminated label value".into()))
                        }
                        Some((_, c)) => value.push(c),
                    }
                }
                if labels.iter().any(|(l, _): &(String, String)| l == label) {
                    return Err(at(format!("label {label} twice")));
                }
                labels.push((label.to_string(), value));
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((_, '}')) => break,
                    _ => return Err(at("labels are separated by commas".into())),
                }
            }
            let consumed = chars.peek().map_or(after.len(), |(i, _)| *i);
            rest = &after[consumed..];
        }
        let fields: Vec<&str> = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("one space before the value".into()))?
            .split(' ')
            .collect();
        let value = match fields.as_slice() {
            [value] => float(value).map_err(at)?,
            [value, timestamp] => {
                timestamp
                    .parse::<i64>()
                    .map_err(|_| at(format!("bad timestamp {timestamp:?}")))?;
                float(value).map_err(at)?
            }
            _ => return Err(at("a value and at most a timestamp".into())),
        };
        let Some(family) = metrics.families.get_mut(name) else {
            return Err(at("a sample before its family's TYPE line".into()));
        };
        if family.kind.is_empty() {
            return Err(at("a sample before its family's TYPE line".into()));
        }
        if family.kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(at("a counter is never negative".into()));
        }
        if closed.iter().any(|c| c == name) {
            return Err(at("a family's samples come in one group".into()));
        }
        if current.as_deref() != Some(name) {
            if let Some(previous) = current.replace(name.to_string()) {
                closed.push(previous);
            }
        }
        labels.sort();
        if family.samples.insert(labels, value).is_some() {
            return Err(at("the same series twice".into()));
        }
    }
    Ok(metrics)
}
