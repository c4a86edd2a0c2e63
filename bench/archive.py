#!/usr/bin/env python3
"""The archive benchmark (run through bench/archive.sh, as root).

A PostgreSQL 15 master fills N finished WAL segments with real data (INSERTs of random
text, no pg_switch_wal padding) while nothing can archive them, so they wait as .ready.
Then, for every repetition and every variant, in an order that rotates between
repetitions, the same N files are turned back into .ready, the variant is configured with
its gate closed, the gate is opened, and the time until none of the N is .ready any more is
the drain time. Every variant's output is compared byte for byte with the master's files.

Two comparisons (WALMGR_BENCH_SUITE: local, ssh, or all, the default: both in one run, the
16 MB cluster and its segments shared).

local: the archivers on one host.
  walmgr          archive_library = 'walmgr' (the module; temp file, fsync, rename, fsync dir)
  basic_archive   contrib basic_archive (temp file, fsync, rename, fsync dir)
  cp              archive_command = 'test ! -f DEST/%f && cp %p DEST/%f' (docs example, no fsync)
  pgbackrest      archive_command = 'pgbackrest archive-push %p' (local repo, no compression,
                  synchronous: one process per segment)
  page-cache      this script copies the N files itself, no fsync: the upper bound

ssh: walmgr over SSH against walmgr3's way, rsync over ssh from archive_command, at the
default segment size (16 MB, N segments) and on a second cluster initdb'd with
--wal-segsize=1 (1 MB segments, N1 of them, where per-file overhead dominates). A private
sshd on 127.0.0.1 (own host key, known_hosts, client key owned by postgres,
authorized_keys) stands for the standby; its directories are local, so outputs are
verified as above. Every client checks the host key against the bench's known_hosts.
  walmgr-ssh       the module with slave = "postgres@127.0.0.1:PORT": one libssh2 session
                   kept by the archiver; the standby's `walmgr xserve` (the release CLI)
                   writes each file durably (temp, fsync, rename, fsync dir) before it replies
  walmgr-ssh-zstd  the same with compression = true (zstd level 1 on the wire)
  walmgr           the module with the local transport: the reference for the ratio
  rsync-ssh-cm     archive_command = 'rsync -a -e "ssh ... -o ControlMaster=auto
                   -o ControlPersist=60" %p postgres@127.0.0.1:DEST/%f && ssh ... sync':
                   walmgr3's way, rsync then `sync` on the standby for durability
  rsync-ssh        the same without ControlMaster: two SSH logins per file, so it drains
                   only the first max(8, N/16) of the segments (its cost per file is fixed)
Then the evidence on what limits walmgr over SSH: the raw throughput of one channel into
`cat > /dev/null` through libssh2 (bench/ssh-probe, the calls walmgr makes) and through
OpenSSH's ssh, per cipher; libssh2's cipher calls per byte counted by callgrind; and a
system-wide `perf` profile of one extra walmgr-ssh drain per segment size.

Gates, so that timing starts with work waiting and the archiver idle:
  - walmgr (local): completed_wals does not exist until the gate opens (the module's check
    fails);
  - walmgr over SSH, basic_archive: the destination directory does not exist until the gate
    opens (each copy fails three times, a second apart, then the archiver waits). The failed
    attempts open walmgr's SSH session, as its steady state has one open;
  - cp, pgbackrest, rsync: the command starts with `test -e GATE &&`. rsync-ssh-cm's
    master connection is opened before the gate opens, as ControlPersist keeps it open
    between files in the steady state.
Before the gate opens, the archiver must be idle in its main loop under the variant's
configuration: a change of archive_library restarts the archiver, and the postmaster starts
the new one only 10 s after the previous start, so each switch waits for the new process.
Opening a gate is an atomic rename or create, followed by SIGHUP to the postmaster (what
pg_reload_conf() does), which wakes the archiver.
"""

import collections
import hashlib
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

PGBIN = "/usr/lib/postgresql/15/bin"
PGLIB = "/usr/lib/postgresql/15/lib"
BENCH = os.environ.get("WALMGR_BENCH_DIR", "/tmp/walmgr-bench")
PORT = int(os.environ.get("WALMGR_BENCH_PORT", "54371"))
KEEP = os.environ.get("WALMGR_BENCH_KEEP", "0") == "1"
SUITE = os.environ.get("WALMGR_BENCH_SUITE", "all")
# Built by archive.sh: the release CLI (the standby's xserve) and the libssh2 probe. The
# bench runs copies in BIN (CLI, PROBE), so that a build meanwhile cannot change them, and
# where the postgres user can reach them.
BUILT_CLI = os.environ.get("WALMGR_BENCH_CLI", "")
BUILT_PROBE = os.environ.get("WALMGR_BENCH_PROBE", "")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = f"{BENCH}/master"
PG_WAL = f"{DATA}/pg_wal"
STATUS = f"{PG_WAL}/archive_status"
DEST = f"{BENCH}/dest"
GATE = f"{BENCH}/gate"
PGBR_CONF = f"{BENCH}/pgbackrest.conf"
PGBR_REPO = f"{BENCH}/pgbackrest-repo"
STANZA = "bench"
# The ssh suite: the sshd's files (root's, readable by all but the host key), and the
# standby's configs and logs (postgres's).
SSH_DIR = f"{BENCH}/ssh"
STANDBY = f"{BENCH}/standby"
BIN = f"{BENCH}/bin"
CLI = f"{BIN}/walmgr"
PROBE = f"{BIN}/walmgr-ssh-probe"
SSHD = "/usr/sbin/sshd"
POSTGRES = pwd.getpwnam("postgres")
MiB = 1 << 20


class VerifyError(Exception):
    pass


def log(msg):
    print(f"--> {msg}", file=sys.stderr, flush=True)


def as_pg(args, **kw):
    kw.setdefault("check", True)
    return subprocess.run(["runuser", "-u", "postgres", "--"] + args, **kw)


def sql(*statements):
    """Runs each statement in its own transaction (ALTER SYSTEM refuses a transaction
    block) and returns the output of the last one."""
    args = [f"{PGBIN}/psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", BENCH,
            "-p", str(PORT), "-U", "postgres", "-d", "postgres"]
    for s in statements:
        args += ["-c", s]
    out = as_pg(args, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def quote(s):
    return "'" + s.replace("'", "''") + "'"


def chown_pg(path):
    os.chown(path, POSTGRES.pw_uid, POSTGRES.pw_gid)


def mkdir_pg(path, mode=0o700):
    os.makedirs(path, mode=mode, exist_ok=True)
    chown_pg(path)


def write_pg(path, text):
    with open(path, "w") as f:
        f.write(text)
    chown_pg(path)


def postmaster_pid():
    with open(f"{DATA}/postmaster.pid") as f:
        return int(f.readline())


def reload():
    # Exactly what pg_reload_conf() does, without a connection's latency.
    os.kill(postmaster_pid(), signal.SIGHUP)


def stop_cluster():
    if os.path.exists(f"{DATA}/postmaster.pid"):
        as_pg([f"{PGBIN}/pg_ctl", "-D", DATA, "-m", "immediate", "-w", "stop"],
              check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reset_bench():
    stop_cluster()
    shutil.rmtree(BENCH, ignore_errors=True)
    mkdir_pg(BENCH, 0o755)


# ---------------------------------------------------------------------------------------
# The master and its N ready segments


def ready_names():
    return sorted(f[:-6] for f in os.listdir(STATUS) if f.endswith(".ready"))


def is_segment(name):
    return len(name) == 24 and all(c in "0123456789ABCDEF" for c in name)


def start_master(n, seg_mb=16):
    """A new master in DATA (an old one is stopped and removed, with every destination)
    whose WAL segments have seg_mb MB."""
    stop_cluster()
    for path in (DATA, DEST):
        shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(GATE):
        os.unlink(GATE)
    mkdir_pg(DEST)
    initdb = [f"{PGBIN}/initdb", "-D", DATA, "-A", "trust", "-U", "postgres", "--no-sync"]
    if seg_mb != 16:
        initdb.append(f"--wal-segsize={seg_mb}")
    as_pg(initdb, stdout=subprocess.DEVNULL)
    keep = f"{2 * n * seg_mb + 1024}MB"
    with open(f"{DATA}/postgresql.conf", "a") as f:
        f.write(f"""
# walmgr archive benchmark
port = {PORT}
listen_addresses = ''
unix_socket_directories = '{BENCH}'
fsync = on
shared_preload_libraries = 'walmgr'
archive_mode = on
# Nothing can archive until a variant is configured: shell archiving without a command.
archive_library = ''
archive_command = ''
# Finished segments stay in pg_wal (they are re-archived every repetition), and no
# checkpoint or autovacuum writes during the measurements.
wal_keep_size = '{keep}'
max_wal_size = '{keep}'
checkpoint_timeout = '1d'
autovacuum = off
# Ignored until basic_archive is loaded; the directory is missing until its gate opens.
basic_archive.archive_directory = '{DEST}/basic_archive'
""")
    as_pg([f"{PGBIN}/pg_ctl", "-D", DATA, "-l", f"{BENCH}/master.log", "-w", "start"],
          stdout=subprocess.DEVNULL)
    sql("CREATE EXTENSION walmgr")
    write_pg(f"{BENCH}/master.toml", f"""[walmgr]
job_name = "wal-bench"
master_db = "host={BENCH} port={PORT} user=postgres dbname=postgres"
master_data = "{DATA}"
slave = ""
walmgr_data = "{BENCH}/walshipping"
completed_wals = "{DEST}/walmgr"
""")
    sql(f"ALTER SYSTEM SET walmgr.config = {quote(BENCH + '/master.toml')}",
        "SELECT pg_reload_conf()")


def fill(n):
    """Writes real rows until more than n segments are finished (and waiting, as nothing
    archives). Returns the newest n: all of them hold nothing but the INSERTs."""
    sql("CREATE TABLE fill (id bigint, payload text)")
    # ~800 bytes of random hex per row: below the TOAST threshold, so the WAL holds the
    # rows as they are. The subquery mentions g so that it runs once per row (and i so
    # that its aggregate belongs to it, not to the outer query).
    insert = ("INSERT INTO fill SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') "
              "FROM generate_series(1, 25) i) FROM generate_series(1, 100000) g")
    started = time.monotonic()
    while len([r for r in ready_names() if is_segment(r)]) < n + 1:
        sql(insert)
    # Flush the table now rather than in the middle of a measurement.
    sql("CHECKPOINT")
    os.sync()
    ready = [r for r in ready_names() if is_segment(r)]
    chosen = ready[-n:]
    # Only the chosen files may be .ready: the archiver must find nothing else to do.
    for name in ready_names():
        if name not in chosen:
            os.rename(f"{STATUS}/{name}.ready", f"{STATUS}/{name}.done")
    log(f"filled {len(ready)} segments in {time.monotonic() - started:.0f} s; "
        f"measuring {chosen[0]} .. {chosen[-1]}")
    return chosen


def reset_ready(names, unused=()):
    """Makes `names` .ready and nothing else; `unused` are those of the N segments this
    variant does not drain."""
    for name in names:
        done = f"{STATUS}/{name}.done"
        if os.path.exists(done):
            os.rename(done, f"{STATUS}/{name}.ready")
    # The idle master should finish no segment, but a stray one (e.g. from bgwriter's
    # running-xacts records) must not be archived in the middle of a measurement.
    for extra in set(ready_names()) - set(names):
        if extra not in unused:
            log(f"note: {extra} finished during the run; marked .done, not measured")
        os.rename(f"{STATUS}/{extra}.ready", f"{STATUS}/{extra}.done")


def warm(names):
    """Reads the N source files so that every variant starts with them in the page cache,
    as freshly finished WAL usually is. Needed here: this VM runs DAMON reclaim
    (/sys/kernel/mm/damon), which pages out page cache left idle for about a minute, so
    without this a variant would pay disk reads its predecessor did not."""
    buf = bytearray(MiB)
    for n in names:
        with open(f"{PG_WAL}/{n}", "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def archiver():
    """(pid, wait_event) of the archiver, or (None, '') while there is none."""
    row = sql("SELECT pid || '|' || coalesce(wait_event, '') FROM pg_stat_activity "
              "WHERE backend_type = 'archiver'")
    if not row:
        return None, ""
    pid, event = row.split("|", 1)
    return int(pid), event


def configure(library, command, walmgr_config=None):
    """Configures the archiver with every gate closed and waits until it is idle under the
    new configuration. Changing archive_library restarts the archiver (a new process loads
    the new library); the wait covers that restart, however long the postmaster takes.
    A new walmgr.config needs no restart: the module reloads its config (and drops its
    transport) when the file it names changes."""
    old_pid, _ = archiver()
    current = sql("SELECT current_setting('archive_library')")
    settings = [f"ALTER SYSTEM SET archive_library = {quote(library)}",
                f"ALTER SYSTEM SET archive_command = {quote(command)}"]
    if walmgr_config is not None:
        settings.append(f"ALTER SYSTEM SET walmgr.config = {quote(walmgr_config)}")
    sql(*settings, "SELECT pg_reload_conf()")
    must_restart = current != library
    deadline = time.monotonic() + 120
    # Idle: waiting in its main loop, three times in a row over 0.6 s (a failing command
    # sleeps 1 s between its three attempts, with no wait event).
    time.sleep(0.5)
    idle = 0
    while idle < 3:
        if time.monotonic() > deadline:
            raise RuntimeError(f"archiver not idle after switching to {library or command!r}")
        pid, event = archiver()
        fresh = pid is not None and (pid != old_pid or not must_restart)
        idle = idle + 1 if fresh and event == "ArchiverMain" else 0
        time.sleep(0.2)


def drain(names, open_gate):
    """Seconds from opening the gate until none of `names` is .ready, and the seconds at
    which the first of them was seen done (the archiver's wake-up latency plus one file)."""
    pending = {f"{n}.ready" for n in names}
    deadline = time.monotonic() + 60 + 5 * len(names)
    first = None
    t0 = time.perf_counter()
    open_gate()
    reload()
    while True:
        left = pending & set(os.listdir(STATUS))
        now = time.perf_counter()
        if first is None and len(left) < len(pending):
            first = now - t0
        if not left:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the archiver did not drain the segments (see master.log)")
        time.sleep(0.002)
    elapsed = now - t0
    missing = [n for n in names if not os.path.exists(f"{STATUS}/{n}.done")]
    if missing:
        raise RuntimeError(f"not .done after the drain: {missing}")
    return elapsed, first


# ---------------------------------------------------------------------------------------
# Verification


def same_bytes(a, b):
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(MiB), fb.read(MiB)
            if ca != cb:
                return False
            if not ca:
                return True


def verify_dir(variant, names, outputs):
    """outputs: file name -> path of everything the variant wrote. Each of `names` must be
    there with the master's bytes; nothing else may be (no temp files left behind)."""
    missing = [n for n in names if n not in outputs]
    if missing:
        raise VerifyError(f"{variant}: {len(missing)} segments missing, e.g. {missing[0]}")
    # A segment newer than the N may have been finished and archived after them (see
    # reset_ready); anything else (a temp file left behind, a stray name) is an error.
    extra = sorted(f for f in set(outputs) - set(names)
                   if not (is_segment(f) and f > names[-1]))
    if extra:
        raise VerifyError(f"{variant}: unexpected files {extra[:5]}")
    for n in names:
        if not same_bytes(f"{PG_WAL}/{n}", outputs[n]):
            raise VerifyError(f"{variant}: {outputs[n]} differs from the master's {n}")


def listing(d):
    return {f: f"{d}/{f}" for f in os.listdir(d)} if os.path.isdir(d) else {}


# ---------------------------------------------------------------------------------------
# The standby's sshd (ssh suite)


class Sshd:
    """OpenSSH's sshd as root on 127.0.0.1 and a free port, with a config, host key, pid
    file, log and authorized_keys of its own under SSH_DIR (the settings of the test
    harness, tests/src/sshd.rs), LogLevel DEBUG so that its log names the cipher of every
    connection. The client side: an ed25519 key owned by postgres and a known_hosts file
    holding the host key, which every client here checks."""

    # One per connection, from its pre-authentication child; a rekey repeats the line
    # without [preauth], so these count logins.
    KEX = re.compile(r"kex: client->server cipher: (\S+) MAC: (\S+) compression: \S+ \[preauth\]")

    def __init__(self):
        self.config = f"{SSH_DIR}/sshd_config"
        self.host_key = f"{SSH_DIR}/host_ed25519_key"
        self.pid_file = f"{SSH_DIR}/sshd.pid"
        self.log_path = f"{SSH_DIR}/sshd.log"
        self.authorized_keys = f"{SSH_DIR}/authorized_keys"
        self.known_hosts = f"{SSH_DIR}/known_hosts"
        # The client's files: the key, and the directory of ControlMaster sockets.
        self.key = f"{SSH_DIR}/id_ed25519"
        self.control_path = f"{SSH_DIR}/cm/master.sock"
        self.port = None
        self.proc = None

    def start(self):
        allow_key_login_for_postgres()
        # The privilege separation directory; the sshd service would create it.
        os.makedirs("/run/sshd", 0o755, exist_ok=True)
        os.makedirs(SSH_DIR, 0o755)
        os.chmod(SSH_DIR, 0o755)
        keygen(self.host_key, "walmgr bench host key")
        keygen(self.key, "walmgr bench client key")
        chown_pg(self.key)
        chown_pg(f"{self.key}.pub")
        with open(f"{self.key}.pub") as f:
            write_pg(self.authorized_keys, f.read())
        os.chmod(self.authorized_keys, 0o600)
        mkdir_pg(os.path.dirname(self.control_path), 0o700)
        self.port = free_port()
        with open(f"{self.host_key}.pub") as f:
            host_type, host_key = f.read().split()[:2]
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_type} {host_key}\n")
        with open(self.config, "w") as f:
            f.write(f"""# walmgr archive benchmark: the standby's sshd
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.pid_file}
AuthorizedKeysFile {self.authorized_keys}
# Without PAM, a locked password ('!' in /etc/shadow) refuses even key logins; see
# allow_key_login_for_postgres.
UsePAM no
# /tmp, above authorized_keys, is world-writable, which StrictModes rejects.
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# DEBUG logs the negotiated cipher and MAC of every connection (about 90 lines a login).
LogLevel DEBUG
""")
        with open(self.log_path, "ab") as logfile:
            # -D: stays our child; -e: logs to stderr, i.e. into the log.
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config],
                                         stdin=subprocess.DEVNULL, stdout=logfile,
                                         stderr=logfile, start_new_session=True, cwd="/")
        deadline = time.monotonic() + 15
        while not self.banner().startswith("SSH-2.0-"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start on port {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)
        log(f"sshd on 127.0.0.1:{self.port} (pid {self.proc.pid}), log {self.log_path}")

    def banner(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.settimeout(5)
                return s.makefile("rb").readline().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"

    def stop(self):
        """Ends the ControlMaster, then every session and the listener (children first)."""
        if os.path.exists(self.control_path):
            try:
                as_pg(["ssh"] + self.ssh_options(True) + ["-O", "exit", "postgres@127.0.0.1"],
                      check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, timeout=10)
            except subprocess.TimeoutExpired:
                pass  # its connection ends with the sessions below
        if self.proc is None:
            return
        tree = descendants(self.proc.pid)
        for proc in reversed(tree):
            proc.signal(signal.SIGTERM)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 5
        while any(p.alive() for p in tree) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in tree:
            proc.signal(signal.SIGKILL)
        self.proc = None

    def ssh_options(self, control_master):
        """OpenSSH client options: this key only, the bench's known_hosts only, checked
        strictly; the user's ~/.ssh/config and the system's ssh_config are not read."""
        opts = ["-F", "/dev/null", "-p", str(self.port), "-i", self.key,
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null"]
        if control_master:
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control_path}",
                     "-o", "ControlPersist=60"]
        return opts

    def mark(self):
        return os.path.getsize(self.log_path)

    def logins_since(self, mark):
        """Counter of (cipher, MAC) of the connections made since `mark`."""
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        return collections.Counter(self.KEX.findall(text))


def allow_key_login_for_postgres():
    """sshd without PAM refuses an account whose password field starts with '!' (locked,
    as Debian creates postgres) even with a valid key; '*' (no password login, not
    locked) lets key logins in. As the test harness does."""
    entry = subprocess.run(["getent", "shadow", "postgres"], capture_output=True, text=True,
                           check=True).stdout
    if entry.split(":")[1].startswith("!"):
        log("postgres's password field is locked ('!'): usermod -p '*' postgres")
        subprocess.run(["usermod", "-p", "*", "postgres"], check=True)


def keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, stdin=subprocess.DEVNULL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process known by pid and start time, so that a signal never reaches a later
    process that reused the pid."""

    def __init__(self, pid):
        self.pid = pid
        st = Proc.stat(pid)
        self.start = st[1] if st else None

    @staticmethod
    def stat(pid):
        """(ppid, start time) from /proc/PID/stat, or None if it is gone."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[1]), int(fields[19])
        except (OSError, IndexError, ValueError):
            return None

    def alive(self):
        st = Proc.stat(self.pid)
        return st is not None and self.start is not None and st[1] == self.start

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


def descendants(root):
    """The processes below pid `root`, parents before children."""
    children = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = Proc.stat(int(entry))
            if st:
                children[st[0]].append(int(entry))
    out, todo = [], [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.append(Proc(kid))
            todo.append(kid)
    return out


def write_ssh_configs(sshd):
    """The master configs of the two SSH variants and the standby config each one's xserve
    reads; their completed_wals are the variants' destinations."""
    mkdir_pg(STANDBY)
    for name, compression in (("walmgr-ssh", False), ("walmgr-ssh-zstd", True)):
        write_pg(f"{STANDBY}/{name}.toml", f"""[walmgr]
job_name = "wal-bench-standby"
logfile = "{STANDBY}/{name}.log"
walmgr_data = "{STANDBY}/walshipping"
completed_wals = "{DEST}/{name}"
""")
        write_pg(f"{BENCH}/master-{name}.toml", f"""[walmgr]
job_name = "wal-bench"
master_db = "host={BENCH} port={PORT} user=postgres dbname=postgres"
master_data = "{DATA}"
slave = "postgres@127.0.0.1:{sshd.port}"
slave_config = "{STANDBY}/{name}.toml"
slave_walmgr = "{CLI}"
ssh_identity = "{sshd.key}"
ssh_known_hosts = "{sshd.known_hosts}"
walmgr_data = "{STANDBY}/walshipping"
compression = {"true" if compression else "false"}
""")


# ---------------------------------------------------------------------------------------
# Variants


class Variant:
    name = ""
    library = ""  # archive_library ('' = archive_command)
    command = ""
    walmgr_config = None  # walmgr.config to set, if any
    limit = None  # drain only the first `limit` of the N segments
    sshd = None  # the sshd whose log tells this variant's logins and cipher

    def __init__(self):
        self.dest = f"{DEST}/{self.name}"
        self.logins = []  # per counted run: Counter of (cipher, MAC) of new connections
        # Every (cipher, MAC) seen, warm-up included: a ControlMaster made then serves on.
        self.ciphers = collections.Counter()

    def clean(self):
        """Gate closed, destination empty."""
        shutil.rmtree(self.dest, ignore_errors=True)
        if os.path.exists(GATE):
            os.unlink(GATE)

    def open_gate(self):
        raise NotImplementedError

    def prepare(self):
        """Last step before the gate opens, after the archiver is idle."""

    def outputs(self):
        return listing(self.dest)

    def run(self, names, during=None):
        """Drains `names`; `during` (if any) is started right before the gate opens and
        stopped after the drain, e.g. a profiler."""
        mark = self.sshd.mark() if self.sshd else None
        configure(self.library, self.command, self.walmgr_config)
        self.prepare()
        os.sync()  # no earlier variant's dirty pages to compete with
        warm(names)
        stop = during() if during else None
        try:
            result = drain(names, self.open_gate)
        finally:
            if stop:
                stop()
        if self.sshd:
            self.logins.append(self.sshd.logins_since(mark))
            self.ciphers.update(self.logins[-1])
        return result


class DirectoryGate(Variant):
    """The destination appears, with its owner and mode, in one rename."""

    def open_gate(self):
        staging = f"{DEST}/.staging-{self.name}"
        os.mkdir(staging, 0o700)
        chown_pg(staging)
        os.rename(staging, self.dest)


class FileGate(Variant):
    def clean(self):
        super().clean()
        mkdir_pg(self.dest)

    def open_gate(self):
        open(GATE, "w").close()


class Walmgr(DirectoryGate):
    name = "walmgr"
    library = "walmgr"
    walmgr_config = f"{BENCH}/master.toml"


class WalmgrSsh(DirectoryGate):
    """The module over SSH: the standby's completed_wals (this variant's destination) is
    missing until the gate opens, so each attempt before is refused by xserve, over a
    session that then stays open."""
    library = "walmgr"

    def __init__(self, sshd, compression):
        self.name = "walmgr-ssh-zstd" if compression else "walmgr-ssh"
        super().__init__()
        self.sshd = sshd
        self.walmgr_config = f"{BENCH}/master-{self.name}.toml"


class RsyncSsh(FileGate):
    """walmgr3's way: rsync over ssh, then `ssh standby sync`, per file."""

    def __init__(self, sshd, control_master, limit=None):
        self.name = "rsync-ssh-cm" if control_master else "rsync-ssh"
        super().__init__()
        self.sshd = sshd
        self.control_master = control_master
        self.limit = limit
        ssh = " ".join(["ssh"] + sshd.ssh_options(control_master))
        target = "postgres@127.0.0.1"
        self.command = (f"test -e {GATE} && rsync -a -e '{ssh}' %p {target}:{self.dest}/%f "
                        f"&& {ssh} {target} sync")

    def prepare(self):
        if self.control_master:
            # The master connection, as the steady state has it (ControlPersist=60 keeps it
            # between files); it detaches, so no pipe may wait for it.
            as_pg(["ssh"] + self.sshd.ssh_options(True) + ["postgres@127.0.0.1", "true"],
                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, timeout=30)


class BasicArchive(DirectoryGate):
    name = "basic_archive"
    library = "basic_archive"


class Cp(FileGate):
    name = "cp"

    def __init__(self):
        super().__init__()
        # The PostgreSQL docs' example: refuses to overwrite, does not fsync.
        self.command = f"test -e {GATE} && test ! -f {self.dest}/%f && cp %p {self.dest}/%f"


class PgBackRest(FileGate):
    name = "pgbackrest"

    def __init__(self):
        super().__init__()
        self.dest = PGBR_REPO
        self.command = (f"test -e {GATE} && pgbackrest --config={PGBR_CONF} "
                        f"--stanza={STANZA} archive-push %p")

    @staticmethod
    def setup():
        for d in (PGBR_REPO, f"{BENCH}/pgbackrest-log", f"{BENCH}/pgbackrest-lock"):
            mkdir_pg(d, 0o750)
        write_pg(PGBR_CONF, f"""[global]
repo1-path={PGBR_REPO}
compress-type=none
archive-async=n
log-level-console=off
log-level-stderr=error
log-level-file=off
log-path={BENCH}/pgbackrest-log
lock-path={BENCH}/pgbackrest-lock

[{STANZA}]
pg1-path={DATA}
pg1-socket-path={BENCH}
pg1-port={PORT}
pg1-user=postgres
""")
        as_pg(["pgbackrest", f"--config={PGBR_CONF}", f"--stanza={STANZA}", "stanza-create"],
              stdout=subprocess.DEVNULL)

    def archive_dirs(self):
        """The repo's WAL directories: archive/<stanza>/<pg version>-<n>/<16 hex>/."""
        base = f"{PGBR_REPO}/archive/{STANZA}"
        for arch_id in os.listdir(base):
            if os.path.isdir(f"{base}/{arch_id}"):
                for sub in os.listdir(f"{base}/{arch_id}"):
                    if os.path.isdir(f"{base}/{arch_id}/{sub}"):
                        yield f"{base}/{arch_id}/{sub}"

    def clean(self):
        # Keep the stanza (archive.info), drop the archived segments.
        for d in list(self.archive_dirs()):
            shutil.rmtree(d)
        if os.path.exists(GATE):
            os.unlink(GATE)

    def outputs(self):
        # Stored as <segment>-<sha1 of the content>, raw bytes with compress-type=none.
        out = {}
        for d in self.archive_dirs():
            for f in os.listdir(d):
                name, _, sha1 = f.partition("-")
                path = f"{d}/{f}"
                if name in out or len(sha1) != 40:
                    raise VerifyError(f"pgbackrest: unexpected repo file {path}")
                with open(path, "rb") as fh:
                    if hashlib.sha1(fh.read()).hexdigest() != sha1:
                        raise VerifyError(f"pgbackrest: {path} does not match its checksum")
                out[name] = path
        return out


class PageCache(Variant):
    """The same files copied by this process: no archiver, no fsync, no checks."""
    name = "page-cache"

    def clean(self):
        shutil.rmtree(self.dest, ignore_errors=True)
        os.makedirs(self.dest)

    def run(self, names, during=None):
        os.sync()
        warm(names)
        t0 = time.perf_counter()
        first = None
        for n in names:
            shutil.copyfile(f"{PG_WAL}/{n}", f"{self.dest}/{n}")
            first = first or time.perf_counter() - t0
        return time.perf_counter() - t0, first


def subset(v, names):
    return names[:v.limit] if v.limit else names


def measure(variants, names, reps):
    """Seconds per variant per repetition (round 0, a warm-up, is not counted: it proves
    every variant works before minutes are spent, and lets the disk settle after the fill;
    the first timed drain after it was consistently slow)."""
    times = {v.name: [] for v in variants}
    for rep in range(reps + 1):
        # Rotate the order so that no variant always runs first or after the same one.
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for v in order:
            mine = subset(v, names)
            v.clean()
            if not isinstance(v, PageCache):
                reset_ready(mine, unused=set(names) - set(mine))
            t, first = v.run(mine)
            verify_dir(v.name, mine, v.outputs())
            what = f"rep {rep}/{reps}" if rep else "warm-up"
            log(f"{what:<9} {v.name:<15} {t:7.3f} s for {len(mine)} (first file done after "
                f"{first * 1000:.0f} ms), output verified")
            if rep:
                times[v.name].append(t)
            else:
                v.logins.clear()
            v.clean()
    return times


# ---------------------------------------------------------------------------------------
# Report


def fsync_note():
    """What durability costs on this machine, measured the way the archivers pay it."""
    path = f"{BENCH}/fsync-probe"
    block = os.urandom(8192)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t0 = time.perf_counter()
    for _ in range(200):
        os.pwrite(fd, block, 0)
        os.fsync(fd)
    small = (time.perf_counter() - t0) / 200
    seg = os.urandom(MiB) * 16
    t0 = time.perf_counter()
    for i in range(4):
        os.pwrite(fd, seg, 0)
        os.fsync(fd)
    big = (time.perf_counter() - t0) / 4
    os.close(fd)
    os.unlink(path)
    return (f"fsync on this machine: 8 KiB write+fsync {small * 1e6:.0f} us, "
            f"16 MiB write+fsync {big * 1e3:.1f} ms ({16 / big:.0f} MiB/s). "
            "Real disks make the fsyncing variants (walmgr, basic_archive, pgbackrest, and "
            "rsync's `sync`) slower than this.")


def print_table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def report(variants, times, n, seg_size):
    mib = n * seg_size / MiB
    med = {v: statistics.median(ts) for v, ts in times.items()}
    rows = [("variant", "median s", "min s", "max s", "segments/s", "MiB/s",
             "x basic_archive", "x pgbackrest")]
    for v in variants:
        ts = times[v.name]
        m = med[v.name]
        rows.append((v.name, f"{m:.3f}", f"{min(ts):.3f}", f"{max(ts):.3f}",
                     f"{n / m:.1f}", f"{mib / m:.1f}",
                     f"{med['basic_archive'] / m:.2f}", f"{med['pgbackrest'] / m:.2f}"))
    print()
    print(f"archive drain: {n} segments x {seg_size // MiB} MiB = {mib:.0f} MiB, "
          f"{len(next(iter(times.values())))} repetitions, variants interleaved; "
          "ratios are throughput relative to the column's variant (median times)")
    print_table(rows)
    print()
    print("per repetition (s): " + "; ".join(
        f"{v.name} " + " ".join(f"{t:.3f}" for t in times[v.name]) for v in variants))
    print()
    def paired(other):
        # Variants are interleaved, so each repetition's ratio is a fair pair too.
        return " ".join(f"{o / w:.2f}" for o, w in zip(times[other], times["walmgr"]))
    vs_basic = med["basic_archive"] / med["walmgr"]
    vs_pgbr = med["pgbackrest"] / med["walmgr"]
    print(f"target: walmgr >= basic_archive: {'PASS' if vs_basic >= 1 else 'FAIL'} "
          f"({vs_basic:.2f}; per repetition {paired('basic_archive')})")
    print(f"target: walmgr >= 5x pgbackrest: {'PASS' if vs_pgbr >= 5 else 'FAIL'} "
          f"({vs_pgbr:.2f}; per repetition {paired('pgbackrest')})")


def cipher_text(seen):
    """'aes128-ctr/hmac-sha2-256' (and any other in the Counter `seen`)."""
    return ", ".join(f"{cipher}/{mac}".replace("/<implicit>", "") for cipher, mac in seen) or "-"


def logins_text(counters):
    counts = sorted({sum(c.values()) for c in counters})
    return "/".join(str(c) for c in counts) if counts else "-"


SSH_TARGETS = {16: 3, 1: 10}  # x rsync-ssh-cm, per segment size in MiB


def report_ssh(variants, times, names, seg_size, zstd_ratio):
    seg_mib = seg_size // MiB
    count = {v.name: len(subset(v, names)) for v in variants}
    med = {v: statistics.median(ts) for v, ts in times.items()}
    rate = {v: count[v] / med[v] for v in med}  # segments/s
    reps = len(next(iter(times.values())))
    rows = [("variant", "segments", "median s", "min s", "max s", "segments/s", "MiB/s",
             "x rsync-ssh-cm", "x walmgr local", "logins/drain", "cipher/MAC (client->server)")]
    for v in variants:
        ts = times[v.name]
        rows.append((v.name, str(count[v.name]), f"{med[v.name]:.3f}", f"{min(ts):.3f}",
                     f"{max(ts):.3f}", f"{rate[v.name]:.1f}",
                     f"{rate[v.name] * seg_mib:.1f}",
                     f"{rate[v.name] / rate['rsync-ssh-cm']:.2f}",
                     f"{rate[v.name] / rate['walmgr']:.2f}",
                     logins_text(v.logins) if v.sshd else "-",
                     cipher_text(v.ciphers) if v.sshd else "(local)"))
    print()
    print(f"archive over SSH to 127.0.0.1, {seg_mib} MiB segments: {len(names)} segments = "
          f"{len(names) * seg_mib} MiB per drain (rsync-ssh: the first {count['rsync-ssh']}), "
          f"{reps} repetitions, variants interleaved; ratios are segments/s relative to the "
          "column's variant (median times)")
    print_table(rows)
    print()
    print("per repetition (s): " + "; ".join(
        f"{v.name} " + " ".join(f"{t:.3f}" for t in times[v.name]) for v in variants))
    print()
    target = SSH_TARGETS.get(seg_mib)
    for name in ("walmgr-ssh", "walmgr-ssh-zstd"):
        pairs = " ".join(f"{(count[name] / w) / (count['rsync-ssh-cm'] / c):.2f}"
                         for w, c in zip(times[name], times["rsync-ssh-cm"]))
        ratio = rate[name] / rate["rsync-ssh-cm"]
        verdict = "MET" if target and ratio >= target else "NOT MET"
        label = "target" if name == "walmgr-ssh" else "same target, compression = true"
        print(f"{label}: {name} >= {target}x rsync-ssh-cm at {seg_mib} MiB: {verdict} "
              f"({ratio:.2f}x; per repetition {pairs})")
    print(f"walmgr-ssh reaches {rate['walmgr-ssh'] / rate['walmgr']:.2f} of the local "
          f"transport's rate, walmgr-ssh-zstd {rate['walmgr-ssh-zstd'] / rate['walmgr']:.2f}; "
          f"per file: walmgr-ssh {1000 / rate['walmgr-ssh']:.1f} ms, walmgr local "
          f"{1000 / rate['walmgr']:.1f} ms, rsync-ssh-cm {1000 / rate['rsync-ssh-cm']:.1f} ms, "
          f"rsync-ssh {1000 / rate['rsync-ssh']:.1f} ms")
    if zstd_ratio:
        print(f"these segments compress to {zstd_ratio:.0%} of their size with zstd -1 "
              "(what walmgr-ssh-zstd sends)")
    return rate


def ssh_notes(sshd):
    """What every SSH table assumes, printed once."""
    walmgr_ciphers = walmgr_cipher_list()
    ssh_g = as_pg(["ssh", "-G"] + sshd.ssh_options(False) + ["postgres@127.0.0.1"],
                  capture_output=True, text=True, check=False).stdout
    openssh = next((line.split(None, 1)[1] for line in ssh_g.splitlines()
                    if line.startswith("ciphers ")), "?")
    return f"""notes on the SSH tables:
- durability: walmgr's standby (xserve) writes a temp file, fsyncs it, renames it and
  fsyncs the directory before it replies, for either transport; rsync writes a temp file
  and renames it without fsync, so, as walmgr3 did, each file is followed by
  `ssh standby sync`, which flushes all of the standby's dirty data: durable on return too.
- host keys: checked in every variant against the bench's known_hosts ({sshd.known_hosts}):
  walmgr through ssh_known_hosts (libssh2, refuses unknown keys), OpenSSH with
  StrictHostKeyChecking=yes, UserKnownHostsFile=that file, GlobalKnownHostsFile=/dev/null.
- warm sessions: walmgr's session opens during the failed attempts before the gate opens,
  rsync-ssh-cm's ControlMaster (ControlPersist=60) right before it; rsync-ssh logs in
  twice per file (rsync, then sync). logins/drain counts new connections in sshd's log
  (0 for rsync-ssh-cm: the ControlMaster of its previous drain, under 60 s before, served).
- ciphers: walmgr asks libssh2 for {walmgr_ciphers} (CIPHERS in
  core/src/transport/ssh.rs); OpenSSH's client proposes {openssh} (`ssh -G`, the default:
  the bench sets no Ciphers). The cipher/MAC column is what sshd's LogLevel DEBUG log says
  each connection negotiated ("kex: client->server cipher: ...").
- WAL content: the local comparison's fill, INSERTs of ~800-byte rows of random md5 hex
  (not pgbench; hex text is why zstd gets about half)."""


def walmgr_cipher_list():
    try:
        with open(f"{REPO}/core/src/transport/ssh.rs") as f:
            source = f.read()
    except OSError:
        return "?"
    m = re.search(r'const CIPHERS: &str = "((?:[^"\\]|\\\n\s*)*)";', source)
    return re.sub(r"\\\n\s*", "", m.group(1)) if m else "?"


def zstd_ratio(names, sample=8):
    """Compressed/raw size of up to `sample` of the segments with zstd -1, or None."""
    if not shutil.which("zstd"):
        return None
    step = max(1, len(names) // sample)
    raw = packed = 0
    for n in names[::step][:sample]:
        out = subprocess.run(["zstd", "-1", "-c", f"{PG_WAL}/{n}"], capture_output=True,
                             check=True).stdout
        raw += os.path.getsize(f"{PG_WAL}/{n}")
        packed += len(out)
    return packed / raw


# ---------------------------------------------------------------------------------------
# Evidence: what limits walmgr over SSH


def cpu_busy():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def timed(cmd, **kw):
    """Runs cmd; returns (wall s, CPU s of it and its children, machine busy fraction,
    stdout)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, t0_jiffies = cpu_busy()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    wall = time.perf_counter() - t0
    b1, t1_jiffies = cpu_busy()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    busy = (b1 - b0) / max(1, t1_jiffies - t0_jiffies)
    return wall, cpu, busy, out.stdout


def raw_channels(sshd, blob):
    """One channel into `cat > /dev/null`, per client and cipher: MiB/s of the transfer
    (session set-up excluded), client CPU per GiB, how busy the whole machine was."""
    size = os.path.getsize(blob)
    gib = size / (1 << 30)
    runuser = ["runuser", "-u", "postgres", "--"]
    ssh = runuser + ["ssh"] + sshd.ssh_options(False)
    # OpenSSH's set-up (exec of the client, key exchange, login, a command started).
    setup = min(timed(ssh + ["postgres@127.0.0.1", "true"], stdin=subprocess.DEVNULL)[0]
                for _ in range(3))
    rows = [("client", "cipher asked", "negotiated cipher/MAC", "MiB/s", "client CPU s/GiB",
             "machine busy")]
    results = {}
    for client, cipher in (("OpenSSH ssh", "chacha20-poly1305@openssh.com"),
                           ("OpenSSH ssh", "aes128-ctr"),
                           ("OpenSSH ssh", "aes128-gcm@openssh.com"),
                           ("libssh2 (probe)", "aes128-ctr"),
                           ("libssh2 (probe)", "chacha20-poly1305@openssh.com"),
                           ("libssh2 (probe)", "aes128-gcm@openssh.com")):
        best = None
        for _ in range(2):
            mark = sshd.mark()
            if client.startswith("OpenSSH"):
                with open(blob, "rb") as data:
                    wall, cpu, busy, _ = timed(ssh + ["-c", cipher, "postgres@127.0.0.1",
                                                      "cat > /dev/null"], stdin=data)
                seconds = max(1e-3, wall - setup)
            else:
                wall, cpu, busy, out = timed(
                    runuser + [PROBE, "127.0.0.1", str(sshd.port), "postgres", sshd.key,
                               sshd.known_hosts, cipher, blob], stdin=subprocess.DEVNULL)
                fields = dict(kv.split("=", 1) for kv in out.split())
                seconds = float(fields["seconds"])
                cpu = float(fields["cpu_user"]) + float(fields["cpu_sys"])
            negotiated = cipher_text(sshd.logins_since(mark))
            mibs = size / MiB / seconds
            if best is None or mibs > best[0]:
                best = (mibs, cpu / gib, busy, negotiated)
        results[(client, cipher)] = best[0]
        rows.append((client, cipher, best[3], f"{best[0]:.0f}", f"{best[1]:.2f}",
                     f"{best[2]:.0%}"))
        log(f"raw channel: {client} {cipher}: {best[0]:.0f} MiB/s")
    return rows, results, setup


def callgrind_counts(sshd, file):
    """Calls into the cipher per byte sent, counted by callgrind for one probe transfer
    of `file` with aes128-ctr (walmgr's first choice). Returns text lines."""
    if not shutil.which("valgrind"):
        return ["valgrind is not installed: no call counts"]
    out_file = f"{STANDBY}/callgrind.out"
    as_pg(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", PROBE,
           "127.0.0.1", str(sshd.port), "postgres", sshd.key, sshd.known_hosts, "aes128-ctr",
           file], capture_output=True, timeout=600)
    names, calls, callee = {}, collections.Counter(), None
    with open(out_file) as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                key, _, rest = line.rstrip("\n").partition("=")
                m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
                name = names.get(m.group(1)) if m else rest
                if key == "cfn":
                    callee = name
            elif line.startswith("calls=") and callee:
                calls[callee] += int(line[6:].split()[0])
    size = os.path.getsize(file)
    lines = [f"callgrind, one libssh2 transfer of {size // MiB} MiB with aes128-ctr "
             "(set-up included), calls counted:"]
    for fn, what in (("libssh2_channel_write_ex", "channel writes"),
                     ("ssh2_transport_send", "packets sent"),
                     ("ssh2_cipher_crypt", "libssh2 cipher calls"),
                     ("EVP_Cipher", "OpenSSL EVP_Cipher calls")):
        n = calls.get(fn, 0)
        per = f"{size / n:,.0f} bytes each" if n else "not seen"
        lines.append(f"  {fn:<26} {n:>12,}  {what}, {per}")
    lines.append(f"  (raw counts in {out_file})")
    return lines


def perf_recorder(data):
    """A `during` hook for Variant.run: system-wide cpu-clock samples into `data`."""
    def start():
        proc = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", str(PERF_HZ),
                                 "-a", "-o", data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # perf's set-up, outside the drain

        def stop():
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        return stop
    return start


PERF_HZ = 999


def perf_rows(data, args):
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children"] + args,
                         capture_output=True, text=True, check=False).stdout
    return [line.rstrip() for line in out.splitlines() if re.match(r"\s+[\d.]+%", line)]


def annotate_address(line, library):
    """perf cannot name local symbols of the stripped libcrypto: show the instructions at
    such an address instead (objdump), e.g. aesenc for AES-NI rounds, sha256rnds2 for
    SHA-256."""
    m = re.search(r"libcrypto\S*\s+\[\.\]\s+0x([0-9a-f]+)\s*$", line)
    if not (m and library and shutil.which("objdump")):
        return line
    addr = int(m.group(1), 16)
    dis = subprocess.run(["objdump", "-d", f"--start-address={addr - 8:#x}",
                          f"--stop-address={addr + 12:#x}", library],
                         capture_output=True, text=True, check=False).stdout
    ops = []
    for d in dis.splitlines():
        parts = d.split("\t")
        if len(parts) >= 3 and parts[2].strip():
            op = parts[2].split()[0]
            if op not in ops and not op.startswith((".", "data16", "rex")):
                ops.append(op)
    return f"{line}   (instructions there: {' '.join(ops[:6])})"


def libcrypto_path():
    out = subprocess.run(["ldd", f"{PGLIB}/walmgr.so"], capture_output=True, text=True,
                         check=False).stdout
    m = re.search(r"libcrypto\S*\s+=>\s+(\S+)", out)
    return m.group(1) if m else None


def profile(v, names, seg_mib):
    """One more drain of `v` (not counted) under perf: where the machine's CPU went."""
    if not shutil.which("perf"):
        return [f"{seg_mib} MiB: perf is not installed: no profile", ""]
    data = f"{BENCH}/perf-{v.name}-{seg_mib}.data"
    v.clean()
    reset_ready(names)
    holder = {}

    def during():
        holder["archiver"], _ = archiver()
        return perf_recorder(data)()
    t, _ = v.run(names, during=during)
    verify_dir(v.name, names, v.outputs())
    v.clean()
    pid = holder["archiver"]
    # cpu-clock samples every CPU, idle included, PERF_HZ times per second: samples per
    # process / PERF_HZ / drain time = CPUs it kept busy during the drain.
    busy = []
    for row in perf_rows(data, ["--sort", "comm", "-n"]):
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+(.+)$", row)
        if m and m.group(2) != "swapper":
            busy.append((int(m.group(1)) / PERF_HZ / t, m.group(2)))
    busy.sort(reverse=True)
    label = {"postgres": "postgres (the archiver)", "walmgr": "walmgr (xserve)",
             "sshd": "sshd (decrypts)"}
    lines = [f"{seg_mib} MiB: perf record -a during one more {v.name} drain of {len(names)} "
             f"segments ({t:.2f} s, {len(names) / t:.1f} segments/s under perf). CPUs busy "
             f"during the drain, of 2: {sum(b for b, _ in busy):.2f}; by process: "
             + ", ".join(f"{label.get(c, c)} {b:.2f}" for b, c in busy if b >= 0.02)]
    symbols = []
    for row in perf_rows(data, ["--pid", str(pid), "--percentage", "relative",
                                "--sort", "dso,sym"]):
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[.\]\s+(.+)$", row)
        if m:
            symbols.append((float(m.group(1)), m.group(2), row))
    by_dso = collections.Counter()
    for pct, dso, _ in symbols:
        by_dso[dso] += pct
    lines.append(f"  the archiver (pid {pid}; libssh2 is linked into walmgr.so), its samples "
                 "by library: " + ", ".join(f"{d} {p:.0f}%" for d, p in by_dso.most_common(5)))
    lines.append("  its hottest symbols:")
    library = libcrypto_path()
    lines += ["  " + annotate_address(row, library) for pct, _, row in symbols[:12]
              if pct >= 1.0]
    lines.append("")
    os.unlink(data)
    return lines


def openssl_speed():
    """AES-128-CTR in one-block calls (what libssh2 makes) and in one call per 32 KiB
    packet, and SHA-256 (its MAC) per packet, with OpenSSL on this CPU. Text, or None."""
    if not shutil.which("openssl"):
        return None
    def rate(alg, size):
        out = subprocess.run(["openssl", "speed", "-evp", alg, "-seconds", "1", "-bytes",
                              str(size)], capture_output=True, text=True, check=False).stdout
        m = re.search(r"([\d.]+)k\s*$", out.strip())
        return float(m.group(1)) * 1000 / MiB if m else None
    one, packet, sha = rate("aes-128-ctr", 16), rate("aes-128-ctr", 32768), rate("sha256", 32768)
    if not (one and packet and sha):
        return None
    return (f"OpenSSL on this CPU (openssl speed -evp): AES-128-CTR {one:,.0f} MiB/s in 16-byte "
            f"calls (libssh2's), {packet:,.0f} MiB/s in 32 KiB calls (one per packet); "
            f"SHA-256 (the hmac-sha2-256 MAC) {sha:,.0f} MiB/s per 32 KiB.")


def make_blob(names, mib_wanted=512):
    """A file of real WAL (segments concatenated), readable by postgres, for raw transfers."""
    path = f"{BENCH}/raw-channel.blob"
    with open(path, "wb") as out:
        written = 0
        while written < mib_wanted * MiB:
            for n in names:
                with open(f"{PG_WAL}/{n}", "rb") as f:
                    data = f.read()
                out.write(data)
                written += len(data)
                if written >= mib_wanted * MiB:
                    break
    os.chmod(path, 0o644)
    return path


def describe_build():
    so = f"{PGLIB}/walmgr.so"
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(so)))
    release = os.environ.get("WALMGR_BENCH_RELEASE", "1") == "1"
    kind = "release build installed by this run" if release else "as installed (WALMGR_BENCH_RELEASE=0)"
    line = f"{so} ({kind}, {built}); PostgreSQL {sql('SHOW server_version')}"
    if SUITE in ("local", "all"):
        pgbr = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True)
        line += f"; {pgbr.stdout.strip()}"
    if SUITE in ("ssh", "all"):
        cli_built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(CLI)))
        openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
        rsync = subprocess.run(["rsync", "--version"], capture_output=True,
                               text=True).stdout.splitlines()[0]
        libssh2 = subprocess.run([PROBE, "--version"], capture_output=True,
                                 text=True).stdout.strip()
        line += (f"\nstandby's walmgr: {CLI} (copy of {BUILT_CLI}, {cli_built}); "
                 f"{libssh2} (bundled by libssh2-sys, in walmgr.so and the CLI); {openssh}; "
                 f"{' '.join(rsync.split()[:3])}")
    return line


def so_stamp():
    st = os.stat(f"{PGLIB}/walmgr.so")
    return (st.st_mtime_ns, st.st_size)


def run_local(n, reps, names, seg_size):
    PgBackRest.setup()
    variants = [Walmgr(), BasicArchive(), Cp(), PgBackRest(), PageCache()]
    times = measure(variants, names, reps)
    report(variants, times, n, seg_size)


def ssh_variants(sshd, n):
    return [WalmgrSsh(sshd, False), WalmgrSsh(sshd, True), Walmgr(),
            RsyncSsh(sshd, True), RsyncSsh(sshd, False, limit=min(n, max(8, n // 16)))]


def run_ssh_size(sshd, n, reps, names, seg_size, evidence):
    variants = ssh_variants(sshd, n)
    times = measure(variants, names, reps)
    rate = report_ssh(variants, times, names, seg_size, zstd_ratio(names))
    sys.stdout.flush()
    seg_mib = seg_size // MiB
    evidence["rates"][seg_mib] = rate
    evidence["profiles"] += profile(variants[0], names, seg_mib)
    if seg_mib == 16 and PROBE:
        blob = make_blob(names)
        evidence["raw"] = raw_channels(sshd, blob)
        one = f"{BENCH}/one-segment"
        shutil.copyfile(f"{PG_WAL}/{names[0]}", one)
        os.chmod(one, 0o644)
        evidence["callgrind"] = callgrind_counts(sshd, one)
        evidence["openssl"] = openssl_speed()
        os.unlink(blob)


def print_evidence(evidence):
    print()
    print("what limits walmgr over SSH")
    print()
    if evidence.get("raw"):
        rows, results, setup = evidence["raw"]
        print("one SSH channel to 127.0.0.1 into `cat > /dev/null`, 512 MiB of these WAL "
              "segments, best of 2 (OpenSSH: wall time minus its set-up of "
              f"{setup * 1000:.0f} ms; libssh2: bench/ssh-probe, the calls walmgr's "
              "transport makes, timed from the first byte):")
        print_table(rows)
        print()
        walmgr_rate = evidence["rates"].get(16, {}).get("walmgr-ssh")
        probe = results.get(("libssh2 (probe)", "aes128-ctr"))
        if walmgr_rate and probe:
            print(f"walmgr-ssh at 16 MiB moved {walmgr_rate * 16:.0f} MiB/s = "
                  f"{walmgr_rate * 16 / probe:.0%} of the raw libssh2 channel with its cipher "
                  f"({probe:.0f} MiB/s).")
        rate1 = evidence["rates"].get(1, {})
        if rate1 and probe:
            per = 1000 / rate1["walmgr-ssh"]
            wire = 1000 / probe
            local = 1000 / rate1["walmgr"]
            print(f"walmgr-ssh at 1 MiB: {per:.1f} ms per file. Moving 1 MiB through "
                  f"libssh2 at the raw rate takes {wire:.1f} ms, and the local transport's "
                  f"whole work per file (read, write, fsync, rename, fsync dir) "
                  f"{local:.1f} ms: {wire + local:.1f} ms if nothing overlapped.")
        print()
    for line in evidence.get("callgrind", []):
        print(line)
    if evidence.get("openssl"):
        print(evidence["openssl"])
    if evidence.get("callgrind") or evidence.get("openssl"):
        print()
    for line in evidence["profiles"]:
        print(line)


def main_local(n, reps):
    log(f"master in {BENCH} (port {PORT}), filling {n} segments")
    reset_bench()
    start_master(n)
    names = fill(n)
    seg_size = os.path.getsize(f"{PG_WAL}/{names[0]}")
    if any(os.path.getsize(f"{PG_WAL}/{x}") != seg_size for x in names):
        raise RuntimeError("segments of different sizes")
    print(describe_build())
    print(fsync_note())
    run_local(n, reps, names, seg_size)
    print("load average at the end (other work on this machine skews timings): "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))


def main_ssh(n, n1, reps, with_local):
    for path, what in ((BUILT_CLI, "WALMGR_BENCH_CLI (the release walmgr)"),
                       (BUILT_PROBE, "WALMGR_BENCH_PROBE (bench/ssh-probe)")):
        if not path or not os.access(path, os.X_OK):
            sys.exit(f"{what} is not set to an executable (run through bench/archive.sh)")
    started = time.monotonic()
    reset_bench()
    os.makedirs(BIN, 0o755)
    for built, copy in ((BUILT_CLI, CLI), (BUILT_PROBE, PROBE)):
        shutil.copy2(built, copy)
        os.chmod(copy, 0o755)
    stamp = so_stamp()
    sshd = Sshd()
    try:
        sshd.start()
        write_ssh_configs(sshd)
        evidence = {"rates": {}, "profiles": []}
        for seg_mib, count in ((16, n), (1, n1)):
            log(f"master in {BENCH} (port {PORT}), {seg_mib} MiB segments, filling {count}")
            start_master(count, seg_mib)
            names = fill(count)
            seg_size = os.path.getsize(f"{PG_WAL}/{names[0]}")
            if seg_size != seg_mib * MiB or any(
                    os.path.getsize(f"{PG_WAL}/{x}") != seg_size for x in names):
                raise RuntimeError(f"segments are not all {seg_mib} MiB")
            if seg_mib == 16:
                print(describe_build())
                print(fsync_note())
                print(ssh_notes(sshd))
                sys.stdout.flush()
                if with_local:
                    run_local(n, reps, names, seg_size)
                    sys.stdout.flush()
            run_ssh_size(sshd, count, reps, names, seg_size, evidence)
            stop_cluster()
        print_evidence(evidence)
    finally:
        stop_cluster()
        sshd.stop()
    if so_stamp() != stamp:
        print(f"WARNING: {PGLIB}/walmgr.so was replaced during the run (another build or "
              "test installed it): the walmgr rows may mix builds.")
    print("load average at the end (other work on this machine skews timings): "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"bench wall time (without the build): {time.monotonic() - started:.0f} s")


def main():
    args = [int(a) for a in sys.argv[1:]]
    n = args[0] if len(args) > 0 else 64
    reps = args[1] if len(args) > 1 else 3
    n1 = args[2] if len(args) > 2 else 4 * n
    if n < 1 or reps < 1 or n1 < 1 or SUITE not in ("local", "ssh", "all"):
        sys.exit("usage: archive.sh [N>=1] [REPS>=1]; WALMGR_BENCH_SUITE=local|ssh|all, "
                 "WALMGR_BENCH_N1 (1 MB segments, default 4N)")
    for lib in ("walmgr.so", "basic_archive.so"):
        if not os.path.exists(f"{PGLIB}/{lib}"):
            sys.exit(f"{PGLIB}/{lib} is missing (run scripts/test or scripts/demo first)")
    if SUITE == "local":
        main_local(n, reps)
    else:
        main_ssh(n, n1, reps, with_local=SUITE == "all")


if __name__ == "__main__":
    try:
        main()
    except VerifyError as e:
        print(f"VERIFICATION FAILED: {e}", file=sys.stderr)
        sys.exit(2)
    finally:
        stop_cluster()
        if not KEEP:
            shutil.rmtree(BENCH, ignore_errors=True)
