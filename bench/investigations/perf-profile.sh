#!/usr/bin/env bash
# Where the machine's CPU goes for SECONDS: a system-wide cpu-clock profile (perf record -a),
# reported as CPUs kept busy per process, and, for PID (e.g. the archiver: SELECT pid FROM
# pg_stat_activity WHERE backend_type = 'archiver'), its samples by library and its hottest
# symbols. Start it, then the work to profile (e.g. a walmgr-ssh drain of bench/archive.sh).
#
#   bench/investigations/perf-profile.sh SECONDS [PID]     (as root)
set -euo pipefail
SECONDS_WANTED=${1:?usage: perf-profile.sh SECONDS [PID]}
PID=${2:-}
HZ=999
command -v perf >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
}
data=$(mktemp /tmp/walmgr-perf.XXXXXX)
trap 'rm -f "$data"' EXIT
perf record -q -e cpu-clock -F "$HZ" -a -o "$data" -- sleep "$SECONDS_WANTED" 2>/dev/null
# cpu-clock samples every CPU, idle included, HZ times a second: samples of a process / HZ /
# seconds = the CPUs it kept busy.
echo "CPUs busy by process over $SECONDS_WANTED s:"
perf report -i "$data" --stdio --no-children --sort comm -n 2>/dev/null |
    awk -v hz="$HZ" -v s="$SECONDS_WANTED" \
        '$1 ~ /%$/ && $3 != "swapper" { printf "  %-24s %.2f\n", $3, $2 / hz / s }'
if [ -n "$PID" ]; then
    echo
    echo "pid $PID: samples by library"
    perf report -i "$data" --stdio --no-children --pid "$PID" --percentage relative \
        --sort dso 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -5
    echo "pid $PID: hottest symbols"
    perf report -i "$data" --stdio --no-children --pid "$PID" --percentage relative \
        --sort dso,sym 2>/dev/null | grep -E '^\s+[0-9.]+%' | head -12
fi
