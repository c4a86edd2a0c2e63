#!/usr/bin/env bash
# The lag benchmark of in-progress WAL shipping (issue 9, "Failover loses nothing"): under
# sustained pgbench on the master, how far the LSN the standby acknowledged as durable stays
# behind the master's flush LSN (p50/p99/max, bytes and ms, sampled every 10 ms), for
# walmgr's background worker at loop_delay 0.1 and 1.0, local and over SSH to 127.0.0.1, on
# PostgreSQL 15 (the worker polls) and 18 (woken on flush), against
# `pg_receivewal --synchronous` into a directory on the same machine; and the worker's CPU
# per GB shipped and when idle. About 5 minutes on a 2-core VM with the defaults.
# The measurement is bench/src/lag (walmgr-lag-bench, built on the end-to-end test harness:
# its Shipping scenarios, Cluster and Sshd); its doc comment gives the method and targets.
# This wrapper installs what is missing and builds.
#
#   bench/lag.sh [SECONDS=20] [RATE=300] [REPS=1]   (as root, after scripts/test or scripts/demo)
#
# SECONDS of pgbench per variant, at RATE transactions per second (0: unthrottled; a fixed
# rate gives every variant the same load); REPS > 1 repeats the variants in rotating order.
#
# Environment:
#   WALMGR_BENCH_MAJORS=15,18  the PostgreSQL majors to measure.
#   WALMGR_BENCH_RELEASE=1  build and install the extension as a release build for those
#                           majors first (default; a few minutes when cold). 0: measure the
#                           walmgr.so installed now, install nothing. The CLI the scenarios
#                           run (setup, the standby's xserve) is always this checkout's
#                           release build.
#   WALMGR_BENCH_KEEP=1     keep the bench directories (servers stopped) for inspection.
#
# The bench runs in directories /tmp/wm-lagNN-*-XXXXXX on free ports, and tears its servers,
# pg_receivewal and sshd down on any exit, Ctrl-C included.
#
# Exit status: 0 when the run completed (whether or not the targets were met: this is a
# measurement), non-zero when the set-up or a measurement failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
SECONDS_PER_VARIANT=${1:-20}
RATE=${2:-300}
REPS=${3:-1}
export WALMGR_BENCH_MAJORS=${WALMGR_BENCH_MAJORS:-15,18}
export WALMGR_BENCH_RELEASE=${WALMGR_BENCH_RELEASE:-1}

if [ "$(id -u)" != 0 ]; then
    echo "run as root: the clusters and pg_receivewal run as the postgres user, sshd as root" >&2
    exit 1
fi
if [ "${WALMGR_BENCH_KEEP:-0}" = 1 ]; then
    export WALMGR_KEEP_TEST_DIRS=1
fi

# shellcheck source=../scripts/lib.sh
source "$REPO/scripts/lib.sh"
if [ "$WALMGR_BENCH_RELEASE" = 1 ]; then
    IFS=, read -r -a majors <<<"$WALMGR_BENCH_MAJORS"
    for major in "${majors[@]}"; do
        install_extension "$major" --release
    done
fi
build_cli --release
export WALMGR_BENCH_CLI=$REPO/target/release/walmgr
export WALMGR_BENCH_TARGET=$REPO/target

# The sshd of the SSH variants (the harness starts its own, on a free port).
if [ ! -x /usr/sbin/sshd ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
fi

say "building the benchmark"
(cd "$REPO" && cargo build -q --release -p walmgr-bench --bin walmgr-lag-bench)
status=0
"$REPO/target/release/walmgr-lag-bench" "$SECONDS_PER_VARIANT" "$RATE" "$REPS" || status=$?
echo "bench/lag.sh wall time, build included: ${SECONDS} s"
exit "$status"
