#!/usr/bin/env python3
"""The archive benchmark (run through bench/archive.sh, as root).

A PostgreSQL 15 master fills N finished WAL segments with real data (INSERTs of random
text, no pg_switch_wal padding) while nothing can archive them, so they wait as .ready.
Then, for every repetition and every variant, in an order that rotates between
repetitions, the same N files are turned back into .ready, the variant is configured with
its gate closed, the gate is opened, and the time until none of the N is .ready any more is
the drain time. Variants:

  walmgr          archive_library = 'walmgr' (the module; temp file, fsync, rename, fsync dir)
  basic_archive   contrib basic_archive (temp file, fsync, rename, fsync dir)
  cp              archive_command = 'test ! -f DEST/%f && cp %p DEST/%f' (docs example, no fsync)
  pgbackrest      archive_command = 'pgbackrest archive-push %p' (local repo, no compression,
                  synchronous: one process per segment)
  page-cache      this script copies the N files itself, no fsync: the upper bound

Every variant's output is compared byte for byte with the master's files.

Gates, so that timing starts with work waiting and the archiver idle:
  - walmgr: completed_wals does not exist until the gate opens (the module's check fails);
  - basic_archive: its directory does not exist until the gate opens (its copy fails three
    times, a second apart, then the archiver waits);
  - cp, pgbackrest: the command starts with `test -e GATE &&`.
Before the gate opens, the archiver must be idle in its main loop under the variant's
configuration: a change of archive_library restarts the archiver, and the postmaster starts
the new one only 10 s after the previous start, so each switch waits for the new process.
Opening a gate is an atomic rename or create, followed by SIGHUP to the postmaster (what
pg_reload_conf() does), which wakes the archiver.
"""

import hashlib
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import time

PGBIN = "/usr/lib/postgresql/15/bin"
PGLIB = "/usr/lib/postgresql/15/lib"
BENCH = os.environ.get("WALMGR_BENCH_DIR", "/tmp/walmgr-bench")
PORT = int(os.environ.get("WALMGR_BENCH_PORT", "54371"))
KEEP = os.environ.get("WALMGR_BENCH_KEEP", "0") == "1"
DATA = f"{BENCH}/master"
PG_WAL = f"{DATA}/pg_wal"
STATUS = f"{PG_WAL}/archive_status"
DEST = f"{BENCH}/dest"
GATE = f"{BENCH}/gate"
PGBR_CONF = f"{BENCH}/pgbackrest.conf"
PGBR_REPO = f"{BENCH}/pgbackrest-repo"
STANZA = "bench"
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


# ---------------------------------------------------------------------------------------
# The master and its N ready segments


def ready_names():
    return sorted(f[:-6] for f in os.listdir(STATUS) if f.endswith(".ready"))


def is_segment(name):
    return len(name) == 24 and all(c in "0123456789ABCDEF" for c in name)


def start_master(n):
    stop_cluster()
    shutil.rmtree(BENCH, ignore_errors=True)
    mkdir_pg(BENCH, 0o755)
    mkdir_pg(DEST)
    as_pg([f"{PGBIN}/initdb", "-D", DATA, "-A", "trust", "-U", "postgres", "--no-sync"],
          stdout=subprocess.DEVNULL)
    keep = f"{2 * n * 16 + 1024}MB"
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


def reset_ready(names):
    for name in names:
        done = f"{STATUS}/{name}.done"
        if os.path.exists(done):
            os.rename(done, f"{STATUS}/{name}.ready")
    # The idle master should finish no segment, but a stray one (e.g. from bgwriter's
    # running-xacts records) must not be archived in the middle of a measurement.
    for extra in set(ready_names()) - set(names):
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


def configure(library, command):
    """Configures the archiver with every gate closed and waits until it is idle under the
    new configuration. Changing archive_library restarts the archiver (a new process loads
    the new library); the wait covers that restart, however long the postmaster takes."""
    old_pid, _ = archiver()
    current = sql("SELECT current_setting('archive_library')")
    sql(f"ALTER SYSTEM SET archive_library = {quote(library)}",
        f"ALTER SYSTEM SET archive_command = {quote(command)}",
        "SELECT pg_reload_conf()")
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
# Variants


class Variant:
    name = ""
    library = ""  # archive_library ('' = archive_command)
    command = ""

    def __init__(self):
        self.dest = f"{DEST}/{self.name}"

    def clean(self):
        """Gate closed, destination empty."""
        shutil.rmtree(self.dest, ignore_errors=True)
        if os.path.exists(GATE):
            os.unlink(GATE)

    def open_gate(self):
        raise NotImplementedError

    def outputs(self):
        return listing(self.dest)

    def run(self, names):
        configure(self.library, self.command)
        os.sync()  # no earlier variant's dirty pages to compete with
        warm(names)
        return drain(names, self.open_gate)


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

    def run(self, names):
        os.sync()
        warm(names)
        t0 = time.perf_counter()
        first = None
        for n in names:
            shutil.copyfile(f"{PG_WAL}/{n}", f"{self.dest}/{n}")
            first = first or time.perf_counter() - t0
        return time.perf_counter() - t0, first


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
            "Real disks make the fsyncing variants (walmgr, basic_archive, pgbackrest) "
            "slower than this.")


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
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    print(f"archive drain: {n} segments x {seg_size // MiB} MiB = {mib:.0f} MiB, "
          f"{len(next(iter(times.values())))} repetitions, variants interleaved; "
          "ratios are throughput relative to the column's variant (median times)")
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
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


def describe_build():
    so = f"{PGLIB}/walmgr.so"
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(so)))
    release = os.environ.get("WALMGR_BENCH_RELEASE", "1") == "1"
    kind = "release build installed by this run" if release else "as installed (WALMGR_BENCH_RELEASE=0)"
    pgbr = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()
    return f"{so} ({kind}, {built}); PostgreSQL {sql('SHOW server_version')}; {pgbr}"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if n < 1 or reps < 1:
        sys.exit("usage: archive.sh [N>=1] [REPS>=1]")
    for lib in ("walmgr.so", "basic_archive.so"):
        if not os.path.exists(f"{PGLIB}/{lib}"):
            sys.exit(f"{PGLIB}/{lib} is missing (run scripts/test or scripts/demo first)")

    log(f"master in {BENCH} (port {PORT}), filling {n} segments")
    start_master(n)
    names = fill(n)
    seg_size = os.path.getsize(f"{PG_WAL}/{names[0]}")
    if any(os.path.getsize(f"{PG_WAL}/{x}") != seg_size for x in names):
        raise RuntimeError("segments of different sizes")
    PgBackRest.setup()

    variants = [Walmgr(), BasicArchive(), Cp(), PgBackRest(), PageCache()]
    times = {v.name: [] for v in variants}
    # Round 0 is a warm-up, not counted: it proves every variant works before minutes are
    # spent, and lets the disk settle after the fill (the first timed drain after it was
    # consistently slow).
    for rep in range(reps + 1):
        # Rotate the order so that no variant always runs first or after the same one.
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for v in order:
            v.clean()
            if not isinstance(v, PageCache):
                reset_ready(names)
            t, first = v.run(names)
            verify_dir(v.name, names, v.outputs())
            what = f"rep {rep}/{reps}" if rep else "warm-up"
            log(f"{what:<9} {v.name:<13} {t:7.3f} s (first file done after "
                f"{first * 1000:.0f} ms), output verified")
            if rep:
                times[v.name].append(t)
            v.clean()
    print(describe_build())
    print(fsync_note())
    print("load average at the end (other work on this machine skews timings): "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    report(variants, times, n, seg_size)


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
