//! The tables and notes the bench prints.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

pub use walmgr_bench::{flush, load_average, print_table};
use walmgr_tests::{Pg, TestCommand};

use crate::master::Master;
use crate::ssh::{Logins, SshClient};
use crate::variants::{subset, Variant};
use crate::MIB;

pub type Times = BTreeMap<&'static str, Vec<f64>>;

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn per_repetition(variants: &[Variant], times: &Times) -> String {
    let parts: Vec<String> = variants
        .iter()
        .map(|v| {
            let ts: Vec<String> = times[v.name].iter().map(|t| format!("{t:.3}")).collect();
            format!("{} {}", v.name, ts.join(" "))
        })
        .collect();
    format!("per repetition (s): {}", parts.join("; "))
}

pub fn report_local(variants: &[Variant], times: &Times, n: usize, seg_size: u64) {
    let mib = (n as u64 * seg_size) as f64 / MIB as f64;
    let med: BTreeMap<&str, f64> = times.iter().map(|(k, v)| (*k, median(v))).collect();
    let mut rows = vec![row(&[
        "variant",
        "median s",
        "min s",
        "max s",
        "segments/s",
        "MiB/s",
        "x basic_archive",
        "x pgbackrest",
    ])];
    for v in variants {
        let ts = &times[v.name];
        let m = med[v.name];
        rows.push(vec![
            v.name.to_string(),
            format!("{m:.3}"),
            format!("{:.3}", min(ts)),
            format!("{:.3}", max(ts)),
            format!("{:.1}", n as f64 / m),
            format!("{:.1}", mib / m),
            format!("{:.2}", med["basic_archive"] / m),
            format!("{:.2}", med["pgbackrest"] / m),
        ]);
    }
    let reps = times.values().next().map_or(0, Vec::len);
    println!();
    println!(
        "archive drain: {n} segments x {} MiB = {mib:.0} MiB, {reps} repetitions, variants \
         interleaved; ratios are throughput relative to the column's variant (median times)",
        seg_size / MIB
    );
    print_table(&rows);
    println!();
    println!("{}", per_repetition(variants, times));
    println!();
    // Variants are interleaved, so each repetition's ratio is a fair pair too.
    let paired = |other: &str| -> String {
        let r: Vec<String> = times[other]
            .iter()
            .zip(&times["walmgr"])
            .map(|(o, w)| format!("{:.2}", o / w))
            .collect();
        r.join(" ")
    };
    let vs_basic = med["basic_archive"] / med["walmgr"];
    let vs_pgbr = med["pgbackrest"] / med["walmgr"];
    println!(
        "target: walmgr >= basic_archive: {} ({vs_basic:.2}; per repetition {})",
        if vs_basic >= 1.0 { "PASS" } else { "FAIL" },
        paired("basic_archive")
    );
    println!(
        "target: walmgr >= 5x pgbackrest: {} ({vs_pgbr:.2}; per repetition {})",
        if vs_pgbr >= 5.0 { "PASS" } else { "FAIL" },
        paired("pgbackrest")
    );
}

/// `aes128-ctr/hmac-sha2-256` (and any other cipher/MAC seen).
fn cipher_text(seen: &Logins) -> String {
    let all: Vec<String> = seen
        .keys()
        .map(|(c, m)| format!("{c}/{m}").replace("/<implicit>", ""))
        .collect();
    if all.is_empty() {
        "-".to_string()
    } else {
        all.join(", ")
    }
}

/// The distinct numbers of new logins per drain, e.g. `0` or `1/2`.
fn logins_text(counts: &[Logins]) -> String {
    let mut n: Vec<usize> = counts.iter().map(|c| c.values().sum()).collect();
    n.sort_unstable();
    n.dedup();
    if n.is_empty() {
        return "-".to_string();
    }
    let n: Vec<String> = n.iter().map(usize::to_string).collect();
    n.join("/")
}

/// Targets for walmgr-ssh against rsync-ssh-cm, per segment size in MiB.
fn ssh_target(seg_mib: u64) -> Option<f64> {
    match seg_mib {
        16 => Some(3.0),
        1 => Some(10.0),
        _ => None,
    }
}

pub fn report_ssh(
    variants: &[Variant],
    times: &Times,
    names: &[String],
    seg_size: u64,
    zstd_ratio: Option<f64>,
) {
    let seg_mib = seg_size / MIB;
    let count: BTreeMap<&str, usize> = variants
        .iter()
        .map(|v| (v.name, subset(v, names).len()))
        .collect();
    // Segments per second.
    let rate: BTreeMap<&str, f64> = times
        .iter()
        .map(|(k, v)| (*k, count[k] as f64 / median(v)))
        .collect();
    let reps = times.values().next().map_or(0, Vec::len);
    let mut rows = vec![row(&[
        "variant",
        "segments",
        "median s",
        "min s",
        "max s",
        "segments/s",
        "MiB/s",
        "x rsync-ssh-cm",
        "x walmgr local",
        "logins/drain",
        "cipher/MAC (client->server)",
    ])];
    for v in variants {
        let ts = &times[v.name];
        rows.push(vec![
            v.name.to_string(),
            count[v.name].to_string(),
            format!("{:.3}", median(ts)),
            format!("{:.3}", min(ts)),
            format!("{:.3}", max(ts)),
            format!("{:.1}", rate[v.name]),
            format!("{:.1}", rate[v.name] * seg_mib as f64),
            format!("{:.2}", rate[v.name] / rate["rsync-ssh-cm"]),
            format!("{:.2}", rate[v.name] / rate["walmgr"]),
            match v.ssh {
                Some(_) => logins_text(&v.logins),
                None => "-".to_string(),
            },
            match v.ssh {
                Some(_) => cipher_text(&v.ciphers),
                None => "(local)".to_string(),
            },
        ]);
    }
    println!();
    println!(
        "archive over SSH to 127.0.0.1, {seg_mib} MiB segments: {} segments = {} MiB per drain \
         (rsync-ssh: the first {}), {reps} repetitions, variants interleaved; ratios are \
         segments/s relative to the column's variant (median times)",
        names.len(),
        names.len() as u64 * seg_mib,
        count["rsync-ssh"]
    );
    print_table(&rows);
    println!();
    println!("{}", per_repetition(variants, times));
    println!();
    let target = ssh_target(seg_mib);
    for name in ["walmgr-ssh", "walmgr-ssh-zstd"] {
        let pairs: Vec<String> = times[name]
            .iter()
            .zip(&times["rsync-ssh-cm"])
            .map(|(w, c)| {
                format!(
                    "{:.2}",
                    (count[name] as f64 / w) / (count["rsync-ssh-cm"] as f64 / c)
                )
            })
            .collect();
        let ratio = rate[name] / rate["rsync-ssh-cm"];
        let met = target.is_some_and(|t| ratio >= t);
        let label = if name == "walmgr-ssh" {
            "target"
        } else {
            "same target, compression = true"
        };
        println!(
            "{label}: {name} >= {}x rsync-ssh-cm at {seg_mib} MiB: {} ({ratio:.2}x; per \
             repetition {})",
            target.map_or("?".to_string(), |t| format!("{t}")),
            if met { "MET" } else { "NOT MET" },
            pairs.join(" ")
        );
    }
    println!(
        "walmgr-ssh reaches {:.2} of the local transport's rate, walmgr-ssh-zstd {:.2}; per \
         file: walmgr-ssh {:.1} ms, walmgr local {:.1} ms, rsync-ssh-cm {:.1} ms, rsync-ssh \
         {:.1} ms",
        rate["walmgr-ssh"] / rate["walmgr"],
        rate["walmgr-ssh-zstd"] / rate["walmgr"],
        1000.0 / rate["walmgr-ssh"],
        1000.0 / rate["walmgr"],
        1000.0 / rate["rsync-ssh-cm"],
        1000.0 / rate["rsync-ssh"]
    );
    if let Some(z) = zstd_ratio {
        println!(
            "these segments compress to {:.0}% of their size with zstd -1 (what \
             walmgr-ssh-zstd sends)",
            z * 100.0
        );
    }
}

/// What durability costs on this machine, measured the way the archivers pay it.
pub fn fsync_note(dir: &Path) -> String {
    let path = dir.join("fsync-probe");
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let write_sync = |data: &[u8]| {
        f.write_all_at(data, 0)
            .and_then(|()| f.sync_all())
            .unwrap_or_else(|e| panic!("write and fsync {}: {e}", path.display()))
    };
    let block: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    let t0 = Instant::now();
    for _ in 0..200 {
        write_sync(&block);
    }
    let small = t0.elapsed().as_secs_f64() / 200.0;
    let segment: Vec<u8> = (0..16 * MIB).map(|i| (i * 13 % 251) as u8).collect();
    let t0 = Instant::now();
    for _ in 0..4 {
        write_sync(&segment);
    }
    let big = t0.elapsed().as_secs_f64() / 4.0;
    drop(f);
    let _ = fs::remove_file(&path);
    format!(
        "fsync on this machine: 8 KiB write+fsync {:.0} us, 16 MiB write+fsync {:.1} ms \
         ({:.0} MiB/s). Real disks make the fsyncing variants (walmgr, basic_archive, \
         pgbackrest, and rsync's `sync`) slower than this.",
        small * 1e6,
        big * 1e3,
        16.0 / big
    )
}

/// What was measured: the installed walmgr.so, PostgreSQL, the other tools' versions, and
/// the walmgr binary the standby runs (a copy of `standby_cli` in the bench directory).
pub fn describe_build(
    pg: &Pg,
    master: &Master,
    release: bool,
    standby_cli: Option<&Path>,
) -> String {
    let so = Path::new(&pg.config("--pkglibdir")).join("walmgr.so");
    let kind = if release {
        "release build installed by this run"
    } else {
        "as installed (WALMGR_BENCH_RELEASE=0)"
    };
    let version: String = master.cluster.query_one("SHOW server_version");
    let mut line = format!(
        "{} ({kind}, {}); PostgreSQL {version}; {}",
        so.display(),
        modified(&so),
        first_line(TestCommand::new("pgbackrest").arg("version").run().stdout)
    );
    if let Some(cli) = standby_cli {
        let ssh_v = TestCommand::new("ssh").arg("-V").run();
        let rsync = first_line(TestCommand::new("rsync").arg("--version").run().stdout);
        let rsync: Vec<&str> = rsync.split_whitespace().take(3).collect();
        line.push_str(&format!(
            "\nstandby's walmgr: a copy of {} ({}); {}; {}",
            cli.display(),
            modified(cli),
            first_line(ssh_v.stderr),
            rsync.join(" ")
        ));
    }
    line
}

fn first_line(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `date`'s idea of when `path` was last written, `YYYY-MM-DD HH:MM`.
fn modified(path: &Path) -> String {
    let out = TestCommand::new("date")
        .args(["-r", &path.display().to_string(), "+%Y-%m-%d %H:%M"])
        .run();
    first_line(out.stdout)
}

/// What every SSH table assumes, printed once.
pub fn ssh_notes(ssh: &SshClient) -> String {
    format!(
        "notes on the SSH tables:
- durability: walmgr's standby (xserve) writes a temp file, fsyncs it, renames it and
  fsyncs the directory before it replies, for either transport; rsync writes a temp file
  and renames it without fsync, so, as walmgr3 did, each file is followed by
  `ssh standby sync`, which flushes all of the standby's dirty data: durable on return too.
- host keys: checked in every variant against the bench's known_hosts,
    {known_hosts}
  walmgr through ssh_known_hosts (libssh2, refuses unknown keys), OpenSSH with
  StrictHostKeyChecking=yes, UserKnownHostsFile=that file, GlobalKnownHostsFile=/dev/null.
- warm sessions: walmgr's session opens during the failed attempts before the gate opens,
  rsync-ssh-cm's ControlMaster (ControlPersist=60) right before it; rsync-ssh logs in
  twice per file (rsync, then sync). logins/drain counts new connections in sshd's log
  (0 for rsync-ssh-cm: the ControlMaster of its previous drain, under 60 s before, served;
  each segment size starts without one, opened in its warm-up).
- ciphers: walmgr asks libssh2 for (CIPHERS in core/src/remote/ssh.rs)
    {walmgr}
  OpenSSH's client proposes (`ssh -G`, the default: the bench sets no Ciphers)
    {openssh}
  The cipher/MAC column is what sshd's LogLevel DEBUG log says each connection negotiated
  (\"kex: client->server cipher: ...\").
- WAL content: INSERTs of ~800-byte rows of random md5 hex (not pgbench; hex text is why
  zstd gets about half).
- what limits walmgr over SSH (raw channel rates, cipher calls, profiles): see
  bench/investigations/README.md.",
        known_hosts = ssh.known_hosts.display(),
        walmgr = walmgr_ciphers(),
        openssh = ssh.openssh_ciphers(),
    )
}

/// The CIPHERS constant of walmgr's SSH transport, read from its source ("?" if it moved).
fn walmgr_ciphers() -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src/remote/ssh.rs");
    let Ok(text) = fs::read_to_string(source) else {
        return "?".to_string();
    };
    let Some((_, rest)) = text.split_once("const CIPHERS: &str = \"") else {
        return "?".to_string();
    };
    let Some((value, _)) = rest.split_once("\";") else {
        return "?".to_string();
    };
    // A string continued with `\` at the end of a line drops the newline and the indent.
    value
        .split("\\\n")
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("")
}

/// Compressed/raw size of up to `sample` of the segments with `zstd -1`.
pub fn zstd_ratio(master: &Master, names: &[String], sample: usize) -> Option<f64> {
    let step = (names.len() / sample).max(1);
    let (mut raw, mut packed) = (0u64, 0u64);
    for n in names.iter().step_by(step).take(sample) {
        let path = master.pg_wal().join(n);
        let out = TestCommand::new("zstd")
            .args(["-1", "-c"])
            .arg(&path)
            .try_run()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        raw += fs::metadata(&path).ok()?.len();
        packed += out.stdout.len() as u64;
    }
    (raw > 0).then(|| packed as f64 / raw as f64)
}
