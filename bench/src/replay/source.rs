//! What every run replays: a base backup and the archived WAL behind it (a plain directory,
//! which walmgr's completed_wals and `cp` read, and the same segments in a pgBackRest repo).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walmgr_bench::{check_interrupted, log};
use walmgr_tests::{Cluster, Pg, TestCommand, TestDir};

use crate::MIB;

pub const STANZA: &str = "bench";

pub struct Source {
    pub seg_mib: u64,
    /// The base backup's data directory (never started: each run copies it).
    pub base: PathBuf,
    /// The archive directory: segments under their names (walmgr's completed_wals).
    pub archive: PathBuf,
    /// The segments a standby of `base` replays, oldest first.
    pub segments: Vec<String>,
    /// Replay has caught up once pg_last_wal_replay_lsn() reaches this.
    pub target_lsn: String,
    /// The slave config `walmgr xrestore` reads.
    pub walmgr_config: PathBuf,
    /// pgBackRest: the config of the synchronous and of the asynchronous archive-get, the
    /// repo, and the asynchronous one's spool directory.
    pub pgbackrest_sync: PathBuf,
    pub pgbackrest_async: PathBuf,
    pub pgbackrest_repo: PathBuf,
    pub pgbackrest_spool: PathBuf,
    /// Kept for its Drop, which stops it if a panic comes before `make` ends.
    _base_cluster: Cluster,
}

impl Source {
    /// Makes the backup and archives `wal_mb` MB of pgbench WAL after it, with
    /// `seg_mib` MB segments.
    pub fn make(pg: &Pg, dir: &TestDir, seg_mib: u64, wal_mb: u64) -> Source {
        let tag = format!("{seg_mib}m");
        let archive = dir.mkdir(format!("archive{tag}"));
        fs::set_permissions(
            &archive,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap_or_else(|e| panic!("chmod {}: {e}", archive.display()));
        let initdb: Vec<String> = if seg_mib == 16 {
            Vec::new()
        } else {
            vec![format!("--wal-segsize={seg_mib}")]
        };
        let initdb: Vec<&str> = initdb.iter().map(String::as_str).collect();
        log(&format!(
            "primary with {seg_mib} MB segments: backup, then {wal_mb} MB of pgbench WAL"
        ));
        let primary = Cluster::init(pg, dir, &format!("p{tag}"), &initdb);
        primary.set(&format!(
            "# walmgr replay benchmark: the primary whose archive every standby replays\n\
             shared_buffers = 128MB\n\
             archive_mode = on\n\
             archive_command = 'test ! -f {a}/%f && cp %p {a}/%f'\n\
             synchronous_commit = off\n\
             max_wal_size = 1GB\n\
             autovacuum = off",
            a = archive.display()
        ));
        primary.start();
        let base = Cluster::base_backup_with(&primary, dir, &format!("b{tag}"), &["-X", "none"]);
        let label = fs::read_to_string(base.data.join("backup_label"))
            .unwrap_or_else(|e| panic!("read the base backup's backup_label: {e}"));
        // START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
        let first = label
            .lines()
            .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
            .and_then(|l| l.split_once("(file "))
            .map(|(_, f)| f.trim_end_matches(')').to_string())
            .unwrap_or_else(|| panic!("no START WAL LOCATION in backup_label:\n{label}"));
        let start: String = primary.query_one("SELECT pg_current_wal_lsn()::text");
        let t0 = Instant::now();
        let behind = || -> i64 {
            primary.query_one(&format!(
                "SELECT (pg_current_wal_lsn() - '{start}'::pg_lsn)::bigint"
            ))
        };
        let goal = (wal_mb * MIB) as i64;
        loop {
            let left = goal - behind();
            if left <= 0 {
                break;
            }
            check_interrupted();
            // A pgbench -i writes about 12 MB of WAL per unit of scale here.
            let scale = (left / (12 * MIB as i64)).clamp(1, 20).to_string();
            primary.pgbench(&["-i", "-q", "-s", &scale]);
            primary.pgbench(&["-n", "-c", "4", "-j", "2", "-T", "3"]);
        }
        let target_lsn: String = primary.query_one("SELECT pg_current_wal_insert_lsn()::text");
        let last = primary.switch_wal();
        primary.wait_until(
            &format!("{last} archived"),
            Duration::from_secs(300),
            || {
                primary
                    .query_one::<Option<String>>("SELECT last_archived_wal FROM pg_stat_archiver")
                    >= Some(last.clone())
            },
        );
        let segments: Vec<String> = segment_names(&archive)
            .into_iter()
            .filter(|s| *s >= first && *s <= last)
            .collect();
        log(&format!(
            "{} MB of WAL in {} segments ({first} .. {last}) in {:.0} s",
            behind() / MIB as i64,
            segments.len(),
            t0.elapsed().as_secs_f64()
        ));

        let pgbackrest_repo = dir.mkdir(format!("pgbr-repo{tag}"));
        let pgbackrest_spool = dir.mkdir(format!("pgbr-spool{tag}"));
        let pgbr_log = dir.mkdir(format!("pgbr-log{tag}"));
        let conf = |asynchronous: bool| {
            format!(
                "[global]\n\
                 repo1-path={repo}\n\
                 compress-type=none\n\
                 archive-async={a}\n\
                 spool-path={spool}\n\
                 log-level-console=off\n\
                 log-level-stderr=error\n\
                 log-level-file=off\n\
                 log-path={log}\n\
                 lock-path={log}\n\
                 \n\
                 [{STANZA}]\n\
                 pg1-path={data}\n\
                 pg1-socket-path={socket}\n\
                 pg1-port={port}\n\
                 pg1-user=postgres\n",
                repo = pgbackrest_repo.display(),
                a = if asynchronous { "y" } else { "n" },
                spool = pgbackrest_spool.display(),
                log = pgbr_log.display(),
                data = primary.data.display(),
                socket = primary.socket_dir.display(),
                port = primary.port,
            )
        };
        let pgbackrest_sync = dir.write(format!("pgbackrest-sync{tag}.conf"), conf(false));
        let pgbackrest_async = dir.write(format!("pgbackrest-async{tag}.conf"), conf(true));
        let pgbr = |args: &[&str]| {
            TestCommand::new("pgbackrest")
                .arg(format!("--config={}", pgbackrest_sync.display()))
                .arg(format!("--stanza={STANZA}"))
                .args(args)
                .as_postgres()
                .ok()
        };
        // The stanza needs the running primary; pushing reads its pg_control only.
        pgbr(&["stanza-create"]);
        primary.stop();
        let t0 = Instant::now();
        for s in &segments {
            check_interrupted();
            pgbr(&["archive-push", &archive.join(s).display().to_string()]);
        }
        log(&format!(
            "pushed them into the pgBackRest repo in {:.0} s",
            t0.elapsed().as_secs_f64()
        ));

        let walmgr_config = dir.write(
            format!("slave{tag}.toml"),
            format!(
                "[walmgr]\n\
                 job_name = \"replay-bench\"\n\
                 slave_data = \"{}\"\n\
                 walmgr_data = \"{}\"\n\
                 completed_wals = \"{}\"\n",
                dir.join(format!("standby{tag}")).display(),
                dir.join(format!("walshipping{tag}")).display(),
                archive.display()
            ),
        );
        // The primary's data is not needed any more (pgBackRest's pg1-path is given on
        // each command line from now on).
        let data = primary.data.clone();
        drop(primary);
        let _ = fs::remove_dir_all(data);
        Source {
            seg_mib,
            base: base.data.clone(),
            archive,
            segments,
            target_lsn,
            walmgr_config,
            pgbackrest_sync,
            pgbackrest_async,
            pgbackrest_repo,
            pgbackrest_spool,
            _base_cluster: base,
        }
    }

    pub fn seg_size(&self) -> u64 {
        self.seg_mib * MIB
    }

    pub fn wal_bytes(&self) -> u64 {
        self.segments.len() as u64 * self.seg_size()
    }

    /// The repo's copies of the segments (archive/<stanza>/<version>-<n>/<16 hex>/<name>-<sha1>).
    pub fn pgbackrest_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.pgbackrest_repo.join("archive")];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().and_then(|f| f.to_str()).is_some_and(|f| {
                    f.len() > 24 && self.segments.iter().any(|s| f.starts_with(s.as_str()))
                }) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Frees the disk: the archive, the repo and the backup of this segment size.
    pub fn remove(self) {
        for d in [&self.archive, &self.pgbackrest_repo, &self.base] {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// WAL segment names (24 upper-case hex digits) in `dir`, sorted.
pub fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| {
            n.len() == 24
                && n.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        })
        .collect();
    names.sort();
    names
}
