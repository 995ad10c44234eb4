#!/usr/bin/env bash
# bench.sh: slotgate's throughput, latency, CPU and memory next to the raw cluster's.
#
# Builds slotgate (cargo build --release), starts a local Redis Cluster (3 primaries, no
# replicas), a standalone redis-server and slotgate in front of the cluster, all on
# 127.0.0.1 ports below 32768 in a temp dir, then runs redis-benchmark against
#   cluster   the raw cluster, cluster-aware (`redis-benchmark --cluster`)
#   node      one standalone redis-server (cluster mode off: one node serves every key)
#   slotgate  slotgate in front of the cluster (plain, non-cluster client)
#   slotgate-base  with --compare-bin: a second slotgate binary (say, the build of the
#             commit before a change) in front of the same cluster, interleaved with the
#             others in the same run, so before and after share the machine's conditions
# for SET, GET and MSET at pipeline 1, 16 and 64 with 50 clients and random keys
# (-r 100000). Targets are interleaved (a different order each repetition) and each cell
# reports the median over the repetitions. Request counts are calibrated so a run lasts
# about --seconds (default 2.5 s, at least 2 s). Everything it started is stopped on exit.
#
# MSET: redis-benchmark's MSET sends 10 random keys. With --cluster it gives them one hash
# tag per client, so each MSET goes to one node; through slotgate (and to the standalone
# node) the keys are untagged, land in different slots, and slotgate splits each MSET into
# one part per slot (~10) and merges the replies. So the MSET row compares slotgate's split
# path with the cluster's single-node path.
#
# Per cell it prints ops/s, p50/p99 (ms, from redis-benchmark --csv), the ratio to the raw
# cluster, CPU seconds per million client commands of slotgate and of the redis-servers
# (utime+stime from /proc/<pid>/stat before and after each run), and slotgate's RSS. The
# table also goes to target/bench/latest.md, the raw runs to target/bench/latest-runs.tsv.
# memtier_benchmark is used too when installed or installable (Debian bookworm has no
# package for it: a note is printed and it is skipped).
#
# Usage: scripts/bench.sh [options]
#   --reps N          repetitions per cell                         (default 5)
#   --quick           smoke run: 1 repetition of about 0.5 s per run
#   --threads N       slotgate --threads                           (default: slotgate's)
#   --seconds S       target duration of one run                   (default 2.5)
#   --tests LIST      comma-separated redis-benchmark tests        (default set,get,mset)
#   --pipelines LIST  comma-separated pipeline depths              (default 1,16,64)
#   --clients N       redis-benchmark connections                  (default 50)
#   --primaries N     cluster primaries                            (default 3)
#   --out FILE        markdown table                               (default target/bench/latest.md)
#   --compare-bin P   also bench the slotgate binary P as target "slotgate-base" (same
#                     flags, same cluster) and add a slotgate vs slotgate-base table; e.g.
#                     git worktree add /tmp/base HEAD~1 && cargo build --release
#                     --manifest-path /tmp/base/Cargo.toml, then
#                     --compare-bin /tmp/base/target/release/slotgate
#   -h, --help        this text
# Environment: BENCH_KEEP=1 keeps the temp dir (node logs, raw redis-benchmark output).
set -euo pipefail

SCRIPT_NAME=bench
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

REPS=5
QUICK=0
THREADS=
SECONDS_PER_RUN=2.5
MIN_SECONDS=2
TESTS=set,get,mset
PIPELINES=1,16,64
CLIENTS=50
PRIMARIES=3
KEYSPACE=100000
OUT=$ROOT/target/bench/latest.md
COMPARE_BIN=

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
        --quick) QUICK=1; shift ;;
        --threads) need_value "$@"; THREADS=$2; shift 2 ;;
        --seconds) need_value "$@"; SECONDS_PER_RUN=$2; shift 2 ;;
        --tests) need_value "$@"; TESTS=$2; shift 2 ;;
        --pipelines) need_value "$@"; PIPELINES=$2; shift 2 ;;
        --clients) need_value "$@"; CLIENTS=$2; shift 2 ;;
        --primaries) need_value "$@"; PRIMARIES=$2; shift 2 ;;
        --out) need_value "$@"; OUT=$2; shift 2 ;;
        --compare-bin) need_value "$@"; COMPARE_BIN=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"
[[ -z $THREADS || $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive number"
[[ $CLIENTS =~ ^[1-9][0-9]*$ ]] || die "--clients must be a positive number"
if [[ $QUICK -eq 1 ]]; then
    REPS=1
    SECONDS_PER_RUN=0.5
    MIN_SECONDS=0
fi
IFS=, read -ra TEST_LIST <<<"$TESTS"
IFS=, read -ra PIPE_LIST <<<"$PIPELINES"
TARGETS=(cluster node slotgate)
if [[ -n $COMPARE_BIN ]]; then
    [[ -x $COMPARE_BIN && ! -d $COMPARE_BIN ]] || die "--compare-bin: $COMPARE_BIN is not an executable file"
    COMPARE_BIN=$(cd "$(dirname "$COMPARE_BIN")" && pwd)/$(basename "$COMPARE_BIN")
    TARGETS+=(slotgate-base)
fi

bench_init
ensure_redis
ensure_memtier
build_slotgate
SLOTGATE_ARGS=(--maxclients 20000)
[[ -n $THREADS ]] && SLOTGATE_ARGS+=(--threads "$THREADS")

LOAD_START=$(load_average)
note "load average at start: $LOAD_START (nproc $(nproc))"
note "starting a $PRIMARIES-primary cluster, a standalone node and slotgate"
start_cluster "$PRIMARIES"
start_standalone
BASE_PORT= BASE_PID=
if [[ -n $COMPARE_BIN ]]; then
    # The base binary first, with the same flags; start_slotgate sets the SLOTGATE_* names.
    MAIN_BIN=$SLOTGATE_BIN
    SLOTGATE_BIN=$COMPARE_BIN
    start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}"
    BASE_PORT=$SLOTGATE_PORT BASE_PID=$SLOTGATE_PID
    SLOTGATE_BIN=$MAIN_BIN
fi
start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}"
SLOTGATE_THREADS=${THREADS:-$(nproc)}
note "cluster ${CLUSTER_PORTS[*]}, node $STANDALONE_PORT, slotgate $SLOTGATE_PORT" \
    "(pid $SLOTGATE_PID, threads $SLOTGATE_THREADS)"
[[ -n $COMPARE_BIN ]] && note "slotgate-base $BASE_PORT (pid $BASE_PID, $COMPARE_BIN)"

RUNS=$WORK/runs.tsv
printf 'rep\ttarget\ttest\tpipeline\trequests\tseconds\trps\tp50_ms\tp99_ms\tproxy_ticks\tserver_ticks\trss_kb\tload1\terrors\n' >"$RUNS"

# The redis-benchmark command line for target $1 (as an array in BENCH_CMD).
bench_cmd() {
    local target=$1 test=$2 pipe=$3 n=$4
    BENCH_CMD=(redis-benchmark -h 127.0.0.1 -c "$CLIENTS" -n "$n" -r "$KEYSPACE" -P "$pipe"
        -t "$test" --csv)
    case $target in
        cluster) BENCH_CMD+=(--cluster -p "${CLUSTER_PORTS[0]}") ;;
        node) BENCH_CMD+=(-p "$STANDALONE_PORT") ;;
        slotgate) BENCH_CMD+=(-p "$SLOTGATE_PORT") ;;
        slotgate-base) BENCH_CMD+=(-p "$BASE_PORT") ;;
    esac
}

# The slotgate process serving target $1 (empty for the targets without one).
proxy_pid() {
    case $1 in
        slotgate) echo "$SLOTGATE_PID" ;;
        slotgate-base) echo "$BASE_PID" ;;
    esac
}

# Process IDs whose CPU counts as "redis-servers" for target $1.
server_pids() {
    case $1 in
        node) echo "$STANDALONE_PID" ;;
        *) echo "${CLUSTER_PIDS[*]}" ;;
    esac
}

# Runs one benchmark; sets RUN_RPS, RUN_P50, RUN_P99, RUN_SECONDS and appends a line to
# $RUNS when $1 (rep) is not "cal".
run_one() {
    local rep=$1 target=$2 test=$3 pipe=$4 n=$5 servers proxy proxy0 proxy1 srv0 srv1 t0 t1 out err
    read -ra servers <<<"$(server_pids "$target")"
    proxy=$(proxy_pid "$target")
    proxy=${proxy:-$SLOTGATE_PID}
    bench_cmd "$target" "$test" "$pipe" "$n"
    out=$WORK/out-$rep-$target-$test-$pipe.csv
    err=$WORK/err-$rep-$target-$test-$pipe.txt
    proxy0=$(cpu_ticks "$proxy")
    srv0=$(cpu_ticks "${servers[@]}")
    t0=$EPOCHREALTIME
    "${BENCH_CMD[@]}" >"$out" 2>"$err" ||
        die "redis-benchmark failed against $target: ${BENCH_CMD[*]}: $(tail -3 "$err")"
    t1=$EPOCHREALTIME
    proxy1=$(cpu_ticks "$proxy")
    srv1=$(cpu_ticks "${servers[@]}")
    RUN_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    # The last CSV line: "TEST","rps","avg","min","p50","p95","p99","max".
    read -r RUN_RPS RUN_P50 RUN_P99 < <(tail -1 "$out" | tr -d '"' |
        awk -F, '{ print $2, $5, $7 }')
    [[ $RUN_RPS =~ ^[0-9.]+$ ]] ||
        die "no result from ${BENCH_CMD[*]}: $(head -3 "$out") $(tail -3 "$err")"
    local errors
    errors=$(grep -ci 'error' "$err" || true)
    if [[ $errors -gt 0 ]]; then
        note "WARNING: $target $test P$pipe printed errors: $(grep -i -m1 error "$err")"
    fi
    [[ $rep == cal ]] && return 0
    local proxy_ticks=0
    [[ $target == slotgate* ]] && proxy_ticks=$((proxy1 - proxy0))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$rep" "$target" "$test" "$pipe" "$n" "$RUN_SECONDS" "$RUN_RPS" "$RUN_P50" \
        "$RUN_P99" "$proxy_ticks" "$((srv1 - srv0))" "$(rss_kb "$proxy")" \
        "$(awk '{print $1}' /proc/loadavg)" "$errors" >>"$RUNS"
}

# Calibration: a short run of every target per cell (also a warm-up: connections opened,
# keys written before GET reads them); then N = fastest rate x --seconds.
declare -A REQUESTS=()
note "calibrating request counts for about ${SECONDS_PER_RUN}s per run"
for test in "${TEST_LIST[@]}"; do
    for pipe in "${PIPE_LIST[@]}"; do
        cal_n=$((CLIENTS * pipe * 40))
        ((cal_n < 20000)) && cal_n=20000
        best=0
        for target in "${TARGETS[@]}"; do
            run_one cal "$target" "$test" "$pipe" "$cal_n"
            best=$(awk -v a="$best" -v b="$RUN_RPS" 'BEGIN { print (b > a ? b : a) }')
        done
        REQUESTS[$test-$pipe]=$(awk -v r="$best" -v s="$SECONDS_PER_RUN" -v c="$cal_n" \
            'BEGIN { n = int(r * s / 1000 + 1) * 1000; print (n > c ? n : c) }')
    done
done

TOTAL=$((REPS * ${#TEST_LIST[@]} * ${#PIPE_LIST[@]} * ${#TARGETS[@]}))
done_runs=0
for ((rep = 1; rep <= REPS; rep++)); do
    for test in "${TEST_LIST[@]}"; do
        for pipe in "${PIPE_LIST[@]}"; do
            for ((i = 0; i < ${#TARGETS[@]}; i++)); do
                target=${TARGETS[$(((i + rep) % ${#TARGETS[@]}))]}
                n=${REQUESTS[$test-$pipe]}
                run_one "$rep" "$target" "$test" "$pipe" "$n"
                done_runs=$((done_runs + 1))
                note "[$done_runs/$TOTAL] rep $rep $test P$pipe $target: $RUN_RPS ops/s" \
                    "p50 $RUN_P50 p99 $RUN_P99 (${RUN_SECONDS}s, n=$n)"
                # Too short (the machine got faster): longer runs from now on.
                if awk -v s="$RUN_SECONDS" -v m="$MIN_SECONDS" 'BEGIN { exit !(s < m) }'; then
                    REQUESTS[$test-$pipe]=$(awk -v n="$n" -v s="$RUN_SECONDS" \
                        -v t="$SECONDS_PER_RUN" 'BEGIN { print int(n * t / s / 1000 + 1) * 1000 }')
                fi
            done
        done
    done
done

if [[ $HAVE_MEMTIER -eq 1 ]]; then
    MEMTIER=$WORK/memtier.txt
    : >"$MEMTIER"
    for pipe in "${PIPE_LIST[@]}"; do
        for target in cluster slotgate; do
            args=(-s 127.0.0.1 --protocol=redis -t 1 -c "$CLIENTS" --pipeline="$pipe"
                --ratio=1:1 --key-maximum="$KEYSPACE" --test-time=3 --hide-histogram)
            if [[ $target == cluster ]]; then
                args+=(-p "${CLUSTER_PORTS[0]}" --cluster-mode)
            else
                args+=(-p "$SLOTGATE_PORT")
            fi
            ops=$(memtier_benchmark "${args[@]}" 2>/dev/null | awk '/^Totals/ {print $2}')
            printf '%s\t%s\t%s\n' "$pipe" "$target" "${ops:-failed}" >>"$MEMTIER"
        done
    done
fi

LOAD_END=$(load_average)

# ---- report --------------------------------------------------------------------------------

# Median of column $1 over the runs of target $2, test $3, pipeline $4.
med() {
    awk -F'\t' -v col="$1" -v t="$2" -v x="$3" -v p="$4" \
        'NR > 1 && $2 == t && $3 == x && $4 == p { print $col }' "$RUNS" | median
}

# Median over runs of CPU seconds per million commands from ticks column $1.
med_cpu() {
    awk -F'\t' -v col="$1" -v t="$2" -v x="$3" -v p="$4" -v hz="$CLK_TCK" \
        'NR > 1 && $2 == t && $3 == x && $4 == p { printf "%.4f\n", $col / hz / $5 * 1e6 }' \
        "$RUNS" | median
}

fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "") print "-"; else printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

if REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml || REV="$REV + uncommitted changes"
else
    REV="(not a git checkout)"
fi
declare -A SUM=()
{
    echo "# slotgate benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), slotgate $REV"
    echo "- machine: $(machine_summary)"
    echo "- load average (1/5/15 min): $LOAD_START at start, $LOAD_END at the end"
    echo "- command: \`scripts/bench.sh ${ARGS[*]}\`; $PRIMARIES primaries, no replicas;" \
        "slotgate --threads $SLOTGATE_THREADS; redis-benchmark -c $CLIENTS -r $KEYSPACE," \
        "$REPS repetition(s), targets interleaved, medians"
    if [[ -n $COMPARE_BIN ]]; then
        echo "- slotgate-base = \`$COMPARE_BIN\` with the same flags, in front of the same cluster"
    fi
    echo "- cluster = \`redis-benchmark --cluster\` on the raw cluster; node = one standalone" \
        "redis-server; slotgate = slotgate in front of the cluster. MSET = 10 random keys:" \
        "one hash tag per client with --cluster, split by slot through slotgate."
    echo "- CPU = CPU seconds per million client commands (utime+stime from /proc);" \
        "servers = the redis-servers serving that target (the cluster's for cluster and" \
        "slotgate). proxy/srv = slotgate's CPU over the servers' CPU in the same run;" \
        "proxy/cl.srv = over the servers' CPU in the raw-cluster run."
    echo
    echo "| test | P | target | ops/s | x cluster | p50 ms | p99 ms | slotgate CPU | servers CPU | proxy/srv | proxy/cl.srv | RSS MB |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for test in "${TEST_LIST[@]}"; do
        for pipe in "${PIPE_LIST[@]}"; do
            base_rps=$(med 7 cluster "$test" "$pipe")
            base_srv=$(med_cpu 11 cluster "$test" "$pipe")
            base_p99=$(med 9 cluster "$test" "$pipe")
            for target in "${TARGETS[@]}"; do
                rps=$(med 7 "$target" "$test" "$pipe")
                p50=$(med 8 "$target" "$test" "$pipe")
                p99=$(med 9 "$target" "$test" "$pipe")
                srv=$(med_cpu 11 "$target" "$test" "$pipe")
                proxy=- proxy_ratio=- proxy_cl=- rss=-
                if [[ $target == slotgate* ]]; then
                    proxy=$(med_cpu 10 "$target" "$test" "$pipe")
                    proxy_ratio=$(ratio "$proxy" "$srv")
                    proxy_cl=$(ratio "$proxy" "$base_srv")
                    rss=$(fmt "$(med 12 "$target" "$test" "$pipe")" "%.0f")
                    rss=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
                    SUM[$test-$pipe-$target-cpu]=$proxy
                    proxy=$(fmt "$proxy" "%.3f")
                fi
                if [[ $target == slotgate ]]; then
                    SUM[$test-$pipe-ratio]=$(ratio "$rps" "$base_rps")
                    SUM[$test-$pipe-cpu]=$proxy_ratio
                    SUM[$test-$pipe-cpucl]=$proxy_cl
                    SUM[$test-$pipe-p99]=$(awk -v a="$p99" -v b="$base_p99" \
                        'BEGIN { printf "%+.3f", a - b }')
                fi
                printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
                    "${test^^}" "$pipe" "$target" "$(fmt "$rps" "%.0f")" \
                    "$(ratio "$rps" "$base_rps")" "$(fmt "$p50" "%.3f")" \
                    "$(fmt "$p99" "%.3f")" "$proxy" "$(fmt "$srv" "%.3f")" \
                    "$proxy_ratio" "$proxy_cl" "$rss"
            done
        done
    done
    echo
    echo "Summary (slotgate vs raw cluster):"
    echo
    echo "| test | P | throughput x cluster | CPU x servers (same run) | CPU x servers (cluster run) | p99 - cluster p99 (ms) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for test in "${TEST_LIST[@]}"; do
        for pipe in "${PIPE_LIST[@]}"; do
            echo "| ${test^^} | $pipe | ${SUM[$test-$pipe-ratio]:--} | ${SUM[$test-$pipe-cpu]:--} |" \
                "${SUM[$test-$pipe-cpucl]:--} | ${SUM[$test-$pipe-p99]:--} |"
        done
    done
    if [[ -n $COMPARE_BIN ]]; then
        echo
        echo "slotgate vs slotgate-base ($COMPARE_BIN), same run:"
        echo
        echo "| test | P | throughput x base | CPU per command x base | p50 - base p50 (ms) | p99 - base p99 (ms) |"
        echo "|---|---:|---:|---:|---:|---:|"
        for test in "${TEST_LIST[@]}"; do
            for pipe in "${PIPE_LIST[@]}"; do
                echo "| ${test^^} | $pipe" \
                    "| $(ratio "$(med 7 slotgate "$test" "$pipe")" "$(med 7 slotgate-base "$test" "$pipe")")" \
                    "| $(ratio "${SUM[$test-$pipe-slotgate-cpu]:-}" "${SUM[$test-$pipe-slotgate-base-cpu]:-}")" \
                    "| $(awk -v a="$(med 8 slotgate "$test" "$pipe")" -v b="$(med 8 slotgate-base "$test" "$pipe")" 'BEGIN { printf "%+.3f", a - b }')" \
                    "| $(awk -v a="$(med 9 slotgate "$test" "$pipe")" -v b="$(med 9 slotgate-base "$test" "$pipe")" 'BEGIN { printf "%+.3f", a - b }') |"
            done
        done
    fi
    echo
    max_rss=$(awk -F'\t' 'NR > 1 && $2 == "slotgate" && $12 > m { m = $12 } END { printf "%.1f", m / 1024 }' "$RUNS")
    short=$(awk -F'\t' -v m="$MIN_SECONDS" 'NR > 1 && $6 < m { c++ } END { print c + 0 }' "$RUNS")
    errs=$(awk -F'\t' 'NR > 1 { c += $14 } END { print c + 0 }' "$RUNS")
    if [[ $QUICK -eq 1 ]]; then
        short="(--quick: short runs by design)"
    else
        short="Runs shorter than ${MIN_SECONDS}s: $short."
    fi
    echo "slotgate RSS: max $max_rss MB over all runs. $short" \
        "Runs whose redis-benchmark printed errors: $errs."
    if [[ $HAVE_MEMTIER -eq 1 ]]; then
        echo
        echo "memtier_benchmark (SET:GET 1:1, 3 s, ops/s):"
        echo
        echo "| P | target | ops/s |"
        echo "|---:|---|---:|"
        awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }' "$MEMTIER"
    else
        echo
        echo "memtier_benchmark: not available from this system's Debian repositories; skipped."
    fi
} >"$WORK/report.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/report.md" "$OUT"
cp "$RUNS" "$(dirname "$OUT")/latest-runs.tsv"
echo
cat "$WORK/report.md"
note "table written to $OUT; raw runs in $(dirname "$OUT")/latest-runs.tsv"
