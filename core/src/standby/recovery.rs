//! How a restored data directory is told to recover: a signal file and settings in
//! postgresql.auto.conf (PostgreSQL 12+ has no recovery.conf).

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::os::files::give_to_owner_of;

/// A point-in-time target for `restore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Time(String),
    Lsn(String),
    Xid(String),
    Name(String),
}

impl Target {
    fn setting(&self) -> (&'static str, &str) {
        match self {
            Target::Time(v) => ("recovery_target_time", v),
            Target::Lsn(v) => ("recovery_target_lsn", v),
            Target::Xid(v) => ("recovery_target_xid", v),
            Target::Name(v) => ("recovery_target_name", v),
        }
    }
}

/// What a restore writes: the signal file and the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// `standby.signal` to follow the archive, `recovery.signal` to stop at a target.
    pub signal_file: &'static str,
    pub settings: Vec<(&'static str, String)>,
}

/// Settings for a standby fed by `xrestore` (or, with a target, a one-off point-in-time
/// recovery that opens for writes at the target). Archiving is switched off in the copy:
/// a restored master's settings must never archive into the master's own archive.
pub fn plan(
    walmgr: &Path,
    slave_config: &Path,
    primary_conninfo: Option<&str>,
    target: Option<&Target>,
) -> RecoveryPlan {
    // A shell runs these, and PostgreSQL first replaces %f, %p, %r and %%: every path is
    // quoted for the one and has its % doubled for the other.
    let word = |p: &Path| crate::os::shell::quote(&p.to_string_lossy()).replace('%', "%%");
    let cmd = |sub: &str| format!("{} {} {sub}", word(walmgr), word(slave_config));
    let mut settings = vec![
        ("archive_mode", "off".to_string()),
        // The copy is not the master: its walmgr (if preloaded) ships nothing until a
        // `setup` after boot makes it one.
        ("walmgr.config", String::new()),
        ("restore_command", cmd("xrestore %f %p %r")),
    ];
    match target {
        None => {
            settings.push(("archive_cleanup_command", cmd("xpurgewals %r")));
            if let Some(conninfo) = primary_conninfo {
                settings.push(("primary_conninfo", conninfo.to_string()));
            }
            RecoveryPlan {
                signal_file: "standby.signal",
                settings,
            }
        }
        Some(t) => {
            let (name, value) = t.setting();
            settings.push((name, value.to_string()));
            settings.push(("recovery_target_action", "promote".to_string()));
            RecoveryPlan {
                signal_file: "recovery.signal",
                settings,
            }
        }
    }
}

/// postgresql.auto.conf with `settings` replacing any earlier lines for the same names.
pub fn with_settings(current: &str, settings: &[(&str, String)]) -> String {
    let names: Vec<&str> = settings.iter().map(|(n, _)| *n).collect();
    // Recovery settings the source cluster carried (it may itself have been restored to a
    // point in time) must not leak into this recovery.
    let stale = |key: &str| {
        key.starts_with("recovery_target")
            || matches!(
                key,
                "primary_conninfo" | "archive_cleanup_command" | "restore_command"
            )
    };
    let mut out: String = current
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            !names.contains(&key) && !stale(key)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("# walmgr restore\n");
    for (name, value) in settings {
        out.push_str(&format!("{name} = {}\n", conf_literal(value)));
    }
    out
}

/// A value as postgresql.conf (and .auto.conf) reads it: quotes doubled, and backslashes
/// too, since the config file parser takes `\` as an escape (unlike SQL's standard strings).
pub fn conf_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Applies `plan` to the data directory `data`.
pub fn write(data: &Path, plan: &RecoveryPlan) -> Result<()> {
    let auto = data.join("postgresql.auto.conf");
    let current = match fs::read_to_string(&auto) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", &auto, e)),
    };
    fs::write(&auto, with_settings(&current, &plan.settings))
        .map_err(|e| Error::io("write", &auto, e))?;
    let signal = data.join(plan.signal_file);
    fs::write(&signal, "").map_err(|e| Error::io("write", &signal, e))?;
    // Owner of the data directory, also when we run as root.
    for p in [&auto, &signal] {
        give_to_owner_of(p, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_follows_the_archive_with_archiving_off() {
        let p = plan(
            Path::new("/usr/bin/walmgr"),
            Path::new("/etc/slave.ini"),
            Some("host=m"),
            None,
        );
        assert_eq!(p.signal_file, "standby.signal");
        let auto = with_settings(
            "# Do not edit\narchive_mode = 'on'\narchive_library = 'walmgr'\n",
            &p.settings,
        );
        assert!(auto.contains("archive_mode = 'off'\n"), "{auto}");
        assert!(!auto.contains("archive_mode = 'on'"), "{auto}");
        assert!(
            auto.contains("restore_command = '/usr/bin/walmgr /etc/slave.ini xrestore %f %p %r'"),
            "{auto}"
        );
        assert!(auto.contains("primary_conninfo = 'host=m'"), "{auto}");
    }

    #[test]
    fn paths_with_spaces_quotes_and_percent_signs_reach_walmgr_intact() {
        let p = plan(
            Path::new("/opt/wal mgr/bin/walmgr"),
            Path::new("/etc/it's 100%/slave.toml"),
            None,
            None,
        );
        let restore = &p
            .settings
            .iter()
            .find(|(k, _)| *k == "restore_command")
            .unwrap()
            .1;
        assert_eq!(
            restore,
            r"'/opt/wal mgr/bin/walmgr' '/etc/it'\''s 100%%/slave.toml' xrestore %f %p %r"
        );
    }

    #[test]
    fn config_file_values_double_quotes_and_backslashes() {
        assert_eq!(conf_literal(r"a'b\c"), r"'a''b\\c'");
    }

    #[test]
    fn recovery_targets_of_the_source_cluster_do_not_survive() {
        let p = plan(Path::new("/w"), Path::new("/c"), None, None);
        let auto = with_settings(
            "recovery_target_time = '2026-01-01'\nrecovery_target_action = 'promote'\nprimary_conninfo = 'old'\nwork_mem = '8MB'\n",
            &p.settings,
        );
        assert!(!auto.contains("recovery_target"), "{auto}");
        assert!(!auto.contains("old"), "{auto}");
        assert!(auto.contains("work_mem"), "{auto}");
    }

    #[test]
    fn a_target_means_recovery_signal_and_promotion_at_the_target() {
        let t = Target::Lsn("0/3000060".into());
        let p = plan(Path::new("/w"), Path::new("/c"), None, Some(&t));
        assert_eq!(p.signal_file, "recovery.signal");
        assert!(p
            .settings
            .contains(&("recovery_target_lsn", "0/3000060".into())));
        assert!(p
            .settings
            .contains(&("recovery_target_action", "promote".into())));
    }
}
