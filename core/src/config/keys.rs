//! The key table: every key a walmgr config may set, and how its value is typed.

/// How a key's text is turned into a typed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Free text (names, connection strings, shell commands).
    Text,
    /// A local path: `~` at the start expands to a home directory.
    Path,
    Bool,
    /// A non-negative number of seconds, integer or fractional.
    Seconds,
    /// A non-negative integer.
    Count,
}

impl Kind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Path => "a path (string)",
            Kind::Bool => "a boolean (true/false, yes/no, on/off, 1/0)",
            Kind::Seconds => "a non-negative number of seconds",
            Kind::Count => "a non-negative integer",
        }
    }
}

/// walmgr3's manual keys (master, then slave), then the additions of SPEC.md.
pub(super) const KEYS: &[(&str, Kind)] = &[
    ("job_name", Kind::Text),
    ("logfile", Kind::Path),
    ("pidfile", Kind::Path),
    ("use_skylog", Kind::Bool),
    ("master_db", Kind::Text),
    ("master_data", Kind::Path),
    ("master_config", Kind::Path),
    ("master_bin", Kind::Path),
    ("master_restart_cmd", Kind::Text),
    ("slave", Kind::Text),
    ("slave_config", Kind::Path),
    ("walmgr_data", Kind::Path),
    ("completed_wals", Kind::Path),
    ("partial_wals", Kind::Path),
    ("full_backup", Kind::Path),
    ("config_backup", Kind::Path),
    ("loop_delay", Kind::Seconds),
    ("use_xlog_functions", Kind::Bool),
    ("compression", Kind::Bool),
    ("keep_symlinks", Kind::Bool),
    ("hot_standby", Kind::Bool),
    ("command_interval", Kind::Seconds),
    ("periodic_command", Kind::Text),
    ("slave_data", Kind::Path),
    ("slave_bin", Kind::Path),
    ("slave_stop_cmd", Kind::Text),
    ("slave_start_cmd", Kind::Text),
    ("slave_config_dir", Kind::Path),
    ("slave_pg_xlog", Kind::Path),
    ("backup_datadir", Kind::Bool),
    ("keep_backups", Kind::Count),
    ("archive_command", Kind::Text),
    ("primary_conninfo", Kind::Text),
    ("ssh_identity", Kind::Path),
    ("ssh_known_hosts", Kind::Path),
    // A path on the slave host, so `~` must be left for the slave's shell.
    ("slave_walmgr", Kind::Text),
];

/// Names skytools' config class predefined for interpolation. A walmgr3 `.ini` file may
/// set them too (they are plain variables there), so the ini reader tolerates them even
/// though they configure nothing.
pub(super) const VARIABLES: &[&str] = &["service_name", "host_name", "config_dir", "config_file"];

pub(super) fn kind(name: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, _)| *k == name).map(|(_, kind)| *kind)
}

pub(super) fn is_variable(name: &str) -> bool {
    VARIABLES.contains(&name)
}

/// The message for a key that is not in the table, with a hint when it looks like a typo.
pub(super) fn unknown_key_message(name: &str) -> String {
    let best = KEYS
        .iter()
        .map(|(k, _)| (edit_distance(name, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 2 => format!("unknown key (did you mean '{k}'?)"),
        _ => "unknown key".to_owned(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur.push(substitute.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_key() {
        assert_eq!(
            unknown_key_message("completed_wal"),
            "unknown key (did you mean 'completed_wals'?)"
        );
        assert_eq!(unknown_key_message("frobnicate"), "unknown key");
    }

    #[test]
    fn key_table_has_no_duplicates() {
        let mut names: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
    }
}
