//! The configs `--init-master` and `--init-slave` write: walmgr3's quick-start configs in
//! the native format, with every path absolute so they mean the same to the CLI, the server
//! and sshd's forced command, whatever their `$HOME`.

use std::path::{Path, PathBuf};

use crate::os::shell;
use crate::setup::cluster_location::ClusterLocation;

pub const MASTER_FILE: &str = "wal-master.toml";
pub const SLAVE_FILE: &str = "wal-slave.toml";

pub struct MasterInit<'a> {
    pub cluster: &'a ClusterLocation,
    pub home: &'a Path,
    /// `--slave`: host, user@host or user@host:port.
    pub slave: &'a str,
    /// Where the standby's config is: the same place as ours (walmgr3's assumption).
    pub slave_config: PathBuf,
    /// This walmgr's path, assumed the same on the standby.
    pub slave_walmgr: &'a Path,
}

pub fn master_toml(m: &MasterInit) -> String {
    let c = m.cluster;
    let master_db = match &c.listening {
        Some((port, socket)) => format!(
            "host={} port={port} dbname=postgres",
            conninfo_quote(&socket.to_string_lossy())
        ),
        None => "dbname=postgres".to_owned(),
    };
    let restart = format!(
        "{} -D {} -w -m fast restart",
        shell::quote(&c.bin.join("pg_ctl").to_string_lossy()),
        shell::quote(&c.data.to_string_lossy())
    );
    format!(
        "# Written by walmgr --init-master. walmgr_data and the directories under it are on\n\
         # the standby; slave_config there names them for the standby's walmgr.\n\
         [walmgr]\n\
         job_name = \"wal-master\"\n\
         logfile = {logfile}\n\
         \n\
         master_db = {master_db}\n\
         master_data = {data}\n\
         master_config = {conf}\n\
         # Let `walmgr setup` and `stop` restart the server when archive settings need it:\n\
         # master_restart_cmd = {restart}\n\
         \n\
         slave = {slave}\n\
         slave_config = {slave_config}\n\
         slave_walmgr = {slave_walmgr}\n\
         ssh_identity = {identity}\n\
         ssh_known_hosts = {known_hosts}\n\
         \n\
         walmgr_data = {walmgr_data}\n\
         keep_symlinks = true\n\
         compression = false\n",
        logfile = q(&m.home.join("log/wal-master.log")),
        master_db = qs(&master_db),
        data = q(&c.data),
        conf = q(&c.conf),
        restart = qs(&restart),
        slave = qs(m.slave),
        slave_config = q(&m.slave_config),
        slave_walmgr = q(m.slave_walmgr),
        identity = q(&m.home.join(".ssh/id_ed25519")),
        known_hosts = q(&m.home.join(".ssh/known_hosts")),
        walmgr_data = q(&m.home.join("walshipping")),
    )
}

pub struct SlaveInit<'a> {
    pub cluster: &'a ClusterLocation,
    pub home: &'a Path,
    pub primary_conninfo: Option<&'a str>,
}

pub fn slave_toml(s: &SlaveInit) -> String {
    let c = s.cluster;
    let (start, stop) = start_stop_commands(c, s.home);
    let conninfo = s
        .primary_conninfo
        .map(|ci| format!("primary_conninfo = {}\n", qs(ci)))
        .unwrap_or_default();
    format!(
        "# Written by walmgr --init-slave.\n\
         [walmgr]\n\
         job_name = \"wal-slave\"\n\
         logfile = {logfile}\n\
         \n\
         slave_data = {data}\n\
         slave_bin = {bin}\n\
         slave_stop_cmd = {stop}\n\
         slave_start_cmd = {start}\n\
         slave_config_dir = {conf_dir}\n\
         \n\
         walmgr_data = {walmgr_data}\n\
         {conninfo}",
        logfile = q(&s.home.join("log/wal-slave.log")),
        data = q(&c.data),
        bin = q(&c.bin),
        stop = qs(&stop),
        start = qs(&start),
        conf_dir = q(c.conf.parent().unwrap_or(&c.data)),
        walmgr_data = q(&s.home.join("walshipping")),
    )
}

/// Debian clusters start through pg_ctlcluster; others through pg_ctl with the options the
/// server last ran with (port, socket directory, config file), logging beside walmgr's log
/// so that the server never holds walmgr's output open.
fn start_stop_commands(c: &ClusterLocation, home: &Path) -> (String, String) {
    if let Some((version, name)) = c.debian_cluster() {
        return (
            format!("pg_ctlcluster {version} {name} start"),
            format!("pg_ctlcluster {version} {name} stop -m fast"),
        );
    }
    let pg_ctl = shell::quote(&c.bin.join("pg_ctl").to_string_lossy());
    let data = shell::quote(&c.data.to_string_lossy());
    let options = if c.options.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = c
            .options
            .iter()
            .map(|o| format!("\"{}\"", o.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        format!(" -o {}", shell::quote(&quoted.join(" ")))
    };
    (
        format!(
            "{pg_ctl} -D {data} -l {} -w{options} start",
            shell::quote(&home.join("log/postgresql.log").to_string_lossy())
        ),
        format!("{pg_ctl} -D {data} -w -m fast stop"),
    )
}

/// A TOML string of a path.
fn q(p: &Path) -> String {
    qs(&p.to_string_lossy())
}

/// A TOML string.
fn qs(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn conninfo_quote(s: &str) -> String {
    if !s.is_empty() && !s.contains([' ', '\'', '\\']) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Role};

    fn cluster(options: &[&str]) -> ClusterLocation {
        ClusterLocation {
            data: "/srv/pg data/15".into(),
            bin: "/usr/lib/postgresql/15/bin".into(),
            conf: "/srv/pg data/15/postgresql.conf".into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            listening: Some((5433, "/tmp/pg sock".into())),
        }
    }

    #[test]
    fn both_configs_load_and_say_what_init_found() {
        let dir = tempfile::tempdir().unwrap();
        let c = cluster(&["-p", "5433", "-k", "/tmp/pg sock"]);
        let master = master_toml(&MasterInit {
            cluster: &c,
            home: Path::new("/home/pg"),
            slave: "postgres@standby:2222",
            slave_config: "/home/pg/conf/wal-slave.toml".into(),
            slave_walmgr: Path::new("/usr/bin/walmgr"),
        });
        let path = dir.path().join(MASTER_FILE);
        std::fs::write(&path, &master).unwrap();
        let m = Config::load(&path, &[]).unwrap();
        assert_eq!(m.role, Role::Master);
        assert_eq!(m.slave.as_deref(), Some("postgres@standby:2222"));
        assert_eq!(
            m.master_db.as_ref().map(|c| c.expose()),
            Some("host='/tmp/pg sock' port=5433 dbname=postgres")
        );
        assert_eq!(m.ssh_identity, Some("/home/pg/.ssh/id_ed25519".into()));
        assert_eq!(m.master_restart_cmd, None, "restarts stay the DBA's choice");

        let slave = slave_toml(&SlaveInit {
            cluster: &c,
            home: Path::new("/home/pg"),
            primary_conninfo: Some("host=master user=rep"),
        });
        let path = dir.path().join(SLAVE_FILE);
        std::fs::write(&path, &slave).unwrap();
        let s = Config::load(&path, &[]).unwrap();
        assert_eq!(s.role, Role::Slave);
        assert_eq!(s.slave_data, Some("/srv/pg data/15".into()));
        assert_eq!(
            s.slave_start_cmd.as_deref(),
            Some(
                "/usr/lib/postgresql/15/bin/pg_ctl -D '/srv/pg data/15' -l \
                 /home/pg/log/postgresql.log -w -o '\"-p\" \"5433\" \"-k\" \"/tmp/pg sock\"' start"
            )
        );
        assert_eq!(
            s.primary_conninfo.as_ref().map(|c| c.expose()),
            Some("host=master user=rep")
        );
        assert_eq!(
            s.completed_wals,
            PathBuf::from("/home/pg/walshipping/logs.complete")
        );
        // What --init writes is live: no walmgr3 key that does nothing here.
        for key in crate::config::keys()
            .iter()
            .filter(|k| k.does_nothing.is_some())
        {
            for text in [&master, &slave] {
                assert!(!text.contains(&format!("{} =", key.name)), "{text}");
            }
        }
    }

    #[test]
    fn debian_clusters_start_with_pg_ctlcluster() {
        let mut c = cluster(&[]);
        c.conf = "/etc/postgresql/15/main/postgresql.conf".into();
        let (start, stop) = start_stop_commands(&c, Path::new("/h"));
        assert_eq!(start, "pg_ctlcluster 15 main start");
        assert_eq!(stop, "pg_ctlcluster 15 main stop -m fast");
    }
}
