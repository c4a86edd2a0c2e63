//! The restore_commands compared, and how each run gets its page cache warm or cold.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use walmgr_tests::chown_to_postgres;

use crate::source::{Source, STANZA};
use crate::MIB;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Cache {
    Warm,
    Cold,
}

impl Cache {
    pub fn name(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `walmgr xrestore`: this checkout's, or another binary (WALMGR_BENCH_OTHER_CLIS).
    Walmgr,
    Cp,
    PgBackRest,
    PgBackRestAsync,
    /// No restore_command: the segments are in pg_wal before the start.
    PgWal,
}

pub struct Variant {
    pub name: &'static str,
    pub kind: Kind,
    /// The walmgr binary of a Walmgr variant.
    walmgr: PathBuf,
    walmgr_config: PathBuf,
    archive: PathBuf,
    pgbackrest_sync: PathBuf,
    pgbackrest_async: PathBuf,
    spool: PathBuf,
}

impl Variant {
    /// This checkout's walmgr, the others (name, binary), cp, pgBackRest, pg_wal.
    pub fn all(source: &Source, walmgr: &Path, others: &[(&'static str, PathBuf)]) -> Vec<Variant> {
        let mine = [("walmgr", walmgr.to_path_buf())];
        let walmgrs = mine.into_iter().chain(others.iter().cloned());
        let walmgrs: Vec<(&'static str, Kind, PathBuf)> = walmgrs
            .map(|(name, bin)| (name, Kind::Walmgr, bin))
            .collect();
        let rest = [
            ("cp", Kind::Cp),
            ("pgbackrest", Kind::PgBackRest),
            ("pgbackrest-async", Kind::PgBackRestAsync),
            ("pg_wal", Kind::PgWal),
        ]
        .into_iter()
        .map(|(name, kind)| (name, kind, walmgr.to_path_buf()));
        walmgrs
            .into_iter()
            .chain(rest)
            .map(|(name, kind, bin)| Variant {
                name,
                kind,
                walmgr: bin,
                walmgr_config: source.walmgr_config.clone(),
                archive: source.archive.clone(),
                pgbackrest_sync: source.pgbackrest_sync.clone(),
                pgbackrest_async: source.pgbackrest_async.clone(),
                spool: source.pgbackrest_spool.clone(),
            })
            .collect()
    }

    /// restore_command for a standby whose data directory is `data` ('' for pg_wal).
    pub fn restore_command(&self, data: &Path) -> String {
        match self.kind {
            Kind::Walmgr => format!(
                "{} {} xrestore %f %p %r",
                self.walmgr.display(),
                self.walmgr_config.display()
            ),
            Kind::Cp => format!("cp {}/%f %p", self.archive.display()),
            Kind::PgBackRest | Kind::PgBackRestAsync => format!(
                "pgbackrest --config={} --stanza={STANZA} --pg1-path={} archive-get %f \"%p\"",
                if self.kind == Kind::PgBackRest {
                    &self.pgbackrest_sync
                } else {
                    &self.pgbackrest_async
                }
                .display(),
                data.display()
            ),
            Kind::PgWal => String::new(),
        }
    }

    /// Before the standby of `data` starts: an empty spool queue for pgBackRest's
    /// asynchronous archive-get, every segment in pg_wal for the pg_wal variant.
    pub fn prepare(&self, source: &Source, data: &Path) {
        match self.kind {
            Kind::PgBackRestAsync => {
                let _ = fs::remove_dir_all(&self.spool);
                fs::create_dir(&self.spool)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", self.spool.display()));
                chown_to_postgres(&self.spool);
            }
            Kind::PgWal => {
                for s in &source.segments {
                    let to = data.join("pg_wal").join(s);
                    fs::copy(source.archive.join(s), &to)
                        .unwrap_or_else(|e| panic!("copy {s} to {}: {e}", to.display()));
                    chown_to_postgres(&to);
                }
            }
            _ => {}
        }
    }

    /// The files this variant reads the WAL from.
    pub fn sources(&self, source: &Source, data: &Path) -> Vec<PathBuf> {
        match self.kind {
            Kind::Walmgr | Kind::Cp => source
                .segments
                .iter()
                .map(|s| source.archive.join(s))
                .collect(),
            Kind::PgBackRest | Kind::PgBackRestAsync => source.pgbackrest_files(),
            Kind::PgWal => source
                .segments
                .iter()
                .map(|s| data.join("pg_wal").join(s))
                .collect(),
        }
    }
}

/// Warm: reads `files` so that they are in the page cache. Cold: writes every dirty page
/// out and drops the page cache (the whole machine's: this bench runs as root, alone).
pub fn set_cache(cache: Cache, files: &[PathBuf]) {
    // SAFETY: plain syscall.
    unsafe { libc::sync() };
    match cache {
        Cache::Warm => {
            let mut buf = vec![0u8; MIB as usize];
            for p in files {
                let mut f =
                    fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
                while f
                    .read(&mut buf)
                    .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
                    > 0
                {}
            }
        }
        Cache::Cold => {
            fs::write("/proc/sys/vm/drop_caches", "3\n")
                .unwrap_or_else(|e| panic!("echo 3 > /proc/sys/vm/drop_caches: {e}"));
        }
    }
}
