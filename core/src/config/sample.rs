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

/// The native form of [`MANUAL_MASTER_INI`], printed by `walmgr --ini`.
pub const SAMPLE_MASTER_TOML: &str = r#"# walmgr master configuration: `walmgr master.toml setup`, then `backup`.
# A value may use another key's value as ${name} (write $${ for a literal ${),
# and a path starting with ~ is under the home directory of the user running walmgr.
# walmgr3 .ini files are read unchanged too.

[walmgr]
job_name             = "wal-master"
logfile              = "~/log/${job_name}.log"
# pid file of `walmgr ... syncdaemon -d`
pidfile              = "~/pid/${job_name}.pid"
use_skylog           = true

master_db            = "dbname=my_db"
# a config with master_data is a master config; without, a slave config
master_data          = "/var/lib/postgresql/9.1/main"
master_config        = "/etc/postgresql/9.1/main/postgresql.conf"
master_bin           = "/usr/lib/postgresql/9.1/bin"

# set this only if you can afford database restarts during setup and stop.
#master_restart_cmd   = "/etc/init.d/postgresql-9.1 restart"

# host, user@host or user@host:port of the slave, reached over SSH;
# "" when the slave directories are on this host (same machine or a mount)
slave                = "slave-host"
slave_config         = "/var/lib/postgresql/conf/wal-slave.ini"

# directories on the slave; the four below default to these very values
walmgr_data          = "/var/lib/postgresql/walshipping"
completed_wals       = "${walmgr_data}/logs.complete"
partial_wals         = "${walmgr_data}/logs.partial"
full_backup          = "${walmgr_data}/data.master"
config_backup        = "${walmgr_data}/config.backup"

# syncdaemon update frequency, in seconds
loop_delay           = 10.0
# use record based shipping
use_xlog_functions   = false

# compress what is sent to the slave, useful on low bandwidth links
compression          = false

# keep symlinks for pg_wal and pg_log
keep_symlinks        = true

# tell walmgr to set wal_level to replica during setup
#hot_standby          = true

# periodic sync
#command_interval     = 600
#periodic_command     = "/var/lib/postgresql/walshipping/periodic.sh"

# SSH (when slave is set): the private key to log in with, the known_hosts file the
# slave's host key must be in, and the walmgr binary on the slave.
#ssh_identity         = "~/.ssh/id_ed25519"
#ssh_known_hosts      = "~/.ssh/known_hosts"
#slave_walmgr         = "walmgr"
# seconds to wait on a silent standby before the session is given up and retried
#network_timeout      = 120
"#;

/// The native form of [`MANUAL_SLAVE_INI`], printed by `walmgr --ini`.
pub const SAMPLE_SLAVE_TOML: &str = r#"# walmgr slave configuration: `walmgr slave.toml restore` after a backup.
# A value may use another key's value as ${name} (write $${ for a literal ${),
# and a path starting with ~ is under the home directory of the user running walmgr.
# walmgr3 .ini files are read unchanged too.

[walmgr]
job_name             = "wal-slave"
logfile              = "~/log/${job_name}.log"
use_skylog           = true

slave_data           = "/var/lib/postgresql/9.1/main"
slave_bin            = "/usr/lib/postgresql/9.1/bin"
slave_stop_cmd       = "/etc/init.d/postgresql-9.1 stop"
slave_start_cmd      = "/etc/init.d/postgresql-9.1 start"
slave_config_dir     = "/etc/postgresql/9.1/main"

# alternative pg_wal directory for slave, symlinked to pg_wal on restore
#slave_pg_xlog        = "/vol2/pg_xlog"

# the four below default to these very values
walmgr_data          = "~/walshipping"
completed_wals       = "${walmgr_data}/logs.complete"
partial_wals         = "${walmgr_data}/logs.partial"
full_backup          = "${walmgr_data}/data.master"
config_backup        = "${walmgr_data}/config.backup"

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
"#;
