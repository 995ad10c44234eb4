#!/usr/bin/env bash
# bench-idle-clients.sh: slotgate's memory with 10,000 idle clients, and after large requests.
#
# Builds slotgate (cargo build --release), starts a local 3-primary cluster and slotgate in
# front of it (127.0.0.1, ports below 32768, temp dir, everything stopped on exit), raises
# the open-file limit, and runs scripts/idle_clients.py (Python 3 standard library):
# N connections each send one PING and stay idle; then an 8 MB SET and GET on a few of them;
# slotgate's RSS is read from /proc at each step. Prints the figures and writes them to
# target/bench/idle-clients.md. The issue's targets: RSS below 100 MB with 10,000 idle
# clients; RSS back near the idle figure once the large requests are done.
# slotgate's allocator (mimalloc) returns freed memory lazily, when the thread that freed it
# allocates again; set MIMALLOC_PURGE_DELAY=0 MIMALLOC_PURGE_DECOMMITS=1 in the environment
# to see slotgate's own buffer release without that delay (slotgate inherits it).
#
# Usage: scripts/bench-idle-clients.sh [options]
#   --clients N     idle connections                       (default 10000)
#   --big-conns N   connections that send the large request (default 10)
#   --big-mb N      size of the large value in MB           (default 8)
#   --threads N     slotgate --threads                      (default: slotgate's)
#   --settle S      seconds to wait before reading RSS      (default 3)
#   --no-ping       the idle connections send nothing (not even PING): shows how much of
#                   the per-connection cost is the read buffer a first request allocates
#   -h, --help      this text
set -euo pipefail

SCRIPT_NAME=bench-idle-clients
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

CLIENTS=10000
BIG_CONNS=10
BIG_MB=8
THREADS=
SETTLE=3
PING_ARGS=()

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
        --big-conns) need_value "$@"; BIG_CONNS=$2; shift 2 ;;
        --big-mb) need_value "$@"; BIG_MB=$2; shift 2 ;;
        --threads) need_value "$@"; THREADS=$2; shift 2 ;;
        --settle) need_value "$@"; SETTLE=$2; shift 2 ;;
        --no-ping) PING_ARGS=(--no-ping); shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $CLIENTS =~ ^[1-9][0-9]*$ ]] || die "--clients must be a positive number"

command -v python3 >/dev/null || {
    note "installing python3 with apt-get"
    apt_install python3
}

# slotgate and the Python client each hold one descriptor per connection.
NEED_FDS=$((CLIENTS + 1000))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $NEED_FDS ]]; then
    ulimit -n "$NEED_FDS" 2>/dev/null ||
        ulimit -n "$(ulimit -Hn)" ||
        die "cannot raise the open-file limit to $NEED_FDS (hard limit $(ulimit -Hn))"
fi
(($(ulimit -n) >= NEED_FDS)) ||
    note "open-file limit is $(ulimit -n), below $NEED_FDS: some connections may fail"

bench_init
ensure_redis
build_slotgate
SLOTGATE_ARGS=(--maxclients $((CLIENTS + 100)))
[[ -n $THREADS ]] && SLOTGATE_ARGS+=(--threads "$THREADS")

start_cluster 3
start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}"
note "slotgate on port $SLOTGATE_PORT (pid $SLOTGATE_PID); opening $CLIENTS connections"

python3 "$ROOT/scripts/idle_clients.py" --port "$SLOTGATE_PORT" --pid "$SLOTGATE_PID" \
    --clients "$CLIENTS" --big-conns "$BIG_CONNS" --big-mb "$BIG_MB" --settle "$SETTLE" \
    "${PING_ARGS[@]}" |
    tee "$WORK/figures.txt"

kv() { awk -F': ' -v k="$1" '$1 == k { print $2 }' "$WORK/figures.txt"; }
mb() { awk -v k="$(kv "$1" | awk '{print $1}')" 'BEGIN { printf "%.1f MB", k / 1024 }'; }
OUT=$ROOT/target/bench/idle-clients.md
mkdir -p "$(dirname "$OUT")"
{
    echo "# slotgate with $(kv clients) idle clients"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(machine_summary)"
    echo "- command: \`scripts/bench-idle-clients.sh\` (--clients $CLIENTS --big-conns $BIG_CONNS" \
        "--big-mb $BIG_MB${THREADS:+ --threads $THREADS} ${PING_ARGS[*]})" \
        "${MIMALLOC_PURGE_DELAY:+MIMALLOC_PURGE_DELAY=$MIMALLOC_PURGE_DELAY}" \
        "${MIMALLOC_PURGE_DECOMMITS:+MIMALLOC_PURGE_DECOMMITS=$MIMALLOC_PURGE_DECOMMITS}"
    echo
    echo "| step | slotgate RSS |"
    echo "|---|---:|"
    echo "| started, no client | $(mb rss_baseline_kb) |"
    if [[ ${#PING_ARGS[@]} -eq 0 ]]; then
        echo "| $(kv clients) idle clients (each sent PING) | $(mb rss_idle_kb) |"
    else
        echo "| $(kv clients) idle clients (silent: no request yet) | $(mb rss_idle_kb) |"
    fi
    echo "| right after ${BIG_MB} MB SET+GET on $BIG_CONNS of them | $(mb rss_after_big_kb) |"
    echo "| ${SETTLE} s later | $(mb rss_after_big_settled_kb) |"
    echo "| after one more PING on every connection | $(mb rss_after_ping_all_kb) |"
    echo "| all closed, ${SETTLE} s later | $(mb rss_after_close_kb) |"
    echo
    echo "Per idle connection: $(kv bytes_per_idle_connection) (RSS growth / connections);" \
        "opening them took $(kv open_seconds)."
} >"$OUT"
echo
cat "$OUT"
note "written to $OUT"
