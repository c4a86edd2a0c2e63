#!/usr/bin/env bash
# The archive benchmark: how fast each archiver drains N ready WAL segments of a PostgreSQL
# 15 master. Two comparisons, by default both in one run (13-15 minutes on a 2-core VM):
#   local: walmgr against contrib basic_archive, `cp`, pgBackRest and a plain copy;
#   ssh:   walmgr over SSH to 127.0.0.1 (plain and zstd) against archive_command with rsync
#          over ssh, with and without ControlMaster, at 16 MB and at 1 MB segments (a
#          second cluster, initdb --wal-segsize=1), with the local transport as reference,
#          and the evidence of what limits walmgr over SSH (raw channel rates, profiles).
# The measurement itself is bench/archive.py (its docstring says how); this wrapper builds,
# prepares the machine and guarantees the teardown.
#
#   bench/archive.sh [N=64] [REPS=3]   (as root, after scripts/test or scripts/demo)
#
# N is the number of 16 MB segments; the 1 MB cluster drains WALMGR_BENCH_N1 (default 4N).
#
# Environment:
#   WALMGR_BENCH_SUITE=all  local, ssh, or all (default).
#   WALMGR_BENCH_RELEASE=1  build and install the extension as a release build first (default;
#                           a few minutes when cold). 0: measure the walmgr.so installed now.
#                           The ssh suite always builds the release CLI (the standby's
#                           `walmgr xserve`) and bench/ssh-probe.
#   WALMGR_BENCH_KEEP=1     keep the bench directory (cluster stopped) for inspection.
#   WALMGR_BENCH_DIR        default /tmp/walmgr-bench; WALMGR_BENCH_PORT default 54371.
#
# Exit status: 0 when every variant's output matched the master's files (whether or not
# the targets were met: this is a measurement), non-zero when verification or setup failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
N=${1:-64}
REPS=${2:-3}
N1=${WALMGR_BENCH_N1:-$((4 * N))}
export WALMGR_BENCH_SUITE=${WALMGR_BENCH_SUITE:-all}
export WALMGR_BENCH_DIR=${WALMGR_BENCH_DIR:-/tmp/walmgr-bench}
export WALMGR_BENCH_PORT=${WALMGR_BENCH_PORT:-54371}
PG_CTL=/usr/lib/postgresql/15/bin/pg_ctl

if [ "$(id -u)" != 0 ]; then
    echo "run as root: the cluster runs as the postgres user, sshd as root" >&2
    exit 1
fi
case "$WALMGR_BENCH_DIR" in
    /tmp/?*|/var/tmp/?*) ;;
    *) echo "WALMGR_BENCH_DIR must be below /tmp or /var/tmp (it is removed afterwards)" >&2; exit 1 ;;
esac
case "$WALMGR_BENCH_SUITE" in
    local|ssh|all) ;;
    *) echo "WALMGR_BENCH_SUITE must be local, ssh or all" >&2; exit 1 ;;
esac

# stop_tree PID: TERM to PID's descendants, deepest first, then to PID (by pid only).
stop_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        stop_tree "$child"
    done
    kill "$1" 2>/dev/null || true
}

# Also runs when archive.py dies hard: never leave a postmaster, an sshd or a ControlMaster
# behind. archive.py does the same on its own way out; both are idempotent.
teardown() {
    local ssh_dir=$WALMGR_BENCH_DIR/ssh
    if [ -f "$WALMGR_BENCH_DIR/master/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_CTL" -D "$WALMGR_BENCH_DIR/master" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    if [ -S "$ssh_dir/cm/master.sock" ]; then
        runuser -u postgres -- timeout 10 ssh -F /dev/null -o ControlPath="$ssh_dir/cm/master.sock" \
            -O exit postgres@127.0.0.1 >/dev/null 2>&1 || true
    fi
    if [ -f "$ssh_dir/sshd.pid" ]; then
        local pid
        pid=$(cat "$ssh_dir/sshd.pid")
        # Only if that pid is still our sshd (its command line names our config).
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$ssh_dir/sshd_config"; then
            stop_tree "$pid"
        fi
    fi
    if [ "${WALMGR_BENCH_KEEP:-0}" != 1 ]; then
        rm -rf "$WALMGR_BENCH_DIR"
    fi
}
trap teardown EXIT

# shellcheck source=../scripts/lib.sh
source "$REPO/scripts/lib.sh"
if [ "${WALMGR_BENCH_RELEASE:-1}" = 1 ]; then
    install_extension 15 --release
fi

if [ "$WALMGR_BENCH_SUITE" != local ]; then
    build_cli --release
    say "building bench/ssh-probe (libssh2 raw channel throughput)"
    (cd "$HERE/ssh-probe" && CARGO_TARGET_DIR="$REPO/target/bench-ssh-probe" \
        cargo build -q --release --locked)
    missing=()
    for tool in sshd:openssh-server rsync:rsync zstd:zstd perf:linux-perf valgrind:valgrind; do
        command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool##*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # archive.py runs copies of these (a build running meanwhile cannot change them).
    export WALMGR_BENCH_CLI=$REPO/target/release/walmgr
    export WALMGR_BENCH_PROBE=$REPO/target/bench-ssh-probe/release/walmgr-ssh-probe
fi

if [ "$WALMGR_BENCH_SUITE" != ssh ] && ! command -v pgbackrest >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
fi

python3 "$HERE/archive.py" "$N" "$REPS" "$N1"
echo "bench/archive.sh wall time, build included: ${SECONDS} s"
