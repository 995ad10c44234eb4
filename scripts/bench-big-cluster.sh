#!/usr/bin/env bash
# bench-big-cluster.sh: slotgate in front of a 30-primary cluster and 10,000 clients,
# next to slotgate in front of a 3-primary cluster.
#
# Builds slotgate (cargo build --release), starts two local clusters (3 and 30 primaries,
# no replicas; 127.0.0.1, ports below 32768, temp dir) with one slotgate in front of each
# (default --threads), raises the open-file limit, and runs redis-benchmark against both
# slotgates, interleaved, with 50 and with 10,000 clients, SET and GET, pipeline 1 and 16,
# random keys (-r 100000). With 30 primaries each slotgate worker holds 30 backend
# connections instead of 3, so each one carries a tenth of the commands and write batches
# get smaller; the question is whether throughput, and throughput per CPU second of
# slotgate, hold up. Prints medians (ops/s, p99, slotgate CPU seconds per million
# commands, ops per slotgate CPU second, the redis-servers' CPU, slotgate RSS) and the
# 30-primary / 3-primary ratios; writes them to target/bench/big-cluster.md.
# If redis-benchmark cannot run 10,000 clients here, the client count is lowered
# (10000 -> 5000 -> 2000 -> 1000) and the table says what was reached.
#
# Usage: scripts/bench-big-cluster.sh [options]
#   --reps N        repetitions                     (default 3)
#   --clients LIST  client counts                   (default 50,10000)
#   --big N         primaries of the large cluster  (default 30)
#   --threads N     slotgate --threads              (default: slotgate's)
#   --seconds S     target duration of one run      (default 2.5)
#   -h, --help      this text
set -euo pipefail

SCRIPT_NAME=bench-big-cluster
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

REPS=3
CLIENT_LIST=50,10000
BIG=30
THREADS=
SECONDS_PER_RUN=2.5
TESTS=(set get)
PIPES=(1 16)
KEYSPACE=100000

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

ARGS=("$@")
while [[ $# -gt 0 ]]; do
    case $1 in
        --reps) need_value "$@"; REPS=$2; shift 2 ;;
        --clients) need_value "$@"; CLIENT_LIST=$2; shift 2 ;;
        --big) need_value "$@"; BIG=$2; shift 2 ;;
        --threads) need_value "$@"; THREADS=$2; shift 2 ;;
        --seconds) need_value "$@"; SECONDS_PER_RUN=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"
[[ $BIG =~ ^[0-9]+$ ]] || die "--big must be a number"
((BIG >= 3 && BIG <= 2000)) || die "--big must be 3..2000"
IFS=, read -ra CLIENTS <<<"$CLIENT_LIST"

MAX_CLIENTS=0
for c in "${CLIENTS[@]}"; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "--clients takes positive numbers"
    ((c > MAX_CLIENTS)) && MAX_CLIENTS=$c
done
NEED_FDS=$((MAX_CLIENTS + 1000))
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt $NEED_FDS ]]; then
    ulimit -n "$NEED_FDS" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
note "open-file limit $(ulimit -n) (want $NEED_FDS for $MAX_CLIENTS clients)"

bench_init
ensure_redis
build_slotgate
SLOTGATE_ARGS=(--maxclients $((MAX_CLIENTS + 1000)))
[[ -n $THREADS ]] && SLOTGATE_ARGS+=(--threads "$THREADS")

LOAD_START=$(load_average)
note "starting a 3-primary and a $BIG-primary cluster, each with slotgate in front"
start_cluster 3
SMALL_PIDS=("${CLUSTER_PIDS[@]}")
start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}"
SMALL_PORT=$SLOTGATE_PORT
SMALL_SG=$SLOTGATE_PID
start_cluster "$BIG"
BIG_PIDS=("${CLUSTER_PIDS[@]}")
start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}"
BIG_PORT=$SLOTGATE_PORT
BIG_SG=$SLOTGATE_PID
SLOTGATE_THREADS=${THREADS:-$(nproc)}

# Background CPU of each idle cluster (server cron, cluster bus gossip): it is part of the
# servers' CPU in every run, and grows with the number of nodes.
IDLE_SECONDS=5
idle0_small=$(cpu_ticks "${SMALL_PIDS[@]}")
idle0_big=$(cpu_ticks "${BIG_PIDS[@]}")
sleep "$IDLE_SECONDS"
IDLE_SMALL=$(awk -v t="$(($(cpu_ticks "${SMALL_PIDS[@]}") - idle0_small))" -v hz="$CLK_TCK" \
    -v s="$IDLE_SECONDS" 'BEGIN { printf "%.1f", 100 * t / hz / s }')
IDLE_BIG=$(awk -v t="$(($(cpu_ticks "${BIG_PIDS[@]}") - idle0_big))" -v hz="$CLK_TCK" \
    -v s="$IDLE_SECONDS" 'BEGIN { printf "%.1f", 100 * t / hz / s }')
note "idle clusters use $IDLE_SMALL% (3 primaries) and $IDLE_BIG% ($BIG primaries) of a core"

RUNS=$WORK/runs.tsv
printf 'rep\tcluster\tclients\ttest\tpipeline\trequests\tseconds\trps\tp50_ms\tp99_ms\tproxy_ticks\tserver_ticks\trss_kb\n' >"$RUNS"

# Runs redis-benchmark against the slotgate of cluster $2 ("small" or "big"); sets RUN_*;
# records the run unless $1 is "cal". Returns 1 when redis-benchmark failed.
run_one() {
    local rep=$1 which=$2 clients=$3 test=$4 pipe=$5 n=$6 port sg servers
    if [[ $which == small ]]; then
        port=$SMALL_PORT sg=$SMALL_SG servers=("${SMALL_PIDS[@]}")
    else
        port=$BIG_PORT sg=$BIG_SG servers=("${BIG_PIDS[@]}")
    fi
    local out=$WORK/out.csv err=$WORK/err.txt p0 p1 s0 s1 t0 t1
    p0=$(cpu_ticks "$sg")
    s0=$(cpu_ticks "${servers[@]}")
    t0=$EPOCHREALTIME
    if ! redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$n" -r "$KEYSPACE" \
        -P "$pipe" -t "$test" --csv >"$out" 2>"$err"; then
        note "redis-benchmark -c $clients failed: $(tail -2 "$err")"
        return 1
    fi
    t1=$EPOCHREALTIME
    p1=$(cpu_ticks "$sg")
    s1=$(cpu_ticks "${servers[@]}")
    RUN_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    read -r RUN_RPS RUN_P50 RUN_P99 < <(tail -1 "$out" | tr -d '"' |
        awk -F, '{ print $2, $5, $7 }')
    if ! [[ $RUN_RPS =~ ^[0-9.]+$ ]]; then
        note "no result from redis-benchmark -c $clients: $(tail -2 "$err")"
        return 1
    fi
    if grep -qi error "$err"; then
        note "WARNING: errors from $which -c $clients $test: $(grep -i -m1 error "$err")"
    fi
    [[ $rep == cal ]] && return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$which" \
        "$clients" "$test" "$pipe" "$n" "$RUN_SECONDS" "$RUN_RPS" "$RUN_P50" "$RUN_P99" \
        "$((p1 - p0))" "$((s1 - s0))" "$(rss_kb "$sg")" >>"$RUNS"
}

# Calibrate per cell; find how many clients redis-benchmark manages.
declare -A REQUESTS=()
REACHED=()
for clients in "${CLIENTS[@]}"; do
    tried=$clients
    while :; do
        cal_n=$((tried * 20))
        ((cal_n < 20000)) && cal_n=20000
        if run_one cal small "$tried" set 1 "$cal_n" && run_one cal big "$tried" set 1 "$cal_n"; then
            break
        fi
        case $tried in
            10000) tried=5000 ;;
            5000) tried=2000 ;;
            2000) tried=1000 ;;
            *) die "redis-benchmark does not run with $tried clients here" ;;
        esac
        note "retrying with $tried clients"
    done
    [[ $tried != "$clients" ]] && note "$clients clients could not run here; using $tried"
    REACHED+=("$tried")
    for test in "${TESTS[@]}"; do
        for pipe in "${PIPES[@]}"; do
            best=0
            for which in small big; do
                run_one cal "$which" "$tried" "$test" "$pipe" "$cal_n" ||
                    die "calibration failed"
                best=$(awk -v a="$best" -v b="$RUN_RPS" 'BEGIN { print (b > a ? b : a) }')
            done
            REQUESTS[$tried-$test-$pipe]=$(awk -v r="$best" -v s="$SECONDS_PER_RUN" \
                -v c="$cal_n" 'BEGIN { n = int(r * s / 1000 + 1) * 1000; print (n > c ? n : c) }')
        done
    done
done

for ((rep = 1; rep <= REPS; rep++)); do
    for clients in "${REACHED[@]}"; do
        for test in "${TESTS[@]}"; do
            for pipe in "${PIPES[@]}"; do
                order=(small big)
                ((rep % 2 == 0)) && order=(big small)
                for which in "${order[@]}"; do
                    n=${REQUESTS[$clients-$test-$pipe]}
                    run_one "$rep" "$which" "$clients" "$test" "$pipe" "$n" ||
                        die "redis-benchmark failed during the measured runs"
                    note "rep $rep $which -c $clients $test P$pipe: $RUN_RPS ops/s" \
                        "p99 $RUN_P99 ms (${RUN_SECONDS}s)"
                done
            done
        done
    done
done
LOAD_END=$(load_average)

med() {
    awk -F'\t' -v col="$1" -v w="$2" -v c="$3" -v t="$4" -v p="$5" \
        'NR > 1 && $2 == w && $3 == c && $4 == t && $5 == p { print $col }' "$RUNS" | median
}
# Median CPU seconds per million commands from ticks column $1.
med_cpu() {
    awk -F'\t' -v col="$1" -v w="$2" -v c="$3" -v t="$4" -v p="$5" -v hz="$CLK_TCK" \
        'NR > 1 && $2 == w && $3 == c && $4 == t && $5 == p { printf "%.4f\n", $col / hz / $6 * 1e6 }' \
        "$RUNS" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

OUT=$ROOT/target/bench/big-cluster.md
mkdir -p "$(dirname "$OUT")"
{
    echo "# slotgate: $BIG-primary cluster vs 3-primary cluster"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(machine_summary)"
    echo "- load average: $LOAD_START at start, $LOAD_END at the end"
    echo "- command: \`scripts/bench-big-cluster.sh ${ARGS[*]}\`; slotgate --threads" \
        "$SLOTGATE_THREADS; clients reached: ${REACHED[*]} (asked: ${CLIENTS[*]});" \
        "$REPS repetitions, interleaved, medians"
    echo "- CPU = CPU seconds per million commands; ops/CPU-s = commands per second of" \
        "slotgate CPU (throughput per core); servers = all the cluster's redis-servers," \
        "including their background work: idle, the 3-primary cluster used $IDLE_SMALL% of a" \
        "core and the $BIG-primary one $IDLE_BIG%"
    echo
    echo "| clients | test | P | primaries | ops/s | p50 ms | p99 ms | slotgate CPU | ops/CPU-s | servers CPU | RSS MB |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for clients in "${REACHED[@]}"; do
        for test in "${TESTS[@]}"; do
            for pipe in "${PIPES[@]}"; do
                for which in small big; do
                    primaries=3
                    [[ $which == big ]] && primaries=$BIG
                    cpu=$(med_cpu 11 "$which" "$clients" "$test" "$pipe")
                    awk -v c="$clients" -v t="${test^^}" -v p="$pipe" -v n="$primaries" \
                        -v rps="$(med 8 "$which" "$clients" "$test" "$pipe")" \
                        -v p50="$(med 9 "$which" "$clients" "$test" "$pipe")" \
                        -v p99="$(med 10 "$which" "$clients" "$test" "$pipe")" -v cpu="$cpu" \
                        -v srv="$(med_cpu 12 "$which" "$clients" "$test" "$pipe")" \
                        -v rss="$(med 13 "$which" "$clients" "$test" "$pipe")" \
                        'BEGIN { printf "| %s | %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %.0f | %.3f | %.1f |\n",
                            c, t, p, n, rps, p50, p99, cpu, (cpu > 0 ? 1e6 / cpu : 0), srv, rss / 1024 }'
                done
            done
        done
    done
    echo
    echo "$BIG primaries / 3 primaries:"
    echo
    echo "| clients | test | P | throughput | slotgate CPU per command | p99 |"
    echo "|---:|---|---:|---:|---:|---:|"
    for clients in "${REACHED[@]}"; do
        for test in "${TESTS[@]}"; do
            for pipe in "${PIPES[@]}"; do
                echo "| $clients | ${test^^} | $pipe" \
                    "| $(ratio "$(med 8 big "$clients" "$test" "$pipe")" "$(med 8 small "$clients" "$test" "$pipe")")" \
                    "| $(ratio "$(med_cpu 11 big "$clients" "$test" "$pipe")" "$(med_cpu 11 small "$clients" "$test" "$pipe")")" \
                    "| $(ratio "$(med 10 big "$clients" "$test" "$pipe")" "$(med 10 small "$clients" "$test" "$pipe")") |"
            done
        done
    done
} >"$WORK/report.md"
cp "$WORK/report.md" "$OUT"
cp "$RUNS" "$ROOT/target/bench/big-cluster-runs.tsv"
echo
cat "$OUT"
note "written to $OUT"
