//! Which server settings walmgr changes on the master, decided without a server.
//!
//! The extension reads the running values, asks here what must change, and applies the
//! answer with ALTER SYSTEM. Keeping the decision here makes it testable and keeps `setup`
//! and `stop` idempotent: a setting already right is not touched.

use std::path::Path;

/// One ALTER SYSTEM change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    pub name: &'static str,
    /// `None` means RESET (back to the default).
    pub value: Option<String>,
    /// The setting only takes effect at a server restart.
    pub needs_restart: bool,
}

impl SettingChange {
    fn set(name: &'static str, value: impl Into<String>, needs_restart: bool) -> Self {
        SettingChange {
            name,
            value: Some(value.into()),
            needs_restart,
        }
    }

    /// The statement as a DBA would type it.
    pub fn to_sql(&self) -> String {
        match &self.value {
            Some(v) => format!("ALTER SYSTEM SET {} = {}", self.name, quote_literal(v)),
            None => format!("ALTER SYSTEM RESET {}", self.name),
        }
    }
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub const LIBRARY: &str = "walmgr";

/// The changes that make the server archive through walmgr with the config at `config_path`.
/// `running(name)` returns the value the server runs with now.
pub fn for_setup(running: impl Fn(&str) -> String, config_path: &Path) -> Vec<SettingChange> {
    let mut changes = Vec::new();
    if !matches!(running("archive_mode").as_str(), "on" | "always") {
        changes.push(SettingChange::set("archive_mode", "on", true));
    }
    // Archiving needs at least replica; walmgr3's hot_standby key asked for the same level,
    // which PostgreSQL now calls replica. A logical level is kept.
    if running("wal_level") == "minimal" {
        changes.push(SettingChange::set("wal_level", "replica", true));
    }
    let preload = running("shared_preload_libraries");
    if let Some(merged) = with_library(&preload, LIBRARY) {
        changes.push(SettingChange::set("shared_preload_libraries", merged, true));
    }
    // PostgreSQL 16+ refuses to archive when both are set.
    if !running("archive_command").is_empty() {
        changes.push(SettingChange::set("archive_command", "", false));
    }
    if running("archive_library") != LIBRARY {
        changes.push(SettingChange::set("archive_library", LIBRARY, false));
    }
    let path = config_path.to_string_lossy();
    if running("walmgr.config") != path {
        changes.push(SettingChange::set("walmgr.config", path, false));
    }
    changes
}

/// The changes that turn archiving off again. The library stays preloaded: removing it
/// would cost another restart and it does nothing while archiving is off.
pub fn for_stop(running: impl Fn(&str) -> String) -> Vec<SettingChange> {
    let mut changes = Vec::new();
    if running("archive_mode") != "off" {
        changes.push(SettingChange::set("archive_mode", "off", true));
    }
    if running("archive_library") == LIBRARY {
        changes.push(SettingChange {
            name: "archive_library",
            value: None,
            needs_restart: false,
        });
    }
    changes
}

/// `list` with `lib` added, or `None` when it is already there.
fn with_library(list: &str, lib: &str) -> Option<String> {
    let entries: Vec<&str> = list
        .split(',')
        .map(|e| e.trim().trim_matches('"'))
        .filter(|e| !e.is_empty())
        .collect();
    if entries.contains(&lib) {
        return None;
    }
    let mut out: Vec<&str> = entries;
    out.push(lib);
    Some(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn server(pairs: &[(&str, &str)]) -> impl Fn(&str) -> String {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned().unwrap_or_default()
    }

    #[test]
    fn a_fresh_server_gets_every_setting_and_needs_a_restart() {
        let fresh = server(&[
            ("archive_mode", "off"),
            ("wal_level", "replica"),
            ("shared_preload_libraries", "pg_stat_statements"),
        ]);
        let changes = for_setup(fresh, Path::new("/etc/walmgr/master.toml"));
        let sql: Vec<String> = changes.iter().map(SettingChange::to_sql).collect();
        assert_eq!(
            sql,
            [
                "ALTER SYSTEM SET archive_mode = 'on'",
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements,walmgr'",
                "ALTER SYSTEM SET archive_library = 'walmgr'",
                "ALTER SYSTEM SET walmgr.config = '/etc/walmgr/master.toml'",
            ]
        );
        assert!(changes.iter().any(|c| c.needs_restart));
    }

    #[test]
    fn setup_on_a_configured_server_changes_nothing() {
        let done = server(&[
            ("archive_mode", "on"),
            ("wal_level", "logical"),
            ("shared_preload_libraries", "walmgr"),
            ("archive_library", "walmgr"),
            ("walmgr.config", "/c.toml"),
        ]);
        assert!(for_setup(done, Path::new("/c.toml")).is_empty());
    }

    #[test]
    fn minimal_wal_and_an_old_archive_command_are_replaced() {
        let old = server(&[("wal_level", "minimal"), ("archive_command", "cp %p /x/%f")]);
        let changes = for_setup(old, Path::new("/c.toml"));
        assert!(changes.contains(&SettingChange::set("wal_level", "replica", true)));
        assert!(changes.contains(&SettingChange::set("archive_command", "", false)));
    }

    #[test]
    fn quotes_in_paths_are_escaped() {
        let c = SettingChange::set("walmgr.config", "/it's/here.toml", false);
        assert_eq!(
            c.to_sql(),
            "ALTER SYSTEM SET walmgr.config = '/it''s/here.toml'"
        );
    }

    #[test]
    fn stop_turns_archiving_off_and_keeps_the_library_loaded() {
        let on = server(&[("archive_mode", "on"), ("archive_library", "walmgr")]);
        let sql: Vec<String> = for_stop(on).iter().map(SettingChange::to_sql).collect();
        assert_eq!(
            sql,
            [
                "ALTER SYSTEM SET archive_mode = 'off'",
                "ALTER SYSTEM RESET archive_library"
            ]
        );
        assert!(for_stop(server(&[("archive_mode", "off")])).is_empty());
    }
}
