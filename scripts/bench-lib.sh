# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the scripts that source this file
# bench-lib.sh: helpers shared by scripts/bench*.sh. Sourced, never run.
#
# What it provides:
#   - ensure_redis / ensure_memtier: install redis-server, redis-tools (and memtier_benchmark
#     where Debian has it) with apt-get when missing;
#   - a work dir ($WORK, mktemp) and a cleanup trap that stops every process these helpers
#     started, by PID (never by name), then removes $WORK (kept with BENCH_KEEP=1);
#   - start_cluster / start_standalone / start_slotgate: local redis-server nodes and slotgate,
#     on ports in 15000..19999 so that ports and cluster bus ports (+10000, 25000..29999) stay
#     below the ephemeral range (32768+) and away from the tests' 20000..22700 (+10000);
#   - cpu_ticks / rss_kb / clk_tck: process CPU time (utime+stime, all threads, from
#     /proc/<pid>/stat) and resident memory (/proc/<pid>/status), for per-command figures;
#   - median: the median of numbers on stdin.
#
# The caller sets SCRIPT_NAME (used in messages) before sourcing, and calls bench_init.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Port window for everything the bench scripts start (see the header).
PORT_LOW=15000
PORT_HIGH=19999

die() {
    echo "$SCRIPT_NAME: error: $*" >&2
    exit 1
}

note() {
    echo "$SCRIPT_NAME: $*" >&2
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root or sudo to run: $*"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "missing $*, and no apt-get here: install it yourself"
    if [[ $APT_UPDATED -eq 0 ]]; then
        as_root apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

ensure_redis() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    if [[ ${#missing[@]} -gt 0 ]]; then
        note "installing redis-server redis-tools with apt-get"
        apt_install redis-server redis-tools
    fi
    command -v redis-server >/dev/null || die "redis-server is still missing after apt-get"
    command -v redis-benchmark >/dev/null || die "redis-benchmark is still missing after apt-get"
}

# Sets HAVE_MEMTIER=1 when memtier_benchmark is installed or installable from the
# configured Debian repositories (bookworm has no such package: then a note, no failure).
HAVE_MEMTIER=0
ensure_memtier() {
    if command -v memtier_benchmark >/dev/null; then
        HAVE_MEMTIER=1
        return
    fi
    if command -v apt-cache >/dev/null; then
        if [[ $APT_UPDATED -eq 0 ]]; then
            as_root apt-get update -q >/dev/null 2>&1 || true
            APT_UPDATED=1
        fi
        local candidate
        candidate=$(apt-cache policy memtier-benchmark 2>/dev/null | awk '/Candidate:/ {print $2}')
        if [[ -n $candidate && $candidate != "(none)" ]]; then
            note "installing memtier-benchmark $candidate with apt-get"
            apt_install memtier-benchmark && HAVE_MEMTIER=1
            return
        fi
    fi
    note "memtier_benchmark is not installed and this system's Debian repositories have no" \
        "memtier-benchmark package: skipping the memtier runs (redis-benchmark only)"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Ports handed out by this script, so two allocations never overlap.
declare -A PORT_TAKEN=()

# Sets FREE_BASE to a port B such that B..B+$1-1 and each port+10000 are free and not yet
# handed out by us. Starts at a random place in the window, so parallel runs rarely collide.
# (Not called in $(...): the subshell would lose PORT_TAKEN.)
free_port_block() {
    local count=$1 span base tries port ok
    span=$((PORT_HIGH - PORT_LOW - count))
    ((span > 0)) || die "no room for $count ports in $PORT_LOW..$PORT_HIGH"
    for ((tries = 0; tries < 200; tries++)); do
        base=$((PORT_LOW + (RANDOM * 32768 + RANDOM) % span))
        ok=1
        for ((port = base; port < base + count; port++)); do
            if [[ -n ${PORT_TAKEN[$port]:-} ]] || port_in_use "$port" ||
                port_in_use $((port + 10000)); then
                ok=0
                break
            fi
        done
        if [[ $ok -eq 1 ]]; then
            for ((port = base; port < base + count; port++)); do
                PORT_TAKEN[$port]=1
            done
            FREE_BASE=$base
            return 0
        fi
    done
    die "no block of $count free ports (and +10000) in $PORT_LOW..$PORT_HIGH"
}

# Every process we started, so that we stop exactly those.
PIDS=()
WORK=

# shellcheck disable=SC2317 # invoked by the EXIT trap
bench_cleanup() {
    trap - EXIT INT TERM
    stop_pids "${PIDS[@]}"
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${BENCH_KEEP:-0} == 1 ]]; then
            note "kept $WORK (BENCH_KEEP=1)"
        else
            rm -rf "$WORK"
        fi
    fi
}

# SIGTERM to each PID, SIGKILL after 5 s, reaped.
stop_pids() {
    [[ $# -gt 0 ]] || return 0
    kill -TERM "$@" 2>/dev/null || true
    local pid tries
    for pid in "$@"; do
        for ((tries = 0; tries < 50; tries++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# Removes $@ from PIDS (after stopping them with stop_pids).
forget_pids() {
    local keep=() pid gone
    for pid in "${PIDS[@]}"; do
        for gone in "$@"; do
            [[ $pid == "$gone" ]] && continue 2
        done
        keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

bench_init() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/slotgate-bench.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    CLK_TCK=$(getconf CLK_TCK)
}

# Polls "$@" every 0.1 s until it succeeds; dies with $1 after $2 seconds.
wait_until() {
    local what=$1 seconds=$2 tries
    shift 2
    for ((tries = 0; tries < seconds * 10; tries++)); do
        "$@" && return 0
        sleep 0.1
    done
    die "timed out after ${seconds}s waiting for $what"
}

node_answers() {
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]]
}

cluster_ok() {
    local port
    for port in "$@"; do
        redis-cli -p "$port" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
}

# Starts one redis-server on port $1 in $WORK/<port>; extra args follow. Prints its PID.
REDIS_OPTS=(--bind 127.0.0.1 --appendonly no --save '' --daemonize no --protected-mode no)
spawn_redis() {
    local port=$1 dir
    shift
    dir=$WORK/$port
    mkdir -p "$dir"
    redis-server --port "$port" --dir "$dir" "${REDIS_OPTS[@]}" "$@" >"$dir/redis.log" 2>&1 &
    PIDS+=("$!")
    echo "$!" >"$dir/pid"
}

# Starts a cluster of $1 primaries and no replicas. Sets CLUSTER_PORTS, CLUSTER_PIDS, SEEDS
# (comma-separated host:port list).
start_cluster() {
    local primaries=$1 base port addrs=()
    ((primaries >= 3)) || die "a cluster needs at least 3 primaries"
    free_port_block "$primaries"
    base=$FREE_BASE
    CLUSTER_PORTS=()
    CLUSTER_PIDS=()
    for ((port = base; port < base + primaries; port++)); do
        spawn_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 5000
        CLUSTER_PORTS+=("$port")
        CLUSTER_PIDS+=("$(cat "$WORK/$port/pid")")
        addrs+=("127.0.0.1:$port")
    done
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_until "redis-server on port $port (log: $WORK/$port/redis.log)" 10 node_answers "$port"
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
        >"$WORK/cluster-create-$base.log" 2>&1 ||
        die "redis-cli --cluster create failed; see $WORK/cluster-create-$base.log"
    wait_until "cluster_state:ok on every node" 60 cluster_ok "${CLUSTER_PORTS[@]}"
    SEEDS=$(IFS=,; echo "${addrs[*]}")
}

# Starts a standalone (non-cluster) redis-server. Sets STANDALONE_PORT, STANDALONE_PID.
start_standalone() {
    free_port_block 1
    STANDALONE_PORT=$FREE_BASE
    spawn_redis "$STANDALONE_PORT"
    STANDALONE_PID=$(cat "$WORK/$STANDALONE_PORT/pid")
    wait_until "redis-server on port $STANDALONE_PORT" 10 node_answers "$STANDALONE_PORT"
}

build_slotgate() {
    note "building slotgate (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    SLOTGATE_BIN=$ROOT/target/release/slotgate
    [[ -x $SLOTGATE_BIN ]] || die "the build produced no $SLOTGATE_BIN"
}

# Starts slotgate in front of $1 (seeds); further args go to slotgate. Sets SLOTGATE_PORT and
# SLOTGATE_PID; logs to $WORK/slotgate-<port>.log.
start_slotgate() {
    local seeds=$1 tries
    shift
    free_port_block 1
    SLOTGATE_PORT=$FREE_BASE
    RUST_LOG=${RUST_LOG:-warn} "$SLOTGATE_BIN" --listen "127.0.0.1:$SLOTGATE_PORT" \
        --seeds "$seeds" "$@" >"$WORK/slotgate-$SLOTGATE_PORT.log" 2>&1 &
    SLOTGATE_PID=$!
    PIDS+=("$SLOTGATE_PID")
    for ((tries = 0; tries < 150; tries++)); do
        kill -0 "$SLOTGATE_PID" 2>/dev/null ||
            die "slotgate exited during startup: $(tail -5 "$WORK/slotgate-$SLOTGATE_PORT.log")"
        # Ready once it answers a keyed command (the slot map is loaded).
        [[ $(redis-cli -p "$SLOTGATE_PORT" GET bench:ready 2>&1) != *ERR* ]] &&
            node_answers "$SLOTGATE_PORT" && return 0
        sleep 0.1
    done
    die "slotgate did not answer within 15s; log: $WORK/slotgate-$SLOTGATE_PORT.log"
}

# Sum of utime+stime, in clock ticks, of every PID given (all threads of each process).
cpu_ticks() {
    local pid total=0 stat fields
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid is gone"
        # Field 2 (comm) may hold spaces: cut everything up to its closing ')'.
        read -ra fields <<<"${stat##*) }"
        # fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and [12].
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# Resident set size of $1 in KiB.
rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# Median of the numbers on stdin (empty input prints nothing).
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        if (NR % 2) printf "%s\n", v[(NR + 1) / 2]
        else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# One line describing the machine, for reports.
machine_summary() {
    local cpu mem
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
    echo "$(nproc) cores ($cpu), $mem RAM, Linux $(uname -r)," \
        "$(redis-server --version | awk '{print $3}' | sed 's/v=/Redis /')"
}

load_average() {
    awk '{print $1, $2, $3}' /proc/loadavg
}
