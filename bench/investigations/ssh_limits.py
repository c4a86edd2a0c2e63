#!/usr/bin/env python3
"""What limits one SSH channel on this machine (run through ssh-limits.sh, as root).

Needs the environment bench/src/with_sshd.rs (walmgr-with-sshd) sets: an sshd on
127.0.0.1:WALMGR_SSHD_PORT that logs each connection's cipher (LogLevel DEBUG), a client key
owned by postgres (WALMGR_SSH_KEY) and a known_hosts (WALMGR_SSH_KNOWN_HOSTS).

  ssh_limits.py PROBE [FILE]

PROBE is the built bench/investigations/ssh-probe; FILE the data to send (default: 512 MiB
of random hex text written into WALMGR_SSH_DIR, about as compressible as the benchmark's
WAL). Prints:
  - one channel into `cat > /dev/null` per client and cipher: OpenSSH's ssh (wall time minus
    its set-up) and libssh2 through the probe (the calls walmgr's transport makes, timed
    from the first byte), best of 2;
  - libssh2's calls into the cipher per byte, counted by callgrind for 16 MiB with
    aes128-ctr (walmgr's first choice);
  - OpenSSL's AES-128-CTR rate in one-block calls (libssh2's) and per 32 KiB packet.
"""

import collections
import os
import re
import resource
import shutil
import subprocess
import sys
import time

MiB = 1 << 20
PORT = os.environ["WALMGR_SSHD_PORT"]
KEY = os.environ["WALMGR_SSH_KEY"]
KNOWN_HOSTS = os.environ["WALMGR_SSH_KNOWN_HOSTS"]
SSHD_LOG = os.environ["WALMGR_SSHD_LOG"]
SCRATCH = os.environ["WALMGR_SSH_DIR"]
RUNUSER = ["runuser", "-u", "postgres", "--"]
SSH = RUNUSER + ["ssh", "-F", "/dev/null", "-p", PORT, "-i", KEY, "-o", "IdentitiesOnly=yes",
                 "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                 "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
                 "-o", "GlobalKnownHostsFile=/dev/null"]
KEX = re.compile(r"kex: client->server cipher: (\S+) MAC: (\S+) compression: \S+ \[preauth\]")


def log(msg):
    print(f"--> {msg}", file=sys.stderr, flush=True)


def mark():
    return os.path.getsize(SSHD_LOG)


def negotiated_since(offset):
    with open(SSHD_LOG, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    seen = collections.Counter(KEX.findall(text))
    return ", ".join(f"{c}/{m}".replace("/<implicit>", "") for c, m in seen) or "-"


def cpu_busy():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def timed(cmd, **kw):
    """(wall s, CPU s of it and its children, machine busy fraction, stdout)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, t0_jiffies = cpu_busy()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)
    wall = time.perf_counter() - t0
    b1, t1_jiffies = cpu_busy()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return wall, cpu, (b1 - b0) / max(1, t1_jiffies - t0_jiffies), out.stdout


def make_blob(mib):
    path = f"{SCRATCH}/raw-channel.blob"
    chunk = os.urandom(MiB // 2).hex().encode()
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(chunk)
    os.chmod(path, 0o644)
    return path


def print_table(rows):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(widths[j]) if j == 0 else c.rjust(widths[j])
                        for j, c in enumerate(r)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def raw_channels(probe, blob):
    size = os.path.getsize(blob)
    gib = size / (1 << 30)
    # OpenSSH's set-up: exec of the client, key exchange, login, a command started.
    setup = min(timed(SSH + ["postgres@127.0.0.1", "true"], stdin=subprocess.DEVNULL)[0]
                for _ in range(3))
    rows = [("client", "cipher asked", "negotiated cipher/MAC", "MiB/s", "client CPU s/GiB",
             "machine busy")]
    for client, cipher in (("OpenSSH ssh", "chacha20-poly1305@openssh.com"),
                           ("OpenSSH ssh", "aes128-ctr"),
                           ("OpenSSH ssh", "aes128-gcm@openssh.com"),
                           ("libssh2 (probe)", "aes128-ctr"),
                           ("libssh2 (probe)", "chacha20-poly1305@openssh.com"),
                           ("libssh2 (probe)", "aes128-gcm@openssh.com")):
        best = None
        for _ in range(2):
            offset = mark()
            if client.startswith("OpenSSH"):
                with open(blob, "rb") as data:
                    wall, cpu, busy, _ = timed(SSH + ["-c", cipher, "postgres@127.0.0.1",
                                                      "cat > /dev/null"], stdin=data)
                seconds = max(1e-3, wall - setup)
            else:
                wall, cpu, busy, out = timed(
                    RUNUSER + [probe, "127.0.0.1", PORT, "postgres", KEY, KNOWN_HOSTS, cipher,
                               blob], stdin=subprocess.DEVNULL)
                fields = dict(kv.split("=", 1) for kv in out.split())
                seconds = float(fields["seconds"])
                cpu = float(fields["cpu_user"]) + float(fields["cpu_sys"])
            mibs = size / MiB / seconds
            if best is None or mibs > best[0]:
                best = (mibs, cpu / gib, busy, negotiated_since(offset))
        rows.append((client, cipher, best[3], f"{best[0]:.0f}", f"{best[1]:.2f}",
                     f"{best[2]:.0%}"))
        log(f"raw channel: {client} {cipher}: {best[0]:.0f} MiB/s")
    print(f"one SSH channel to 127.0.0.1 into `cat > /dev/null`, {size // MiB} MiB, best of 2 "
          f"(OpenSSH: wall time minus its set-up of {setup * 1000:.0f} ms; libssh2: "
          "ssh-probe, the calls walmgr's transport makes, timed from the first byte):")
    print_table(rows)
    print()


def callgrind_counts(probe, blob):
    if not shutil.which("valgrind"):
        print("valgrind is not installed: no call counts\n")
        return
    one = f"{SCRATCH}/one-segment"
    with open(blob, "rb") as src, open(one, "wb") as dst:
        dst.write(src.read(16 * MiB))
    os.chmod(one, 0o644)
    out_file = f"{SCRATCH}/callgrind.out"
    subprocess.run(RUNUSER + ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                              probe, "127.0.0.1", PORT, "postgres", KEY, KNOWN_HOSTS,
                              "aes128-ctr", one], capture_output=True, timeout=600, check=True)
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
    size = os.path.getsize(one)
    print(f"callgrind, one libssh2 transfer of {size // MiB} MiB with aes128-ctr "
          "(set-up included), calls counted:")
    for fn, what in (("libssh2_channel_write_ex", "channel writes"),
                     ("ssh2_transport_send", "packets sent"),
                     ("ssh2_cipher_crypt", "libssh2 cipher calls"),
                     ("EVP_Cipher", "OpenSSL EVP_Cipher calls")):
        n = calls.get(fn, 0)
        per = f"{size / n:,.0f} bytes each" if n else "not seen"
        print(f"  {fn:<26} {n:>12,}  {what}, {per}")
    print()


def openssl_speed():
    if not shutil.which("openssl"):
        return

    def rate(alg, size):
        out = subprocess.run(["openssl", "speed", "-evp", alg, "-seconds", "1", "-bytes",
                              str(size)], capture_output=True, text=True, check=False).stdout
        m = re.search(r"([\d.]+)k\s*$", out.strip())
        return float(m.group(1)) * 1000 / MiB if m else None
    one, packet, sha = rate("aes-128-ctr", 16), rate("aes-128-ctr", 32768), rate("sha256", 32768)
    if one and packet and sha:
        print(f"OpenSSL on this CPU (openssl speed -evp): AES-128-CTR {one:,.0f} MiB/s in 16-byte "
              f"calls (libssh2's), {packet:,.0f} MiB/s in 32 KiB calls (one per packet); "
              f"SHA-256 (the hmac-sha2-256 MAC) {sha:,.0f} MiB/s per 32 KiB.")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: ssh_limits.py PROBE [FILE]")
    probe = sys.argv[1]
    version = subprocess.run([probe, "--version"], capture_output=True, text=True).stdout
    openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr
    print(f"{version.strip()} (bundled by libssh2-sys, as in walmgr); {openssh.strip()}\n")
    blob = sys.argv[2] if len(sys.argv) == 3 else make_blob(512)
    raw_channels(probe, blob)
    callgrind_counts(probe, blob)
    openssl_speed()


if __name__ == "__main__":
    main()
