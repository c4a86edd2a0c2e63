#!/usr/bin/env python3
"""Would a look-ahead archiver drain a backlog faster? An upper bound, without PostgreSQL.

Issue 12 asks whether archiving the next .ready segments ahead in a helper thread (the
archive callback then only confirms) shortens a 256-segment drain. This measures the ideal
case locally: N segments of 16 MB wait in a source directory; each is archived the way
walmgr's store does it (temp file beside the final name, copy in the kernel, fsync, rename,
fsync the directory) and then confirmed the way PostgreSQL's archiver does it
(.ready renamed to .done with durable_rename: fsync of the file and of the status
directory). Variants:

  sequential   one file at a time, as the archive callback works today;
  lookahead-K  K-1 helper threads archive the next files ahead while the main thread
               archives or confirms in order: K copies in flight at most.

No PostgreSQL, no archiver loop, no transport: if even this ideal pipeline gains little,
the real one cannot gain more. Warm page cache (the sources are read before each drain, as
freshly written WAL usually is), interleaved repetitions, medians.

    python3 bench/investigations/lookahead.py [N=256] [REPS=3] [DIR=/tmp]

Needs 2 x N x 16 MB free in DIR; removes what it wrote.
"""

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

SEG = 16 << 20


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive(src_dir, dst_dir, name):
    """walmgr's store: temp, copy_file_range, fsync, rename, fsync dir."""
    temp = os.path.join(dst_dir, f".{name}.walmgr-tmp")
    with open(os.path.join(src_dir, name), "rb") as s, open(temp, "wb") as d:
        left = SEG
        while left:
            n = os.copy_file_range(s.fileno(), d.fileno(), left)
            if n == 0:
                raise OSError(f"{name}: source shrank")
            left -= n
        os.fsync(d.fileno())
    os.rename(temp, os.path.join(dst_dir, name))
    fsync_dir(dst_dir)


def confirm(status_dir, name):
    """PostgreSQL's pgarch_archiveDone: durable_rename of .ready to .done."""
    ready = os.path.join(status_dir, name + ".ready")
    done = os.path.join(status_dir, name + ".done")
    fd = os.open(ready, os.O_RDWR)
    os.fsync(fd)
    os.close(fd)
    os.rename(ready, done)
    fd = os.open(done, os.O_RDWR)
    os.fsync(fd)
    os.close(fd)
    fsync_dir(status_dir)


def drain(names, src, dst, status, workers):
    """Seconds to archive and confirm every name with `workers` copies in flight."""
    done = {}
    cond = threading.Condition()
    next_index = [0]

    def helper():
        while True:
            with cond:
                i = next_index[0]
                if i >= len(names):
                    return
                next_index[0] += 1
            archive(src, dst, names[i])
            with cond:
                done[i] = True
                cond.notify_all()

    t0 = time.monotonic()
    threads = [threading.Thread(target=helper) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    for i, name in enumerate(names):
        # The callback: archive the file itself unless a helper has it (or has claimed it).
        with cond:
            mine = next_index[0] == i
            if mine:
                next_index[0] += 1
        if mine:
            archive(src, dst, name)
        else:
            with cond:
                while i not in done:
                    cond.wait()
        confirm(status, name)
    for t in threads:
        t.join()
    return time.monotonic() - t0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    base = sys.argv[3] if len(sys.argv) > 3 else "/tmp"
    need = 2 * n * SEG + (1 << 30)
    free = shutil.disk_usage(base).free
    if free < need:
        sys.exit(f"only {free >> 20} MB free in {base}, this needs {need >> 20} MB")
    root = tempfile.mkdtemp(prefix="wm-lookahead-", dir=base)
    try:
        src = os.path.join(root, "pg_wal")
        status = os.path.join(src, "archive_status")
        dst = os.path.join(root, "archive")
        os.makedirs(status)
        block = os.urandom(SEG)
        names = [f"00000001000000{i >> 8:02X}000000{i & 255:02X}" for i in range(n)]
        for name in names:
            with open(os.path.join(src, name), "wb") as f:
                f.write(block)
        os.sync()
        variants = [("sequential", 1), ("lookahead-2", 2), ("lookahead-3", 3)]
        times = {v: [] for v, _ in variants}
        for rep in range(reps):
            for k in range(len(variants)):
                label, workers = variants[(rep + k) % len(variants)]
                shutil.rmtree(dst, ignore_errors=True)
                os.makedirs(dst)
                for name in names:
                    for suffix in (".done", ".ready"):
                        p = os.path.join(status, name + suffix)
                        if os.path.exists(p):
                            os.remove(p)
                    open(os.path.join(status, name + ".ready"), "w").close()
                for name in names:
                    with open(os.path.join(src, name), "rb") as f:
                        while f.read(1 << 20):
                            pass
                os.sync()
                t = drain(names, src, dst, status, workers)
                assert sorted(os.listdir(dst)) == names
                times[label].append(t)
                print(f"rep {rep + 1}/{reps} {label:<12} {t:6.2f} s", file=sys.stderr)
        seq = statistics.median(times["sequential"])
        print(f"drain of {n} x 16 MB, warm cache, medians of {reps} (min..max); load "
              f"average {' '.join(open('/proc/loadavg').read().split()[:3])}")
        print(f"{'variant':<12}  {'seconds':>20}  {'ms/file':>7}  {'MB/s':>6}  {'x seq':>5}")
        for label, _ in variants:
            t = times[label]
            m = statistics.median(t)
            print(f"{label:<12}  {m:7.2f} ({min(t):5.2f}..{max(t):5.2f})  "
                  f"{m * 1000 / n:7.1f}  {n * 16 / m:6.0f}  {m / seq:5.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
