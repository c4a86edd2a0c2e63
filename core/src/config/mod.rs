//! walmgr's configuration: one file per host, native TOML or walmgr3's `.ini`.
//!
//! Both formats are read into the same raw key/value map, `--set` overrides are laid over
//! it, references between values are expanded, and only then is each value typed. Every
//! error names the key and the line (or `--set`) it came from.

mod ini;
mod interpolate;
mod keys;
mod sample;
use crate::os::users as system;
mod toml_format;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Origin, Result};
use keys::Kind;

// Config and its fields are generated from the key table in keys.rs, one line per key.
pub use keys::Config;
// The key table itself: each key's name, kind of value and meaning (`--ini`, the man page).
pub use keys::{keys, Key};

pub use sample::{SampleHost, MANUAL_MASTER_INI, MANUAL_SLAVE_INI};

/// What tells a changed config file from the one loaded: an edit (mtime, length), a
/// replacement (device, inode), a chmod that makes it unreadable (ctime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    len: u64,
}

impl FileStamp {
    pub fn of(path: &Path) -> Result<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
        Ok(FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            len: meta.len(),
        })
    }
}

/// Which end of the shipping a config file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Slave,
}

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// walmgr3's ConfigParser files with `%(name)s` references.
    Ini,
    /// The native format, with `${name}` references.
    Toml,
}

impl Format {
    /// `.toml` files are TOML; anything else is taken for a walmgr3 `.ini` file.
    pub fn of_path(path: &Path) -> Format {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("toml") => Format::Toml,
            _ => Format::Ini,
        }
    }
}

/// A value as written, before references are expanded and before typing.
#[derive(Debug, Clone, PartialEq)]
enum RawValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl RawValue {
    /// The text a `${name}` reference to a non-string TOML value stands for, also used to
    /// quote the value in errors.
    fn to_text(&self) -> String {
        match self {
            RawValue::Str(s) => s.clone(),
            RawValue::Int(i) => i.to_string(),
            RawValue::Float(f) => format!("{f:?}"),
            RawValue::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct RawEntry {
    value: RawValue,
    origin: Origin,
}

/// A value after typing.
enum Typed {
    Text(String),
    Conninfo(crate::conninfo::Conninfo),
    Path(PathBuf),
    Bool(bool),
    Seconds(f64),
    Count(u32),
}

/// The file a config path names. walmgr3's manual writes `walmgr3
/// /var/lib/postgresql/conf/wal-master.ini setup` right after `--init-master`, which writes
/// `wal-master.toml` (the native format): so a path ending in `.ini` that does not exist
/// stands for the `.toml` beside it, when that exists. A `.ini` file that exists is always
/// the one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    /// The `.ini` path given, when `path` is the `.toml` read in its place.
    pub instead_of: Option<PathBuf>,
}

impl Located {
    pub fn find(given: &Path) -> Located {
        let is_ini = given
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("ini"));
        let toml = given.with_extension("toml");
        // symlink_metadata: a dangling link is a file that exists (and fails to read with
        // its own error), not a missing one to look past.
        if is_ini && given.symlink_metadata().is_err() && toml.is_file() {
            return Located {
                path: toml,
                instead_of: Some(given.to_path_buf()),
            };
        }
        Located {
            path: given.to_path_buf(),
            instead_of: None,
        }
    }

    /// What to tell the DBA when another file is read than the one named.
    pub fn note(&self) -> Option<String> {
        let ini = self.instead_of.as_ref()?;
        Some(format!(
            "{} does not exist: reading {} beside it (the native config --init-master and \
             --init-slave write; name it in commands to skip this note)",
            ini.display(),
            self.path.display()
        ))
    }
}

impl Config {
    /// Reads and parses the config file at `path`; the extension picks the format.
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Config::parse(&text, path, Format::of_path(path), overrides)
    }

    /// Parses config text; `source` is only used to name the file in errors (and for
    /// skytools' `job_name`, `config_dir`, `config_file` defaults).
    pub fn parse(
        text: &str,
        source: &Path,
        format: Format,
        overrides: &[(String, String)],
    ) -> Result<Config> {
        let mut entries = match format {
            Format::Ini => ini::read(text, source)?,
            Format::Toml => toml_format::read(text, source)?,
        };
        for (key, value) in overrides {
            if keys::kind(key).is_none() {
                return Err(Error::config(
                    Origin::CommandLine,
                    Some(key),
                    keys::unknown_key_message(key),
                ));
            }
            entries.insert(
                key.clone(),
                RawEntry {
                    value: RawValue::Str(value.clone()),
                    origin: Origin::CommandLine,
                },
            );
        }

        let mut resolver = interpolate::Resolver::new(&entries, format, source);
        let mut typed: BTreeMap<&'static str, Typed> = BTreeMap::new();
        let mut origins = BTreeMap::new();
        for &keys::Key {
            name: key, kind, ..
        } in keys::KEYS
        {
            let Some(entry) = entries.get(key) else {
                continue;
            };
            origins.insert(key.to_owned(), entry.origin.clone());
            let value = match &entry.value {
                RawValue::Str(_) => RawValue::Str(resolver.text_of(key)?.unwrap_or_default()),
                other => other.clone(),
            };
            if let Some(value) = to_typed(key, kind, value, &entry.origin)? {
                typed.insert(key, value);
            }
        }

        Config::build(typed, origins, source)
    }

    /// Turns the typed keys into a `Config`. The table in `keys.rs` carries every key to its
    /// field; what is written here is only what walmgr3 derived from the keys.
    fn build(
        typed: BTreeMap<&'static str, Typed>,
        origins: BTreeMap<String, Origin>,
        source: &Path,
    ) -> Result<Config> {
        let mut v = keys::Values::take(typed);

        // skytools' default: the config file's name without extension.
        v.job_name = v
            .job_name
            .or_else(|| Some(interpolate::job_name_default(source)));

        // Slave directories may be in walmgr3's rsync notation (see strip_slave_prefix);
        // this happens before the defaults, which are never written that way.
        let slave = v.slave.as_deref();
        for dir in [
            &mut v.completed_wals,
            &mut v.partial_wals,
            &mut v.full_backup,
            &mut v.config_backup,
        ] {
            *dir = dir.take().map(|p| strip_slave_prefix(p, slave));
        }

        // walmgr3's layout under walmgr_data, for the directories not set one by one.
        for (dir, name) in [
            (&mut v.completed_wals, "logs.complete"),
            (&mut v.partial_wals, "logs.partial"),
            (&mut v.full_backup, "data.master"),
            (&mut v.config_backup, "config.backup"),
        ] {
            if dir.is_none() {
                *dir = v.walmgr_data.as_ref().map(|d| d.join(name));
            }
        }
        // Config holds these three as plain paths: a config that names none of them, nor
        // walmgr_data, does not load.
        let unset: Vec<&str> = [
            ("completed_wals", &v.completed_wals),
            ("partial_wals", &v.partial_wals),
            ("full_backup", &v.full_backup),
        ]
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(k, _)| *k)
        .collect();
        if !unset.is_empty() {
            return Err(Error::config(
                Origin::File(source.to_path_buf()),
                Some("walmgr_data"),
                format!(
                    "not set, and neither is {}; set walmgr_data, or all of completed_wals, \
                     partial_wals and full_backup",
                    unset.join(", ")
                ),
            ));
        }

        if v.network_timeout.is_some_and(|t| t < 10.0) {
            return Err(Error::config(
                origins
                    .get("network_timeout")
                    .cloned()
                    .unwrap_or_else(|| Origin::File(source.to_path_buf())),
                Some("network_timeout"),
                "must be at least 10 seconds: a shorter wait gives up on a peer that is \
                 merely busy (an fsync of a segment, a checkpoint)",
            ));
        }

        if v.ssh_known_hosts.is_none() {
            v.ssh_known_hosts = Some(match system::home_dir() {
                Some(home) => home.join(".ssh/known_hosts"),
                // Left unexpanded so that whoever opens it reports a path the user recognises.
                None => PathBuf::from("~/.ssh/known_hosts"),
            });
        }

        let role = if v.master_data.is_some() {
            Role::Master
        } else {
            Role::Slave
        };
        v.into_config(source.to_path_buf(), role, origins)
    }

    /// Where `key` was set: its line, `--set`, or just the file when it was not set.
    pub fn origin(&self, key: &str) -> Origin {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| Origin::File(self.source.clone()))
    }

    /// Refuses a command meant for the other end (a master command given a slave config).
    pub fn require_role(&self, role: Role, command: &str) -> Result<()> {
        if self.role == role {
            return Ok(());
        }
        let (want, why) = match role {
            Role::Master => ("a master config", "it has no master_data"),
            Role::Slave => ("a slave config", "it has master_data"),
        };
        Err(Error::refused(format!(
            "{}: `{command}` needs {want}, and {why}",
            self.source.display()
        )))
    }

    /// The value of an optional key a command cannot do without.
    pub fn required<'a, T>(
        &self,
        value: &'a Option<T>,
        key: &str,
        needed_by: &str,
    ) -> Result<&'a T> {
        value.as_ref().ok_or_else(|| self.missing(key, needed_by))
    }

    /// The error for a command that needs a key this config does not set.
    pub fn missing(&self, key: &str, needed_by: &str) -> Error {
        Error::config(
            self.origin(key),
            Some(key),
            format!("required by `{needed_by}` but not set"),
        )
    }
}

/// Types one value; Ok(None) for an empty string, which leaves the key unset.
fn to_typed(key: &str, kind: Kind, value: RawValue, origin: &Origin) -> Result<Option<Typed>> {
    let wrong = |value: &RawValue| {
        let got = match value {
            RawValue::Str(s) => format!("{s:?}"),
            other => other.to_text(),
        };
        Error::config(
            origin.clone(),
            Some(key),
            format!("must be {}, not {got}", kind.describe()),
        )
    };
    if let RawValue::Str(s) = &value {
        if s.is_empty() {
            return Ok(None);
        }
    }
    let typed = match (kind, &value) {
        (Kind::Text, RawValue::Str(s)) => Typed::Text(s.clone()),
        (Kind::Conninfo, RawValue::Str(s)) => {
            // What libpq would refuse is refused here, where the key's line is known: a
            // primary_conninfo the standby's libpq cannot parse would only show up later as
            // a standby that never connects. The message never shows a value.
            crate::libpq::validate(s).map_err(|m| Error::config(origin.clone(), Some(key), m))?;
            Typed::Conninfo(crate::conninfo::Conninfo::new(s))
        }
        (Kind::Path, RawValue::Str(s)) => Typed::Path(
            system::expand_tilde(s).map_err(|m| Error::config(origin.clone(), Some(key), m))?,
        ),
        (Kind::Bool, RawValue::Bool(b)) => Typed::Bool(*b),
        // walmgr3 read most flags with getint and tested "nonzero".
        (Kind::Bool, RawValue::Int(i)) => Typed::Bool(*i != 0),
        (Kind::Bool, RawValue::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => Typed::Bool(true),
            "0" | "no" | "false" | "off" => Typed::Bool(false),
            digits => match digits.parse::<i64>() {
                Ok(i) => Typed::Bool(i != 0),
                Err(_) => return Err(wrong(&value)),
            },
        },
        (Kind::Seconds, RawValue::Int(i)) if *i >= 0 => Typed::Seconds(*i as f64),
        (Kind::Seconds, RawValue::Float(f)) if f.is_finite() && *f >= 0.0 => Typed::Seconds(*f),
        (Kind::Seconds, RawValue::Str(s)) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 0.0 => Typed::Seconds(f),
            _ => return Err(wrong(&value)),
        },
        (Kind::Count, RawValue::Int(i)) => match u32::try_from(*i) {
            Ok(n) => Typed::Count(n),
            Err(_) => return Err(wrong(&value)),
        },
        (Kind::Count, RawValue::Str(s)) if s.bytes().all(|b| b.is_ascii_digit()) => {
            match s.parse::<u32>() {
                Ok(n) => Typed::Count(n),
                Err(_) => return Err(wrong(&value)),
            }
        }
        _ => return Err(wrong(&value)),
    };
    Ok(Some(typed))
}

/// walmgr3's `--init-master` wrote slave directories in rsync notation,
/// `%(slave)s:%(walmgr_data)s/...`; here the transport is chosen by `slave`, so the
/// prefix is redundant and dropped.
fn strip_slave_prefix(path: PathBuf, slave: Option<&str>) -> PathBuf {
    let Some(slave) = slave else {
        return path;
    };
    match path
        .to_str()
        .and_then(|p| p.strip_prefix(slave)?.strip_prefix(':'))
    {
        Some(rest) if !rest.is_empty() => {
            system::expand_tilde(rest).unwrap_or_else(|_| PathBuf::from(rest))
        }
        _ => path,
    }
}

/// Parses `--set` arguments (`key=value[,key=value]`, the option may be repeated) into
/// pairs. Keys are case-insensitive, as in walmgr3.
pub fn parse_overrides(args: &[String]) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for arg in args {
        for piece in arg.split(',') {
            if piece.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = piece.split_once('=') else {
                return Err(Error::Usage(format!(
                    "--set: {:?} is not key=value",
                    piece.trim()
                )));
            };
            let key = key.trim().to_lowercase();
            if key.is_empty() {
                return Err(Error::Usage(format!(
                    "--set: {:?} has no key before '='",
                    piece.trim()
                )));
            }
            pairs.push((key, value.trim().to_owned()));
        }
    }
    Ok(pairs)
}

/// The commented sample master config in the native format (`walmgr --ini`), for `host`.
pub fn sample_master_toml(host: &SampleHost) -> String {
    sample::master_toml(host)
}

/// The commented sample slave config in the native format (`walmgr --ini`), for `host`.
pub fn sample_slave_toml(host: &SampleHost) -> String {
    sample::slave_toml(host)
}
