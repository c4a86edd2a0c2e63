//! The ways to get a base backup of the master onto the standby host, and one timed run of
//! each: from a cold page cache, with the copy's peak memory watched on both hosts and the
//! copy checked against the master's files afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walmgr_tests::shipping::path;
use walmgr_tests::TestCommand;

use crate::memory::{Seen, Watch};
use crate::scenario::{cold_cache, Scenario};
use crate::tree::{self, Held};
use crate::VerifyError;

/// Longest any one run may take (a plain copy over the 100 Mbit/s link needs about 100 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `walmgr master.toml backup` over its SSH session to the standby's xserve; `second`:
    /// the second build's (WALMGR_BENCH_CLI_B) on both hosts.
    Walmgr { compression: bool, second: bool },
    /// walmgr3's way: pg_backup_start, `rsync -a` over ssh (`-z` with walmgr3's
    /// `compression`), pg_backup_stop, then `ssh standby sync`.
    Rsync { compress: bool },
    /// `pg_basebackup -Fp -X none -c fast` run on the standby host.
    BaseBackup,
}

#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub name: &'static str,
    pub kind: Kind,
}

impl Variant {
    pub const WALMGR: Variant = Variant {
        name: "walmgr",
        kind: Kind::Walmgr {
            compression: false,
            second: false,
        },
    };
    pub const WALMGR_ZSTD: Variant = Variant {
        name: "walmgr compression",
        kind: Kind::Walmgr {
            compression: true,
            second: false,
        },
    };
    pub const WALMGR_B: Variant = Variant {
        name: "walmgr B",
        kind: Kind::Walmgr {
            compression: false,
            second: true,
        },
    };
    pub const WALMGR_B_ZSTD: Variant = Variant {
        name: "walmgr B compression",
        kind: Kind::Walmgr {
            compression: true,
            second: true,
        },
    };
    pub const RSYNC: Variant = Variant {
        name: "rsync -a + sync",
        kind: Kind::Rsync { compress: false },
    };
    pub const RSYNC_Z: Variant = Variant {
        name: "rsync -az + sync",
        kind: Kind::Rsync { compress: true },
    };
    pub const BASEBACKUP: Variant = Variant {
        name: "pg_basebackup",
        kind: Kind::BaseBackup,
    };
}

/// One timed run.
#[derive(Debug, Clone)]
pub struct Run {
    pub secs: f64,
    pub held: Held,
    pub seen: Seen,
}

/// Runs `variant` once: removes the previous copies, checkpoints (so that the backup's own
/// checkpoint finds little to do), lists the master's files, empties the page cache, then
/// times the variant from start to a durable copy, and checks the copy.
/// `profile`: a file to record a system-wide `perf` profile of the run into.
pub fn run(sc: &Scenario, variant: &Variant, profile: Option<&Path>) -> Result<Run, VerifyError> {
    sc.remove_copies();
    sc.s.master.checkpoint();
    let before = tree::list(&sc.s.master.data);
    cold_cache();
    let perf = profile.map(Perf::start);
    let watch = Watch::start(sc.hosts());
    let started = Instant::now();
    let copy = match variant.kind {
        Kind::Walmgr {
            compression,
            second,
        } => walmgr(sc, compression, second),
        Kind::Rsync { compress } => rsync(sc, compress),
        Kind::BaseBackup => basebackup(sc),
    };
    let secs = started.elapsed().as_secs_f64();
    let seen = watch.finish();
    drop(perf);
    let now = tree::list(&sc.s.master.data);
    let held = tree::verify(variant.name, &before, &now, &copy)?;
    Ok(Run { secs, held, seen })
}

/// `perf record` of the whole machine (both hosts), with call graphs, while it lives.
struct Perf(std::process::Child);

impl Perf {
    fn start(file: &Path) -> Perf {
        let child = std::process::Command::new("perf")
            .args([
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "-a",
                "-g",
                "-o",
            ])
            .arg(file)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start perf (Debian package linux-perf): {e}"));
        // perf needs a moment to open its events on every CPU.
        std::thread::sleep(Duration::from_millis(500));
        Perf(child)
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        // SIGINT: perf writes its data out and exits.
        // SAFETY: plain syscall on our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

fn walmgr(sc: &Scenario, compression: bool, second: bool) -> PathBuf {
    let command = match (&sc.second, second) {
        (Some(b), true) => {
            let config = if compression {
                &b.zstd_config
            } else {
                &b.config
            };
            TestCommand::new(&b.bin)
                .on(&sc.hosts().master)
                .args([path(config), "backup"])
        }
        (None, true) => panic!("no second build (WALMGR_BENCH_CLI_B) to run"),
        (_, false) => {
            let config = if compression {
                &sc.zstd_config
            } else {
                &sc.s.master_config
            };
            sc.s.walmgr().args([path(config), "backup"])
        }
    };
    command.as_postgres().timeout(RUN_TIMEOUT).ok();
    sc.walmgr_set.clone()
}

/// walmgr3's master backup (skytools walmgr.py, master_backup), for PostgreSQL 15: its
/// rsync excludes with pg_xlog become pg_wal's contents and pg_log the log directory
/// (there are no tablespaces to rsync separately). The backup is non-exclusive: this
/// process holds the session from pg_backup_start to pg_backup_stop and writes the
/// backup_label it returns into the copy (through the shared filesystem: a few hundred
/// bytes, before the `sync` that makes the copy durable).
fn rsync(sc: &Scenario, compress: bool) -> PathBuf {
    let dest = sc.copy_dir(if compress { "rsync-z" } else { "rsync" });
    let mut session = sc.s.master.connect();
    if let Err(e) = session.batch_execute("SELECT pg_backup_start('walmgr3 way', true)") {
        panic!("pg_backup_start: {e}");
    }
    let ssh = format!("ssh {}", sc.ssh_options().join(" "));
    let mut args: Vec<String> = ["-a", "--quiet"].iter().map(|s| s.to_string()).collect();
    if compress {
        args.push("-z".into());
    }
    for exclude in [
        ".*",
        "*.pid",
        "*.opts",
        "*.conf",
        "/pg_wal/*",
        "/log",
        "base/pgsql_tmp",
    ] {
        args.extend(["--exclude".to_string(), exclude.to_string()]);
    }
    args.extend([
        "--delete".into(),
        "--copy-unsafe-links".into(),
        "-e".into(),
        ssh,
        format!("{}/.", sc.s.master.data.display()),
        format!("{}:{}/", sc.standby_login(), dest.display()),
    ]);
    let out = TestCommand::new("rsync")
        .args(&args)
        .on(&sc.hosts().master)
        .as_postgres()
        .timeout(RUN_TIMEOUT)
        .run();
    // 24: files vanished while rsync ran, which walmgr3 accepts (replay recreates them).
    if !matches!(out.status.code(), Some(0 | 24)) {
        panic!(
            "rsync failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let label: String = match session.query_one("SELECT labelfile FROM pg_backup_stop(true)", &[]) {
        Ok(row) => row.get(0),
        Err(e) => panic!("pg_backup_stop: {e}"),
    };
    sc.write_label(&dest, &label);
    TestCommand::new("ssh")
        .args(["-n", "-T"])
        .args(sc.ssh_options())
        .args([&sc.standby_login(), "sync"])
        .on(&sc.hosts().master)
        .as_postgres()
        .timeout(RUN_TIMEOUT)
        .ok();
    dest
}

/// `pg_basebackup -Fp -X none` on the standby host over the link (TCP to the master's
/// address; the harness's pg_hba.conf lets the link in for replication), with a fast
/// checkpoint as walmgr asks for, and its defaults otherwise: a backup manifest, and an
/// fsync of every file and directory at the end.
fn basebackup(sc: &Scenario) -> PathBuf {
    let dest = sc.copy_dir("basebackup");
    let m = &sc.s.master;
    TestCommand::new(m.pg.bin("pg_basebackup"))
        .args(["-D", path(&dest), "-Fp", "-X", "none", "-c", "fast"])
        .args(["-h", &sc.hosts().master.addr.to_string()])
        .args(["-p", &m.port.to_string(), "-U", "postgres"])
        .on(&sc.hosts().standby)
        .as_postgres()
        .timeout(RUN_TIMEOUT)
        .ok();
    dest
}
