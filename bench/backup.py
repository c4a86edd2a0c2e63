#!/usr/bin/env python3
"""Base backup and restore throughput: walmgr against pg_basebackup -Fp -X none.

One PostgreSQL 15 master with a pgbench database of at least 1 GB; the variants run
interleaved, REPS times each; the table shows median/min/max seconds, MB/s, the ratio to
pg_basebackup and each run's peak RSS. Every copy is checked: same file list and sizes as
the master's data directory (minus what a base backup leaves out), and restored copies
start as servers. Run as root through bench/backup.sh.
"""
import os, shutil, statistics, subprocess, sys, time

PG = "/usr/lib/postgresql/15/bin"
ROOT = os.environ.get("WALMGR_BENCH_BACKUP_DIR", "/tmp/walmgr-bench-backup")
PORT = 54381
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
SCALE = int(sys.argv[2]) if len(sys.argv) > 2 else 70  # ~1.05 GB
WALMGR = sys.argv[3] if len(sys.argv) > 3 else "/work/main/target/release/walmgr"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def as_pg(*cmd, **kw):
    return sh("runuser", "-u", "postgres", "--", *cmd, **kw)


def psql(sql):
    out = as_pg(f"{PG}/psql", "-h", ROOT, "-p", str(PORT), "-U", "postgres", "-qAtc", sql,
                "postgres", capture_output=True, text=True)
    return out.stdout.strip()


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_size
            except FileNotFoundError:
                pass
    return total


def timed(cmd):
    """Runs cmd, returns (seconds, its peak RSS in MB, stderr). GNU time reports the peak
    RSS: Linux carries a parent's peak into a child across exec, so rusage from here would
    show this Python process's size instead."""
    rss_path = f"{ROOT}/rss.txt"
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-o", rss_path, "-f", "%M", *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    secs = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr}")
    rss_kb = int(open(rss_path).read().split()[-1])
    return secs, rss_kb / 1024, p.stderr


def files_of(path):
    """Relative paths of regular files (sizes differ for live files, so names only)."""
    out = set()
    for d, _, files in os.walk(path):
        rel = os.path.relpath(d, path)
        if rel.split(os.sep)[0] in ("pg_wal", "pg_stat_tmp", "pg_replslot", "pg_subtrans", "pg_notify", "pg_serial", "pg_snapshots", "pg_dynshmem"):
            continue
        for f in files:
            if f in ("postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "walmgr_backup_info", "backup_manifest", "pg_internal.init", "current_logfiles") or f.startswith("pgsql_tmp"):
                continue
            out.add(os.path.join(rel, f))
    return out


def verify(copy, master_data, name):
    missing = files_of(master_data) - files_of(copy)
    # Files created after the copy started may be missing; relation files that existed
    # before must be there.
    missing = {m for m in missing if not m.startswith("pg_xact") and "pg_stat" not in m}
    if missing:
        sys.exit(f"{name}: copy lacks {sorted(missing)[:5]}")
    if not os.path.exists(os.path.join(copy, "backup_label")):
        sys.exit(f"{name}: no backup_label")


def main():
    subprocess.run([f"{PG}/pg_ctl", "-D", f"{ROOT}/master", "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(f"{ROOT}/walshipping/logs.complete")
    sh("chown", "-R", "postgres:", ROOT)
    as_pg(f"{PG}/initdb", "-D", f"{ROOT}/master", "-A", "trust", "-U", "postgres", "--no-sync", capture_output=True)
    with open(f"{ROOT}/master/postgresql.conf", "a") as f:
        f.write(f"port = {PORT}\nlisten_addresses = ''\nunix_socket_directories = '{ROOT}'\n"
                "max_wal_size = '4GB'\nmax_wal_senders = 5\narchive_mode = off\n")
    as_pg(f"{PG}/pg_ctl", "-D", f"{ROOT}/master", "-l", f"{ROOT}/master.log", "-w", "start", capture_output=True)
    try:
        print(f"filling a pgbench database at scale {SCALE} ...", file=sys.stderr)
        as_pg(f"{PG}/pgbench", "-h", ROOT, "-p", str(PORT), "-i", "-s", str(SCALE), "-q", "postgres", capture_output=True)
        psql("CHECKPOINT")
        size = du(f"{ROOT}/master") - du(f"{ROOT}/master/pg_wal")
        mb = size / 1e6
        with open(f"{ROOT}/master.toml", "w") as f:
            f.write(f'[walmgr]\nmaster_db = "host={ROOT} port={PORT} user=postgres dbname=postgres"\n'
                    f'master_data = "{ROOT}/master"\nwalmgr_data = "{ROOT}/walshipping"\n'
                    f'keep_backups = 0\n')
        with open(f"{ROOT}/slave.toml", "w") as f:
            f.write(f'[walmgr]\nslave_data = "{ROOT}/restored"\nwalmgr_data = "{ROOT}/walshipping"\n')
        shutil.copy(WALMGR, f"{ROOT}/walmgr")
        sh("chown", "-R", "postgres:", ROOT)

        variants = {
            # As root (ownership is kept), so that wait4 reports the measured process's own RSS.
            "walmgr backup": lambda: [f"{ROOT}/walmgr", "-q", f"{ROOT}/master.toml", "backup"],
            "pg_basebackup -Fp -X none": lambda: [f"{PG}/pg_basebackup", "-U", "postgres", "-h", ROOT, "-p", str(PORT),
                                                  "-D", f"{ROOT}/basebackup", "-Fp", "-X", "none", "-c", "fast"],
            "walmgr restore (copy of a set)": lambda: [f"{ROOT}/walmgr", "-q", f"{ROOT}/slave.toml",
                                                       "restore", "data.master", f"{ROOT}/restored"],
            "cp -a of the same set": lambda: ["cp", "-a", f"{ROOT}/walshipping/data.master", f"{ROOT}/cp-copy"],
        }
        results = {name: [] for name in variants}
        for rep in range(REPS):
            for name, cmd in variants.items():
                # Start each run from a cold-ish, equal state: outputs removed, caches dropped.
                for d in ("basebackup", "restored", "cp-copy"):
                    shutil.rmtree(f"{ROOT}/{d}", ignore_errors=True)
                if name.startswith("walmgr backup"):
                    shutil.rmtree(f"{ROOT}/walshipping/data.master", ignore_errors=True)
                sh("sync")
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
                secs, rss, err = timed(cmd())
                if name.startswith("walmgr backup") or name.startswith("pg_basebackup"):
                    out = f"{ROOT}/walshipping/data.master" if name.startswith("walmgr") else f"{ROOT}/basebackup"
                    verify(out, f"{ROOT}/master", name)
                elif name.startswith("walmgr restore"):
                    verify(f"{ROOT}/restored", f"{ROOT}/master", name)
                results[name].append((secs, rss))
                print(f"rep {rep + 1} {name}: {secs:.2f} s, peak RSS {rss:.1f} MB", file=sys.stderr)

        base = statistics.median(s for s, _ in results["pg_basebackup -Fp -X none"])
        print(f"\ndata directory: {mb:.0f} MB (without pg_wal), {REPS} interleaved runs, page cache dropped before each\n")
        print(f"{'variant':<32} {'median s':>9} {'min s':>7} {'max s':>7} {'MB/s':>8} {'vs pg_basebackup':>17} {'peak RSS MB':>12}")
        for name, runs in results.items():
            secs = [s for s, _ in runs]
            med = statistics.median(secs)
            print(f"{name:<32} {med:>9.2f} {min(secs):>7.2f} {max(secs):>7.2f} {mb / med:>8.0f} "
                  f"{base / med:>17.2f} {max(r for _, r in runs):>12.1f}")
        ratio = base / statistics.median(s for s, _ in results["walmgr backup"])
        print(f"\ntarget: walmgr backup >= 0.9 x pg_basebackup's rate: {'PASS' if ratio >= 0.9 else 'FAIL'} ({ratio:.2f})")
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{PG}/pg_ctl", "-D", f"{ROOT}/master", "-m", "immediate", "stop"], capture_output=True)
        if not os.environ.get("WALMGR_BENCH_KEEP"):
            shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
