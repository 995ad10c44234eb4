# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the scripts that source this file
# bench-lib.sh: helpers shared by scripts/bench*.sh. Sourced, never run.
#
# What it provides:
#   - ensure_redis / ensure_memtier: install redis-server, redis-tools (and memtier_benchmark
#     where Debian has it) with apt-get when missing;
#   - a work dir ($WORK, mktemp) and a cleanup trap that stops every process these helpers
#     started, by PID (never by name), then removes $WORK (kept with BENCH_KEEP=1);
#   - start_cluster / start_standalone / start_slotgate / start_predixy: local redis-server
#     nodes (a cluster with or without replicas), slotgate, and predixy (find_predixy builds
#     it from ../shared/peers/ when present),
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

# Starts a cluster of $1 primaries with $2 replicas each (default 0). Sets CLUSTER_PORTS and
# CLUSTER_PIDS (every node, primaries and replicas), PRIMARY_PORTS, SEEDS (comma-separated
# host:port list of every node). Returns once every node says cluster_state:ok and every
# replica's link to its primary is up (so reads from replicas find the data).
start_cluster() {
    local primaries=$1 replicas=${2:-0} base port addrs=() count
    ((primaries >= 3)) || die "a cluster needs at least 3 primaries"
    count=$((primaries * (1 + replicas)))
    free_port_block "$count"
    base=$FREE_BASE
    CLUSTER_PORTS=()
    CLUSTER_PIDS=()
    for ((port = base; port < base + count; port++)); do
        spawn_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 5000
        CLUSTER_PORTS+=("$port")
        CLUSTER_PIDS+=("$(cat "$WORK/$port/pid")")
        addrs+=("127.0.0.1:$port")
    done
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_until "redis-server on port $port (log: $WORK/$port/redis.log)" 10 node_answers "$port"
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
        >"$WORK/cluster-create-$base.log" 2>&1 ||
        die "redis-cli --cluster create failed; see $WORK/cluster-create-$base.log"
    wait_until "cluster_state:ok on every node" 60 cluster_ok "${CLUSTER_PORTS[@]}"
    wait_until "every replica linked to its primary" 60 replicas_linked "${CLUSTER_PORTS[@]}"
    PRIMARY_PORTS=()
    for port in "${CLUSTER_PORTS[@]}"; do
        [[ $(node_role "$port") == master ]] && PRIMARY_PORTS+=("$port")
    done
    SEEDS=$(IFS=,; echo "${addrs[*]}")
}

# "master" or "slave" (INFO replication's role) for the node on port $1.
node_role() {
    redis-cli -p "$1" INFO replication 2>/dev/null | tr -d '\r' | awk -F: '/^role:/ {print $2}'
}

# True when every replica among ports "$@" has master_link_status:up.
replicas_linked() {
    local port info
    for port in "$@"; do
        info=$(redis-cli -p "$port" INFO replication 2>/dev/null | tr -d '\r')
        [[ $info == *role:slave* && $info != *master_link_status:up* ]] && return 1
    done
    return 0
}

# Calls per command name on the node at port $1 ("name count" lines, from INFO
# commandstats), for the share of commands each node served.
command_calls() {
    redis-cli -p "$1" INFO commandstats 2>/dev/null | tr -d '\r' |
        sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p'
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
# SLOTGATE_PID; logs to $WORK/slotgate-<port>.log. SLOTGATE_WRAP (an array, e.g. a valgrind
# command line) runs in front of the binary; STARTUP_SECONDS (default 15) bounds the wait.
SLOTGATE_WRAP=()
start_slotgate() {
    local seeds=$1 tries log
    shift
    free_port_block 1
    SLOTGATE_PORT=$FREE_BASE
    log=$WORK/slotgate-$SLOTGATE_PORT.log
    RUST_LOG=${RUST_LOG:-warn} "${SLOTGATE_WRAP[@]}" "$SLOTGATE_BIN" \
        --listen "127.0.0.1:$SLOTGATE_PORT" --seeds "$seeds" "$@" >"$log" 2>&1 &
    SLOTGATE_PID=$!
    PIDS+=("$SLOTGATE_PID")
    for ((tries = 0; tries < ${STARTUP_SECONDS:-15} * 10; tries++)); do
        if ! kill -0 "$SLOTGATE_PID" 2>/dev/null; then
            # A flag this binary does not know (say --read-from on a build without it):
            # name the flag, not just "exited".
            if grep -q "unexpected argument '--read-from'" "$log"; then
                die "$SLOTGATE_BIN has no --read-from flag (issue 16 adds it); build a" \
                    "slotgate that has it, or drop --read-from / the slotgate-replica target"
            fi
            if grep -q "unexpected argument" "$log"; then
                die "$SLOTGATE_BIN does not accept a flag given to it:" \
                    "$(grep -m1 "unexpected argument" "$log") (flags: $*)"
            fi
            die "slotgate exited during startup: $(tail -5 "$log")"
        fi
        # Ready once it answers a keyed command (the slot map is loaded).
        [[ $(redis-cli -p "$SLOTGATE_PORT" GET bench:ready 2>&1) != *ERR* ]] &&
            node_answers "$SLOTGATE_PORT" && return 0
        sleep 0.1
    done
    die "slotgate did not answer within ${STARTUP_SECONDS:-15}s; log: $log"
}

# Sets PREDIXY_BIN to a predixy binary, or leaves it empty and says why. $1: a path given
# with --predixy (must be executable), else predixy is built with ../shared/peers/
# build-predixy.sh (relative to the repository) into target/peers/predixy, once.
find_predixy() {
    local given=${1:-} script
    PREDIXY_BIN=
    if [[ -n $given ]]; then
        [[ -x $given && ! -d $given ]] || die "--predixy: $given is not an executable file"
        PREDIXY_BIN=$(cd "$(dirname "$given")" && pwd)/$(basename "$given")
        return 0
    fi
    script=$ROOT/../shared/peers/build-predixy.sh
    if [[ ! -f $script ]]; then
        note "predixy: not available ($script not found and no --predixy PATH):" \
            "benchmarking without it"
        return 0
    fi
    if [[ ! -x $ROOT/target/peers/predixy/predixy ]]; then
        note "building predixy with $script (a few minutes, once)"
    fi
    if ! PREDIXY_BIN=$(bash "$script" "$ROOT/target/peers/predixy" 2>"$WORK/predixy-build.err" |
        tail -1) || [[ ! -x $PREDIXY_BIN ]]; then
        note "predixy: the build failed ($(tail -3 "$WORK/predixy-build.err" | tr '\n' ' '))" \
            "benchmarking without it"
        PREDIXY_BIN=
    fi
}

# Starts predixy with $1 worker threads in front of the cluster nodes on ports "${@:2}",
# from ../shared/peers/predixy.conf.tmpl. Sets PREDIXY_PORT and PREDIXY_PID.
start_predixy() {
    local threads=$1 tmpl dir servers="" port tries
    shift
    tmpl=$ROOT/../shared/peers/predixy.conf.tmpl
    [[ -f $tmpl ]] || die "predixy: no config template at $tmpl"
    free_port_block 1
    PREDIXY_PORT=$FREE_BASE
    dir=$WORK/predixy-$PREDIXY_PORT
    mkdir -p "$dir"
    for port in "$@"; do
        servers+="        + 127.0.0.1:$port"$'\n'
    done
    awk -v port="$PREDIXY_PORT" -v threads="$threads" -v dir="$dir" -v servers="${servers%$'\n'}" '
        /@SERVERS@/ { print servers; next }
        { gsub(/@PORT@/, port); gsub(/@THREADS@/, threads); gsub(/@DIR@/, dir); print }
    ' "$tmpl" >"$dir/predixy.conf"
    "$PREDIXY_BIN" "$dir/predixy.conf" >"$dir/stdout.log" 2>&1 &
    PREDIXY_PID=$!
    PIDS+=("$PREDIXY_PID")
    for ((tries = 0; tries < 150; tries++)); do
        kill -0 "$PREDIXY_PID" 2>/dev/null ||
            die "predixy exited during startup: $(tail -5 "$dir/stdout.log" "$dir/predixy.log" 2>&1)"
        # Ready once it forwards a keyed command (it has the slot map).
        [[ $(redis-cli -p "$PREDIXY_PORT" GET bench:ready 2>&1) != *ERR* ]] &&
            [[ $(redis-cli -p "$PREDIXY_PORT" SET bench:ready 1 2>&1) == OK ]] && return 0
        sleep 0.1
    done
    die "predixy did not answer within 15s; see $dir"
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
