#!/usr/bin/env bash
# The remote backup benchmark of issue 10: a PostgreSQL 15 master's base backup (pgbench
# scale SCALE, 1 GB and more at 70) copied to the standby host across the test harness's
# two hosts (network namespaces joined by a veth pair), cold cache, variants interleaved,
# medians of REPS: walmgr `backup` over SSH with and without `compression`, walmgr3's way
# (rsync -a over ssh, then sync) and pg_basebackup -Fp -X none run on the standby host;
# then the same over the link limited to 100 Mbit/s with tc. Prints a table per link
# (median/min/max s, MB/s, ratio to rsync, peak RSS on each host) and the targets.
# About 25-30 minutes at the defaults, most of it the 100 Mbit/s phase.
#
#   bench/backup-ssh.sh [REPS=3] [SCALE=70]   (as root, on Debian 12)
#
# The measurement is bench/src/backup_ssh (walmgr-backup-ssh-bench, on the end-to-end test
# harness); its doc comment says how it times and checks. This wrapper installs what is
# missing, builds the release CLI (both hosts run it) and the bench, and waits (up to
# WALMGR_BENCH_WAIT_QUIET seconds, default 1800) while another benchmark or a build runs on
# the machine, so that the timings are not shared with it.
#
# Environment:
#   WALMGR_BENCH_LINKS=open,slow       which phases run (default both).
#   WALMGR_BENCH_CLI_B=PATH            a second walmgr build, run on both hosts beside this
#                                      checkout's (variants "walmgr B", "walmgr B compression"):
#                                      a before/after comparison in one interleaved run;
#                                      WALMGR_BENCH_CLI_B_NOTE says what it is in the output.
#   WALMGR_BENCH_ONLY=NAME,...         only the variants so named (e.g. "walmgr,rsync -a + sync").
#   WALMGR_BENCH_PROFILE=DIR           a system-wide `perf record -g` of every timed run into DIR
#                                      (perf costs the runs some CPU: not for the tables).
#   WALMGR_BENCH_INSTALL_EXTENSION=1   build and install walmgr.so for PostgreSQL 15 (release)
#                                      even if one is installed (the master archives through
#                                      it; backups do not go through it). Default: only when
#                                      missing, as replacing it disturbs others' servers.
#   WALMGR_BENCH_KEEP=1                keep the bench directory (servers stopped).
#
# The bench runs in /tmp/wm-bkbench-XXXXXX and two network namespaces wm-m-PID-0 and
# wm-s-PID-0, and tears its servers, sshd and namespaces down on any exit, Ctrl-C included.
# Exit status: 0 when every copy held the master's files (whether or not the targets were
# met: this is a measurement), 2 when one did not, other non-zero when the set-up failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
REPS=${1:-3}
SCALE=${2:-70}
WAIT_QUIET=${WALMGR_BENCH_WAIT_QUIET:-1800}
if [ "${WALMGR_BENCH_KEEP:-0}" = 1 ]; then
    export WALMGR_KEEP_TEST_DIRS=1
fi

# shellcheck source=../scripts/lib.sh
source "$REPO/scripts/lib.sh"
prepare_machine
if [ "${WALMGR_BENCH_INSTALL_EXTENSION:-0}" = 1 ] \
    || [ ! -e "$("$(pg_config_of 15)" --pkglibdir)/walmgr.so" ]; then
    install_extension 15 --release
fi
build_cli --release
say "building the benchmark"
(cd "$REPO" && cargo build -q --release -p walmgr-bench --bin walmgr-backup-ssh-bench)

# Other work that would share the 2 CPUs and the disk with the timed runs.
others() {
    pgrep -a -f 'walmgr-lag-bench|walmgr-archive-bench|walmgr-backup-ssh-bench|cargo (test|build|pgrx)|rustc' \
        | grep -v "^$$ " || true
}
waited=0
while [ -n "$(others)" ] && [ "$waited" -lt "$WAIT_QUIET" ]; do
    say "waiting for other work to finish (${waited}s of ${WAIT_QUIET}s): $(others | cut -c1-100 | head -n 3 | tr '\n' ';')"
    sleep 60
    waited=$((waited + 60))
done
if [ -n "$(others)" ]; then
    say "still running after ${WAIT_QUIET}s, measuring anyway (the bench notes it): $(others | cut -c1-100 | head -n 3 | tr '\n' ';')"
fi

export WALMGR_BENCH_CLI=$REPO/target/release/walmgr
status=0
"$REPO/target/release/walmgr-backup-ssh-bench" "$REPS" "$SCALE" || status=$?
echo "bench/backup-ssh.sh wall time, build and waiting included: ${SECONDS} s"
exit "$status"
