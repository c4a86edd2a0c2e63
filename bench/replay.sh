#!/usr/bin/env bash
# The replay benchmark (issue 12, recovery time): a standby restored from a base backup
# replays 1 GiB of archived pgbench WAL (256 MB at 1 MB segments), with `walmgr xrestore`, `cp`,
# pgBackRest archive-get (synchronous and asynchronous) as restore_command, and with the
# segments already in pg_wal (PostgreSQL's replay alone); cold and warm page cache; at 16 MB
# and at 1 MB segments. Before each segment size's replays it times each restore command
# alone per segment and splits walmgr's time into process start, config load and copy.
# The measurement is bench/src/replay (walmgr-replay-bench, on the end-to-end test harness);
# its doc comment gives the method. This wrapper installs what is missing and builds.
#
#   bench/replay.sh [REPS=5]   (as root; about 15 minutes on an idle 2-core VM with the
#                            defaults, longer on a busy one: the replays are CPU-bound)
#
# Environment:
#   WALMGR_BENCH_WAL_MB=1024   WAL replayed per run at 16 MB segments;
#   WALMGR_BENCH_SMALL_WAL_MB=256  the same for smaller segments (the point there is the
#                              cost per segment). WALMGR_BENCH_QUICK=1: 256 and 64, REPS 3.
#   WALMGR_BENCH_SEGSIZES=16,1 segment sizes in MB, one primary each.
#   WALMGR_BENCH_CACHE=warm,cold  (none: no replays, only the per-segment timing)
#   WALMGR_BENCH_ONLY=         a comma list of variants (walmgr,cp,pgbackrest,
#                              pgbackrest-async,pg_wal); default all.
#   WALMGR_BENCH_MICRO=64      calls per tool in the per-segment timing; 0 skips it.
#   WALMGR_BENCH_OTHER_CLIS=   LABEL=PATH,...: other walmgr binaries (main's, say) measured
#                              beside this checkout's as the variants walmgr-LABEL.
#   WALMGR_BENCH_STATIC_OPENSSL=1  also build walmgr with OpenSSL linked statically and
#                              measure it as walmgr-static-openssl.
#   WALMGR_BENCH_KEEP=1        keep the bench directory (servers stopped) for inspection.
#
# Cold runs drop the whole machine's page cache (echo 3 > /proc/sys/vm/drop_caches).
# The bench runs in /tmp/wm-replaybench-XXXXXX on free ports, and tears its servers down on
# any exit, Ctrl-C included.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
if [ "${WALMGR_BENCH_QUICK:-0}" = 1 ]; then
    export WALMGR_BENCH_WAL_MB=${WALMGR_BENCH_WAL_MB:-256}
    export WALMGR_BENCH_SMALL_WAL_MB=${WALMGR_BENCH_SMALL_WAL_MB:-64}
    REPS=${1:-3}
else
    REPS=${1:-5}
fi

if [ "$(id -u)" != 0 ]; then
    echo "run as root: the servers run as the postgres user, cold runs drop the page cache" >&2
    exit 1
fi
if [ "${WALMGR_BENCH_KEEP:-0}" = 1 ]; then
    export WALMGR_KEEP_TEST_DIRS=1
fi

# shellcheck source=../scripts/lib.sh
source "$REPO/scripts/lib.sh"
if ! command -v pgbackrest >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
fi
build_cli --release
export WALMGR_BENCH_CLI=$REPO/target/release/walmgr

# walmgr with OpenSSL linked in statically (libssh2's, for the SSH transport): the
# dynamic loader's work for libssl and libcrypto is most of what a walmgr process costs
# before its copy starts. In its own target dir, so the two builds do not rebuild each other.
if [ "${WALMGR_BENCH_STATIC_OPENSSL:-0}" = 1 ]; then
    say "building the walmgr CLI with OpenSSL linked statically"
    (cd "$REPO" && OPENSSL_STATIC=1 \
        OPENSSL_LIB_DIR=$(pkg-config --variable=libdir openssl) \
        OPENSSL_INCLUDE_DIR=$(pkg-config --variable=includedir openssl) \
        CARGO_TARGET_DIR="$REPO/target/static-openssl" cargo build -q --release -p walmgr-cli)
    export WALMGR_BENCH_OTHER_CLIS="${WALMGR_BENCH_OTHER_CLIS:+$WALMGR_BENCH_OTHER_CLIS,}static-openssl=$REPO/target/static-openssl/release/walmgr"
fi

say "building the benchmark"
(cd "$REPO" && cargo build -q --release -p walmgr-bench --bin walmgr-replay-bench)
status=0
"$REPO/target/release/walmgr-replay-bench" "$REPS" || status=$?
echo "bench/replay.sh wall time, build included: ${SECONDS} s"
exit "$status"
