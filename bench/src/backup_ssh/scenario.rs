//! The two hosts the bench copies between, set up as the manual's quick start: a PostgreSQL
//! 15 master in the master host archiving over SSH (`walmgr master.toml setup`) to the
//! standby host, whose sshd runs `walmgr slave.ini xserve` for the master's key, and a
//! pgbench database of the requested scale. Beside it, what the other variants need: a
//! second, unrestricted key for walmgr3's rsync (the master's key is restricted to xserve),
//! and the directories the copies go to.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use walmgr_tests::shipping::{path, Shipping};
use walmgr_tests::{chown_to_postgres, Host, Pg, Sshd, TestCommand, TwoHosts};

use crate::log;

/// pgbench -i at scale 70 and more, with every segment archived over SSH as it goes.
const FILL_TIMEOUT: Duration = Duration::from_secs(3600);
/// tc from iproute2.
const TC: &str = "/usr/sbin/tc";

pub struct Scenario {
    pub s: Shipping,
    /// master.toml with `compression = true`, for the compressed walmgr variant.
    pub zstd_config: PathBuf,
    /// The key rsync and `ssh ... sync` log in with (not restricted to xserve).
    pub rsync_key: PathBuf,
    pub known_hosts: PathBuf,
    /// Where walmgr's set lands on the standby (full_backup of its slave.ini).
    pub walmgr_set: PathBuf,
    /// rsync's and pg_basebackup's copies go below this directory.
    pub copies: PathBuf,
    /// A second walmgr build measured beside the first (WALMGR_BENCH_CLI_B).
    pub second: Option<SecondBuild>,
}

/// Another walmgr binary on both hosts, for a before/after comparison in one interleaved
/// run: the standby runs its xserve for a key of its own (`--ssh-add-key` of that binary
/// installs itself as the key's forced command).
pub struct SecondBuild {
    pub bin: PathBuf,
    pub config: PathBuf,
    pub zstd_config: PathBuf,
}

impl Scenario {
    pub fn start(walmgr: &Path, second: Option<&Path>, scale: u32) -> Scenario {
        log("two hosts, a master archiving to the standby host over SSH");
        let s = Shipping::two_hosts(walmgr, &Pg::major(15), "bkbench", &[], "");
        s.setup();
        log(&format!("filling a pgbench database at scale {scale}"));
        let m = &s.master;
        TestCommand::new(m.pg.bin("pgbench"))
            .args(["-i", "-q", "-s", &scale.to_string()])
            .env("PGHOST", &m.socket_dir)
            .env("PGPORT", m.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", "postgres")
            .on(&s.hosts().master)
            .as_postgres()
            .timeout(FILL_TIMEOUT)
            .ok();
        m.checkpoint();
        log("waiting until the archive has every segment of the fill");
        s.switch_and_wait();

        let text = fs::read_to_string(&s.master_config).expect("read master.toml");
        let zstd_config = s
            .dir
            .write("master-zstd.toml", format!("{text}compression = true\n"));
        let (rsync_key, public) = Sshd::client_key(&s.dir, "rsync_key");
        s.sshd().authorize(&public);
        let known_hosts = s.dir.join("known_hosts");
        let walmgr_set = s.dir.join("walshipping/data.master");
        let copies = s.dir.mkdir("copies");
        let second = second.map(|built| second_build(&s, built, &text));
        Scenario {
            s,
            zstd_config,
            rsync_key,
            known_hosts,
            walmgr_set,
            copies,
            second,
        }
    }

    pub fn hosts(&self) -> &TwoHosts {
        self.s.hosts()
    }

    /// `postgres@STANDBY`, as rsync and ssh name it.
    pub fn standby_login(&self) -> String {
        format!("postgres@{}", self.hosts().standby.addr)
    }

    /// OpenSSH's options for rsync's `-e` and for `ssh ... sync`: the bench's key and
    /// known_hosts only, checked strictly; OpenSSH's default ciphers.
    pub fn ssh_options(&self) -> Vec<String> {
        [
            "-F",
            "/dev/null",
            "-p",
            &self.s.sshd().port().to_string(),
            "-i",
            path(&self.rsync_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            &format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o",
            "GlobalKnownHostsFile=/dev/null",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The cipher OpenSSH's client negotiates with the standby's sshd (from `ssh -v`).
    pub fn openssh_cipher(&self) -> String {
        let out = TestCommand::new("ssh")
            .arg("-v")
            .args(self.ssh_options())
            .args([&self.standby_login(), "true"])
            .on(&self.hosts().master)
            .as_postgres()
            .run();
        let said = String::from_utf8_lossy(&out.stderr);
        said.lines()
            .find_map(|l| l.split_once("kex: client->server cipher: ").map(|(_, c)| c))
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("?")
            .to_string()
    }

    /// Removes every copy a run left (outside the timing): walmgr's set (and staging), the
    /// rsync and pg_basebackup copies.
    pub fn remove_copies(&self) {
        let staging = PathBuf::from(format!("{}.inprogress", self.walmgr_set.display()));
        for dir in [self.walmgr_set.clone(), staging] {
            remove(&dir);
        }
        if let Ok(entries) = fs::read_dir(&self.copies) {
            for e in entries.flatten() {
                remove(&e.path());
            }
        }
    }

    /// A copy's directory below [`Scenario::copies`] (not created: the tools make it).
    pub fn copy_dir(&self, name: &str) -> PathBuf {
        self.copies.join(name)
    }

    /// Writes `backup_label` into a copy, owned by postgres.
    pub fn write_label(&self, copy: &Path, label: &str) {
        let file = copy.join("backup_label");
        fs::write(&file, label).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        chown_to_postgres(&file);
    }
}

/// `built` as `<dir>/bin-b/walmgr` (same program name, so the memory watch knows it), a key
/// it installs on the standby for itself, and master configs naming both.
fn second_build(s: &Shipping, built: &Path, master_toml: &str) -> SecondBuild {
    s.dir.mkdir("bin-b");
    let bin = s.dir.join("bin-b/walmgr");
    fs::copy(built, &bin)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), bin.display()));
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", bin.display()));
    chown_to_postgres(&bin);
    let (key, public) = Sshd::client_key(&s.dir, "master_key_b");
    TestCommand::new(&bin)
        .args([
            path(&s.slave_config),
            &format!("--ssh-add-key={}", public.display()),
        ])
        .env("HOME", s.sshd().home())
        .on(&s.hosts().standby)
        .as_postgres()
        .ok();
    let text: String = master_toml
        .lines()
        .map(|l| {
            if l.starts_with("slave_walmgr =") {
                format!("slave_walmgr = \"{}\"\n", bin.display())
            } else if l.starts_with("ssh_identity =") {
                format!("ssh_identity = \"{}\"\n", key.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(
        text.contains(path(&bin)) && text.contains(path(&key)),
        "master.toml has no slave_walmgr or ssh_identity line to point at the second build:\n{text}"
    );
    SecondBuild {
        config: s.dir.write("master-b.toml", &text),
        zstd_config: s
            .dir
            .write("master-b-zstd.toml", format!("{text}compression = true\n")),
        bin,
    }
}

fn remove(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", dir.display()),
    }
}

/// Empties the page cache (after writing back what is dirty), so that every run reads the
/// master's files, and the programs it starts, from disk.
pub fn cold_cache() {
    // SAFETY: plain syscall.
    unsafe { libc::sync() };
    fs::write("/proc/sys/vm/drop_caches", "3")
        .unwrap_or_else(|e| panic!("echo 3 > /proc/sys/vm/drop_caches: {e} (run as root)"));
}

/// The link between the hosts limited to `rate` in both directions, as long as it lives:
/// a token bucket on each host's end of the veth pair (each end shapes what it sends).
pub struct Shaped<'a> {
    hosts: &'a TwoHosts,
}

impl<'a> Shaped<'a> {
    pub fn new(hosts: &'a TwoHosts, rate: &str) -> Shaped<'a> {
        assert!(
            Path::new(TC).exists(),
            "{TC} not found (Debian package iproute2)"
        );
        let shaped = Shaped { hosts };
        for host in [&hosts.master, &hosts.standby] {
            tc(
                host,
                &["qdisc", "add", "dev", host.link_interface(), "root"],
            )
            .args(["tbf", "rate", rate, "burst", "256kb", "latency", "50ms"])
            .ok();
        }
        shaped
    }

    /// `tc -s qdisc` of both ends: bytes sent, drops, overlimits (proof the limit bit).
    pub fn stats(&self) -> String {
        [&self.hosts.master, &self.hosts.standby]
            .iter()
            .map(|host| {
                let out = tc(host, &["-s", "qdisc", "show", "dev", host.link_interface()])
                    .run()
                    .stdout;
                let text = String::from_utf8_lossy(&out);
                let line = text
                    .lines()
                    .find(|l| l.trim_start().starts_with("Sent"))
                    .unwrap_or("?")
                    .trim()
                    .to_string();
                format!("{} sends: {line}", host.role)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Shaped<'_> {
    fn drop(&mut self) {
        for host in [&self.hosts.master, &self.hosts.standby] {
            let del = tc(
                host,
                &["qdisc", "del", "dev", host.link_interface(), "root"],
            );
            if let Err(e) = del.try_ok() {
                eprintln!("warning: removing the rate limit: {e}");
            }
        }
    }
}

fn tc(host: &Host, args: &[&str]) -> TestCommand {
    TestCommand::new(TC).args(args).on(host)
}
