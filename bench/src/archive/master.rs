//! The master whose N ready segments every variant drains: a harness [`Cluster`] with
//! archiving on but nothing able to archive, and the gating steps around each drain.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walmgr_tests::{Cluster, Pg, TestDir};

use crate::{check_interrupted, log, MIB};

pub struct Master {
    pub cluster: Cluster,
    /// master.toml of the local walmgr variant (its completed_wals is `<dest>/walmgr`).
    pub config: PathBuf,
    pub seg_size: u64,
}

impl Master {
    /// initdb (as postgres, `--wal-segsize` when not 16 MB) into `dir/<name>`, started with
    /// walmgr preloaded, archive_mode on and neither a library nor a command: finished
    /// segments wait as .ready. Enough WAL is kept for `keep` segments, twice.
    pub fn start(
        pg: &Pg,
        dir: &TestDir,
        name: &str,
        seg_mib: u64,
        keep: usize,
        dest: &Path,
    ) -> Master {
        let initdb_args: Vec<String> = if seg_mib == 16 {
            Vec::new()
        } else {
            vec![format!("--wal-segsize={seg_mib}")]
        };
        let initdb_args: Vec<&str> = initdb_args.iter().map(String::as_str).collect();
        let cluster = Cluster::init(pg, dir, name, &initdb_args);
        let keep = format!("{}MB", 2 * keep as u64 * seg_mib + 1024);
        cluster.set(&format!(
            "# walmgr archive benchmark\n\
             shared_buffers = 128MB\n\
             shared_preload_libraries = 'walmgr'\n\
             archive_mode = on\n\
             # Nothing can archive until a variant is configured: shell archiving, no command.\n\
             archive_library = ''\n\
             archive_command = ''\n\
             # Finished segments stay in pg_wal (they are archived again every repetition), and\n\
             # no checkpoint or autovacuum writes during the measurements.\n\
             wal_keep_size = '{keep}'\n\
             max_wal_size = '{keep}'\n\
             checkpoint_timeout = '1d'\n\
             autovacuum = off\n\
             # Ignored until basic_archive is loaded; missing until its gate opens.\n\
             basic_archive.archive_directory = '{}/basic_archive'",
            dest.display()
        ));
        cluster.start();
        cluster.execute("CREATE EXTENSION walmgr");
        let config = dir.write(
            format!("{name}.toml"),
            format!(
                "[walmgr]\n\
                 job_name = \"wal-bench\"\n\
                 master_db = \"{}\"\n\
                 master_data = \"{}\"\n\
                 slave = \"\"\n\
                 walmgr_data = \"{}\"\n\
                 completed_wals = \"{}/walmgr\"\n",
                cluster.conninfo(),
                cluster.data.display(),
                dir.join("walshipping").display(),
                dest.display()
            ),
        );
        cluster.execute(&format!(
            "ALTER SYSTEM SET walmgr.config = {}",
            quote(&config.display().to_string())
        ));
        cluster.execute("SELECT pg_reload_conf()");
        Master {
            cluster,
            config,
            seg_size: seg_mib * MIB,
        }
    }

    pub fn pg_wal(&self) -> PathBuf {
        self.cluster.data.join("pg_wal")
    }

    fn status_dir(&self) -> PathBuf {
        self.cluster.data.join("pg_wal/archive_status")
    }

    /// WAL files (segments, history, backup files) marked .ready, sorted.
    pub fn ready_names(&self) -> Vec<String> {
        let dir = self.status_dir();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".ready"))
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }

    /// Writes real rows until more than `n` segments are finished (and waiting, as nothing
    /// archives); returns the newest `n`, which hold nothing but the INSERTs. Only those stay
    /// .ready: the archiver must find nothing else to do.
    pub fn fill(&self, n: usize) -> Vec<String> {
        self.cluster
            .execute("CREATE TABLE fill (id bigint, payload text)");
        // ~800 bytes of random hex per row: below the TOAST threshold, so the WAL holds the
        // rows as they are. The subquery mentions g so that it runs once per row (and i so
        // that its aggregate belongs to it, not to the outer query). Real data, not the
        // zeros pg_switch_wal() would pad a segment with.
        let insert =
            "INSERT INTO fill SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') \
                      FROM generate_series(1, 25) i) FROM generate_series(1, 100000) g";
        let started = Instant::now();
        let segments = || -> Vec<String> {
            self.ready_names()
                .into_iter()
                .filter(|r| is_segment(r))
                .collect()
        };
        while segments().len() < n + 1 {
            check_interrupted();
            self.cluster.execute(insert);
        }
        // Flush the table now rather than in the middle of a measurement.
        self.cluster.checkpoint();
        sync();
        let ready = segments();
        let chosen = ready[ready.len() - n..].to_vec();
        for name in self.ready_names() {
            if !chosen.contains(&name) {
                self.mark(&name, "ready", "done");
            }
        }
        log(&format!(
            "filled {} segments in {:.0} s; measuring {} .. {}",
            ready.len(),
            started.elapsed().as_secs_f64(),
            chosen[0],
            chosen[n - 1]
        ));
        for name in &chosen {
            let len = fs::metadata(self.pg_wal().join(name)).map(|m| m.len()).ok();
            assert_eq!(
                len,
                Some(self.seg_size),
                "{name} in {}: not a segment of the cluster's size",
                self.pg_wal().display()
            );
        }
        chosen
    }

    fn mark(&self, name: &str, from: &str, to: &str) {
        let dir = self.status_dir();
        let (a, b) = (
            dir.join(format!("{name}.{from}")),
            dir.join(format!("{name}.{to}")),
        );
        fs::rename(&a, &b)
            .unwrap_or_else(|e| panic!("rename {} to {}: {e}", a.display(), b.display()));
    }

    /// Makes `names` .ready and nothing else; `unused` are those of the N segments this
    /// variant does not drain.
    pub fn reset_ready(&self, names: &[String], unused: &BTreeSet<String>) {
        for name in names {
            if self.status_dir().join(format!("{name}.done")).exists() {
                self.mark(name, "done", "ready");
            }
        }
        // The idle master should finish no segment, but a stray one (from bgwriter's
        // running-xacts records, say) must not be archived in the middle of a measurement.
        for extra in self.ready_names() {
            if names.contains(&extra) {
                continue;
            }
            if !unused.contains(&extra) {
                log(&format!(
                    "note: {extra} finished during the run; marked .done, not measured"
                ));
            }
            self.mark(&extra, "ready", "done");
        }
    }

    /// Reads the source files so that every variant starts with them in the page cache, as
    /// freshly finished WAL usually is. Needed here: this VM runs DAMON reclaim, which pages
    /// out page cache left idle for about a minute, so without this a variant would pay disk
    /// reads its predecessor did not.
    pub fn warm(&self, names: &[String]) {
        let mut buf = vec![0u8; MIB as usize];
        for n in names {
            let path = self.pg_wal().join(n);
            let mut f =
                fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            while f
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
                > 0
            {}
        }
    }

    /// (pid, wait_event) of the archiver, if there is one.
    pub fn archiver(&self) -> Option<(i32, String)> {
        let rows: Vec<String> = self.cluster.query_column(
            "SELECT pid || '|' || coalesce(wait_event, '') FROM pg_stat_activity \
             WHERE backend_type = 'archiver'",
        );
        let row = rows.into_iter().next()?;
        let (pid, event) = row.split_once('|')?;
        Some((pid.parse().ok()?, event.to_string()))
    }

    /// Configures the archiver with every gate closed and waits until it is idle under the
    /// new configuration. Changing archive_library restarts the archiver (a new process loads
    /// the new library), and the postmaster starts the new one only 10 s after the previous
    /// start: the wait covers that. A new walmgr.config needs no restart: the module reloads
    /// its config (and drops its transport) when the file it names changes.
    pub fn configure(&self, library: &str, command: &str, walmgr_config: Option<&Path>) {
        let old_pid = self.archiver().map(|(pid, _)| pid);
        let current: String = self
            .cluster
            .query_one("SELECT current_setting('archive_library')");
        // One statement per call: ALTER SYSTEM refuses a transaction block.
        self.cluster.execute(&format!(
            "ALTER SYSTEM SET archive_library = {}",
            quote(library)
        ));
        self.cluster.execute(&format!(
            "ALTER SYSTEM SET archive_command = {}",
            quote(command)
        ));
        if let Some(config) = walmgr_config {
            self.cluster.execute(&format!(
                "ALTER SYSTEM SET walmgr.config = {}",
                quote(&config.display().to_string())
            ));
        }
        self.cluster.execute("SELECT pg_reload_conf()");
        let must_restart = current != library;
        let deadline = Instant::now() + Duration::from_secs(120);
        // Idle: waiting in its main loop, three times in a row over 0.6 s (a failing command
        // sleeps 1 s between its three attempts, with no wait event).
        std::thread::sleep(Duration::from_millis(500));
        let mut idle = 0;
        while idle < 3 {
            check_interrupted();
            if Instant::now() > deadline {
                self.cluster.fail(&format!(
                    "archiver not idle 120 s after switching to {:?}",
                    if library.is_empty() { command } else { library }
                ));
            }
            let fresh = match self.archiver() {
                Some((pid, event)) => {
                    (Some(pid) != old_pid || !must_restart) && event == "ArchiverMain"
                }
                None => false,
            };
            idle = if fresh { idle + 1 } else { 0 };
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Seconds from opening the gate until none of `names` is .ready any more, and the
    /// seconds at which the first of them was seen done (the archiver's wake-up latency plus
    /// one file).
    pub fn drain(&self, names: &[String], open_gate: impl FnOnce()) -> (f64, f64) {
        let status = self.status_dir();
        let pending: BTreeSet<String> = names.iter().map(|n| format!("{n}.ready")).collect();
        let postmaster = self
            .cluster
            .pid()
            .unwrap_or_else(|| self.cluster.fail("the master is not running"));
        let deadline = Instant::now() + Duration::from_secs(60 + 5 * names.len() as u64);
        let mut first = None;
        let t0 = Instant::now();
        open_gate();
        // Exactly what pg_reload_conf() does, without a connection's latency: it wakes the
        // archiver.
        // SAFETY: a signal to the postmaster of our own cluster.
        unsafe { libc::kill(postmaster, libc::SIGHUP) };
        let elapsed = loop {
            let left = fs::read_dir(&status)
                .unwrap_or_else(|e| panic!("read {}: {e}", status.display()))
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(|n| pending.contains(n)))
                .count();
            let now = t0.elapsed();
            if first.is_none() && left < pending.len() {
                first = Some(now);
            }
            if left == 0 {
                break now;
            }
            if Instant::now() > deadline {
                self.cluster
                    .fail("the archiver did not drain the segments in time");
            }
            check_interrupted();
            std::thread::sleep(Duration::from_millis(2));
        };
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !status.join(format!("{n}.done")).exists())
            .collect();
        if !missing.is_empty() {
            self.cluster
                .fail(&format!("not .done after the drain: {missing:?}"));
        }
        (
            elapsed.as_secs_f64(),
            first.unwrap_or(elapsed).as_secs_f64(),
        )
    }
}

pub fn is_segment(name: &str) -> bool {
    name.len() == 24
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
}

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// sync(2): no earlier variant's dirty pages compete with the next one.
pub fn sync() {
    // SAFETY: plain syscall.
    unsafe { libc::sync() };
}
