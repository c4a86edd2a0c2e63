//! The scenario most tests start from: a master whose WAL walmgr ships to a local archive,
//! and standbys that replay from it. Written the way a DBA sets it up: config files, then
//! `walmgr master.toml setup`. The standby's side can be behind SSH on this machine
//! ([`Shipping::over_ssh`]) or on another host ([`Shipping::two_hosts`]).
//!
//! A walmgr command that fails in a scenario reports, besides its own output, the archive
//! (completed_wals and partial_wals listed) and the tails of the master's, each standby's and
//! the sshd's logs; a panic lists the archive as the scenario is torn down.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use walmgr_core::wal::name::{SegmentName, WalFileName};

use crate::{
    chown_to_postgres, Cluster, Context, Host, Pg, Sshd, TestCommand, TestDir, TwoHosts, Walmgr,
};

pub const WAIT: Duration = Duration::from_secs(120);

/// Field order is drop order: the clusters go down before their directory is removed.
pub struct Shipping {
    pub master: Cluster,
    walmgr: Walmgr,
    pub master_config: PathBuf,
    pub slave_config: PathBuf,
    pub completed_wals: PathBuf,
    pub partial_wals: PathBuf,
    /// The standby's sshd, when the master ships over SSH ([`Shipping::over_ssh`]).
    pub sshd: Option<Sshd>,
    /// The master's and the standby's hosts ([`Shipping::two_hosts`]); after the servers in
    /// them, before their directory.
    pub hosts: Option<TwoHosts>,
    /// Where walmgr's binary, configs and walmgr_data are: the test dir, or a subdirectory
    /// of it ([`Shipping::with_walmgr_in`]).
    pub home: PathBuf,
    pub dir: TestDir,
}

impl Shipping {
    /// A running master (not yet set up) with master.toml and slave.toml written; the slave
    /// directories live under the test dir (local transport). `walmgr` is the binary to test:
    /// `env!("CARGO_BIN_EXE_walmgr")`.
    pub fn new(walmgr: impl AsRef<Path>, pg: &Pg, label: &str, initdb_args: &[&str]) -> Shipping {
        Shipping::new_in(None, "", walmgr, pg, label, initdb_args)
    }

    /// [`Shipping::new`] with everything of walmgr's (its binary, its configs, walmgr_data
    /// and the standby's slave.toml) under the test dir's subdirectory `place`: a name with
    /// a space, a quote, `%` and a non-ASCII letter tries every path walmgr quotes.
    pub fn with_walmgr_in(
        place: &str,
        walmgr: impl AsRef<Path>,
        pg: &Pg,
        label: &str,
        initdb_args: &[&str],
    ) -> Shipping {
        Shipping::new_in(None, place, walmgr, pg, label, initdb_args)
    }

    /// [`Shipping::with_walmgr_in`], over SSH as [`Shipping::over_ssh`].
    pub fn over_ssh_with_walmgr_in(
        place: &str,
        walmgr: impl AsRef<Path>,
        pg: &Pg,
        label: &str,
        initdb_args: &[&str],
    ) -> Shipping {
        let mut s = Shipping::new_in(None, place, walmgr, pg, label, initdb_args);
        let sshd = Sshd::start(&s.dir, "standby");
        s.ship_over_ssh(sshd, "");
        s
    }

    /// [`Shipping::new`], with the master in `hosts`' master host if given and walmgr's
    /// files under `place` in the test dir.
    fn new_in(
        hosts: Option<TwoHosts>,
        place: &str,
        walmgr: impl AsRef<Path>,
        pg: &Pg,
        label: &str,
        initdb_args: &[&str],
    ) -> Shipping {
        let dir = TestDir::new(label);
        let home = dir.mkdir(place);
        let master = match &hosts {
            Some(h) => Cluster::init_on(&h.master, pg, &dir, "master", initdb_args),
            None => Cluster::init(pg, &dir, "master", initdb_args),
        };
        // Keep finished segments in pg_wal long enough to compare them with the archive.
        master.set("wal_keep_size = '4GB'\nmax_wal_size = '4GB'\ncheckpoint_timeout = '1h'");
        master.start();
        let walmgr = Walmgr::new_in(&dir, place, walmgr);
        let walmgr_data = home.join("walshipping");
        let completed_wals = walmgr_data.join("logs.complete");
        let partial_wals = walmgr_data.join("logs.partial");
        let context = walmgr.context();
        context.listing("completed_wals", &completed_wals);
        context.listing("partial_wals", &partial_wals);
        context.log("server log of the master", &master.log);
        let pg_ctl = pg.bin("pg_ctl");
        let master_config = dir.write(
            home.join("master.toml"),
            format!(
                "[walmgr]\n\
                 job_name = \"wal-master\"\n\
                 master_db = \"{conninfo}\"\n\
                 master_data = \"{data}\"\n\
                 master_bin = \"{bin}\"\n\
                 master_restart_cmd = \"runuser -u postgres -- {pg_ctl} -D {data} -l {log} -w -m fast restart\"\n\
                 slave = \"\"\n\
                 walmgr_data = \"{walmgr_data}\"\n\
                 completed_wals = \"${{walmgr_data}}/logs.complete\"\n\
                 partial_wals = \"${{walmgr_data}}/logs.partial\"\n\
                 full_backup = \"${{walmgr_data}}/data.master\"\n\
                 config_backup = \"${{walmgr_data}}/config.backup\"\n",
                conninfo = master.conninfo(),
                data = master.data.display(),
                bin = pg.bindir.display(),
                pg_ctl = pg_ctl.display(),
                log = master.log.display(),
                walmgr_data = walmgr_data.display(),
            ),
        );
        // A walmgr3 .ini works unchanged on the slave side.
        // %% is a % to its interpolation.
        let ini_path = |p: &Path| p.display().to_string().replace('%', "%%");
        let slave_config = dir.write(
            home.join("slave.ini"),
            format!(
                "[walmgr]\n\
                 job_name = wal-slave\n\
                 slave_data = {}\n\
                 walmgr_data = {}\n\
                 completed_wals = %(walmgr_data)s/logs.complete\n\
                 partial_wals = %(walmgr_data)s/logs.partial\n\
                 full_backup = %(walmgr_data)s/data.master\n\
                 keep_backups = 0\n\
                 archive_command =\n",
                dir.join("standby").display(),
                ini_path(&walmgr_data)
            ),
        );
        Shipping {
            master,
            walmgr,
            master_config,
            slave_config,
            completed_wals,
            partial_wals,
            sshd: None,
            hosts,
            home,
            dir,
        }
    }

    /// The same scenario with the standby's directories behind SSH: a private sshd on
    /// 127.0.0.1 stands for the standby host, the master's key is installed there with
    /// `walmgr SLAVE_CONFIG --ssh-add-key`, and master.toml names the standby as
    /// `postgres@127.0.0.1:PORT`. `extra` is appended to master.toml. Not yet set up.
    pub fn over_ssh(
        walmgr: impl AsRef<Path>,
        pg: &Pg,
        label: &str,
        initdb_args: &[&str],
        extra: &str,
    ) -> Shipping {
        let mut s = Shipping::new(walmgr, pg, label, initdb_args);
        let sshd = Sshd::start(&s.dir, "standby");
        s.ship_over_ssh(sshd, extra);
        s
    }

    /// The same scenario across two hosts ([`TwoHosts`]): the master runs in the master host,
    /// the standby's sshd in the standby host on 169.254.77.2, and master.toml names the
    /// standby as `postgres@169.254.77.2:PORT`, so the archiver reaches it by TCP over the
    /// link only. [`Shipping::walmgr`] and [`Shipping::command`] run in the master host
    /// (`.on(&s.hosts().standby)` for the standby's side), and [`Shipping::standby`] makes
    /// its standby in the standby host, by pg_basebackup over the link. `extra` is appended
    /// to master.toml. Not yet set up.
    pub fn two_hosts(
        walmgr: impl AsRef<Path>,
        pg: &Pg,
        label: &str,
        initdb_args: &[&str],
        extra: &str,
    ) -> Shipping {
        let hosts = TwoHosts::new();
        let mut s = Shipping::new_in(Some(hosts), "", walmgr, pg, label, initdb_args);
        let sshd = Sshd::start_on(&s.hosts().standby, &s.dir, "standby");
        s.ship_over_ssh(sshd, extra);
        s
    }

    /// Puts the standby's directories behind `sshd`: the master's key installed there with
    /// `walmgr SLAVE_CONFIG --ssh-add-key` (on the standby's host), the sshd's host key
    /// trusted, and master.toml naming `postgres@ADDRESS:PORT` with `extra` appended.
    fn ship_over_ssh(&mut self, sshd: Sshd, extra: &str) {
        self.context()
            .log("sshd log of the standby", sshd.log_path());
        let (key, public) = Sshd::client_key(&self.dir, "master_key");
        let known_hosts = self
            .dir
            .write("known_hosts", format!("{}\n", sshd.known_hosts_line()));
        self.walmgr()
            .args([
                path(&self.slave_config),
                &format!("--ssh-add-key={}", public.display()),
            ])
            .env("HOME", sshd.home())
            .on_host(self.standby_host())
            .as_postgres()
            .ok();
        let text = fs::read_to_string(&self.master_config).expect("read master.toml");
        let text = text.replace(
            "slave = \"\"\n",
            &format!(
                "slave = \"postgres@{addr}:{port}\"\n\
                 slave_config = \"{slave_config}\"\n\
                 slave_walmgr = \"{walmgr}\"\n\
                 ssh_identity = \"{key}\"\n\
                 ssh_known_hosts = \"{known_hosts}\"\n\
                 {extra}\n",
                addr = sshd.address(),
                port = sshd.port(),
                slave_config = self.slave_config.display(),
                walmgr = self.walmgr_bin().display(),
                key = key.display(),
                known_hosts = known_hosts.display(),
            ),
        );
        fs::write(&self.master_config, text).expect("write master.toml");
        self.sshd = Some(sshd);
    }

    /// Archiving through `archive_command = 'walmgr master.toml xarchive %p %f'` instead of the
    /// module (completed_wals made by hand, as setup is not run); restarts the master.
    pub fn archive_with_xarchive(&self) {
        fs::create_dir_all(&self.completed_wals).expect("create completed_wals");
        chown_to_postgres(&self.completed_wals);
        self.master.set(&format!(
            "archive_mode = on\narchive_command = '{} {} xarchive %p %f'",
            self.walmgr_bin().display(),
            self.master_config.display()
        ));
        self.master.restart();
    }

    /// pgbench -i on the master, a WAL switch, then every segment up to it is archived and
    /// identical to the master's.
    pub fn fill_and_check_archive(&self) {
        self.master.pgbench(&["-i", "-s", "2", "-q"]);
        let last = self.master.switch_wal();
        self.wait_archived(&last);
        self.assert_archive_complete_up_to(&last);
    }

    /// `walmgr` (this scenario's copy) with no arguments yet, as root: add `.args([..])`,
    /// `.as_postgres()`, `.env(..)`, then `.ok()`, `.run()` or `.fails_with(code)`. A failure
    /// reports the scenario's [`Shipping::context`].
    /// In a [`Shipping::two_hosts`] scenario it runs in the master host.
    pub fn walmgr(&self) -> TestCommand {
        self.walmgr.command().on_host(self.master_host())
    }

    /// Any other program run in this scenario, reporting its context when it fails like
    /// [`Shipping::walmgr`] (and like it, in the master host of a two-host scenario).
    pub fn command(&self, program: impl AsRef<Path>) -> TestCommand {
        TestCommand::new(program)
            .with_context(self.context())
            .on_host(self.master_host())
    }

    /// The two hosts; panics unless this is a [`Shipping::two_hosts`] scenario.
    pub fn hosts(&self) -> &TwoHosts {
        self.hosts.as_ref().expect("a two_hosts scenario")
    }

    fn master_host(&self) -> Option<&Host> {
        self.hosts.as_ref().map(|h| &h.master)
    }

    fn standby_host(&self) -> Option<&Host> {
        self.hosts.as_ref().map(|h| &h.standby)
    }

    /// The walmgr binary the scenario runs, owned by postgres (for archive_command,
    /// restore_command, slave_walmgr).
    pub fn walmgr_bin(&self) -> &Path {
        &self.walmgr.bin
    }

    /// What a failing command of this scenario reports: completed_wals and partial_wals, the
    /// logs of the master, of every standby made through [`Shipping::standby`] or named in
    /// [`Shipping::slave_toml`], and of the sshd. Add what a test builds on its own.
    pub fn context(&self) -> &Context {
        self.walmgr.context()
    }

    /// The standby's sshd; panics unless this is an [`Shipping::over_ssh`] scenario.
    pub fn sshd(&self) -> &Sshd {
        self.sshd.as_ref().expect("an over_ssh scenario")
    }

    /// Appends lines to master.toml (its only table is [walmgr]).
    pub fn add_to_master_config(&self, lines: &str) {
        let mut text = fs::read_to_string(&self.master_config).expect("read master.toml");
        text.push_str(lines);
        text.push('\n');
        fs::write(&self.master_config, text).expect("write master.toml");
    }

    /// A native slave config for a standby that walmgr restores into `standby`'s data
    /// directory and starts on its own port; named in master.toml as slave_config.
    pub fn slave_toml(&self, standby: &Cluster, extra: &str) -> PathBuf {
        self.context()
            .log(&format!("server log of {}", standby.name), &standby.log);
        let path = self.dir.write(
            self.home.join("slave.toml"),
            format!(
                "[walmgr]\n\
                 job_name = \"wal-slave\"\n\
                 slave_data = \"{data}\"\n\
                 slave_bin = \"{bin}\"\n\
                 slave_start_cmd = \"{start}\"\n\
                 slave_stop_cmd = \"{stop}\"\n\
                 walmgr_data = \"{walmgr_data}\"\n\
                 {extra}\n",
                data = standby.data.display(),
                bin = standby.pg.bindir.display(),
                start = standby.start_command(),
                stop = standby.stop_command(),
                walmgr_data = self.home.join("walshipping").display(),
            ),
        );
        self.add_to_master_config(&format!("slave_config = \"{}\"", path.display()));
        path
    }

    /// `walmgr master.toml setup`, which restarts the master through master_restart_cmd.
    pub fn setup(&self) -> String {
        let out = self
            .walmgr()
            .args([path(&self.master_config), "setup"])
            .ok();
        self.master
            .wait_until("the master is back after setup", WAIT, || {
                self.master.try_connect().is_ok()
            });
        out
    }

    /// A master archiving through the walmgr module.
    pub fn with_module(
        walmgr: impl AsRef<Path>,
        pg: &Pg,
        label: &str,
        initdb_args: &[&str],
    ) -> Shipping {
        let s = Shipping::new(walmgr, pg, label, initdb_args);
        s.setup();
        let library: String = s
            .master
            .query_one("SELECT current_setting('archive_library')");
        assert_eq!(library, "walmgr");
        s
    }

    /// A standby made with pg_basebackup that replays from the archive through xrestore (in
    /// the standby host of a two-host scenario).
    pub fn standby(&self, name: &str) -> Cluster {
        let standby = match self.standby_host() {
            Some(host) => Cluster::base_backup_on(host, &self.master, &self.dir, name, &[]),
            None => Cluster::base_backup_of(&self.master, &self.dir, name),
        };
        self.context()
            .log(&format!("server log of {name}"), &standby.log);
        // The copy carries the master's ALTER SYSTEM settings, which override
        // postgresql.conf: without these lines it would archive (and, once booted, ship
        // in-progress WAL) into the master's archive, as `walmgr restore` never lets it.
        let auto = standby.data.join("postgresql.auto.conf");
        let kept: String = fs::read_to_string(&auto)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let key = l.split('=').next().unwrap_or("").trim();
                !matches!(key, "archive_mode" | "archive_library" | "walmgr.config")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&auto, kept).expect("write postgresql.auto.conf");
        standby.set(&format!(
            "archive_mode = off\n\
             archive_library = ''\n\
             hot_standby = on\n\
             wal_retrieve_retry_interval = '200ms'\n\
             restore_command = '{} {} xrestore %f %p %r'\n",
            self.walmgr_bin().display(),
            self.slave_config.display()
        ));
        let signal = standby.data.join("standby.signal");
        fs::write(&signal, "").expect("write standby.signal");
        chown_to_postgres(&signal);
        standby.start();
        standby
    }

    /// A standby streaming from the master with `application_name`
    /// ([`Cluster::streaming_standby_of`]), its log in the scenario's failure reports.
    pub fn streaming_standby(&self, name: &str, application_name: &str) -> Cluster {
        let standby =
            Cluster::streaming_standby_of(&self.master, &self.dir, name, application_name);
        self.context()
            .log(&format!("server log of {name}"), &standby.log);
        standby
    }

    /// File names in completed_wals (without walmgr's temp files).
    pub fn archived(&self) -> BTreeSet<String> {
        list(&self.completed_wals)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    pub fn wait_archived(&self, name: &str) {
        self.master
            .wait_until(&format!("{name} in completed_wals"), WAIT, || {
                self.completed_wals.join(name).exists()
            });
    }

    /// Switches to a new segment and waits until the finished one is archived; returns it.
    pub fn switch_and_wait(&self) -> String {
        let finished = self.master.switch_wal();
        self.wait_archived(&finished);
        finished
    }

    /// (last archived wal, files waiting, last error) from walmgr.status.
    pub fn status(&self) -> (Option<String>, i64, Option<String>) {
        let mut client = self.master.connect();
        let row = client
            .query_one(
                "SELECT last_archived_wal, files_waiting, last_error FROM walmgr.status",
                &[],
            )
            .expect("SELECT FROM walmgr.status");
        (row.get(0), row.get(1), row.get(2))
    }

    /// The cluster's segment size in bytes.
    pub fn seg_size(&self) -> u32 {
        let bytes: String = self
            .master
            .query_one("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'");
        bytes.parse().expect("wal_segment_size")
    }

    /// Every segment from the first to `last` is archived, and each one still in the
    /// master's pg_wal has the same bytes in the archive.
    pub fn assert_archive_complete_up_to(&self, last: &str) {
        let seg_size = self.seg_size();
        let archived = self.archived();
        let segment = |name: &str| match WalFileName::parse(name) {
            Ok(WalFileName::Segment(s)) => Some(s),
            _ => None,
        };
        let segments: Vec<SegmentName> = archived.iter().filter_map(|n| segment(n)).collect();
        let first = *segments.first().expect("no segment archived");
        let last = segment(last).expect("last is a segment name");
        for n in first.segno(seg_size)..=last.segno(seg_size) {
            let name = SegmentName::from_segno(last.tli, n, seg_size).to_string();
            assert!(
                archived.contains(&name),
                "segment {name} missing from the archive; archive has {archived:?}"
            );
        }
        let pg_wal = self.master.data.join("pg_wal");
        let mut compared = 0;
        for name in segments.iter().map(SegmentName::to_string) {
            if let Ok(master_bytes) = fs::read(pg_wal.join(&name)) {
                let archived_bytes =
                    fs::read(self.completed_wals.join(&name)).expect("read archived segment");
                assert!(
                    master_bytes == archived_bytes,
                    "{name}: archived copy differs from the master's"
                );
                compared += 1;
            }
        }
        assert!(
            compared > 0,
            "no archived segment left in the master's pg_wal to compare"
        );
    }
}

impl Drop for Shipping {
    fn drop(&mut self) {
        // The clusters and the sshd print their own logs; the archive is the scenario's.
        if std::thread::panicking() {
            eprintln!(
                "scenario in {} torn down after a panic; the archive:\n{}{}",
                self.dir.path.display(),
                self.dir.listing(&self.completed_wals),
                self.dir.listing(&self.partial_wals)
            );
        }
    }
}

/// (rows, sum of balances) of pgbench_accounts: equal on master and standby once replayed.
pub fn pgbench_aggregate(c: &Cluster) -> (i64, i64) {
    let mut client = c.connect();
    let row = client
        .query_one(
            "SELECT count(*), coalesce(sum(abalance), 0)::bigint FROM pgbench_accounts",
            &[],
        )
        .expect("aggregate");
    (row.get(0), row.get(1))
}

pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
