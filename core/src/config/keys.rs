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

/// One key of the table, as the parser, `walmgr --ini` and the man page see it.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub name: &'static str,
    pub(super) kind: Kind,
    /// The doc comment of the key's line in the table, line by line.
    doc: &'static [&'static str],
    /// For a walmgr3 key that walmgr reads and ignores: why it does nothing here.
    pub does_nothing: Option<&'static str>,
}

impl Key {
    /// What the key does, as one paragraph (the table's doc comment, joined).
    pub fn description(&self) -> String {
        let lines: Vec<&str> = self.doc.iter().map(|l| l.trim()).collect();
        lines.join(" ").trim().to_owned()
    }

    /// The kind of value the key takes, in words ("a path (string)", "a boolean ...").
    pub fn value_kind(&self) -> &'static str {
        self.kind.describe()
    }
}

/// Declares every config key once, in one line: its doc, its name (which is also the name
/// of its `Config` field), its [`Kind`], the field's type, and what an unset key leaves
/// there. From that table it generates [`KEYS`] (which the parser, `walmgr --ini` and the man
/// page read), the [`Config`] struct and [`Values`], which carries each typed value from the
/// parser to its field, so a key cannot be read and then dropped.
///
/// The part after the type says what an unset (or empty) key means:
/// - nothing: the field is an `Option` and stays `None`;
/// - `= literal`: the field takes that default;
/// - `= derived`: `Config::build` computes a default from other keys, and must have set one
///   by the time the field is filled.
///
/// `#[does_nothing = "why"]` after the doc marks a walmgr3 key that is accepted, so that
/// walmgr3 configs load unchanged, but changes nothing here.
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
        $(#[does_nothing = $why:literal])?
        $name:ident: $kind:ident => $ty:ty $(= $default:tt)?,
    )*) => {
        /// Every key a config may set, in the order of the table.
        pub(super) const KEYS: &[Key] = &[$(Key {
            name: stringify!($name),
            kind: Kind::$kind,
            doc: &[$($doc),*],
            does_nothing: config_keys!(@why $($why)?),
        }),*];

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

    (@why) => { None };
    (@why $why:literal) => { Some($why) };
}

// walmgr3's manual keys (common, master, then slave), then the additions of SPEC.md. Each
// key's doc comment is also its entry in the man page's CONFIGURATION section.
config_keys! {
    /// Names this walmgr in its log lines and in backup labels. Default: the config file's
    /// name without its extension (skytools' default).
    job_name: Text => Option<String>,
    /// A file walmgr appends its log lines to, besides stderr (created mode 0600).
    logfile: Path => Option<PathBuf>,
    /// The pid file of `syncdaemon -d`, which `-r`, `-s` and `-k` signal. Needed only for
    /// the syncdaemon in the background.
    pidfile: Path => Option<PathBuf>,
    /// walmgr3: read skytools' skylog.ini for logging.
    #[does_nothing = "walmgr logs to stderr and to logfile; skylog.ini is not read"]
    use_skylog: Bool => bool = false,

    /// The libpq connection string of the master's database, for setup, stop, backup,
    /// sync, periodic and synch-standby (e.g. `dbname=postgres`).
    master_db: Conninfo => Option<crate::conninfo::Conninfo>,
    /// The master's data directory. A config with master_data is a master config;
    /// without, a slave config.
    master_data: Path => Option<PathBuf>,
    /// The master's postgresql.conf when it is not in the data directory: backup saves it
    /// into config_backup with the server's other configuration files.
    master_config: Path => Option<PathBuf>,
    /// walmgr3: the master's PostgreSQL binaries.
    #[does_nothing = "the master's work goes through its database connection and the \
                      extension, and needs no PostgreSQL binary"]
    master_bin: Path => Option<PathBuf>,
    /// A shell command that restarts the master, run by setup and stop when a setting they
    /// change needs a restart (archive_mode, shared_preload_libraries). Unset: they say a
    /// restart is needed and leave it to you.
    master_restart_cmd: Text => Option<String>,
    /// The standby: `host`, `user@host` or `user@host:port` reached over SSH; unset or empty
    /// when the standby's directories are on this host (same machine or a mounted
    /// filesystem).
    slave: Text => Option<String>,
    /// The path of the standby's walmgr config on the standby, which its walmgr (run over
    /// SSH) reads.
    slave_config: Path => Option<PathBuf>,

    /// The standby's walmgr directory, under which the four directories below default.
    walmgr_data: Path => Option<PathBuf>,
    /// Where archived WAL files are kept on the standby, with the control files
    /// BACKUPLOCK, PAUSE and STOP. Default `${walmgr_data}/logs.complete`.
    completed_wals: Path => PathBuf = derived,
    /// Where the segment the master is still writing is kept on the standby. Default
    /// `${walmgr_data}/logs.partial`.
    partial_wals: Path => PathBuf = derived,
    /// Where base backups are kept on the standby: the newest here, older ones with `.0`,
    /// `.1`, ... appended. Default `${walmgr_data}/data.master`.
    full_backup: Path => PathBuf = derived,
    /// Where backup saves the master's configuration files (postgresql.conf, pg_hba.conf,
    /// pg_ident.conf) for restore to put in slave_config_dir. Default
    /// `${walmgr_data}/config.backup` when walmgr_data is set.
    config_backup: Path => Option<PathBuf>,

    /// Seconds between two rounds of in-progress WAL shipping by the background worker or
    /// syncdaemon when nothing wakes it sooner. Default 10.
    loop_delay: Seconds => f64 = 10.0,
    /// walmgr3: ship in-progress WAL record by record with the pg_xlog functions.
    #[does_nothing = "in-progress WAL is always shipped as far as it is flushed"]
    use_xlog_functions: Bool => bool = false,
    /// Compress what goes over SSH to the standby (zstd); the archived files stay
    /// byte-identical. Default false.
    compression: Bool => bool = false,
    /// Backup keeps symbolic links in the data directory (such as a log directory) as
    /// links; false copies what they point to. Tablespaces are always copied, and pg_wal
    /// always starts empty. Default true.
    keep_symlinks: Bool => bool = true,
    /// walmgr3: set wal_level to hot_standby at setup.
    #[does_nothing = "setup always sets wal_level to replica (the level once called \
                      hot_standby), unless it is already replica or logical"]
    hot_standby: Bool => bool = false,
    /// How often, in seconds, periodic_command runs; evaluated at WAL segment switches.
    command_interval: Seconds => Option<f64>,
    /// A shell command run every command_interval seconds on the master (and by
    /// `periodic`): syncing scripts, config files, crontabs.
    periodic_command: Text => Option<String>,

    /// The standby's data directory, where restore puts a backup and createslave makes a
    /// streaming standby.
    slave_data: Path => Option<PathBuf>,
    /// The standby's PostgreSQL binaries (pg_ctl, pg_basebackup); default: those on PATH.
    slave_bin: Path => Option<PathBuf>,
    /// A shell command that stops the standby's server (restore, boot).
    slave_stop_cmd: Text => Option<String>,
    /// A shell command that starts the standby's server (restore, createslave).
    slave_start_cmd: Text => Option<String>,
    /// The standby's directory of configuration files; when set, restore copies the
    /// master's files from config_backup into it.
    slave_config_dir: Path => Option<PathBuf>,
    /// A directory for the standby's WAL outside its data directory: restore makes pg_wal a
    /// link to it.
    slave_pg_xlog: Path => Option<PathBuf>,
    /// Restore sets the standby's old data directory aside instead of removing it.
    /// Default true.
    backup_datadir: Bool => bool = true,
    /// How many backups to keep; WAL needed by the oldest kept backup is kept too. Rotation
    /// happens before a new backup, so one fewer is kept while it runs. 0 (the default)
    /// keeps only the newest and rotates nothing.
    keep_backups: Count => u32 = 0,
    /// A shell command run with the path of the oldest backup before rotation removes it;
    /// if it fails, nothing is removed.
    archive_command: Text => Option<String>,
    /// The connection string to the master for streaming replication: createslave uses it,
    /// and restore writes it into the standby's settings so that it streams, with the
    /// archive as the fallback.
    primary_conninfo: Conninfo => Option<crate::conninfo::Conninfo>,
    /// Where restore puts the master's tablespaces on this host: `OLDDIR=NEWDIR` pairs,
    /// separated by commas (`\,` and `\=` for the characters themselves), as
    /// pg_basebackup's --tablespace-mapping. Unmapped ones go to the master's path.
    tablespace_mapping: Text => Option<String>,

    /// The private key to log in to the standby with over SSH.
    ssh_identity: Path => Option<PathBuf>,
    /// The known_hosts file the standby's host key must be in. Default
    /// `~/.ssh/known_hosts`.
    ssh_known_hosts: Path => PathBuf = derived,
    // Text, not Path: a path on the slave host, where `~` is for the slave's shell to expand.
    /// Path of walmgr on the standby; default `walmgr` (found through the standby's PATH).
    slave_walmgr: Text => String = "walmgr",
    /// How long one end of an SSH session waits on a silent peer before giving the session
    /// up: the master for the standby's reply, the standby (xserve) for the master's next
    /// bytes. It bounds how long a vanished peer can hold a lock. Seconds, at least 10;
    /// default 120.
    network_timeout: Seconds => f64 = 120.0,
}

/// Every key a config may set, in the manual's order (common, master, slave), then
/// walmgr's additions.
pub fn keys() -> &'static [Key] {
    KEYS
}

/// Names skytools' config class predefined for interpolation. A walmgr3 `.ini` file may
/// set them too (they are plain variables there), so the ini reader tolerates them even
/// though they configure nothing.
pub(super) const VARIABLES: &[&str] = &["service_name", "host_name", "config_dir", "config_file"];

pub(super) fn kind(name: &str) -> Option<Kind> {
    KEYS.iter().find(|k| k.name == name).map(|k| k.kind)
}

pub(super) fn is_variable(name: &str) -> bool {
    VARIABLES.contains(&name)
}

/// The message for a key that is not in the table, with a hint when it looks like a typo.
pub(super) fn unknown_key_message(name: &str) -> String {
    let best = KEYS
        .iter()
        .map(|k| (edit_distance(name, k.name), k.name))
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
    fn every_key_says_what_it_does() {
        for key in keys() {
            let text = key.description();
            assert!(text.len() > 20, "{}: {text:?}", key.name);
            assert!(!text.contains("  "), "{}: {text:?}", key.name);
        }
    }

    #[test]
    fn the_walmgr3_keys_that_change_nothing_here_are_marked() {
        let inert: Vec<&str> = keys()
            .iter()
            .filter(|k| k.does_nothing.is_some())
            .map(|k| k.name)
            .collect();
        assert_eq!(
            inert,
            [
                "use_skylog",
                "master_bin",
                "use_xlog_functions",
                "hot_standby"
            ]
        );
    }

    #[test]
    fn key_table_has_no_duplicates() {
        let mut names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
    }
}
