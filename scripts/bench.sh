#!/usr/bin/env bash
# bench.sh: slotgate's throughput, latency, CPU and memory next to predixy's and the raw
# cluster's.
#
# Builds slotgate (cargo build --release), starts a local Redis Cluster (3 primaries with
# --replicas each, default 1), a standalone redis-server, slotgate and predixy in front of
# the cluster, all on 127.0.0.1 ports below 32768 in a temp dir, then runs redis-benchmark
# against these targets (--targets picks some):
#   cluster   the raw cluster, cluster-aware (`redis-benchmark --cluster`)
#   node      one standalone redis-server (cluster mode off: one node serves every key)
#   slotgate  slotgate in front of the cluster (plain, non-cluster client)
#   predixy   predixy 1.0.5 in front of the same cluster (../shared/peers/: built once with
#             its build-predixy.sh into target/peers/, or --predixy PATH; configured from
#             predixy.conf.tmpl with every node, reads from primaries). When it is not
#             available the script says so and goes on without it.
#   slotgate-base  with --compare-bin: a second slotgate binary (say, the build of the
#             commit before a change) in front of the same cluster, interleaved with the
#             others in the same run, so before and after share the machine's conditions
#   slotgate-replica  only when named in --targets: slotgate with `--read-from replica`
#             (needs --replicas >= 1 and a slotgate that has the flag, issue 16)
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
# cluster, CPU seconds per million client commands of the proxy and of the redis-servers
# (utime+stime from /proc/<pid>/stat before and after each run), and the proxy's RSS; then
# a slotgate vs predixy vs cluster summary, and the share of the test's command that each
# node served (calls in its INFO commandstats before and after each run), which shows where
# --read-from sent the reads. The tables also go to target/bench/latest.md, the raw runs to
# target/bench/latest-runs.tsv (per node: latest-nodes.tsv).
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
#   --replicas N      replicas per primary                         (default 1)
#   --data-size B     value size of SET/GET, redis-benchmark -d    (default 3, its own)
#   --targets LIST    comma-separated targets, in the order of the first repetition
#                     (default cluster,node,slotgate,predixy, + slotgate-base with
#                     --compare-bin); slotgate-replica only when listed
#   --read-from P     pass --read-from P to slotgate (and slotgate-base): primary,
#                     primary-preferred, replica, replica-preferred, nearest, any; fails
#                     clearly when the binary does not know the flag
#   --predixy PATH    the predixy binary (default: build it with ../shared/peers/)
#   --predixy-threads N  predixy WorkerThreads                     (default: slotgate's)
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
REPLICAS=1
DATA_SIZE=
TARGETS_ARG=
READ_FROM=
PREDIXY_ARG=
PREDIXY_THREADS=

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
        --replicas) need_value "$@"; REPLICAS=$2; shift 2 ;;
        --data-size) need_value "$@"; DATA_SIZE=$2; shift 2 ;;
        --targets) need_value "$@"; TARGETS_ARG=$2; shift 2 ;;
        --read-from) need_value "$@"; READ_FROM=$2; shift 2 ;;
        --predixy) need_value "$@"; PREDIXY_ARG=$2; shift 2 ;;
        --predixy-threads) need_value "$@"; PREDIXY_THREADS=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive number"
[[ -z $THREADS || $THREADS =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive number"
[[ $CLIENTS =~ ^[1-9][0-9]*$ ]] || die "--clients must be a positive number"
[[ $REPLICAS =~ ^[0-9]+$ ]] || die "--replicas must be a number"
[[ -z $DATA_SIZE || $DATA_SIZE =~ ^[1-9][0-9]*$ ]] || die "--data-size must be a positive number"
[[ -z $PREDIXY_THREADS || $PREDIXY_THREADS =~ ^[1-9][0-9]*$ ]] ||
    die "--predixy-threads must be a positive number"
if [[ $QUICK -eq 1 ]]; then
    REPS=1
    SECONDS_PER_RUN=0.5
    MIN_SECONDS=0
fi
IFS=, read -ra TEST_LIST <<<"$TESTS"
IFS=, read -ra PIPE_LIST <<<"$PIPELINES"
if [[ -n $TARGETS_ARG ]]; then
    IFS=, read -ra TARGETS <<<"$TARGETS_ARG"
else
    TARGETS=(cluster node slotgate predixy)
    [[ -n $COMPARE_BIN ]] && TARGETS+=(slotgate-base)
fi
# True when target $1 was asked for.
wanted() {
    local t
    for t in "${TARGETS[@]}"; do [[ $t == "$1" ]] && return 0; done
    return 1
}
for target in "${TARGETS[@]}"; do
    case $target in
        cluster | node | slotgate | predixy) ;;
        slotgate-base) [[ -n $COMPARE_BIN ]] || die "target slotgate-base needs --compare-bin" ;;
        slotgate-replica) ((REPLICAS > 0)) || die "target slotgate-replica needs --replicas >= 1" ;;
        *) die "unknown target '$target' (cluster, node, slotgate, predixy, slotgate-base, slotgate-replica)" ;;
    esac
done
if [[ -n $COMPARE_BIN ]]; then
    [[ -x $COMPARE_BIN && ! -d $COMPARE_BIN ]] || die "--compare-bin: $COMPARE_BIN is not an executable file"
    COMPARE_BIN=$(cd "$(dirname "$COMPARE_BIN")" && pwd)/$(basename "$COMPARE_BIN")
    wanted slotgate-base || TARGETS+=(slotgate-base)
fi

bench_init
ensure_redis
ensure_memtier
build_slotgate
if wanted predixy; then
    find_predixy "$PREDIXY_ARG"
    if [[ -z $PREDIXY_BIN ]]; then
        keep=()
        for target in "${TARGETS[@]}"; do [[ $target == predixy ]] || keep+=("$target"); done
        TARGETS=("${keep[@]}")
    fi
fi
SLOTGATE_ARGS=(--maxclients 20000)
[[ -n $THREADS ]] && SLOTGATE_ARGS+=(--threads "$THREADS")
[[ -n $READ_FROM ]] && SLOTGATE_ARGS+=(--read-from "$READ_FROM")

LOAD_START=$(load_average)
note "load average at start: $LOAD_START (nproc $(nproc))"
note "starting a cluster of $PRIMARIES primaries x $REPLICAS replica(s), a standalone node and the proxies"
start_cluster "$PRIMARIES" "$REPLICAS"
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
REPLICA_PORT= REPLICA_PID=
if wanted slotgate-replica; then
    # The last --read-from wins, so this one reads from replicas whatever --read-from says.
    start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}" --read-from replica
    REPLICA_PORT=$SLOTGATE_PORT REPLICA_PID=$SLOTGATE_PID
fi
start_slotgate "$SEEDS" "${SLOTGATE_ARGS[@]}"
# What slotgate chose (without --threads: its default rule), from its INFO.
SLOTGATE_THREADS=$(redis-cli -p "$SLOTGATE_PORT" INFO proxy 2>/dev/null | tr -d '\r' |
    awk -F: '/^threads:/ {print $2; exit}')
[[ $SLOTGATE_THREADS =~ ^[0-9]+$ ]] || SLOTGATE_THREADS=${THREADS:-$(nproc)}
PREDIXY_PORT= PREDIXY_PID=
if wanted predixy; then
    # As many worker threads as slotgate has, unless told otherwise: like against like.
    PREDIXY_THREADS=${PREDIXY_THREADS:-$SLOTGATE_THREADS}
    start_predixy "$PREDIXY_THREADS" "${CLUSTER_PORTS[@]}"
fi
note "cluster ${CLUSTER_PORTS[*]} (primaries ${PRIMARY_PORTS[*]}), node $STANDALONE_PORT," \
    "slotgate $SLOTGATE_PORT (pid $SLOTGATE_PID, threads $SLOTGATE_THREADS)"
[[ -n $COMPARE_BIN ]] && note "slotgate-base $BASE_PORT (pid $BASE_PID, $COMPARE_BIN)"
[[ -n $REPLICA_PORT ]] && note "slotgate-replica $REPLICA_PORT (pid $REPLICA_PID, --read-from replica)"
[[ -n $PREDIXY_PORT ]] && note "predixy $PREDIXY_PORT (pid $PREDIXY_PID, $PREDIXY_THREADS worker thread(s), $PREDIXY_BIN)"

RUNS=$WORK/runs.tsv
printf 'rep\ttarget\ttest\tpipeline\trequests\tseconds\trps\tp50_ms\tp99_ms\tproxy_ticks\tserver_ticks\trss_kb\tload1\terrors\n' >"$RUNS"
NODES=$WORK/nodes.tsv
printf 'rep\ttarget\ttest\tpipeline\tport\trole\tcalls\n' >"$NODES"
declare -A ROLE=()
for port in "${CLUSTER_PORTS[@]}"; do ROLE[$port]=replica; done
for port in "${PRIMARY_PORTS[@]}"; do ROLE[$port]=primary; done

# The redis-benchmark command line for target $1 (as an array in BENCH_CMD).
bench_cmd() {
    local target=$1 test=$2 pipe=$3 n=$4
    BENCH_CMD=(redis-benchmark -h 127.0.0.1 -c "$CLIENTS" -n "$n" -r "$KEYSPACE" -P "$pipe"
        -t "$test" --csv)
    [[ -n $DATA_SIZE ]] && BENCH_CMD+=(-d "$DATA_SIZE")
    case $target in
        cluster) BENCH_CMD+=(--cluster -p "${PRIMARY_PORTS[0]}") ;;
        node) BENCH_CMD+=(-p "$STANDALONE_PORT") ;;
        slotgate) BENCH_CMD+=(-p "$SLOTGATE_PORT") ;;
        slotgate-base) BENCH_CMD+=(-p "$BASE_PORT") ;;
        slotgate-replica) BENCH_CMD+=(-p "$REPLICA_PORT") ;;
        predixy) BENCH_CMD+=(-p "$PREDIXY_PORT") ;;
    esac
}

# The proxy process serving target $1 (empty for the targets without one).
proxy_pid() {
    case $1 in
        slotgate) echo "$SLOTGATE_PID" ;;
        slotgate-base) echo "$BASE_PID" ;;
        slotgate-replica) echo "$REPLICA_PID" ;;
        predixy) echo "$PREDIXY_PID" ;;
    esac
}

# Per cluster node: "port calls" of command $1 so far (0 when never called).
node_calls() {
    local port calls
    for port in "${CLUSTER_PORTS[@]}"; do
        calls=$(command_calls "$port" | awk -v c="$1" '$1 == c { print $2 }')
        echo "$port ${calls:-0}"
    done
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
    local calls0=
    read -ra servers <<<"$(server_pids "$target")"
    proxy=$(proxy_pid "$target")
    proxy=${proxy:-$SLOTGATE_PID}
    bench_cmd "$target" "$test" "$pipe" "$n"
    # Outside the CPU window: INFO costs the servers a little CPU too.
    [[ $rep != cal && $target != node ]] && calls0=$(node_calls "$test")
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
    if [[ -n $calls0 ]]; then
        join <(echo "$calls0" | sort) <(node_calls "$test" | sort) |
            while read -r port before after; do
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$target" "$test" "$pipe" \
                    "$port" "${ROLE[$port]}" "$((after - before))"
            done >>"$NODES"
    fi
    local proxy_ticks=0
    [[ -n $(proxy_pid "$target") ]] && proxy_ticks=$((proxy1 - proxy0))
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
is_proxy() { [[ -n $(proxy_pid "$1") ]]; }
{
    echo "# slotgate benchmark"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), slotgate $REV"
    echo "- machine: $(machine_summary)"
    echo "- load average (1/5/15 min): $LOAD_START at start, $LOAD_END at the end"
    echo "- command: \`scripts/bench.sh ${ARGS[*]}\`; $PRIMARIES primaries x $REPLICAS replica(s);" \
        "slotgate --threads $SLOTGATE_THREADS${READ_FROM:+ --read-from $READ_FROM};" \
        "redis-benchmark -c $CLIENTS -r $KEYSPACE${DATA_SIZE:+ -d $DATA_SIZE}," \
        "$REPS repetition(s), targets (${TARGETS[*]}) interleaved, medians"
    if [[ -n $PREDIXY_PORT ]]; then
        echo "- predixy = \`$PREDIXY_BIN\` (1.0.5, ../shared/peers/), WorkerThreads $PREDIXY_THREADS," \
            "every node listed, reads from primaries (MasterReadPriority 100)"
    elif wanted predixy || [[ -z $TARGETS_ARG ]]; then
        echo "- predixy: not available (see the script's messages); not measured"
    fi
    if [[ -n $COMPARE_BIN ]]; then
        echo "- slotgate-base = \`$COMPARE_BIN\` with the same flags, in front of the same cluster"
    fi
    [[ -n $REPLICA_PORT ]] && echo "- slotgate-replica = slotgate with \`--read-from replica\`"
    echo "- cluster = \`redis-benchmark --cluster\` on the raw cluster; node = one standalone" \
        "redis-server; slotgate, predixy = the proxy in front of the cluster. MSET = 10 random keys:" \
        "one hash tag per client with --cluster, split by slot through the proxies."
    echo "- CPU = CPU seconds per million client commands (utime+stime from /proc);" \
        "servers = the redis-servers serving that target (every cluster node, replicas" \
        "included, for cluster and the proxies). proxy/srv = the proxy's CPU over the" \
        "servers' CPU in the same run; proxy/cl.srv = over the servers' CPU in the raw-cluster run."
    echo
    echo "| test | P | target | ops/s | x cluster | p50 ms | p99 ms | proxy CPU | servers CPU | proxy/srv | proxy/cl.srv | RSS MB |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for test in "${TEST_LIST[@]}"; do
        for pipe in "${PIPE_LIST[@]}"; do
            base_rps=$(med 7 cluster "$test" "$pipe")
            base_srv=$(med_cpu 11 cluster "$test" "$pipe")
            for target in "${TARGETS[@]}"; do
                rps=$(med 7 "$target" "$test" "$pipe")
                p50=$(med 8 "$target" "$test" "$pipe")
                p99=$(med 9 "$target" "$test" "$pipe")
                srv=$(med_cpu 11 "$target" "$test" "$pipe")
                proxy=- proxy_ratio=- proxy_cl=- rss=-
                SUM[$test-$pipe-$target-rps]=$rps
                SUM[$test-$pipe-$target-p99]=$p99
                if is_proxy "$target"; then
                    proxy=$(med_cpu 10 "$target" "$test" "$pipe")
                    proxy_ratio=$(ratio "$proxy" "$srv")
                    proxy_cl=$(ratio "$proxy" "$base_srv")
                    rss=$(fmt "$(med 12 "$target" "$test" "$pipe")" "%.0f")
                    rss=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
                    SUM[$test-$pipe-$target-cpu]=$proxy
                    SUM[$test-$pipe-$target-cpusrv]=$proxy_ratio
                    proxy=$(fmt "$proxy" "%.3f")
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
    echo "Summary, slotgate vs predixy vs the raw cluster (throughput as a ratio to the cluster's;" \
        "CPU per command as a ratio to the servers' in the same run; p99 in ms):"
    echo
    echo "| test | P | cluster ops/s | slotgate x cluster | predixy x cluster | slotgate x predixy | slotgate CPU x srv | predixy CPU x srv | slotgate CPU x predixy | p99 cluster / slotgate / predixy |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for test in "${TEST_LIST[@]}"; do
        for pipe in "${PIPE_LIST[@]}"; do
            k=$test-$pipe
            echo "| ${test^^} | $pipe | $(fmt "${SUM[$k-cluster-rps]:-}" "%.0f")" \
                "| $(ratio "${SUM[$k-slotgate-rps]:-}" "${SUM[$k-cluster-rps]:-}")" \
                "| $(ratio "${SUM[$k-predixy-rps]:-}" "${SUM[$k-cluster-rps]:-}")" \
                "| $(ratio "${SUM[$k-slotgate-rps]:-}" "${SUM[$k-predixy-rps]:-}")" \
                "| ${SUM[$k-slotgate-cpusrv]:--} | ${SUM[$k-predixy-cpusrv]:--}" \
                "| $(ratio "${SUM[$k-slotgate-cpu]:-}" "${SUM[$k-predixy-cpu]:-}")" \
                "| $(fmt "${SUM[$k-cluster-p99]:-}" "%.3f") / $(fmt "${SUM[$k-slotgate-p99]:-}" "%.3f") / $(fmt "${SUM[$k-predixy-p99]:-}" "%.3f") |"
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
    echo "Share of the test's command served by each node (INFO commandstats calls before and" \
        "after each run, summed over the repetitions; MSET counts the parts the proxies sent):"
    echo
    header="| test | P | target |"
    rule="|---|---:|---|"
    for port in "${CLUSTER_PORTS[@]}"; do
        header+=" $port ${ROLE[$port]} |"
        rule+="---:|"
    done
    echo "$header"
    echo "$rule"
    for test in "${TEST_LIST[@]}"; do
        for pipe in "${PIPE_LIST[@]}"; do
            for target in "${TARGETS[@]}"; do
                [[ $target == node ]] && continue
                row="| ${test^^} | $pipe | $target |"
                total=$(awk -F'\t' -v t="$target" -v x="$test" -v p="$pipe" \
                    'NR > 1 && $2 == t && $3 == x && $4 == p { s += $7 } END { print s + 0 }' "$NODES")
                for port in "${CLUSTER_PORTS[@]}"; do
                    row+=" $(awk -F'\t' -v t="$target" -v x="$test" -v p="$pipe" -v port="$port" \
                        -v total="$total" 'NR > 1 && $2 == t && $3 == x && $4 == p && $5 == port { s += $7 }
                        END { if (total > 0) printf "%.1f%%", 100 * s / total; else print "-" }' "$NODES") |"
                done
                echo "$row"
            done
        done
    done
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
cp "$NODES" "$(dirname "$OUT")/latest-nodes.tsv"
echo
cat "$WORK/report.md"
note "table written to $OUT; raw runs in $(dirname "$OUT")/latest-runs.tsv"
