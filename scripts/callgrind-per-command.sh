#!/usr/bin/env bash
# callgrind-per-command.sh: user-space instructions per forwarded command, under callgrind.
#
# Wall-clock throughput on a shared 2-core machine moves by +-30% with the neighbours' load;
# an instruction count does not. This script starts a local cluster (3 primaries, --replicas
# each), runs slotgate (or predixy, with --predixy) under `valgrind --tool=callgrind`, warms
# it up with redis-benchmark, then for each test zeroes the counters, runs N requests and
# dumps: instructions (Ir) of the whole proxy process between zero and dump, divided by N.
# Kernel work (system calls) is not counted: see `strace -c` for that.
#
# Caveat: under valgrind the proxy runs ~30x slower than natively, so more clients' requests
# wait in each event-loop turn and batches are larger than in a native run; compare binaries
# with the same settings, not the figure with a native profile.
#
# Usage: scripts/callgrind-per-command.sh [options]
#   --bin PATH        slotgate binary                  (default: cargo build --release)
#   --predixy PATH    profile this predixy binary instead of slotgate
#   --tests LIST      redis-benchmark tests            (default get,set)
#   --requests N      requests per measured test       (default 20000)
#   --clients N       redis-benchmark connections      (default 50)
#   --pipeline N      pipeline depth                   (default 1)
#   --threads N       proxy worker threads             (default 1)
#   --replicas N      replicas per primary             (default 0)
#   --label NAME      names the output files           (default slotgate or predixy)
#   -- ARGS           further slotgate flags
#   -h, --help        this text
# Prints one line per test; the callgrind dumps and `callgrind_annotate` of each go to
# target/bench/callgrind-<label>-<test>-P<pipeline>.{out,txt}.
set -euo pipefail

SCRIPT_NAME=callgrind-per-command
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

BIN= PREDIXY= TESTS=get,set REQUESTS=20000 CLIENTS=50 PIPELINE=1 THREADS=1 REPLICAS=0 LABEL=
EXTRA=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --bin) need_value "$@"; BIN=$2; shift 2 ;;
        --predixy) need_value "$@"; PREDIXY=$2; shift 2 ;;
        --tests) need_value "$@"; TESTS=$2; shift 2 ;;
        --requests) need_value "$@"; REQUESTS=$2; shift 2 ;;
        --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
        --pipeline) need_value "$@"; PIPELINE=$2; shift 2 ;;
        --threads) need_value "$@"; THREADS=$2; shift 2 ;;
        --replicas) need_value "$@"; REPLICAS=$2; shift 2 ;;
        --label) need_value "$@"; LABEL=$2; shift 2 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
command -v valgrind >/dev/null || apt_install valgrind
command -v callgrind_control >/dev/null || die "callgrind_control is missing (valgrind package)"

bench_init
ensure_redis
start_cluster 3 "$REPLICAS"
OUT_DIR=$ROOT/target/bench
mkdir -p "$OUT_DIR"
CG_OUT=$WORK/callgrind.out
WRAP=(valgrind --tool=callgrind --callgrind-out-file="$CG_OUT" --dump-instr=no
    --collect-atstart=yes)
if [[ -n $PREDIXY ]]; then
    LABEL=${LABEL:-predixy}
    PREDIXY_BIN=$PREDIXY
    # start_predixy runs the binary directly: wrap it by pointing PREDIXY_BIN at a shim.
    printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${WRAP[*]}" "$(realpath "$PREDIXY")" \
        >"$WORK/predixy-wrapped"
    chmod +x "$WORK/predixy-wrapped"
    PREDIXY_BIN=$WORK/predixy-wrapped
    start_predixy "$THREADS" "${CLUSTER_PORTS[@]}"
    PORT=$PREDIXY_PORT PID=$PREDIXY_PID
else
    LABEL=${LABEL:-slotgate}
    if [[ -z $BIN ]]; then
        build_slotgate
    else
        SLOTGATE_BIN=$(realpath "$BIN")
    fi
    SLOTGATE_WRAP=("${WRAP[@]}")
    STARTUP_SECONDS=120
    start_slotgate "$SEEDS" --threads "$THREADS" "${EXTRA[@]}"
    PORT=$SLOTGATE_PORT PID=$SLOTGATE_PID
fi

bench() {
    redis-benchmark -h 127.0.0.1 -p "$PORT" -c "$CLIENTS" -n "$1" -r 100000 -P "$PIPELINE" \
        -t "$2" -q >/dev/null 2>"$WORK/bench.err" || die "redis-benchmark failed: $(tail -2 "$WORK/bench.err")"
}

# Warm-up: connections opened, buffers grown, keys written before GET reads them.
IFS=, read -ra TEST_LIST <<<"$TESTS"
bench $((REQUESTS / 2)) set
for test in "${TEST_LIST[@]}"; do
    bench $((REQUESTS / 4)) "$test"
done

for test in "${TEST_LIST[@]}"; do
    rm -f "$CG_OUT".*
    callgrind_control -z "$PID" >/dev/null 2>&1
    bench "$REQUESTS" "$test"
    callgrind_control -d "$PID" >/dev/null 2>&1
    dump=$(ls -t "$CG_OUT".* 2>/dev/null | head -1)
    [[ -n $dump ]] || die "callgrind wrote no dump"
    # Several threads may each write a part: sum every "totals:"/"summary:" line.
    total=$(cat "$CG_OUT".* | awk '/^totals:/ { t += $2 } /^summary:/ { s += $2 } END { print (t > 0 ? t : s) + 0 }')
    base=$OUT_DIR/callgrind-$LABEL-$test-P$PIPELINE
    cat "$CG_OUT".* >"$base.out"
    callgrind_annotate "$dump" 2>/dev/null | head -60 >"$base.txt" || true
    awk -v t="$total" -v n="$REQUESTS" -v test="${test^^}" -v p="$PIPELINE" -v l="$LABEL" \
        -v c="$CLIENTS" -v th="$THREADS" 'BEGIN {
            printf "%s %s P%s, %s clients, %s thread(s): %.0f instructions per command (%d over %d)\n",
                l, test, p, c, th, t / n, t, n }'
done
