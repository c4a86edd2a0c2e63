//! The command line, defined once: parsing, `--help` and usage errors all come from here.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "walmgr",
    version,
    about = "WAL shipping and point-in-time-recovery backups for PostgreSQL",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Log only errors and warnings.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Log verbosely (repeat for more).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Show what would be done without doing anything.
    #[arg(short = 'n', long = "not-really", global = true)]
    pub not_really: bool,

    /// syncdaemon: run in the background (needs `pidfile` in the config).
    #[arg(short = 'd', long = "daemon", global = true)]
    pub daemon: bool,

    /// Tell the running syncdaemon of this config to reload it (SIGHUP).
    #[arg(short = 'r', long = "reload", global = true)]
    pub reload: bool,

    /// Stop the running syncdaemon of this config safely: it ships what is flushed first
    /// (SIGINT).
    #[arg(short = 's', long = "stop", global = true)]
    pub stop: bool,

    /// Kill the running syncdaemon of this config immediately (SIGTERM).
    #[arg(short = 'k', long = "kill", global = true)]
    pub kill: bool,

    /// Override config settings: "key=val[,key=val]".
    #[arg(long = "set", value_name = "KEY=VAL[,KEY=VAL]", global = true)]
    pub set: Vec<String>,

    /// Print a commented sample master and slave config and exit.
    #[arg(long)]
    pub ini: bool,

    /// Write a master config (wal-master.toml) for this host's cluster into --config-dir.
    #[arg(long, requires = "slave", conflicts_with = "init_slave")]
    pub init_master: bool,

    /// Write a slave config (wal-slave.toml) for this host's cluster into --config-dir.
    #[arg(long)]
    pub init_slave: bool,

    /// Where --init-master and --init-slave write configs.
    #[arg(long, value_name = "DIR", default_value = "~/conf")]
    pub config_dir: String,

    /// The standby for --init-master: host, user@host or user@host:port.
    #[arg(long, value_name = "HOST")]
    pub slave: Option<String>,

    /// The cluster's data directory (default: $PGDATA, else the running server's).
    #[arg(long, value_name = "DIR")]
    pub pgdata: Option<PathBuf>,

    /// Master: create ~/.ssh/id_ed25519 if there is none, and print its public key.
    #[arg(long)]
    pub ssh_keygen: bool,

    /// Slave: let the master's public key (a .pub file) run walmgr's receiving end, and
    /// nothing else.
    #[arg(long, value_name = "KEYFILE.pub")]
    pub ssh_add_key: Option<PathBuf>,

    /// Slave: remove the master's key from authorized_keys (a .pub file, the key, or its
    /// comment).
    #[arg(long, value_name = "KEY")]
    pub ssh_remove_key: Option<String>,

    /// Slave: primary_conninfo written by --init-slave, for streaming replication.
    #[arg(long, value_name = "CONNINFO")]
    pub primary_conninfo: Option<String>,

    /// Slave: put the replication password (the first line of FILE) into ~/.pgpass for the
    /// connection primary_conninfo makes (from the slave config, or --primary-conninfo).
    #[arg(long, value_name = "FILE", conflicts_with = "remove_password")]
    pub add_password: Option<PathBuf>,

    /// Slave: remove the ~/.pgpass line --add-password wrote for primary_conninfo.
    #[arg(long)]
    pub remove_password: bool,

    /// Master, without a config: set synchronous_standby_names as `synch-standby` does, on
    /// the cluster of --pgdata, $PGDATA or the running server.
    #[arg(long, value_name = "NAMES")]
    pub synch_standby: Option<String>,

    /// The walmgr config file (TOML, or a walmgr3 .ini).
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Master: configure archiving through the extension and create the slave directories.
    Setup,

    /// Master: let waiting files be archived, then turn archiving off.
    Stop {
        /// Seconds to wait for files already waiting to be archived.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        wait: u64,
        /// Turn archiving off even if files still wait (they will not be archived).
        #[arg(long)]
        drop_waiting: bool,
    },

    /// Either host: take a base backup into full_backup (from the master, or from the
    /// in-recovery standby when run with a slave config).
    Backup,

    /// List the backup sets in full_backup.
    Listbackups,

    /// Slave: put a backup set in place of slave_data and start replay from the archive.
    Restore {
        /// Backup set to restore (e.g. data.master.1); default: the newest, moved rather than copied.
        src: Option<String>,
        /// Destination instead of slave_data.
        dst: Option<std::path::PathBuf>,
        /// Recover up to this time (recovery_target_time), then open for writes.
        #[arg(long, value_name = "TIMESTAMP", group = "target")]
        target_time: Option<String>,
        /// Recover up to this LSN (recovery_target_lsn), then open for writes.
        #[arg(long, value_name = "LSN", group = "target")]
        target_lsn: Option<String>,
        /// Recover up to this transaction (recovery_target_xid), then open for writes.
        #[arg(long, value_name = "XID", group = "target")]
        target_xid: Option<String>,
        /// Recover up to this restore point (recovery_target_name), then open for writes.
        #[arg(long, value_name = "NAME", group = "target")]
        target_name: Option<String>,
    },

    /// Standby: remove walmgr's directories and set-aside data directories after stop/boot.
    Cleanup,

    /// Either host: archiving (master) or replay (standby) state, backups, lock.
    Status {
        /// One JSON object, for monitoring (its fields: docs/monitoring.md).
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Prometheus text exposition format, for node_exporter's textfile collector.
        #[arg(long)]
        prometheus: bool,
    },

    /// Either host: verify the config, directories, connections, host keys and, on the
    /// master, a real archive round trip. One line per check; exit 0 only if all pass.
    Check {
        /// One JSON object: role, ok, and each check's name, status and detail.
        #[arg(long)]
        json: bool,
        /// How long the round trip waits for the switched segment in the archive.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
    },

    /// Master: ship in-progress WAL to the standby now, once (walmgr.sync()).
    Sync,

    /// Master: ship in-progress WAL continuously, for a master that does not preload the
    /// extension (-d: in the background).
    Syncdaemon,

    /// Master: run periodic_command now.
    Periodic,

    /// Master: make commits wait for the named standbys (synchronous_standby_names); refused
    /// unless enough of them are connected and streaming. '' switches it off.
    SynchStandby {
        /// 's1', 's1, s2', 'FIRST n (s1, s2)', 'ANY n (s1, s2)', '*' (any standby), or ''.
        names: String,
    },

    /// Slave: end replay and open the standby for writes.
    ///
    /// It replays everything the archive holds first, however long that takes.
    Boot,

    /// Slave: make slave_data a streaming standby of the master (pg_basebackup over the
    /// replication protocol, primary_conninfo or --primary-conninfo), with walmgr's archive
    /// as the fallback, and start it.
    Createslave,

    /// Slave: pause replay.
    Pause,

    /// Slave: resume replay after pause.
    Continue,

    /// Internal: take the backup lock (BACKUPLOCK in completed_wals).
    Xlock,

    /// Internal: remove the backup lock.
    Xrelease,

    /// Internal: rotate backup sets per keep_backups.
    Xrotate,

    /// Internal (archive_cleanup_command): remove WAL files no kept backup and no standby needs.
    Xpurgewals {
        /// The standby's last restartpoint file (%r): nothing from it on is removed.
        last: Option<String>,
    },

    /// Internal (run by the master over SSH): receive WAL files on stdin into completed_wals,
    /// one reply per file on stdout, until the master hangs up.
    Xserve,

    /// Internal (the master's in-progress WAL): write BYTES bytes read from stdin at OFFSET
    /// into partial_wals/FILE, durably. Offset 0 starts the file afresh.
    Xpartialsync {
        /// The segment's file name.
        file: String,
        /// Where in the segment the bytes go.
        offset: u64,
        /// How many bytes stdin brings.
        bytes: u64,
    },

    /// Internal (archive_command): archive one WAL file.
    Xarchive {
        /// Path of the file (%p).
        srcpath: PathBuf,
        /// Its WAL file name (%f).
        srcname: String,
    },

    /// Internal (restore_command): restore one WAL file. Exit 1 when it is not (yet) archived.
    Xrestore {
        /// WAL file name asked for (%f).
        srcname: String,
        /// Where PostgreSQL wants it (%p).
        dstpath: PathBuf,
        /// The file of the last restartpoint (%r).
        last: Option<String>,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Setup => "setup",
            Command::Stop { .. } => "stop",
            Command::Backup => "backup",
            Command::Listbackups => "listbackups",
            Command::Restore { .. } => "restore",
            Command::Boot => "boot",
            Command::Createslave => "createslave",
            Command::Sync => "sync",
            Command::Syncdaemon => "syncdaemon",
            Command::Periodic => "periodic",
            Command::SynchStandby { .. } => "synch-standby",
            Command::Cleanup => "cleanup",
            Command::Status { .. } => "status",
            Command::Check { .. } => "check",
            Command::Pause => "pause",
            Command::Continue => "continue",
            Command::Xlock => "xlock",
            Command::Xrelease => "xrelease",
            Command::Xrotate => "xrotate",
            Command::Xpurgewals { .. } => "xpurgewals",
            Command::Xserve => "xserve",
            Command::Xarchive { .. } => "xarchive",
            Command::Xpartialsync { .. } => "xpartialsync",
            Command::Xrestore { .. } => "xrestore",
        }
    }
}
