//! Two hosts on one machine: a master host and a standby host, each a network namespace of
//! its own, joined by one veth pair and nothing else. A process in a host sees only its own
//! loopback and the link: the standby's sshd and PostgreSQL are reachable from the master
//! host by TCP at 169.254.77.2, and from nowhere else by network. The filesystem stays shared,
//! so the test process (in the machine's own, "root", namespace) still reaches every cluster
//! through its Unix socket in the test dir, and reads every log and archive directly.
//!
//! ```no_run
//! use walmgr_tests::{Cluster, Pg, Sshd, TestCommand, TestDir, TwoHosts};
//! let dir = TestDir::new("example");
//! let hosts = TwoHosts::new(); // declared before what runs in it: torn down after it
//! let master = Cluster::init_on(&hosts.master, &Pg::major(16), &dir, "master", &[]);
//! master.start();
//! let sshd = Sshd::start_on(&hosts.standby, &dir, "standby"); // on 169.254.77.2
//! // Programs run in a host with `.on`; servers are reached over the link from the other.
//! let addrs = TestCommand::new("/usr/sbin/ip").args(["-4", "addr"]).on(&hosts.master).ok();
//! assert!(addrs.contains("169.254.77.1/30"));
//! let mut client = master.try_connect_from(&hosts.standby, "").unwrap(); // TCP
//! assert_eq!(master.query_one::<i32>("SELECT 1"), 1); // the Unix socket, from here
//! ```
//!
//! Nothing in the root namespace changes except the namespace entries (`/run/netns/NAME`):
//! the veth pair is created with both ends already inside the namespaces, and neither host
//! has a route to anything but the link, so no test traffic can reach the real network.

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::command::TestCommand;
use crate::process::pid_alive;

/// iproute2's `ip` (Debian package iproute2).
const IP: &str = "/usr/sbin/ip";
/// Where `ip netns add` keeps the namespaces it names.
const NETNS_DIR: &str = "/run/netns";
/// Every namespace the harness makes is named `wm-m-<pid>-<n>` or `wm-s-<pid>-<n>`: the pid of
/// the test process that owns it, so that a later run can tell an orphan from a live one.
const PREFIX: &str = "wm-";
/// The link: a /30 of link-local addresses of its own (never 169.254.169.254, the cloud
/// metadata address). Every pair uses the same two addresses: each pair's namespaces have
/// their own network stacks, so pairs cannot meet or clash.
const LINK: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 0);
const LINK_PREFIX: u8 = 30;
const MASTER_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 1);
const STANDBY_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 2);
/// The link's interface in the master host and in the standby host.
const MASTER_IF: &str = "to-standby";
const STANDBY_IF: &str = "to-master";
/// nftables (Debian package nftables) and tc (iproute2), for the link's faults.
const NFT: &str = "/usr/sbin/nft";
const TC: &str = "/usr/sbin/tc";
/// The nftables table a cut link is made of.
const FAULT_TABLE: &str = "walmgr_fault";
/// How long teardown keeps killing what runs in a namespace before it gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// One end of a [`TwoHosts`] pair: a network namespace with loopback and one interface on
/// the link. Pass it to [`crate::Cluster::init_on`], [`crate::Sshd::start_on`] and
/// [`TestCommand::on`] to run something in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// "master" or "standby", for messages.
    pub role: &'static str,
    /// The namespace, as `ip netns list` shows it.
    pub netns: String,
    /// This host's address on the link.
    pub addr: Ipv4Addr,
    /// The other host's address on the link.
    pub peer: Ipv4Addr,
}

impl Host {
    /// The link between the two hosts as CIDR (`169.254.77.0/30`), e.g. for pg_hba.conf.
    pub fn link_cidr(&self) -> String {
        format!("{LINK}/{LINK_PREFIX}")
    }

    /// `command` run inside this host: `ip netns exec NETNS <program> <args>`, with the same
    /// environment and working directory. `ip` execs the program, which keeps its pid; put it
    /// outside `runuser`, which would otherwise need the privileges `ip` drops.
    pub(crate) fn wrap(&self, command: Command) -> Command {
        let mut c = Command::new(IP);
        c.args(["netns", "exec", &self.netns]);
        c.arg(command.get_program());
        c.args(command.get_args());
        for (k, v) in command.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            c.current_dir(dir);
        }
        c
    }

    /// Runs `f` on a thread of the test process that has joined this host's network
    /// namespace (only that thread: setns with CLONE_NEWNET moves the calling thread alone).
    /// A socket made in `f` stays in the namespace wherever it is used afterwards.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let ns = File::open(Path::new(NETNS_DIR).join(&self.netns))?;
        std::thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: a valid namespace fd; setns only changes this thread's namespace.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A TCP connection from inside this host to `addr`.
    pub fn tcp_connect(&self, addr: SocketAddrV4, timeout: Duration) -> io::Result<TcpStream> {
        self.run_inside(|| TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout))?
    }

    /// A TCP listener inside this host on its address and `port` (0: any free port).
    pub fn tcp_listen(&self, port: u16) -> io::Result<TcpListener> {
        self.run_inside(|| TcpListener::bind(SocketAddrV4::new(self.addr, port)))?
    }

    /// This host's end of the link (a veth interface), e.g. for `tc` to shape what it sends.
    pub fn link_interface(&self) -> &'static str {
        if self.addr == MASTER_ADDR {
            MASTER_IF
        } else {
            STANDBY_IF
        }
    }
}

/// A master host and a standby host joined by a veth pair: master 169.254.77.1/30, standby
/// 169.254.77.2/30, loopback up in both, no other interface or route.
///
/// Dropping it kills whatever still runs in either namespace (`ip netns pids`), then deletes
/// both (`ip netns del`), also while the test panics. Declare it after the [`crate::TestDir`]
/// and before the clusters and sshds that run in it, so that they stop first, cleanly.
/// If the namespaces cannot be made, [`TwoHosts::new`] panics saying why: a test that needs
/// two hosts never falls back to one.
#[derive(Debug)]
pub struct TwoHosts {
    pub master: Host,
    pub standby: Host,
}

impl TwoHosts {
    /// Makes the two namespaces and the link between them. First removes the namespaces that
    /// test processes no longer alive left behind (killed before their teardown could run).
    // No Default: making two hosts changes the machine, which `default()` should not hide.
    #[allow(clippy::new_without_default)]
    pub fn new() -> TwoHosts {
        assert!(
            Path::new(IP).exists(),
            "two hosts cannot be made here: {IP} not found (install the Debian package iproute2)"
        );
        // `ip netns add` mounts /run/netns on first use: one at a time in this process.
        static CREATING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
        remove_orphaned_namespaces();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let hosts = TwoHosts {
            master: Host {
                role: "master",
                netns: format!("{PREFIX}m-{pid}-{n}"),
                addr: MASTER_ADDR,
                peer: STANDBY_ADDR,
            },
            standby: Host {
                role: "standby",
                netns: format!("{PREFIX}s-{pid}-{n}"),
                addr: STANDBY_ADDR,
                peer: MASTER_ADDR,
            },
        };
        // From here on a failure panics with `hosts` in scope: its Drop removes what exists.
        for host in [&hosts.master, &hosts.standby] {
            if let Err(report) = TestCommand::new(IP)
                .args(["netns", "add", &host.netns])
                .try_ok()
            {
                panic!(
                    "two hosts cannot be made here: creating the {} host's network namespace \
                     failed (network namespaces need root, i.e. CAP_SYS_ADMIN, and a kernel \
                     with CONFIG_NET_NS; this test needs two hosts and does not fall back to \
                     one)\n{report}",
                    host.role
                );
            }
        }
        let (m, s) = (&hosts.master, &hosts.standby);
        // Both ends are created inside their namespaces: the root namespace never holds
        // either, not even for a moment.
        let m_if = m.link_interface();
        let s_if = s.link_interface();
        hosts.ip(&[
            "link", "add", "name", m_if, "netns", &m.netns, "type", "veth", "peer", "name", s_if,
            "netns", &s.netns,
        ]);
        for (host, interface) in [(m, m_if), (s, s_if)] {
            let ns = host.netns.as_str();
            let addr = format!("{}/{LINK_PREFIX}", host.addr);
            hosts.ip(&["-n", ns, "link", "set", "lo", "up"]);
            // No IPv6 link-local address on the link: the pair is the two IPv4 addresses.
            hosts.ip(&["-n", ns, "link", "set", interface, "addrgenmode", "none"]);
            hosts.ip(&["-n", ns, "addr", "add", &addr, "dev", interface]);
            hosts.ip(&["-n", ns, "link", "set", interface, "up"]);
        }
        hosts
    }

    /// Both namespace names, master first.
    pub fn names(&self) -> [String; 2] {
        [self.master.netns.clone(), self.standby.netns.clone()]
    }

    /// From now on every packet between the two hosts is silently dropped (nftables, in
    /// both hosts): what a master that lost power or a firewall that forgot the session
    /// looks like to the other end. No FIN, no RST: each side's connection stays open and
    /// hears nothing. [`TwoHosts::restore_link`] ends it.
    pub fn cut_link(&self) {
        for (host, interface) in self.interfaces() {
            let rules = format!(
                "add table inet {FAULT_TABLE}; \
                 add chain inet {FAULT_TABLE} input {{ type filter hook input priority 0; policy accept; }}; \
                 add rule inet {FAULT_TABLE} input iifname \"{interface}\" drop"
            );
            self.fault(host, &[NFT, &rules]);
        }
    }

    /// Undoes [`TwoHosts::cut_link`]: packets flow again, connections that survived resume.
    pub fn restore_link(&self) {
        for (host, _) in self.interfaces() {
            self.fault(host, &[NFT, &format!("delete table inet {FAULT_TABLE}")]);
        }
    }

    /// Each host sends at most `rate` onto the link (`tc` token bucket, e.g. "20mbit"), so a
    /// transfer lasts long enough to be caught in the middle. [`TwoHosts::unlimit_link`].
    pub fn limit_link(&self, rate: &str) {
        for (host, interface) in self.interfaces() {
            self.fault(
                host,
                &[
                    TC, "qdisc", "add", "dev", interface, "root", "tbf", "rate", rate, "burst",
                    "64kb", "latency", "400ms",
                ],
            );
        }
    }

    pub fn unlimit_link(&self) {
        for (host, interface) in self.interfaces() {
            self.fault(host, &[TC, "qdisc", "del", "dev", interface, "root"]);
        }
    }

    fn interfaces(&self) -> [(&Host, &'static str); 2] {
        [(&self.master, MASTER_IF), (&self.standby, STANDBY_IF)]
    }

    /// Runs a fault-injection program in `host`, panicking with its report on failure.
    fn fault(&self, host: &Host, command: &[&str]) {
        assert!(
            Path::new(command[0]).exists(),
            "{} not found (install the Debian packages nftables and iproute2)",
            command[0]
        );
        if let Err(report) = TestCommand::new(command[0])
            .args(&command[1..])
            .on(host)
            .try_ok()
        {
            panic!("fault injection in the {} host failed\n{report}", host.role);
        }
    }

    /// Runs `ip args`, panicking with the report and the namespaces' names on failure.
    fn ip(&self, args: &[&str]) {
        if let Err(report) = TestCommand::new(IP).args(args).try_ok() {
            panic!(
                "two hosts cannot be made here: setting up the link between {} and {} \
                 failed\n{report}",
                self.master.netns, self.standby.netns
            );
        }
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "two hosts {} and {} torn down after a panic",
                self.master.netns, self.standby.netns
            );
        }
        for host in [&self.master, &self.standby] {
            remove_namespace(&host.netns);
        }
    }
}

/// The names of the namespaces `ip netns list` shows.
pub fn netns_list() -> Vec<String> {
    let out = TestCommand::new(IP).args(["netns", "list"]).ok();
    // Lines are `NAME` or `NAME (id: N)`.
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Best-effort teardown of one namespace; never panics. Kills every process in it first:
/// a namespace with processes left outlives `ip netns del`, and so would their ports.
fn remove_namespace(netns: &str) {
    if !Path::new(NETNS_DIR).join(netns).exists() {
        return;
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let pids = pids_in(netns);
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!("netns {netns} teardown: {pids:?} still alive after SIGKILL");
            break;
        }
        // A process forking while it is killed may leave a child: listed on the next round.
        // Nothing here waits for them: a zombie has left the namespace already, and the
        // fixture that started a process (sshd's Child) must be the one to reap it.
        for &pid in &pids {
            // SAFETY: plain syscall on a positive pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let del = TestCommand::new(IP)
        .args(["netns", "del", netns])
        .timeout(Duration::from_secs(30));
    match del.try_ok() {
        Ok(_) => {}
        Err(report) => eprintln!("netns {netns} teardown: {report}"),
    }
}

/// Live processes in namespace `netns` (`ip netns pids`; zombies have left it).
fn pids_in(netns: &str) -> Vec<i32> {
    match TestCommand::new(IP).args(["netns", "pids", netns]).try_ok() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| pid_alive(p))
            .collect(),
        Err(report) => {
            eprintln!("netns {netns}: cannot list its processes: {report}");
            Vec::new()
        }
    }
}

/// Removes the harness's namespaces whose owning test process is gone (a run killed by a
/// timeout or SIGKILL never ran its Drop). A namespace of a live test process is left alone.
fn remove_orphaned_namespaces() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(owner) = owner_pid(&name) {
            if !pid_alive(owner) {
                eprintln!("removing network namespace {name} left by test process {owner}");
                remove_namespace(&name);
            }
        }
    }
}

/// The pid in a name the harness gives (`wm-m-<pid>-<n>`, `wm-s-<pid>-<n>`); None for any
/// other name, which is never the harness's to remove.
fn owner_pid(name: &str) -> Option<i32> {
    let rest = name
        .strip_prefix(PREFIX)?
        .strip_prefix("m-")
        .or_else(|| name.strip_prefix(PREFIX)?.strip_prefix("s-"))?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok().filter(|&p| p > 0)
}

/// A TCP connection attempt from the test process's own (root) namespace to `addr`, confined
/// to this machine: the socket is bound to the loopback device (SO_BINDTODEVICE "lo"). It
/// answers "does anything outside the pair reach `addr`?" without sending a packet off the
/// machine, which a plain connect would do here: the root namespace routes an address it has
/// no interface for (169.254.77.2 included) to the real network's default gateway.
/// `Err` when nothing answered within `timeout`, or the connection was refused; a socket that
/// cannot be set up so is a panic, never a vacuous `Err`.
pub fn connect_from_root_namespace(addr: SocketAddrV4, timeout: Duration) -> io::Result<()> {
    let setup = |what: &str| -> ! {
        panic!(
            "a connection attempt to {addr} confined to loopback: {what}: {}",
            io::Error::last_os_error()
        )
    };
    // SAFETY: plain syscall; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        setup("socket");
    }
    // SAFETY: fd is a new socket nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let device = b"lo\0";
    // SAFETY: valid socket, option value and length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            device.as_ptr().cast(),
            device.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        setup("SO_BINDTODEVICE lo");
    }
    // A blocking connect gives up after SO_SNDTIMEO.
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: valid socket, option value and length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        setup("SO_SNDTIMEO");
    }
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: valid socket and address of the given length.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;

    fn args_of(command: &Command) -> Vec<OsString> {
        command.get_args().map(|a| a.to_os_string()).collect()
    }

    #[test]
    fn only_the_harness_names_have_an_owner() {
        assert_eq!(owner_pid("wm-m-1234-0"), Some(1234));
        assert_eq!(owner_pid("wm-s-99-12"), Some(99));
        for other in [
            "wm-x-1-0",
            "wm-m-1234",
            "wm-m-abc-0",
            "wm-m-0-0",
            "blue",
            "wm-m-1-x",
        ] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_wrapped_command_runs_through_ip_netns_exec_with_its_environment() {
        let host = Host {
            role: "master",
            netns: "wm-m-1-0".into(),
            addr: MASTER_ADDR,
            peer: STANDBY_ADDR,
        };
        let mut inner = Command::new("runuser");
        inner
            .args(["-u", "postgres", "--", "/bin/true"])
            .env("HOME", "/tmp/h")
            .env_remove("PGHOST")
            .current_dir("/tmp");
        let outer = host.wrap(inner);
        assert_eq!(outer.get_program(), IP);
        assert_eq!(
            args_of(&outer),
            [
                "netns",
                "exec",
                "wm-m-1-0",
                "runuser",
                "-u",
                "postgres",
                "--",
                "/bin/true"
            ]
        );
        let envs: Vec<_> = outer.get_envs().collect();
        assert!(envs.contains(&("HOME".as_ref(), Some("/tmp/h".as_ref()))));
        assert!(envs.contains(&("PGHOST".as_ref(), None)));
        assert_eq!(outer.get_current_dir(), Some(Path::new("/tmp")));
    }
}
