//! End-to-end test harness: real PostgreSQL clusters, driven the way a DBA would.
//!
//! ```no_run
//! use walmgr_tests::{Cluster, Pg, TestDir};
//! let dir = TestDir::new("example"); // declare first: dropped (removed) last
//! let primary = Cluster::init(&Pg::major(16), &dir, "primary", &["--wal-segsize=1"]);
//! primary.set("archive_mode = on\narchive_command = '/bin/true'");
//! primary.start();
//! primary.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)");
//! assert_eq!(primary.query_one::<i64>("SELECT count(*) FROM t"), 1);
//! ```
//!
//! Every program a test runs goes through [`TestCommand`] (`.ok()`, `.run()`,
//! `.fails_with(code)`), which fails with the command, its environment, its output and the
//! [`Context`] of the scenario: archive listings, server and sshd logs.
//!
//! Every server runs as the OS user `postgres`, in a private directory under `/tmp`, on its own
//! port with a Unix socket only (a server in one of [`TwoHosts`] also on its host's address),
//! and is torn down on drop (also when the test panics); what a test binary killed before its
//! drops left behind, the next test process removes when it makes its first [`TestDir`].
//! [`Sshd`] is a real OpenSSH server on 127.0.0.1 for the ssh transport, with the same
//! lifecycle.
//!
//! Tests that need two hosts make them with [`TwoHosts`]: two network namespaces joined by a
//! veth pair, the master at 169.254.77.1 and the standby at 169.254.77.2, so that nothing
//! reaches the standby but TCP. [`Cluster::init_on`], [`Sshd::start_on`] and
//! [`TestCommand::on`] run servers and programs in one of them.

mod cluster;
mod command;
mod dirs;
mod mount;
mod netns;
mod pg;
mod process;
mod walmgr;

pub use cluster::{Cluster, PeerAuth};
pub use command::{Context, TestCommand};
pub use dirs::{chown_to_postgres, postgres_ids, TestDir};
pub use mount::SmallDisk;
pub use netns::{connect_from_root_namespace, netns_list, Host, TwoHosts};
pub use pg::Pg;
pub use process::{children_of, free_port, pid_alive, send_signal, Sig, CMD_TIMEOUT};
pub use sshd::Sshd;
pub use walmgr::Walmgr;
pub mod shipping;
pub mod sshd;
