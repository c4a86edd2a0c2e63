#!/usr/bin/env bash
# The archive benchmark: how fast each archiver drains N ready WAL segments of a PostgreSQL
# 15 master. Two comparisons, by default both in one run (10-15 minutes on a 2-core VM):
#   local: walmgr against contrib basic_archive, `cp`, pgBackRest and a plain copy;
#   ssh:   walmgr over SSH to 127.0.0.1 (plain and zstd) against archive_command with rsync
#          over ssh, with and without ControlMaster, at 16 MB and at 1 MB segments (a
#          second cluster, initdb --wal-segsize=1), with the local transport as reference.
# The measurement is bench/src/archive (walmgr-archive-bench, built on the end-to-end test
# harness: its Cluster, Sshd, TestDir and Walmgr); its doc comment says how it gates and
# times. This wrapper installs what is missing and builds. What limits walmgr over SSH (raw
# channel rates, cipher calls, profiles) is in bench/investigations, not measured here.
#
#   bench/archive.sh [N=64] [REPS=3]   (as root, after scripts/test or scripts/demo)
#
# N is the number of 16 MB segments; the 1 MB cluster drains WALMGR_BENCH_N1 (default 4N).
#
# Environment:
#   WALMGR_BENCH_SUITE=all  local, ssh, or all (default).
#   WALMGR_BENCH_RELEASE=1  build and install the extension as a release build first (default;
#                           a few minutes when cold). 0: measure the walmgr.so installed now,
#                           install nothing. The ssh suite always builds the release CLI of
#                           this checkout (the standby's `walmgr xserve`).
#   WALMGR_BENCH_KEEP=1     keep the bench directory (servers stopped) for inspection.
#
# The bench runs in a directory /tmp/wm-archbench-XXXXXX on free ports, and tears its
# servers and sshd down on any exit, Ctrl-C included.
#
# Exit status: 0 when every variant's output matched the master's files (whether or not
# the targets were met: this is a measurement), 2 when verification failed, other non-zero
# when the set-up failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
N=${1:-64}
REPS=${2:-3}
N1=${WALMGR_BENCH_N1:-$((4 * N))}
export WALMGR_BENCH_SUITE=${WALMGR_BENCH_SUITE:-all}
export WALMGR_BENCH_RELEASE=${WALMGR_BENCH_RELEASE:-1}

if [ "$(id -u)" != 0 ]; then
    echo "run as root: the cluster runs as the postgres user, sshd as root" >&2
    exit 1
fi
case "$WALMGR_BENCH_SUITE" in
    local|ssh|all) ;;
    *) echo "WALMGR_BENCH_SUITE must be local, ssh or all" >&2; exit 1 ;;
esac
if [ "${WALMGR_BENCH_KEEP:-0}" = 1 ]; then
    export WALMGR_KEEP_TEST_DIRS=1
fi

# shellcheck source=../scripts/lib.sh
source "$REPO/scripts/lib.sh"
if [ "$WALMGR_BENCH_RELEASE" = 1 ]; then
    install_extension 15 --release
fi

tools=()
if [ "$WALMGR_BENCH_SUITE" != local ]; then
    build_cli --release
    export WALMGR_BENCH_CLI=$REPO/target/release/walmgr
    tools+=(sshd:openssh-server rsync:rsync zstd:zstd)
fi
if [ "$WALMGR_BENCH_SUITE" != ssh ]; then
    tools+=(pgbackrest:pgbackrest)
fi
missing=()
for tool in "${tools[@]}"; do
    command -v "${tool%%:*}" >/dev/null || [ -x "/usr/sbin/${tool%%:*}" ] || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

say "building the benchmark"
(cd "$REPO" && cargo build -q --release -p walmgr-bench --bin walmgr-archive-bench)
status=0
"$REPO/target/release/walmgr-archive-bench" "$N" "$REPS" "$N1" || status=$?
echo "bench/archive.sh wall time, build included: ${SECONDS} s"
exit "$status"
