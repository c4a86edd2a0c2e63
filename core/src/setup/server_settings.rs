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
}

impl SettingChange {
    /// The statement as a DBA would type it.
    pub fn to_sql(&self) -> String {
        match &self.value {
            // A list setting given as one quoted string would be stored as a single
            // (nonexistent) library name: each element gets its own literal.
            Some(v) if LIST_SETTINGS.contains(&self.name) && !v.is_empty() => format!(
                "ALTER SYSTEM SET {} = {}",
                self.name,
                v.split(',')
                    .map(|e| quote_literal(e.trim()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(v) => format!("ALTER SYSTEM SET {} = {}", self.name, quote_literal(v)),
            None => format!("ALTER SYSTEM RESET {}", self.name),
        }
    }
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub const LIBRARY: &str = "walmgr";

/// Settings whose value is a list (GUC_LIST_INPUT).
const LIST_SETTINGS: &[&str] = &["shared_preload_libraries"];

/// What to write, and which settings only a restart brings into effect.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<SettingChange>,
    pub restart_for: Vec<&'static str>,
}

/// How the server is configured, seen two ways.
pub struct Server<'a> {
    /// The value the server runs with now.
    pub running: &'a dyn Fn(&str) -> String,
    /// The value the configuration files give (what a restart would run with); differs
    /// from `running` while a change waits for a restart.
    pub configured: &'a dyn Fn(&str) -> String,
}

/// One wanted setting: `ok` says whether a value satisfies it, `value` gives the value to
/// write given the configured one.
/// Given the configured value, the value to write (`None`: RESET).
type ValueFn = Box<dyn Fn(&str) -> Option<String>>;

struct Want {
    name: &'static str,
    restart: bool,
    ok: Box<dyn Fn(&str) -> bool>,
    value: ValueFn,
}

fn plan(server: &Server, wants: Vec<Want>) -> Plan {
    let mut plan = Plan::default();
    for want in wants {
        let configured = (server.configured)(want.name);
        if !(want.ok)(&configured) {
            plan.changes.push(SettingChange {
                name: want.name,
                value: (want.value)(&configured),
            });
        }
        if want.restart && !(want.ok)(&(server.running)(want.name)) {
            plan.restart_for.push(want.name);
        }
    }
    plan
}

fn fixed(v: &'static str) -> ValueFn {
    Box::new(move |_| Some(v.to_string()))
}

/// The changes that make the server archive through walmgr with the config at `config_path`.
/// Settings already right (in the files) are not touched, so setup is idempotent.
pub fn for_setup(server: &Server, config_path: &Path) -> Plan {
    plan(server, setup_wants(config_path))
}

/// The settings `setup` makes, in the order it makes them (`check` verifies each).
pub fn setup_setting_names() -> Vec<&'static str> {
    setup_wants(Path::new("")).iter().map(|w| w.name).collect()
}

fn setup_wants(config_path: &Path) -> Vec<Want> {
    let path = config_path.to_string_lossy().into_owned();
    let path_ok = path.clone();
    {
        vec![
            Want {
                name: "archive_mode",
                restart: true,
                ok: Box::new(|v| matches!(v, "on" | "always")),
                value: fixed("on"),
            },
            // Archiving needs at least replica; walmgr3's hot_standby key asked for the same
            // level, which PostgreSQL now calls replica. A logical level is kept.
            Want {
                name: "wal_level",
                restart: true,
                ok: Box::new(|v| v != "minimal"),
                value: fixed("replica"),
            },
            Want {
                name: "shared_preload_libraries",
                restart: true,
                ok: Box::new(|v| with_library(v, LIBRARY).is_none()),
                value: Box::new(|v| with_library(v, LIBRARY)),
            },
            // PostgreSQL 16+ refuses to archive when both are set.
            Want {
                name: "archive_command",
                restart: false,
                ok: Box::new(|v| v.is_empty()),
                value: fixed(""),
            },
            Want {
                name: "archive_library",
                restart: false,
                ok: Box::new(|v| v == LIBRARY),
                value: fixed(LIBRARY),
            },
            Want {
                name: "walmgr.config",
                restart: false,
                ok: Box::new(move |v| v == path_ok),
                value: Box::new(move |_| Some(path.clone())),
            },
        ]
    }
}

/// The changes that turn archiving off again. The library stays preloaded: removing it
/// would cost another restart and it does nothing while archiving is off.
pub fn for_stop(server: &Server) -> Plan {
    let mut plan = plan(
        server,
        vec![
            Want {
                name: "archive_mode",
                restart: true,
                ok: Box::new(|v| v == "off"),
                value: fixed("off"),
            },
            Want {
                name: "archive_library",
                restart: false,
                ok: Box::new(|v| v != LIBRARY),
                value: Box::new(|_| None),
            },
        ],
    );
    // Until the restart turns archive_mode off, an archiver with nothing configured keeps
    // every new segment in pg_wal: a no-op command lets them go, as walmgr3 did.
    if plan.restart_for.contains(&"archive_mode")
        && (server.configured)("archive_command").is_empty()
    {
        plan.changes.push(SettingChange {
            name: "archive_command",
            value: Some("/bin/true".into()),
        });
    }
    plan
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

    fn values(pairs: &[(&str, &str)]) -> impl Fn(&str) -> String {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned().unwrap_or_default()
    }

    fn sql(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(SettingChange::to_sql).collect()
    }

    #[test]
    fn a_fresh_server_gets_every_setting_and_needs_a_restart() {
        let fresh = values(&[
            ("archive_mode", "off"),
            ("wal_level", "replica"),
            ("shared_preload_libraries", "pg_stat_statements"),
        ]);
        let server = Server {
            running: &fresh,
            configured: &fresh,
        };
        let plan = for_setup(&server, Path::new("/etc/walmgr/master.toml"));
        assert_eq!(
            sql(&plan),
            [
                "ALTER SYSTEM SET archive_mode = 'on'",
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements', 'walmgr'",
                "ALTER SYSTEM SET archive_library = 'walmgr'",
                "ALTER SYSTEM SET walmgr.config = '/etc/walmgr/master.toml'",
            ]
        );
        assert_eq!(
            plan.restart_for,
            ["archive_mode", "shared_preload_libraries"]
        );
    }

    #[test]
    fn setup_on_a_configured_server_changes_nothing() {
        let done = values(&[
            ("archive_mode", "on"),
            ("wal_level", "logical"),
            ("shared_preload_libraries", "walmgr"),
            ("archive_library", "walmgr"),
            ("walmgr.config", "/c.toml"),
        ]);
        let server = Server {
            running: &done,
            configured: &done,
        };
        assert_eq!(for_setup(&server, Path::new("/c.toml")), Plan::default());
    }

    #[test]
    fn setup_again_before_the_restart_writes_nothing_and_still_asks_for_it() {
        let running = values(&[("archive_mode", "off"), ("wal_level", "replica")]);
        let configured = values(&[
            ("archive_mode", "on"),
            ("wal_level", "replica"),
            ("shared_preload_libraries", "walmgr"),
            ("archive_library", "walmgr"),
            ("walmgr.config", "/c.toml"),
        ]);
        let server = Server {
            running: &running,
            configured: &configured,
        };
        let plan = for_setup(&server, Path::new("/c.toml"));
        assert!(plan.changes.is_empty(), "{plan:?}");
        assert_eq!(
            plan.restart_for,
            ["archive_mode", "shared_preload_libraries"]
        );
    }

    #[test]
    fn minimal_wal_and_an_old_archive_command_are_replaced() {
        let old = values(&[("wal_level", "minimal"), ("archive_command", "cp %p /x/%f")]);
        let server = Server {
            running: &old,
            configured: &old,
        };
        let sql = sql(&for_setup(&server, Path::new("/c.toml")));
        assert!(sql.contains(&"ALTER SYSTEM SET wal_level = 'replica'".to_string()));
        assert!(sql.contains(&"ALTER SYSTEM SET archive_command = ''".to_string()));
    }

    #[test]
    fn quotes_in_paths_are_escaped() {
        let c = SettingChange {
            name: "walmgr.config",
            value: Some("/it's/here.toml".into()),
        };
        assert_eq!(
            c.to_sql(),
            "ALTER SYSTEM SET walmgr.config = '/it''s/here.toml'"
        );
    }

    #[test]
    fn stop_turns_archiving_off_and_keeps_the_library_loaded() {
        let on = values(&[("archive_mode", "on"), ("archive_library", "walmgr")]);
        let server = Server {
            running: &on,
            configured: &on,
        };
        let plan = for_stop(&server);
        assert_eq!(
            sql(&plan),
            [
                "ALTER SYSTEM SET archive_mode = 'off'",
                "ALTER SYSTEM RESET archive_library",
                // until the restart, segments must not pile up in pg_wal
                "ALTER SYSTEM SET archive_command = '/bin/true'"
            ]
        );
        assert_eq!(plan.restart_for, ["archive_mode"]);
        let off = values(&[("archive_mode", "off")]);
        let server = Server {
            running: &off,
            configured: &off,
        };
        assert_eq!(for_stop(&server), Plan::default());
    }

    #[test]
    fn stop_right_after_an_unrestarted_setup_still_writes_archive_mode_off() {
        let running = values(&[("archive_mode", "off")]);
        let configured = values(&[("archive_mode", "on"), ("archive_library", "walmgr")]);
        let server = Server {
            running: &running,
            configured: &configured,
        };
        let plan = for_stop(&server);
        assert_eq!(sql(&plan).len(), 2);
        assert!(plan.restart_for.is_empty());
    }
}
