//! Where PostgreSQL lives on this host, for the sample configs of `walmgr --ini`: the
//! manual's samples name PostgreSQL 9.1 and /etc/init.d scripts, which no host has today.
//!
//! Debian's layout first (binaries under /usr/lib/postgresql/MAJOR, clusters configured in
//! /etc/postgresql/MAJOR/NAME, pg_ctlcluster from postgresql-common), the newest major
//! installed; else the `postgres` on $PATH with pg_ctl, and $PGDATA for the data directory;
//! else Debian's layout for the oldest supported major, saying that nothing was found.
//! Nothing here connects to a server or looks at running ones: the samples are the same on
//! every run on the same host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::SampleHost;
use crate::os::{shell, users};

/// The oldest PostgreSQL walmgr supports, for a host with none installed.
const OLDEST_MAJOR: &str = "15";

/// This host's PostgreSQL, as the samples should name it.
pub fn detect() -> SampleHost {
    let postgres_home = users::expand_tilde("~postgres")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/var/lib/postgresql".into());
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("postgres"))
        .find(|p| p.is_file());
    let pgdata = std::env::var_os("PGDATA")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut host = detect_in(Path::new("/"), on_path.as_deref(), pgdata.as_deref());
    if !host.found.contains("Debian") {
        host.home = postgres_home;
    }
    host
}

/// [`detect`] with the filesystem under `root` (tests give a fake one), the `postgres`
/// binary found on $PATH and $PGDATA.
pub fn detect_in(
    root: &Path,
    postgres_on_path: Option<&Path>,
    pgdata: Option<&Path>,
) -> SampleHost {
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    if let Some(major) = newest_debian_major(&under("/usr/lib/postgresql")) {
        let cluster = debian_cluster_name(&under("/etc/postgresql").join(&major));
        let mut host = SampleHost::debian(&major, &cluster);
        if !under("/usr/bin/pg_ctlcluster").is_file() {
            // The binaries in Debian's place without postgresql-common: pg_ctl does it.
            let bin = PathBuf::from(&host.bin);
            let data = pgdata
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(&host.data));
            host = with_pg_ctl(host, &bin, &data);
            host.found = format!("PostgreSQL {major} in Debian's layout (pg_ctl)");
        }
        return host;
    }
    if let Some(postgres) = postgres_on_path {
        let bin = postgres
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| postgres.parent().unwrap_or(Path::new("/")).to_path_buf());
        let major = server_major(&bin.join("postgres"));
        let what = match &major {
            Some(m) => format!("PostgreSQL {m}"),
            None => "PostgreSQL".into(),
        };
        let (data, found) = match pgdata {
            Some(data) => (
                data.to_path_buf(),
                format!("{what} at {} ($PGDATA)", data.display()),
            ),
            None => (
                PathBuf::from(format!(
                    "/var/lib/postgresql/{}/data",
                    major.as_deref().unwrap_or(OLDEST_MAJOR)
                )),
                format!(
                    "{what} from {} (no $PGDATA: edit the data directory)",
                    bin.display()
                ),
            ),
        };
        let mut host = with_pg_ctl(SampleHost::debian(OLDEST_MAJOR, "main"), &bin, &data);
        host.found = found;
        return host;
    }
    let mut host = SampleHost::debian(OLDEST_MAJOR, "main");
    host.found = format!(
        "no PostgreSQL found on this host: Debian's layout for PostgreSQL {OLDEST_MAJOR} \
         is shown"
    );
    host
}

/// Paths and commands for a cluster driven by pg_ctl: the configuration in the data
/// directory, the server's log beside walmgr's.
fn with_pg_ctl(mut host: SampleHost, bin: &Path, data: &Path) -> SampleHost {
    let pg_ctl = shell::quote(&bin.join("pg_ctl").to_string_lossy());
    let d = shell::quote(&data.to_string_lossy());
    host.bin = bin.to_string_lossy().into_owned();
    host.data = data.to_string_lossy().into_owned();
    host.conf = data.join("postgresql.conf").to_string_lossy().into_owned();
    host.conf_dir = host.data.clone();
    host.start = format!("{pg_ctl} -D {d} -l ~/log/postgresql.log -w start");
    host.stop = format!("{pg_ctl} -D {d} -w -m fast stop");
    host.restart = format!("{pg_ctl} -D {d} -l ~/log/postgresql.log -w -m fast restart");
    host
}

/// The highest MAJOR with `MAJOR/bin/postgres` under `dir` (/usr/lib/postgresql).
fn newest_debian_major(dir: &Path) -> Option<String> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let number: u32 = name.parse().ok()?;
            e.path()
                .join("bin/postgres")
                .is_file()
                .then_some((number, name))
        })
        .max()
        .map(|(_, name)| name)
}

/// `main` (Debian's first cluster) if it is configured, else the first cluster that is,
/// else `main`.
fn debian_cluster_name(version_dir: &Path) -> String {
    let mut names: Vec<String> = fs::read_dir(version_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("postgresql.conf").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    if names.is_empty() || names.iter().any(|n| n == "main") {
        "main".into()
    } else {
        names.remove(0)
    }
}

/// The major version `postgres --version` reports ("postgres (PostgreSQL) 16.2" → "16").
fn server_major(postgres: &Path) -> Option<String> {
    let out = Command::new(postgres).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().last()?;
    let major = version.split(['.', ' ']).next()?;
    major.parse::<u32>().ok().map(|m| m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{sample_master_toml, sample_slave_toml, Config, Role};

    fn touch(root: &Path, path: &str) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "").unwrap();
    }

    #[test]
    fn a_debian_host_gets_its_newest_major_and_pg_ctlcluster() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(r, "usr/lib/postgresql/15/bin/postgres");
        touch(r, "usr/lib/postgresql/17/bin/postgres");
        // A directory left by a removed package has no server.
        fs::create_dir_all(r.join("usr/lib/postgresql/18/lib")).unwrap();
        touch(r, "etc/postgresql/17/main/postgresql.conf");
        touch(r, "usr/bin/pg_ctlcluster");
        let host = detect_in(r, None, None);
        assert_eq!(host, SampleHost::debian("17", "main"));
        assert_eq!(host.start, "pg_ctlcluster 17 main start");
        assert_eq!(host.data, "/var/lib/postgresql/17/main");

        // Another cluster name, when main is not there.
        fs::remove_dir_all(r.join("etc/postgresql/17/main")).unwrap();
        touch(r, "etc/postgresql/17/prod/postgresql.conf");
        assert_eq!(
            detect_in(r, None, None).stop,
            "pg_ctlcluster 17 prod stop -m fast"
        );

        // Without postgresql-common, pg_ctl.
        fs::remove_file(r.join("usr/bin/pg_ctlcluster")).unwrap();
        let host = detect_in(r, None, None);
        assert_eq!(
            host.start,
            "/usr/lib/postgresql/17/bin/pg_ctl -D /var/lib/postgresql/17/prod -l \
             ~/log/postgresql.log -w start"
        );
    }

    #[test]
    fn another_layout_uses_postgres_on_path_and_pgdata() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(r, "opt/pg/bin/postgres");
        let postgres = r.join("opt/pg/bin/postgres");
        let host = detect_in(r, Some(&postgres), Some(Path::new("/srv/pg data")));
        let bin = r.join("opt/pg/bin");
        assert_eq!(host.bin, bin.to_string_lossy());
        assert_eq!(host.conf, "/srv/pg data/postgresql.conf");
        assert_eq!(host.conf_dir, "/srv/pg data");
        assert_eq!(
            host.stop,
            format!("{}/pg_ctl -D '/srv/pg data' -w -m fast stop", bin.display())
        );
        assert!(host.found.contains("$PGDATA"), "{}", host.found);
    }

    #[test]
    fn a_host_without_postgresql_says_so() {
        let root = tempfile::tempdir().unwrap();
        let host = detect_in(root.path(), None, None);
        assert!(
            host.found.starts_with("no PostgreSQL found"),
            "{}",
            host.found
        );
        assert_eq!(host.bin, "/usr/lib/postgresql/15/bin");
    }

    /// The samples load as the role they are for, set every key that changes something
    /// only where the host has a value for it, and set none of the keys that do nothing:
    /// those are listed in comments with the reason.
    #[test]
    fn the_samples_load_and_leave_the_keys_that_do_nothing_unset() {
        let host = SampleHost::debian("16", "main");
        let dir = tempfile::tempdir().unwrap();
        for (text, role) in [
            (sample_master_toml(&host), Role::Master),
            (sample_slave_toml(&host), Role::Slave),
        ] {
            let path = dir.path().join("sample.toml");
            fs::write(&path, &text).unwrap();
            let config = Config::load(&path, &[]).unwrap();
            assert_eq!(config.role, role);
            for key in crate::config::keys() {
                if let Some(why) = key.does_nothing {
                    let set_line = text
                        .lines()
                        .any(|l| l.starts_with(&format!("{} ", key.name)));
                    assert!(!set_line, "{} is set:\n{text}", key.name);
                    let first_word = why.split_whitespace().next().unwrap();
                    assert!(
                        text.contains(&format!("#   {}: {first_word}", key.name)),
                        "{} is not listed as doing nothing:\n{text}",
                        key.name
                    );
                }
            }
            assert!(!text.contains("9.1") && !text.contains("init.d"), "{text}");
        }
        let master = sample_master_toml(&host);
        assert!(master.contains("master_data          = \"/var/lib/postgresql/16/main\""));
        assert!(
            master.contains("#master_restart_cmd   = \"pg_ctlcluster 16 main restart -m fast\"")
        );
        let slave = sample_slave_toml(&host);
        assert!(slave.contains("slave_start_cmd      = \"pg_ctlcluster 16 main start\""));
        assert!(slave.contains("slave_config_dir     = \"/etc/postgresql/16/main\""));
    }
}
