//! Where a cluster lives: its data directory, binaries and postgresql.conf, and how it was
//! started. `--init-master` and `--init-slave` write configs from this, so that they work
//! as written.
//!
//! The data directory comes from `--pgdata`, else `$PGDATA`, else the one postmaster the
//! running user owns. The rest comes from `postmaster.opts` (what the server was last
//! started with) and `postmaster.pid` (where it listens now).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cluster::PostmasterPid;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterLocation {
    pub data: PathBuf,
    /// The directory of `postgres` and `pg_ctl`.
    pub bin: PathBuf,
    pub conf: PathBuf,
    /// The server's options from postmaster.opts, without the binary and `-D DIR`.
    pub options: Vec<String>,
    /// Port and socket directory, when the server runs now.
    pub listening: Option<(u16, PathBuf)>,
}

impl ClusterLocation {
    pub fn find(pgdata: Option<&Path>) -> Result<ClusterLocation> {
        let data = match pgdata {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("PGDATA").filter(|v| !v.is_empty()) {
                Some(p) => PathBuf::from(p),
                None => running_data_dir()?,
            },
        };
        let data = data
            .canonicalize()
            .map_err(|e| Error::io("find data directory", &data, e))?;
        if !data.join("PG_VERSION").is_file() {
            return Err(Error::Usage(format!(
                "{} is not a PostgreSQL data directory (no PG_VERSION); pass --pgdata",
                data.display()
            )));
        }
        let opts = fs::read_to_string(data.join("postmaster.opts")).unwrap_or_default();
        let mut tokens = split_opts(&opts).into_iter();
        let binary = tokens.next();
        let options = without_data_dir(tokens.collect());
        let bin = match binary.as_deref().map(Path::new).and_then(Path::parent) {
            Some(dir) if dir.join("postgres").is_file() => dir.to_path_buf(),
            _ => guess_bin(&data)?,
        };
        let conf = options
            .iter()
            .find_map(|o| {
                o.strip_prefix("config_file=")
                    .or_else(|| o.strip_prefix("--config-file="))
                    .or_else(|| o.strip_prefix("--config_file="))
            })
            .map(PathBuf::from)
            .unwrap_or_else(|| data.join("postgresql.conf"));
        Ok(ClusterLocation {
            listening: listening(&data),
            data,
            bin,
            conf,
            options,
        })
    }

    /// `(version, cluster name)` when Debian's postgresql-common manages the cluster
    /// (its config lives in /etc/postgresql/VERSION/NAME/).
    pub fn debian_cluster(&self) -> Option<(String, String)> {
        let dir = self.conf.parent()?;
        let name = dir.file_name()?.to_str()?;
        let version_dir = dir.parent()?;
        let version = version_dir.file_name()?.to_str()?;
        (version_dir.parent()? == Path::new("/etc/postgresql"))
            .then(|| (version.to_owned(), name.to_owned()))
    }
}

/// The data directories of the running postmasters this user can see (a postmaster's
/// working directory is its data directory).
pub fn running_data_dirs() -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").map_err(|e| Error::io("read", "/proc", e))? {
        let Ok(entry) = entry else { continue };
        let proc = entry.path();
        let is_postgres = fs::read_link(proc.join("exe"))
            .ok()
            .and_then(|exe| exe.file_name().map(|n| n == "postgres"))
            .unwrap_or(false);
        if !is_postgres {
            continue;
        }
        let Ok(cwd) = fs::read_link(proc.join("cwd")) else {
            continue;
        };
        // Only postmasters have the pid file naming them; their children share the cwd.
        let pid = entry.file_name().to_string_lossy().parse::<i32>().ok();
        let named = PostmasterPid::read(&cwd).map(|p| p.pid);
        if pid.is_some() && named == pid && !found.contains(&cwd) {
            found.push(cwd);
        }
    }
    Ok(found)
}

/// The data directory of the one postmaster the running user can see.
fn running_data_dir() -> Result<PathBuf> {
    let mut found = running_data_dirs()?;
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::Usage(
            "no running PostgreSQL server of this user found and $PGDATA is not set: \
             pass --pgdata"
                .into(),
        )),
        _ => Err(Error::Usage(format!(
            "several PostgreSQL servers run ({}): pass --pgdata",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Debian's layout for the data directory's PG_VERSION, else `postgres` on $PATH.
fn guess_bin(data: &Path) -> Result<PathBuf> {
    let version = fs::read_to_string(data.join("PG_VERSION")).unwrap_or_default();
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{}/bin", version.trim()));
    if debian.join("postgres").is_file() {
        return Ok(debian);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("postgres").is_file())
        .ok_or_else(|| {
            Error::Usage(format!(
                "cannot find the PostgreSQL binaries for {} (no postmaster.opts, not in \
                 /usr/lib/postgresql, no postgres on $PATH); start the server once or add \
                 its bin directory to $PATH",
                data.display()
            ))
        })
}

fn listening(data: &Path) -> Option<(u16, PathBuf)> {
    let pid = PostmasterPid::read(data)?;
    Some((pid.port, pid.socket?))
}

/// postmaster.opts: the binary, then each argument in double quotes.
fn split_opts(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            tokens.push(chars.by_ref().take_while(|&c| c != '"').collect());
        } else {
            let mut token = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                token.push(c);
                chars.next();
            }
            tokens.push(token);
        }
    }
    tokens
}

fn without_data_dir(tokens: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut tokens = tokens.into_iter();
    while let Some(t) = tokens.next() {
        if t == "-D" {
            tokens.next();
        } else if !t.starts_with("-D") {
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postmaster_opts_are_split_as_the_server_wrote_them() {
        let opts = "/usr/lib/postgresql/15/bin/postgres \"-D\" \"/var/lib/pg data\" \
                    \"-p\" \"5433\" \"-c\" \"config_file=/etc/postgresql/15/main/postgresql.conf\"\n";
        let tokens = split_opts(opts);
        assert_eq!(tokens[0], "/usr/lib/postgresql/15/bin/postgres");
        assert_eq!(tokens[2], "/var/lib/pg data");
        assert_eq!(
            without_data_dir(tokens[1..].to_vec()),
            [
                "-p",
                "5433",
                "-c",
                "config_file=/etc/postgresql/15/main/postgresql.conf"
            ]
        );
    }

    #[test]
    fn a_directory_without_pg_version_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = ClusterLocation::find(Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a PostgreSQL data directory"), "{err}");
    }

    #[test]
    fn debian_clusters_are_recognised_by_their_config_path() {
        let mut loc = ClusterLocation {
            data: "/var/lib/postgresql/15/main".into(),
            bin: "/usr/lib/postgresql/15/bin".into(),
            conf: "/etc/postgresql/15/main/postgresql.conf".into(),
            options: vec![],
            listening: None,
        };
        assert_eq!(loc.debian_cluster(), Some(("15".into(), "main".into())));
        loc.conf = "/srv/pg/postgresql.conf".into();
        assert_eq!(loc.debian_cluster(), None);
    }
}
