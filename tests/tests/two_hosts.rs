//! The two-host fixture: a master host and a standby host (network namespaces joined by one
//! veth pair) see each other by TCP over their link and nothing else; the test process
//! still reaches their servers through Unix sockets; the standby's sshd and PostgreSQL
//! answer the master host only; and every namespace is gone after the test, also after a
//! panic or a killed run.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use walmgr_tests::{
    connect_from_root_namespace, netns_list, pid_alive, Cluster, Host, PeerAuth, Pg, Sshd,
    TestCommand, TestDir, TwoHosts,
};

const IP: &str = "/usr/sbin/ip";
const MASTER: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 1);
const STANDBY: Ipv4Addr = Ipv4Addr::new(169, 254, 77, 2);
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection attempt that should get no answer waits for one (on loopback an
/// answer takes well under a millisecond).
const SHORT: Duration = Duration::from_millis(500);

/// `ip args` run inside `host`, as that host's administrator would type it.
fn ip_in(host: &Host, args: &[&str]) -> String {
    TestCommand::new(IP).args(args).on(host).ok()
}

fn assert_gone(names: &[String]) {
    let listed = netns_list();
    for name in names {
        assert!(
            !listed.contains(name),
            "{name} still listed by `ip netns list`: {listed:?}"
        );
    }
}

/// `sleep 60` started in `host` and left running there, as a daemon nobody stops would be;
/// returns its pid.
fn stray_sleep(host: &Host) -> i32 {
    let pid = TestCommand::new("/bin/sh")
        .args(["-c", "sleep 60 >/dev/null 2>&1 & echo $!"])
        .on(host)
        .ok();
    pid.trim().parse().expect("the pid sh printed")
}

#[test]
fn two_hosts_are_joined_by_one_link_and_nothing_else() {
    let names = {
        let hosts = TwoHosts::new();
        let names = hosts.names();
        let listed = netns_list();
        assert!(names.iter().all(|n| listed.contains(n)), "{listed:?}");

        // Each host: its loopback and its end of the link, one route (the link's).
        for (host, me, interface) in [
            (&hosts.master, MASTER, "to-standby"),
            (&hosts.standby, STANDBY, "to-master"),
        ] {
            assert_eq!(host.addr, me);
            let addrs = ip_in(host, &["-4", "-o", "addr"]);
            assert!(addrs.contains("lo    inet 127.0.0.1/8"), "{addrs}");
            assert!(
                addrs.contains(&format!("{interface}    inet {me}/30")),
                "{addrs}"
            );
            assert_eq!(addrs.lines().count(), 2, "{addrs}");
            let routes = ip_in(host, &["-4", "route"]);
            assert_eq!(
                routes.trim(),
                format!("169.254.77.0/30 dev {interface} proto kernel scope link src {me}"),
                "in the {} host",
                host.role
            );
            // Anything off the link has no route: a packet to it cannot even be sent.
            let out = TestCommand::new(IP)
                .args(["route", "get", "198.51.100.1"])
                .on(host)
                .fails_with(2);
            assert!(out.contains("Network is unreachable"), "{out}");
        }
        // The root namespace holds neither end.
        let root = TestCommand::new(IP).args(["-4", "-o", "addr"]).ok();
        assert!(!root.contains("169.254.77."), "{root}");

        // TCP from the master host to the standby host arrives from the master's address.
        let listener = hosts
            .standby
            .tcp_listen(0)
            .expect("listen in the standby host");
        let port = listener.local_addr().unwrap().port();
        let mut stream = hosts
            .master
            .tcp_connect(SocketAddrV4::new(STANDBY, port), TIMEOUT)
            .expect("connect from the master host to the standby host");
        let (mut accepted, from) = listener.accept().unwrap();
        assert_eq!(from.ip(), MASTER);
        stream.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        // From the machine's own namespace the standby's address answers nothing.
        let outside = connect_from_root_namespace(SocketAddrV4::new(STANDBY, port), SHORT);
        assert!(outside.is_err(), "the root namespace reached the standby");
        names
    };
    assert_gone(&names);
}

#[test]
fn two_pairs_at_once_use_the_same_addresses_without_meeting() {
    let first = TwoHosts::new();
    let second = TwoHosts::new();
    assert_ne!(first.names(), second.names());
    assert_eq!(first.standby.addr, second.standby.addr);
    let listener = first
        .standby
        .tcp_listen(0)
        .expect("listen in the first pair");
    let there = SocketAddrV4::new(STANDBY, listener.local_addr().unwrap().port());
    first
        .master
        .tcp_connect(there, TIMEOUT)
        .expect("the first pair's master reaches its standby");
    // The second pair's standby answers at the same address, for itself: nothing listens.
    let err = second
        .master
        .tcp_connect(there, TIMEOUT)
        .expect_err("the second pair's master reached the first pair's standby");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// The standby host as the rest of the project will use it: its sshd and its PostgreSQL
/// answer the master host over the link, by TCP only; the test process keeps its Unix
/// sockets.
#[test]
fn the_standby_hosts_sshd_and_postgres_answer_the_master_host_only() {
    let pg = Pg::installed().remove(0);
    let dir = TestDir::new("two-hosts");
    let names = {
        let hosts = TwoHosts::new();
        let master = Cluster::init_on(&hosts.master, &pg, &dir, "master", &[]);
        master.start();
        let standby = Cluster::init_on(&hosts.standby, &pg, &dir, "standby", &[]);
        standby.start();
        let sshd = Sshd::start_on(&hosts.standby, &dir, "standby");
        let (key, public) = Sshd::client_key(&dir, "id_master");
        sshd.authorize(&public);
        let known_hosts = dir.write("known_hosts", format!("{}\n", sshd.known_hosts_line()));
        assert!(sshd
            .known_hosts_line()
            .starts_with(&format!("[169.254.77.2]:{} ssh-ed25519 ", sshd.port())));

        // ssh from the master host, as postgres, runs a command on the standby host.
        let said = sshd
            .ssh_command(&key, &known_hosts, "id -un; echo $SSH_CONNECTION")
            .on(&hosts.master)
            .ok();
        let port = sshd.port();
        assert!(
            said.starts_with("postgres\n169.254.77.1 ")
                && said.trim_end().ends_with(&format!(" 169.254.77.2 {port}")),
            "{said}"
        );
        assert!(
            sshd.log()
                .contains("Accepted publickey for postgres from 169.254.77.1"),
            "{}",
            sshd.log()
        );

        // PostgreSQL across the link, both ways.
        for (server, client) in [(&standby, &hosts.master), (&master, &hosts.standby)] {
            let row = server
                .try_connect_from(client, "")
                .unwrap_or_else(|e| server.fail(&format!("TCP from {}: {e}", client.role)))
                .query_one(
                    "SELECT host(inet_server_addr()), host(inet_client_addr())",
                    &[],
                )
                .unwrap();
            let (server_addr, client_addr): (String, String) = (row.get(0), row.get(1));
            assert_eq!(server_addr, server.host.as_ref().unwrap().addr.to_string());
            assert_eq!(client_addr, client.addr.to_string());
        }
        // The test process reaches both through their Unix sockets, whatever host they run in.
        assert_eq!(master.query_one::<i32>("SELECT 1"), 1);
        assert_eq!(standby.query_one::<i32>("SELECT 1"), 1);
        // Neither listens anywhere the machine's own namespace reaches by TCP.
        for target in [
            SocketAddrV4::new(STANDBY, standby.port),
            SocketAddrV4::new(STANDBY, sshd.port()),
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, standby.port),
        ] {
            assert!(
                connect_from_root_namespace(target, SHORT).is_err(),
                "the root namespace reached {target}"
            );
        }
        // Nor does the master host's own loopback lead to the standby's server.
        let err = hosts
            .master
            .tcp_connect(
                SocketAddrV4::new(Ipv4Addr::LOCALHOST, standby.port),
                TIMEOUT,
            )
            .expect_err("the master host's loopback reached the standby");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

        // The link's pg_hba lines can ask for a password instead of trusting the peer.
        standby.execute("ALTER ROLE postgres PASSWORD 'secret'");
        standby.peer_auth(PeerAuth::ScramSha256);
        let refused = standby
            .try_connect_from(&hosts.master, "password=wrong")
            .err()
            .expect("a wrong password accepted after scram-sha-256");
        let code = refused.as_db_error().map(|e| e.code().code());
        assert_eq!(code, Some("28P01"), "{refused:?}"); // invalid_password
        standby
            .try_connect_from(&hosts.master, "password=secret")
            .unwrap_or_else(|e| standby.fail(&format!("with the password: {e}")));
        hosts.names()
    };
    assert_gone(&names);
}

#[test]
fn a_panicking_test_still_removes_its_namespaces() {
    let pg = Pg::installed().remove(0);
    let (tx, rx) = mpsc::channel::<([String; 2], i32, i32, PathBuf)>();
    let result = std::thread::spawn(move || {
        let dir = TestDir::new("two-hosts-panics");
        let hosts = TwoHosts::new();
        let standby = Cluster::init_on(&hosts.standby, &pg, &dir, "doomed", &[]);
        standby.start();
        let postmaster = standby.pid().expect("postmaster pid of a running server");
        // Something no fixture owns: only the namespaces' teardown stops it.
        let stray = stray_sleep(&hosts.master);
        tx.send((hosts.names(), postmaster, stray, dir.path.clone()))
            .expect("send to the test thread");
        panic!("deliberate panic with two hosts up");
    })
    .join();
    assert!(result.is_err(), "the thread was supposed to panic");
    let (names, postmaster, stray, path) = rx.recv().expect("sent before the panic");
    assert!(!pid_alive(postmaster), "postmaster {postmaster} survived");
    assert!(
        !pid_alive(stray),
        "sleep {stray} in the master host survived"
    );
    assert!(!path.exists(), "{} not removed", path.display());
    assert_gone(&names);
}

/// A namespace a test makes by hand, deleted when dropped (if it still exists).
struct Netns(String);

impl Netns {
    fn add(name: String) -> Netns {
        TestCommand::new(IP).args(["netns", "add", &name]).ok();
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if netns_list().contains(&self.0) {
            let _ = TestCommand::new(IP)
                .args(["netns", "del", &self.0])
                .try_ok();
        }
    }
}

/// A run killed before its teardown (a timeout's SIGKILL) leaves its namespaces behind; the
/// next fixture removes them, and what still ran in them, once their test process is gone.
#[test]
fn namespaces_a_killed_test_run_left_behind_are_removed_by_the_next() {
    // The "test process" that owns the orphan: alive while it is set up (other tests' fixtures
    // leave it alone meanwhile), then killed without any teardown.
    let mut owner = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let orphan = Host {
        role: "master",
        netns: format!("wm-m-{}-0", owner.id()),
        addr: MASTER,
        peer: STANDBY,
    };
    let _orphan = Netns::add(orphan.netns.clone());
    let stray = stray_sleep(&orphan);
    let unrelated = Netns::add(format!("not-walmgr-{}", owner.id()));
    owner.kill().unwrap();
    owner.wait().unwrap();

    let _hosts = TwoHosts::new();
    assert_gone(std::slice::from_ref(&orphan.netns));
    assert!(!pid_alive(stray), "sleep {stray} in the orphan survived");
    // A name the harness did not give is never its to remove.
    assert!(netns_list().contains(&unrelated.0));
}
