//! The SSH transport: one session to the standby, kept open between files, running the
//! standby's own `walmgr <slave_config> xserve` and speaking [`crate::wire`] to it.
//!
//! Every host key is checked against `ssh_known_hosts`; there is no switch to skip that.
//! Any failure drops the session (the next attempt starts a new one) and is returned as one
//! error naming the standby, so the archiver logs one failed attempt and carries on.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssh2::{CheckResult, HashType, HostKeyType, KnownHostFileKind, MethodType, Session};

use super::ssh_target::SshTarget;
use super::Transport;
use crate::archive::store::Stored;
use crate::changes::Changes;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::os::{shell, users as system};
use crate::remote::wire::{Client, Encoding};
use crate::wal::name::{SegmentName, WalFileName};

/// TCP connect, SSH handshake and login, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The same while the server shuts down, when nothing may hold pg_ctl stop up for long.
const CONNECT_TIMEOUT_STOPPING: Duration = Duration::from_secs(3);
/// How long libssh2 blocks in one call on an open session; between slices walmgr judges
/// the silence (network_timeout, or a server shutting down).
const SLICE_MS: u32 = 1_000;
/// At server shutdown a standby silent this long is given up, not network_timeout.
const STOPPING_PATIENCE: Duration = Duration::from_secs(3);
/// How long a dying session may take to tell us why it died.
const POSTMORTEM_TIMEOUT_MS: u32 = 2_000;
/// A session idle this long is probed before it carries a file: a firewall or NAT may have
/// dropped it silently, and a file sent into a dead connection waits network_timeout for
/// nothing. The standby closes a session idle for its own network_timeout anyway.
const IDLE_PROBE_AFTER: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// In libssh2, AES-CTR and ChaCha20 move data equally fast and AES-GCM slower (bench/
/// archive.sh measures them); all are in OpenSSH's default list.
const CIPHERS: &str = "aes128-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com,\
                       chacha20-poly1305@openssh.com";
/// ed25519 first, as OpenSSH prefers it and as `--ssh-keygen` and ssh-keyscan record it.
const HOST_KEY_TYPES: &str = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,\
                              ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";
const BUFFER: usize = 1 << 20;

type Replies = BufReader<ChannelReader>;
type Requests = BufWriter<ChannelWriter>;

pub struct Ssh {
    target: SshTarget,
    network_timeout: Duration,
    /// The last session was given up because the standby fell silent.
    silent: bool,
    user: String,
    identity: Option<PathBuf>,
    known_hosts: PathBuf,
    command: String,
    encoding: Encoding,
    peer: String,
    conn: Option<Connection>,
}

struct Connection {
    session: Session,
    channel: ssh2::Channel,
    client: Client<Replies, Requests>,
    patience: Arc<Patience>,
    /// The session's TCP connection, to cut it under libssh2 when the standby fell
    /// silent: its goodbyes (channel close, free) then fail at once instead of waiting.
    socket: TcpStream,
    last_used: Instant,
}

impl Connection {
    /// Drops a session whose standby fell silent without a word to it.
    fn abandon(self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

impl Ssh {
    pub fn new(config: &Config, slave: &str) -> Result<Ssh> {
        let target = SshTarget::parse(slave)
            .map_err(|m| Error::config(config.origin("slave"), Some("slave"), m))?;
        let slave_config = config.slave_config.as_ref().ok_or_else(|| {
            Error::config(
                config.origin("slave"),
                Some("slave_config"),
                "must be set when slave is: it is the path of the standby's walmgr config, \
                 which walmgr xserve reads on the standby",
            )
        })?;
        let user = match &target.user {
            Some(user) => user.clone(),
            None => system::effective_user_name().ok_or_else(|| {
                Error::config(
                    config.origin("slave"),
                    Some("slave"),
                    "the running user has no name to log in with; write user@host",
                )
            })?,
        };
        let command = format!(
            "{} {} xserve",
            shell::quote(&config.slave_walmgr),
            shell::quote(&slave_config.to_string_lossy())
        );
        let mut peer_target = target.clone();
        peer_target.user = Some(user.clone());
        Ok(Ssh {
            peer: format!("ssh:{peer_target}"),
            target,
            network_timeout: Duration::from_secs_f64(config.network_timeout),
            silent: false,
            user,
            identity: config.ssh_identity.clone(),
            known_hosts: config.ssh_known_hosts.clone(),
            command,
            encoding: if config.compression {
                Encoding::Zstd
            } else {
                Encoding::Plain
            },
            conn: None,
        })
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::remote(&self.peer, message)
    }

    fn connected(&mut self) -> Result<&mut Connection> {
        if let Some(conn) = self.conn.as_mut() {
            if conn.last_used.elapsed() > IDLE_PROBE_AFTER {
                // One cheap round trip; a dead session is replaced, not trusted.
                conn.patience.set_limit(PROBE_TIMEOUT);
                let alive = conn.client.dirs(false).is_ok();
                conn.patience.set_limit(self.network_timeout);
                if !alive {
                    self.conn = None;
                }
            }
        }
        if self.conn.is_none() {
            if self.silent && super::stopping() {
                return Err(self.err(
                    "the server is shutting down and the standby fell silent at the last \
                     attempt; walmgr does not wait on it again now (what is not archived \
                     stays ready for the next start)",
                ));
            }
            self.conn = Some(self.connect()?);
            self.silent = false;
        }
        let conn = self.conn.as_mut().expect("just connected");
        conn.last_used = Instant::now();
        Ok(conn)
    }

    fn connect_timeout() -> Duration {
        if super::stopping() {
            CONNECT_TIMEOUT_STOPPING
        } else {
            CONNECT_TIMEOUT
        }
    }

    fn connect(&self) -> Result<Connection> {
        self.connect_stepwise().map_err(|(_, e)| e)
    }

    /// Opens a session, saying at which step it failed (`check` reports each step).
    fn connect_stepwise(&self) -> std::result::Result<Connection, (SessionStep, Error)> {
        use SessionStep::*;
        let at = |step: SessionStep| move |e: Error| (step, e);
        let tcp = self.dial().map_err(at(Connect))?;
        let socket = tcp
            .try_clone()
            .map_err(|e| self.err(format!("cannot keep the connection's socket: {e}")))
            .map_err(at(Connect))?;
        let mut session = Session::new()
            .map_err(|e| self.err(format!("libssh2: {e}")))
            .map_err(at(Connect))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(Self::connect_timeout().as_millis() as u32);
        session
            .method_pref(MethodType::HostKey, HOST_KEY_TYPES)
            .and_then(|_| session.method_pref(MethodType::CryptCs, CIPHERS))
            .and_then(|_| session.method_pref(MethodType::CryptSc, CIPHERS))
            .map_err(|e| self.err(format!("libssh2 refused the method list: {e}")))
            .map_err(at(Connect))?;
        session
            .handshake()
            .map_err(|e| self.err(format!("SSH handshake failed: {e}")))
            .map_err(at(Connect))?;
        self.verify_host_key(&session).map_err(at(HostKey))?;
        self.authenticate(&session).map_err(at(Login))?;

        let mut channel = session
            .channel_session()
            .map_err(|e| self.err(format!("could not open a channel: {e}")))
            .map_err(at(Walmgr))?;
        channel
            .exec(&self.command)
            .map_err(|e| self.err(format!("could not run {:?}: {e}", self.command)))
            .map_err(at(Walmgr))?;
        session.set_timeout(SLICE_MS);
        let patience = Arc::new(Patience::new(self.network_timeout));
        let replies =
            BufReader::with_capacity(64 << 10, ChannelReader(channel.stream(0), patience.clone()));
        let requests = BufWriter::with_capacity(
            BUFFER,
            ChannelWriter(channel.stream(0), patience.clone(), channel.clone()),
        );
        let client = match Client::start(&self.peer, replies, requests, self.encoding) {
            Ok(client) => client,
            Err(e) if patience.gave_up() => {
                let _ = socket.shutdown(std::net::Shutdown::Both);
                return Err((Walmgr, e));
            }
            Err(e) => return Err((Walmgr, self.postmortem(&session, &mut channel, e))),
        };
        Ok(Connection {
            session,
            channel,
            client,
            patience,
            socket,
            last_used: Instant::now(),
        })
    }

    fn dial(&self) -> Result<TcpStream> {
        let addrs: Vec<_> = (self.target.host.as_str(), self.target.port)
            .to_socket_addrs()
            .map_err(|e| self.err(format!("cannot resolve {}: {e}", self.target.host)))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Self::connect_timeout()) {
                Ok(tcp) => {
                    // Requests are small lines waiting for a reply: never hold them back.
                    let _ = tcp.set_nodelay(true);
                    return Ok(tcp);
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        Err(self.err(format!(
            "cannot connect: {}",
            last.unwrap_or_else(|| "the name has no address".into())
        )))
    }

    fn verify_host_key(&self, session: &Session) -> Result<()> {
        let (key, kind) = session
            .host_key()
            .ok_or_else(|| self.err("the server sent no host key"))?;
        let fingerprint = session
            .host_key_hash(HashType::Sha256)
            .map(|h| format!("SHA256:{}", base64_unpadded(h)))
            .unwrap_or_else(|| "(no fingerprint)".into());
        let (type_name, keyscan_type) = key_type_names(kind);
        let file = &self.known_hosts;
        let mut known = session
            .known_hosts()
            .map_err(|e| self.err(format!("libssh2: {e}")))?;
        let read = match fs::metadata(file) {
            Ok(_) => known
                .read_file(file, KnownHostFileKind::OpenSSH)
                .map(|_| ())
                .map_err(|e| format!("could not read {}: {e}", file.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("could not read {}: {e}", file.display())),
        };
        read.map_err(|m| self.err(m))?;
        let name = self.target.known_hosts_name();
        let keyscan = format!(
            "ssh-keyscan -p {} -t {keyscan_type} {} >> {}",
            self.target.port,
            self.target.host,
            file.display()
        );
        let check_on_standby = format!(
            "compare with `ssh-keygen -lf /etc/ssh/ssh_host_{keyscan_type}_key.pub` on the standby"
        );
        match known.check_port(&self.target.host, self.target.port, key) {
            CheckResult::Match => Ok(()),
            CheckResult::NotFound => Err(self.err(format!(
                "host key not trusted: {name} presents {type_name} key {fingerprint}, which is not \
                 in {}. walmgr never trusts a key by itself: {check_on_standby}, then add it with \
                 `{keyscan}`",
                file.display()
            ))),
            CheckResult::Mismatch => Err(self.err(format!(
                "HOST KEY CHANGED: {name} now presents {type_name} key {fingerprint}, which differs \
                 from the key for it in {}. This may be an attack, or the standby was reinstalled. \
                 Archiving waits until the new key is trusted: {check_on_standby}, then run \
                 `ssh-keygen -R '{name}' -f {}` and `{keyscan}`",
                file.display(),
                file.display()
            ))),
            CheckResult::Failure => Err(self.err(format!(
                "could not check host key {fingerprint} against {}",
                file.display()
            ))),
        }
    }

    fn authenticate(&self, session: &Session) -> Result<()> {
        let identity = match &self.identity {
            Some(path) => path.clone(),
            None => default_identity().ok_or_else(|| {
                self.err(
                    "no SSH key: set ssh_identity, or create ~/.ssh/id_ed25519 with \
                     `walmgr --ssh-keygen --init-master`",
                )
            })?,
        };
        if let Err(e) = fs::File::open(&identity) {
            return Err(self.err(format!(
                "cannot read the SSH key {}: {e}",
                identity.display()
            )));
        }
        session
            .userauth_pubkey_file(&self.user, None, &identity, None)
            .map_err(|e| {
                self.err(format!(
                    "the standby did not accept the key {} for user {}: {e}; install its .pub \
                     there with `walmgr --init-slave --ssh-add-key=FILE`",
                    identity.display(),
                    self.user
                ))
            })
    }

    /// Adds what the standby said on stderr, and its exit status, to `error`.
    fn postmortem(&self, session: &Session, channel: &mut ssh2::Channel, error: Error) -> Error {
        session.set_timeout(POSTMORTEM_TIMEOUT_MS);
        let mut said = String::new();
        let _ = channel.stderr().take(4096).read_to_string(&mut said);
        let _ = channel.wait_close();
        let status = channel.exit_status().ok().filter(|_| channel.eof());
        let said = said.trim();
        if said.is_empty() && status.is_none() {
            return error;
        }
        let (peer, mut message) = match error {
            Error::Remote { peer, message } | Error::Protocol { peer, message } => (peer, message),
            other => (self.describe(), other.to_string()),
        };
        if let Some(status) = status {
            message.push_str(&format!("; `{}` exited with status {status}", self.command));
        }
        if !said.is_empty() {
            message.push_str(&format!(
                "; the standby said: {}",
                said.replace('\n', " | ")
            ));
        }
        Error::Remote { peer, message }
    }

    /// Drops a broken session, keeping whatever it said about why (a silent standby says
    /// nothing: it is not asked).
    fn lose(&mut self, error: Error) -> Error {
        match self.conn.take() {
            Some(conn) if conn.patience.gave_up() => {
                self.silent = true;
                conn.abandon();
                error
            }
            Some(mut conn) => self.postmortem(&conn.session, &mut conn.channel, error),
            None => error,
        }
    }

    /// Opens a fresh session for `check`, saying which step failed. Until the step that
    /// failed, every step passed.
    pub fn open(&mut self) -> std::result::Result<(), (SessionStep, Error)> {
        self.conn = None;
        self.conn = Some(self.connect_stepwise()?);
        Ok(())
    }

    /// The command the session runs on the standby.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// [`Ssh::lose`] when the error broke the session; a refusal keeps it.
    fn lose_if_broken(&mut self, error: Error) -> Error {
        match &self.conn {
            Some(conn) if !conn.client.is_broken() => error,
            _ => self.lose(error),
        }
    }

    /// The standby, as messages name it (`ssh:user@host:port`).
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// One request of a backup session (see [`Client::backup`]).
    pub fn backup_request(
        &mut self,
        op: &str,
        body: Option<(&mut dyn Read, u64)>,
        reply: bool,
    ) -> Result<Option<String>> {
        let conn = self.connected()?;
        match conn.client.backup(op, body, reply) {
            Err(e) if conn.client.is_broken() => Err(self.lose(e)),
            result => result,
        }
    }

    fn partial_once(&mut self, segment: &SegmentName, offset: u64, bytes: &[u8]) -> Result<()> {
        let conn = self.connected()?;
        match conn.client.partial(segment, offset, bytes) {
            Err(e) if conn.client.is_broken() => Err(self.lose(e)),
            result => result,
        }
    }

    fn put_once(&mut self, name: &WalFileName, src: &Path) -> Result<Stored> {
        let file = fs::File::open(src).map_err(|e| Error::io("open", src, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", src, e))?
            .len();
        let conn = self.connected()?;
        // Unbuffered on purpose: the request writer's 1 MiB buffer reads the file straight
        // in; a BufReader here would copy every byte once more.
        match conn.client.put(name, file, len) {
            Err(e) if conn.client.is_broken() => Err(self.lose(e)),
            result => result,
        }
    }
}

/// The steps of opening a session, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStep {
    /// TCP connect and SSH handshake.
    Connect,
    /// The host key, against ssh_known_hosts.
    HostKey,
    /// Public-key login.
    Login,
    /// The standby's `walmgr xserve` started and greeted back.
    Walmgr,
}

impl Transport for Ssh {
    fn describe(&self) -> String {
        format!("{} ({})", self.peer, self.command)
    }

    fn check(&mut self) -> Result<()> {
        // At shutdown the archiver's last round is not the moment to dial a standby that
        // may be gone: each file's own attempt reports what happens.
        if super::stopping() {
            return Ok(());
        }
        self.connected().map(|_| ())
    }

    fn create_dirs(&mut self, changes: &mut Changes) -> Result<()> {
        // The standby's own config names its directories; the master only asks.
        let missing = self.connected()?.client.dirs(false);
        let missing = missing.map_err(|e| self.lose(e))?;
        if missing.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = missing.iter().map(|d| d.display().to_string()).collect();
        let what = format!(
            "create directories {} on {} (mode 0700)",
            list.join(", "),
            self.peer
        );
        changes.apply(what, || {
            let created = self.connected()?.client.dirs(true);
            created.map(|_| ()).map_err(|e| self.lose(e))
        })?;
        Ok(())
    }

    fn archive(&mut self, name: &WalFileName, src: &Path, changes: &mut Changes) -> Result<Stored> {
        let what = format!("archive {} to {} as {name}", src.display(), self.peer);
        let reused = self.conn.is_some();
        let stored = changes.apply(what, || match self.put_once(name, src) {
            // A session idle since the last segment may have been closed by the standby
            // or a firewall: one fresh session gets one more try. Re-sending is safe, as
            // identical content is success. Not after silence: that waited long enough.
            Err(_) if reused && self.conn.is_none() && !self.silent => self.put_once(name, src),
            other => other,
        })?;
        Ok(stored.unwrap_or(Stored::Written))
    }

    fn inspect_dirs(&mut self) -> Result<Vec<crate::remote::dirs::DirState>> {
        let states = self.connected()?.client.inspect_dirs();
        states.map_err(|e| self.lose_if_broken(e))
    }

    fn archived_len(&mut self, name: &WalFileName) -> Result<Option<u64>> {
        let len = self.connected()?.client.archived_len(name);
        len.map_err(|e| self.lose_if_broken(e))
    }

    fn ship_partial(&mut self, segment: &SegmentName, offset: u64, bytes: &[u8]) -> Result<()> {
        let reused = self.conn.is_some();
        match self.partial_once(segment, offset, bytes) {
            // As for archive: one fresh session gets one more try after an idle one broke.
            Err(_) if reused && self.conn.is_none() && !self.silent => {
                self.partial_once(segment, offset, bytes)
            }
            other => other,
        }
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.patience.gave_up() {
                conn.abandon();
            } else {
                conn.patience
                    .set_limit(Duration::from_millis(POSTMORTEM_TIMEOUT_MS.into()));
                let _ = conn.client.bye();
            }
        }
    }
}

/// How long the session waits on a silent standby: network_timeout of silence in one
/// read or write, or a few seconds once the server is shutting down.
struct Patience {
    limit_ms: AtomicU64,
    gave_up: AtomicBool,
}

impl Patience {
    fn new(limit: Duration) -> Patience {
        Patience {
            limit_ms: AtomicU64::new(limit.as_millis() as u64),
            gave_up: AtomicBool::new(false),
        }
    }

    fn set_limit(&self, limit: Duration) {
        self.limit_ms
            .store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    fn gave_up(&self) -> bool {
        self.gave_up.load(Ordering::Relaxed)
    }

    /// Repeats `step` (one libssh2 call, blocking at most SLICE_MS) while the standby is
    /// silent and waiting on it is still reasonable. A call that timed out left libssh2
    /// where a non-blocking call returning EAGAIN leaves it, so calling again resumes it.
    /// `closed` tells whether the standby's end of the channel is gone (its xserve died):
    /// a write waits for window space the standby will never give, so it asks.
    fn wait<T>(
        &self,
        silence: &str,
        mut step: impl FnMut() -> io::Result<T>,
        closed: impl Fn() -> bool,
    ) -> io::Result<T> {
        let started = Instant::now();
        loop {
            match step() {
                Err(e) if e.kind() == io::ErrorKind::TimedOut && closed() => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the standby's walmgr xserve ended the session",
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let silent = started.elapsed();
                    let limit = Duration::from_millis(self.limit_ms.load(Ordering::Relaxed));
                    let why = if silent >= limit {
                        format!("(network_timeout is {} s)", limit.as_secs_f64().round())
                    } else if silent >= STOPPING_PATIENCE && super::stopping() {
                        "while the server is shutting down".to_owned()
                    } else {
                        continue;
                    };
                    self.gave_up.store(true, Ordering::Relaxed);
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the standby {silence} for {} s {why}; the session is given up",
                            silent.as_secs_f64().round()
                        ),
                    ));
                }
                other => return other,
            }
        }
    }
}

/// Reads replies from the channel's stdout (a closed channel reads as the end).
struct ChannelReader(ssh2::Stream, Arc<Patience>);

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (stream, patience) = (&mut self.0, &self.1);
        patience.wait("answered nothing", || stream.read(buf), || false)
    }
}

/// Writes requests to the channel's stdin. Its flush does nothing on purpose: libssh2's
/// "flush" discards unread *incoming* data (a reply could be lost), and a blocking
/// channel write has already handed every byte to the connection.
struct ChannelWriter(ssh2::Stream, Arc<Patience>, ssh2::Channel);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (stream, patience, channel) = (&mut self.0, &self.1, &self.2);
        patience.wait("took no data", || stream.write(buf), || ended(channel))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// True once the standby's xserve is gone: the channel's end, or the exit status or signal
/// sshd reports for it (eof() stays false while stderr output is unread, and a killed
/// xserve may have logged some).
fn ended(channel: &ssh2::Channel) -> bool {
    channel.eof()
        || channel.exit_status().is_ok_and(|status| status != 0)
        || channel
            .exit_signal()
            .is_ok_and(|signal| signal.exit_signal.is_some())
}

/// The key ssh would offer first: ~/.ssh/id_ed25519, then id_ecdsa, then id_rsa.
fn default_identity() -> Option<PathBuf> {
    let home = system::home_dir()?;
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .find(|path| path.is_file())
}

/// The key type as known_hosts writes it, and as ssh-keyscan -t and host key files name it.
fn key_type_names(kind: HostKeyType) -> (&'static str, &'static str) {
    match kind {
        HostKeyType::Ed25519 => ("ssh-ed25519", "ed25519"),
        HostKeyType::Ecdsa256 => ("ecdsa-sha2-nistp256", "ecdsa"),
        HostKeyType::Ecdsa384 => ("ecdsa-sha2-nistp384", "ecdsa"),
        HostKeyType::Ecdsa521 => ("ecdsa-sha2-nistp521", "ecdsa"),
        HostKeyType::Rsa => ("ssh-rsa", "rsa"),
        HostKeyType::Dss => ("ssh-dss", "dsa"),
        HostKeyType::Unknown => ("unknown", "ed25519"),
    }
}

/// Base64 without padding, as OpenSSH prints SHA256 fingerprints.
fn base64_unpadded(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master_config(extra: &str) -> Result<Box<dyn Transport>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(
            &path,
            format!("[walmgr]\nmaster_data = \"/srv/pg\"\nwalmgr_data = \"/srv/wal\"\n{extra}"),
        )
        .unwrap();
        let config = Config::load(&path, &[]).unwrap();
        super::super::for_master(&config)
    }

    #[test]
    fn an_ssh_config_names_what_is_missing_or_malformed() {
        let err = master_config("slave = \"standby\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("slave_config") && err.contains("must be set"),
            "{err}"
        );
        let err = master_config("slave = \"standby:ssh\"\nslave_config = \"/c\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("master.toml:4") && err.contains("port"),
            "{err}"
        );
        let ok = master_config("slave = \"pg@standby:2222\"\nslave_config = \"/etc/w s.toml\"\n")
            .unwrap();
        assert_eq!(
            ok.describe(),
            "ssh:pg@standby:2222 (walmgr '/etc/w s.toml' xserve)"
        );
    }

    #[test]
    fn fingerprints_are_printed_as_openssh_does() {
        assert_eq!(base64_unpadded(b""), "");
        assert_eq!(base64_unpadded(b"f"), "Zg");
        assert_eq!(base64_unpadded(b"fo"), "Zm8");
        assert_eq!(base64_unpadded(b"foo"), "Zm9v");
        assert_eq!(base64_unpadded(b"foob"), "Zm9vYg");
    }
}
