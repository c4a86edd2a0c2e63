#!/usr/bin/env bash
# What limits one SSH channel here: raw libssh2 and OpenSSH channel rates per cipher,
# libssh2's cipher calls counted by callgrind, OpenSSL's AES rate per call size. A one-off
# investigation (see README.md), not part of bench/archive.sh.
#
#   bench/investigations/ssh-limits.sh [FILE]     (as root)
#
# Builds bench/investigations/ssh-probe and walmgr-with-sshd (a harness sshd for the
# duration of the run), then runs ssh_limits.py beside that sshd.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$REPO/scripts/lib.sh"
require_root
for tool in valgrind openssl; do
    command -v "$tool" >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind openssl >/dev/null
        break
    }
done
say "building ssh-probe and walmgr-with-sshd"
(cd "$HERE/ssh-probe" && CARGO_TARGET_DIR="$REPO/target/bench-ssh-probe" \
    cargo build -q --release --locked)
(cd "$REPO" && cargo build -q --release -p walmgr-bench --bin walmgr-with-sshd)
# The postgres user runs the probe: give it a copy outside /root.
probe=$(mktemp /tmp/walmgr-ssh-probe.XXXXXX)
trap 'rm -f "$probe"' EXIT
cp "$REPO/target/bench-ssh-probe/release/walmgr-ssh-probe" "$probe"
chmod 755 "$probe"
"$REPO/target/release/walmgr-with-sshd" python3 "$HERE/ssh_limits.py" "$probe" "$@"
