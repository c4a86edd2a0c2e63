//! The key table: every key a walmgr config may set, how its value is typed, and the
//! `Config` field it fills, each declared once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Role, Typed};
use crate::error::{Error, Origin, Result};

/// How a key's text is turned into a typed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Free text (names, shell commands).
    Text,
    /// A libpq connection string: text whose password is never shown.
    Conninfo,
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
            Kind::Text | Kind::Conninfo => "a string",
            Kind::Path => "a path (string)",
            Kind::Bool => "a boolean (true/false, yes/no, on/off, 1/0)",
            Kind::Seconds => "a non-negative number of seconds",
            Kind::Count => "a non-negative integer",
        }
    }
}

/// Declares every config key once, in one line: its name (which is also the name of its
/// `Config` field), its [`Kind`], the field's type, and what an unset key leaves there.
/// From that table it generates [`KEYS`], the [`Config`] struct and [`Values`], which carries
/// each typed value from the parser to its field, so a key cannot be read and then dropped.
///
/// The part after the type says what an unset (or empty) key means:
/// - nothing: the field is an `Option` and stays `None`;
/// - `= literal`: the field takes that default;
/// - `= derived`: `Config::build` computes a default from other keys, and must have set one
///   by the time the field is filled.
macro_rules! config_keys {
    (@value Text) => { String };
    (@value Conninfo) => { crate::conninfo::Conninfo };
    (@value Path) => { PathBuf };
    (@value Bool) => { bool };
    (@value Seconds) => { f64 };
    (@value Count) => { u32 };

    (@field $value:expr, $source:expr, $name:ident, $kind:ident) => { $value };
    (@field $value:expr, $source:expr, $name:ident, $kind:ident, derived) => {
        match $value {
            Some(value) => value,
            None => return Err(Error::config(
                Origin::File($source),
                Some(stringify!($name)),
                "not set",
            )),
        }
    };
    (@field $value:expr, $source:expr, $name:ident, Text, $default:literal) => {
        $value.unwrap_or_else(|| String::from($default))
    };
    (@field $value:expr, $source:expr, $name:ident, $kind:ident, $default:literal) => {
        $value.unwrap_or($default)
    };

    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $kind:ident => $ty:ty $(= $default:tt)?,
    )*) => {
        /// Every key a config may set, in the order of the table, with how its value is typed.
        pub(super) const KEYS: &[(&str, Kind)] = &[$((stringify!($name), Kind::$kind)),*];

        /// A loaded config. Keys are those of walmgr3's manual plus SPEC.md's additions; an
        /// empty value means the same as leaving the key out, as it did in walmgr3.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            pub source: PathBuf,
            /// Master iff `master_data` is set.
            pub role: Role,
            $($(#[doc = $doc])* pub $name: $ty,)*
            pub(super) origins: BTreeMap<String, Origin>,
        }

        /// Each key's value as the file or `--set` gave it, typed; `None` when unset or
        /// empty. `Config::build` fills in the derived defaults here before it becomes a
        /// `Config`.
        pub(super) struct Values {
            $(pub(super) $name: Option<config_keys!(@value $kind)>,)*
        }

        impl Values {
            /// Takes every key of the table out of `typed`.
            pub(super) fn take(mut typed: BTreeMap<&'static str, Typed>) -> Values {
                Values {
                    $($name: match typed.remove(stringify!($name)) {
                        Some(Typed::$kind(value)) => Some(value),
                        // Unreachable: to_typed pairs each Kind with its own Typed variant.
                        _ => None,
                    },)*
                }
            }

            /// Each field from its key, with the table's defaults.
            pub(super) fn into_config(
                self,
                source: PathBuf,
                role: Role,
                origins: BTreeMap<String, Origin>,
            ) -> Result<Config> {
                Ok(Config {
                    $($name: config_keys!(
                        @field self.$name, source.clone(), $name, $kind $(, $default)?
                    ),)*
                    source,
                    role,
                    origins,
                })
            }
        }
    };
}

// walmgr3's manual keys (master, then slave), then the additions of SPEC.md.
config_keys! {
    /// skytools' default applies when unset: the config file's name without extension.
    job_name: Text => Option<String>,
    logfile: Path => Option<PathBuf>,
    pidfile: Path => Option<PathBuf>,
    use_skylog: Bool => bool = false,

    master_db: Conninfo => Option<crate::conninfo::Conninfo>,
    master_data: Path => Option<PathBuf>,
    master_config: Path => Option<PathBuf>,
    master_bin: Path => Option<PathBuf>,
    master_restart_cmd: Text => Option<String>,
    /// `host`, `user@host` or `user@host:port`; None means the slave directories are local.
    slave: Text => Option<String>,
    slave_config: Path => Option<PathBuf>,

    walmgr_data: Path => Option<PathBuf>,
    /// Default `${walmgr_data}/logs.complete`.
    completed_wals: Path => PathBuf = derived,
    /// Default `${walmgr_data}/logs.partial`.
    partial_wals: Path => PathBuf = derived,
    /// Default `${walmgr_data}/data.master`.
    full_backup: Path => PathBuf = derived,
    /// Default `${walmgr_data}/config.backup` when walmgr_data is set.
    config_backup: Path => Option<PathBuf>,

    loop_delay: Seconds => f64 = 10.0,
    use_xlog_functions: Bool => bool = false,
    compression: Bool => bool = false,
    keep_symlinks: Bool => bool = true,
    hot_standby: Bool => bool = false,
    command_interval: Seconds => Option<f64>,
    periodic_command: Text => Option<String>,

    slave_data: Path => Option<PathBuf>,
    slave_bin: Path => Option<PathBuf>,
    slave_stop_cmd: Text => Option<String>,
    slave_start_cmd: Text => Option<String>,
    slave_config_dir: Path => Option<PathBuf>,
    slave_pg_xlog: Path => Option<PathBuf>,
    backup_datadir: Bool => bool = true,
    keep_backups: Count => u32 = 0,
    archive_command: Text => Option<String>,
    primary_conninfo: Conninfo => Option<crate::conninfo::Conninfo>,
    /// Where restore puts the master's tablespaces on this host: `OLDDIR=NEWDIR` pairs,
    /// separated by commas (`\,` and `\=` for the characters themselves), as
    /// pg_basebackup's --tablespace-mapping. Unmapped ones go to the master's path.
    tablespace_mapping: Text => Option<String>,

    ssh_identity: Path => Option<PathBuf>,
    /// Default `~/.ssh/known_hosts`.
    ssh_known_hosts: Path => PathBuf = derived,
    // Text, not Path: a path on the slave host, where `~` is for the slave's shell to expand.
    /// Path of walmgr on the slave; default `walmgr` (found through the slave's PATH).
    slave_walmgr: Text => String = "walmgr",
    /// How long one end of an SSH session waits on a silent peer before giving the session
    /// up: the master for the standby's reply, the standby (xserve) for the master's next
    /// bytes. It bounds how long a vanished peer can hold a lock.
    network_timeout: Seconds => f64 = 120.0,
}

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
