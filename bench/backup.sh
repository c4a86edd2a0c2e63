#!/usr/bin/env bash
# Base backup and restore throughput: walmgr against pg_basebackup -Fp -X none (and cp -a for
# restore). Usage: bench/backup.sh [REPS=3] [PGBENCH_SCALE=70]. Run as root; prints a table.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/lib.sh"
prepare_machine
(cd "$repo" && cargo build -q --release -p walmgr-cli)
exec python3 "$repo/bench/backup.py" "${1:-3}" "${2:-70}" "$repo/target/release/walmgr"
