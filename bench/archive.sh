#!/usr/bin/env bash
# The archive benchmark: how fast each archiver drains N ready WAL segments of a PostgreSQL
# 15 master, compared with contrib basic_archive, `cp`, pgBackRest and a plain copy.
# The measurement itself is bench/archive.py; this wrapper prepares the machine and
# guarantees the teardown.
#
#   bench/archive.sh [N=64] [REPS=3]          (as root, after scripts/test or scripts/demo)
#
# Environment:
#   WALMGR_BENCH_RELEASE=1  build and install the extension as a release build first (default;
#                           a few minutes when cold). 0: measure the walmgr.so installed now.
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
export WALMGR_BENCH_DIR=${WALMGR_BENCH_DIR:-/tmp/walmgr-bench}
export WALMGR_BENCH_PORT=${WALMGR_BENCH_PORT:-54371}
PG_CTL=/usr/lib/postgresql/15/bin/pg_ctl

if [ "$(id -u)" != 0 ]; then
    echo "run as root: the cluster runs as the postgres user" >&2
    exit 1
fi
case "$WALMGR_BENCH_DIR" in
    /tmp/?*|/var/tmp/?*) ;;
    *) echo "WALMGR_BENCH_DIR must be below /tmp or /var/tmp (it is removed afterwards)" >&2; exit 1 ;;
esac

# Also runs when archive.py dies hard: never leave a postmaster behind. archive.py does the
# same on its own way out; both are idempotent.
teardown() {
    if [ -f "$WALMGR_BENCH_DIR/master/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_CTL" -D "$WALMGR_BENCH_DIR/master" -m immediate -w stop \
            >/dev/null 2>&1 || true
    fi
    if [ "${WALMGR_BENCH_KEEP:-0}" != 1 ]; then
        rm -rf "$WALMGR_BENCH_DIR"
    fi
}
trap teardown EXIT

if [ "${WALMGR_BENCH_RELEASE:-1}" = 1 ]; then
    # Only the extension is measured; the walmgr CLI plays no part, so it is not built.
    # shellcheck source=../scripts/lib.sh
    source "$REPO/scripts/lib.sh"
    install_extension 15 --release
fi

if ! command -v pgbackrest >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
fi

python3 "$HERE/archive.py" "$N" "$REPS"
