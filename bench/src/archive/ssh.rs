//! The ssh suite's standby: a harness [`Sshd`] on 127.0.0.1 that logs the cipher of every
//! connection, the postgres-owned client key and known_hosts every client checks, and the
//! configs of the two walmgr-over-SSH variants.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use walmgr_tests::{Sshd, TestCommand, TestDir};

use crate::master::Master;

/// (cipher, MAC) of connections -> how many.
pub type Logins = BTreeMap<(String, String), usize>;

/// The OpenSSH client side of the bench, and what sshd's log says about its connections.
#[derive(Clone, Debug)]
pub struct SshClient {
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    control_path: PathBuf,
    sshd_log: PathBuf,
}

impl SshClient {
    /// The standby's sshd (LogLevel DEBUG: its log names the cipher and MAC every connection
    /// negotiates), a client key owned by postgres that it accepts, a known_hosts that holds
    /// its host key, and a directory for ControlMaster sockets.
    pub fn start(dir: &TestDir) -> (Sshd, SshClient) {
        let sshd = Sshd::start_with(
            dir,
            "standby",
            "# Logs the cipher and MAC of every connection (about 90 lines a login).\n\
             LogLevel DEBUG",
        );
        let (key, public) = Sshd::client_key(dir, "id_ed25519");
        sshd.authorize(&public);
        let known_hosts = dir.write("known_hosts", format!("{}\n", sshd.known_hosts_line()));
        let cm = dir.mkdir("cm");
        fs::set_permissions(&cm, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod 700 {}: {e}", cm.display()));
        let client = SshClient {
            port: sshd.port(),
            key,
            known_hosts,
            control_path: cm.join("master.sock"),
            sshd_log: sshd.log_path().to_path_buf(),
        };
        (sshd, client)
    }

    /// OpenSSH client options: this key only, the bench's known_hosts only, checked
    /// strictly; no ~/.ssh/config or system ssh_config.
    pub fn options(&self, control_master: bool) -> Vec<String> {
        let mut o: Vec<String> = [
            "-F",
            "/dev/null",
            "-p",
            &self.port.to_string(),
            "-i",
            &self.key.display().to_string(),
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
        .collect();
        if control_master {
            o.extend(
                [
                    "-o",
                    "ControlMaster=auto",
                    "-o",
                    &format!("ControlPath={}", self.control_path.display()),
                    "-o",
                    "ControlPersist=60",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
        }
        o
    }

    /// `ssh <options> postgres@127.0.0.1 true` as postgres with the ControlMaster options: the
    /// master connection detaches and stays for ControlPersist.
    pub fn open_control_master(&self) {
        TestCommand::new("ssh")
            .args(self.options(true))
            .args(["postgres@127.0.0.1", "true"])
            .as_postgres()
            .timeout(Duration::from_secs(30))
            .ok();
    }

    /// Ends the ControlMaster, if one runs (it would otherwise outlive the bench by up to
    /// ControlPersist). Never panics: called on the way out.
    pub fn close_control_master(&self) {
        if !self.control_path.exists() {
            return;
        }
        let exit = TestCommand::new("ssh")
            .args(self.options(true))
            .args(["-O", "exit", "postgres@127.0.0.1"])
            .as_postgres()
            .timeout(Duration::from_secs(10));
        // Its connection ends with the sshd's sessions anyway.
        if let Err(e) = exit.try_run() {
            eprintln!("warning: cannot end the ControlMaster: {e}");
        }
    }

    /// Where sshd's log ends now.
    pub fn mark(&self) -> u64 {
        fs::metadata(&self.sshd_log).map(|m| m.len()).unwrap_or(0)
    }

    /// (cipher, MAC) of the connections made since `mark`: one `kex: client->server` line
    /// each, from the pre-authentication child (a rekey repeats it without `[preauth]`).
    pub fn logins_since(&self, mark: u64) -> Logins {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.sshd_log) {
            let mut bytes = Vec::new();
            if f.seek(SeekFrom::Start(mark)).is_ok() && f.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        let mut logins = Logins::new();
        for line in text.lines().filter(|l| l.trim_end().ends_with("[preauth]")) {
            let Some((_, rest)) = line.split_once("kex: client->server cipher: ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let cipher = words.next().unwrap_or("?").to_string();
            let mac = match (words.next(), words.next()) {
                (Some("MAC:"), Some(mac)) => mac.to_string(),
                _ => "?".to_string(),
            };
            *logins.entry((cipher, mac)).or_default() += 1;
        }
        logins
    }

    /// The ciphers OpenSSH's client proposes by default (`ssh -G`: the bench sets none).
    pub fn openssh_ciphers(&self) -> String {
        let out = TestCommand::new("ssh")
            .arg("-G")
            .args(self.options(false))
            .arg("postgres@127.0.0.1")
            .as_postgres()
            .run();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("ciphers "))
            .unwrap_or("?")
            .to_string()
    }
}

/// The master config of a walmgr-over-SSH variant for `master`, and the standby config its
/// xserve reads (whose completed_wals is the variant's destination). Returns the master's.
pub fn walmgr_ssh_config(
    dir: &TestDir,
    master: &Master,
    ssh: &SshClient,
    standby_walmgr: &Path,
    name: &str,
    compression: bool,
    dest: &Path,
) -> PathBuf {
    let standby = dir.mkdir("standby");
    let slave_config = dir.write(
        format!("standby/{name}.toml"),
        format!(
            "[walmgr]\n\
             job_name = \"wal-bench-standby\"\n\
             logfile = \"{standby}/{name}.log\"\n\
             walmgr_data = \"{standby}/walshipping\"\n\
             completed_wals = \"{dest}/{name}\"\n",
            standby = standby.display(),
            dest = dest.display(),
        ),
    );
    dir.write(
        format!("{}-{name}.toml", master.cluster.name),
        format!(
            "[walmgr]\n\
             job_name = \"wal-bench\"\n\
             master_db = \"{conninfo}\"\n\
             master_data = \"{data}\"\n\
             slave = \"postgres@127.0.0.1:{port}\"\n\
             slave_config = \"{slave_config}\"\n\
             slave_walmgr = \"{walmgr}\"\n\
             ssh_identity = \"{key}\"\n\
             ssh_known_hosts = \"{known_hosts}\"\n\
             walmgr_data = \"{standby}/walshipping\"\n\
             compression = {compression}\n",
            conninfo = master.cluster.conninfo(),
            data = master.cluster.data.display(),
            port = ssh.port,
            slave_config = slave_config.display(),
            walmgr = standby_walmgr.display(),
            key = ssh.key.display(),
            known_hosts = ssh.known_hosts.display(),
            standby = standby.display(),
        ),
    )
}

/// Ends the ControlMaster when dropped (declare it after the sshd: dropped before it).
pub struct ControlMasterGuard(pub SshClient);

impl Drop for ControlMasterGuard {
    fn drop(&mut self) {
        self.0.close_control_master();
    }
}
