//! Sample configs: walmgr3's two manual samples verbatim, and their native TOML forms.

/// The "Sample master.ini" of the walmgr3 manual, verbatim (de-indented).
pub const MANUAL_MASTER_INI: &str = r#"[walmgr]
job_name             = wal-master
logfile              = ~/log/%(job_name)s.log
pidfile              = ~/pid/%(job_name)s.pid
use_skylog           = 1

master_db            = dbname=my_db
master_data          = /var/lib/postgresql/9.1/main
master_config        = /etc/postgresql/9.1/main/postgresql.conf
master_bin           = /usr/lib/postgresql/9.1/bin

# set this only if you can afford database restarts during setup and stop.
#master_restart_cmd   = /etc/init.d/postgresql-9.1 restart

slave = slave-host
slave_config = /var/lib/postgresql/conf/wal-slave.ini

walmgr_data          = /var/lib/postgresql/walshipping
completed_wals       = %(walmgr_data)s/logs.complete
partial_wals         = %(walmgr_data)s/logs.partial
full_backup          = %(walmgr_data)s/data.master
config_backup        = %(walmgr_data)s/config.backup

# syncdaemon update frequency
loop_delay           = 10.0
# use record based shipping available since 8.2
use_xlog_functions   = 0

# pass -z to rsync, useful on low bandwidth links
compression          = 0

# keep symlinks for pg_xlog and pg_log
keep_symlinks        = 1

# tell walmgr to set wal_level to hot_standby during setup
#hot_standby = 1

# periodic sync
#command_interval     = 600
#periodic_command     = /var/lib/postgresql/walshipping/periodic.sh
"#;

/// The "Sample slave.ini" of the walmgr3 manual, verbatim (de-indented).
pub const MANUAL_SLAVE_INI: &str = r#"[walmgr]
job_name             = wal-slave
logfile              = ~/log/%(job_name)s.log
use_skylog           = 1

slave_data           = /var/lib/postgresql/9.1/main
slave_bin            = /usr/lib/postgresql/9.1/bin
slave_stop_cmd       = /etc/init.d/postgresql-9.1 stop
slave_start_cmd      = /etc/init.d/postgresql-9.1 start
slave_config_dir     = /etc/postgresql/9.1/main

# alternative pg_xlog directory for slave, symlinked to  pg_xlog on restore
#slave_pg_xlog        = /vol2/pg_xlog

walmgr_data          = ~/walshipping
completed_wals       = %(walmgr_data)s/logs.complete
partial_wals         = %(walmgr_data)s/logs.partial
full_backup          = %(walmgr_data)s/data.master
config_backup        = %(walmgr_data)s/config.backup

backup_datadir       = yes
keep_backups         = 0
archive_command =

# primary database connect string for hot standby -- enabling
# this will cause the slave to be started in hot standby mode.
#primary_conninfo = host=master port=5432 user=postgres
"#;

/// What `walmgr --ini` knows of the host it runs on, for paths and commands a DBA can keep:
/// where PostgreSQL's binaries, data and configuration are, and how the server is started,
/// stopped and restarted there (see `setup::host_layout`, which finds them).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleHost {
    /// What was found, for the samples' first comment ("PostgreSQL 15 in Debian's layout").
    pub found: String,
    pub bin: String,
    pub data: String,
    /// postgresql.conf.
    pub conf: String,
    /// The directory of postgresql.conf, pg_hba.conf and pg_ident.conf.
    pub conf_dir: String,
    pub start: String,
    pub stop: String,
    pub restart: String,
    /// The home of the user PostgreSQL runs as, where walmgr3's samples (and --init-*)
    /// keep `conf/` and `walshipping/`.
    pub home: String,
}

impl SampleHost {
    /// A cluster `NAME` of PostgreSQL `major` in Debian's layout, driven by
    /// postgresql-common's pg_ctlcluster.
    pub fn debian(major: &str, name: &str) -> SampleHost {
        SampleHost {
            found: format!(
                "PostgreSQL {major} in Debian's layout (cluster {major}/{name}, pg_ctlcluster)"
            ),
            bin: format!("/usr/lib/postgresql/{major}/bin"),
            data: format!("/var/lib/postgresql/{major}/{name}"),
            conf: format!("/etc/postgresql/{major}/{name}/postgresql.conf"),
            conf_dir: format!("/etc/postgresql/{major}/{name}"),
            start: format!("pg_ctlcluster {major} {name} start"),
            stop: format!("pg_ctlcluster {major} {name} stop -m fast"),
            restart: format!("pg_ctlcluster {major} {name} restart -m fast"),
            home: "/var/lib/postgresql".into(),
        }
    }
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The walmgr3 keys walmgr reads but ignores, as comments: listed, so that a DBA coming from
/// walmgr3 finds them, and not set, so that no one takes them for live settings.
fn keys_that_do_nothing() -> String {
    let mut text = String::from(
        "\n# walmgr3 keys that walmgr accepts, so that walmgr3 configs load unchanged, but that\n\
         # do nothing here:\n",
    );
    for key in super::keys().iter() {
        if let Some(why) = key.does_nothing {
            let mut line = format!("#   {}:", key.name);
            for word in why.split_whitespace() {
                if line.len() + 1 + word.len() > 88 {
                    text.push_str(&line);
                    text.push('\n');
                    line = "#       ".to_owned();
                } else {
                    line.push(' ');
                }
                line.push_str(word);
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

const HEADER: &str = "\
# A value may use another key's value as ${name} (write $${ for a literal ${),
# and a path starting with ~ is under the home directory of the user running walmgr.
# walmgr3 .ini files are read unchanged too.
";

/// The commented sample master config of `walmgr --ini`: the manual's sample brought to
/// `host`.
pub fn master_toml(host: &SampleHost) -> String {
    format!(
        r#"# walmgr master configuration: `walmgr master.toml setup`, then `backup`.
# For this host: {found}.
{HEADER}
[walmgr]
job_name             = "wal-master"
logfile              = "~/log/${{job_name}}.log"
# pid file of `walmgr ... syncdaemon -d`
pidfile              = "~/pid/${{job_name}}.pid"

master_db            = "dbname=postgres"
# a config with master_data is a master config; without, a slave config
master_data          = {data}
master_config        = {conf}

# set this only if you can afford database restarts during setup and stop.
#master_restart_cmd   = {restart}

# host, user@host or user@host:port of the slave, reached over SSH;
# "" when the slave directories are on this host (same machine or a mount)
slave                = "slave-host"
slave_config         = {slave_config}

# directories on the slave; the four below default to these very values
walmgr_data          = {walmgr_data}
completed_wals       = "${{walmgr_data}}/logs.complete"
partial_wals         = "${{walmgr_data}}/logs.partial"
full_backup          = "${{walmgr_data}}/data.master"
config_backup        = "${{walmgr_data}}/config.backup"

# seconds between rounds of in-progress WAL shipping when nothing wakes it sooner
loop_delay           = 10.0

# compress what is sent to the slave, useful on low bandwidth links
compression          = false

# keep symlinks for pg_log and the like (tablespaces are always copied)
keep_symlinks        = true

# periodic sync
#command_interval     = 600
#periodic_command     = {periodic}

# SSH (when slave is set): the private key to log in with, the known_hosts file the
# slave's host key must be in, and the walmgr binary on the slave.
#ssh_identity         = "~/.ssh/id_ed25519"
#ssh_known_hosts      = "~/.ssh/known_hosts"
#slave_walmgr         = "walmgr"
# seconds to wait on a silent standby before the session is given up and retried
#network_timeout      = 120
{inert}"#,
        found = host.found,
        data = q(&host.data),
        conf = q(&host.conf),
        restart = q(&host.restart),
        slave_config = q(&format!("{}/conf/wal-slave.toml", host.home)),
        walmgr_data = q(&format!("{}/walshipping", host.home)),
        periodic = q(&format!("{}/walshipping/periodic.sh", host.home)),
        inert = keys_that_do_nothing(),
    )
}

/// The commented sample slave config of `walmgr --ini`: the manual's sample brought to
/// `host`.
pub fn slave_toml(host: &SampleHost) -> String {
    format!(
        r#"# walmgr slave configuration: `walmgr slave.toml restore` after a backup.
# For this host: {found}.
{HEADER}
[walmgr]
job_name             = "wal-slave"
logfile              = "~/log/${{job_name}}.log"

slave_data           = {data}
slave_bin            = {bin}
slave_stop_cmd       = {stop}
slave_start_cmd      = {start}
slave_config_dir     = {conf_dir}

# alternative pg_wal directory for slave, symlinked to pg_wal on restore
#slave_pg_xlog        = "/vol2/pg_wal"

# the four below default to these very values
walmgr_data          = "~/walshipping"
completed_wals       = "${{walmgr_data}}/logs.complete"
partial_wals         = "${{walmgr_data}}/logs.partial"
full_backup          = "${{walmgr_data}}/data.master"
config_backup        = "${{walmgr_data}}/config.backup"

# keep a backup of the slave's data directory when restoring over it
backup_datadir       = true
# number of backups to keep; 0 keeps no backup history
keep_backups         = 0
# command run before the oldest backup is rotated away; if it fails, nothing rotates
archive_command      = ""

# primary database connect string for hot standby -- enabling
# this will cause the slave to be started in hot standby mode.
#primary_conninfo     = "host=master port=5432 user=postgres"

# seconds xserve waits on a silent master before it gives the session (and its locks) up
#network_timeout      = 120
{inert}"#,
        found = host.found,
        data = q(&host.data),
        bin = q(&host.bin),
        stop = q(&host.stop),
        start = q(&host.start),
        conf_dir = q(&host.conf_dir),
        inert = keys_that_do_nothing(),
    )
}
