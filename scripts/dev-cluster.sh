#!/usr/bin/env bash
# dev-cluster.sh: a throw-away local Redis backend with slotgate in front, to try things by hand.
#
# --mode cluster (default): starts P primaries and P*R replicas (redis-server, 127.0.0.1 only,
# ports BASE..; the cluster bus uses port+10000, so everything stays below 32768), creates the
# cluster with `redis-cli --cluster create` and runs slotgate with every node as a seed.
# --mode sentinel: one primary and R replicas (ports BASE..) watched by 3 Sentinels (ports
# BASE+100..BASE+102, master name `dev`, down-after 2 s), slotgate in sentinel mode asking them.
# --mode standalone: one primary and R replicas (ports BASE..), no Sentinel; slotgate in
# standalone mode with every node as a seed (roles come from ROLE).
# Builds slotgate (`cargo build --release`) and runs it on 127.0.0.1:PORT, its admin listener
# (the live topology page) on 127.0.0.1:ADMIN_PORT, in every mode. Installs redis-server
# and redis-tools with apt-get when they are missing. Stays in the foreground: Ctrl-C stops
# everything it started. Data and logs go to ./.dev-cluster/ (gitignored, wiped at the next start).
#
# Usage: scripts/dev-cluster.sh [options]
#   --mode M         cluster | sentinel | standalone               (default cluster)
#   --port N         slotgate's port                               (default 6380)
#   --admin-port N   slotgate's admin listener: page, /metrics     (default 9121)
#   --primaries N    cluster mode: number of primaries, at least 3 (default 3)
#   --replicas N     replicas per primary             (default 1; 2 in the other modes)
#   --base-port N    first Redis node port                         (default 7000)
#   --read-from P    slotgate's read policy: primary, primary-preferred, replica,
#                    replica-preferred, nearest, any                (default primary)
#   --no-proxy       only the Redis nodes; do not build or run slotgate
#   -h, --help       this text
set -euo pipefail

MODE=cluster
PORT=6380
ADMIN_PORT=9121
PRIMARIES=3
REPLICAS=
BASE_PORT=7000
PROXY=1
READ_FROM=primary

die() {
    echo "dev-cluster: error: $*" >&2
    exit 1
}

usage() {
    # The header comment above, without the shebang and the leading '# '.
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

need_value() {
    [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "$1 needs a number (see --help)"
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --mode)
            [[ $# -ge 2 && $2 =~ ^(cluster|sentinel|standalone)$ ]] ||
                die "--mode needs cluster, sentinel or standalone (see --help)"
            MODE=$2; shift 2 ;;
        --port) need_value "$@"; PORT=$2; shift 2 ;;
        --admin-port) need_value "$@"; ADMIN_PORT=$2; shift 2 ;;
        --primaries) need_value "$@"; PRIMARIES=$2; shift 2 ;;
        --replicas) need_value "$@"; REPLICAS=$2; shift 2 ;;
        --base-port) need_value "$@"; BASE_PORT=$2; shift 2 ;;
        --read-from)
            [[ $# -ge 2 && -n $2 ]] || die "--read-from needs a policy (see --help)"
            READ_FROM=$2
            shift 2
            ;;
        --no-proxy) PROXY=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

if [[ $MODE == cluster ]]; then
    REPLICAS=${REPLICAS:-1}
    ((PRIMARIES >= 3)) || die "--primaries must be at least 3 (redis-cli --cluster create refuses fewer)"
else
    # One primary with replicas: --primaries means nothing here.
    REPLICAS=${REPLICAS:-2}
    PRIMARIES=1
fi
NODES=$((PRIMARIES * (1 + REPLICAS)))
LAST_PORT=$((BASE_PORT + NODES - 1))
SENTINEL_BASE=$((BASE_PORT + 100))
MASTER_NAME=dev
((BASE_PORT >= 1024 && LAST_PORT + 10000 < 32768)) ||
    die "node ports $BASE_PORT..$LAST_PORT and their bus ports (+10000) must lie in 1024..32767"
((PORT < BASE_PORT || PORT > LAST_PORT)) || die "--port $PORT collides with the node ports"
((ADMIN_PORT < BASE_PORT || ADMIN_PORT > LAST_PORT)) && ((ADMIN_PORT != PORT)) ||
    die "--admin-port $ADMIN_PORT collides with --port or the node ports"
if [[ $MODE == sentinel ]]; then
    ((PORT < SENTINEL_BASE || PORT > SENTINEL_BASE + 2)) ||
        die "--port $PORT collides with the Sentinel ports $SENTINEL_BASE..$((SENTINEL_BASE + 2))"
    ((ADMIN_PORT < SENTINEL_BASE || ADMIN_PORT > SENTINEL_BASE + 2)) ||
        die "--admin-port $ADMIN_PORT collides with the Sentinel ports $SENTINEL_BASE..$((SENTINEL_BASE + 2))"
    ((NODES <= 100)) || die "too many nodes: the Sentinels use ports from --base-port + 100"
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=$ROOT/.dev-cluster
cd "$ROOT"

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

ensure_redis() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    if [[ ${#missing[@]} -gt 0 ]]; then
        command -v apt-get >/dev/null ||
            die "missing ${missing[*]} and no apt-get here; install Redis 7 yourself"
        echo "dev-cluster: installing ${missing[*]} with apt-get"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends redis-server redis-tools
    fi
    command -v redis-server >/dev/null || die "redis-server is still missing after apt-get install"
    command -v redis-cli >/dev/null || die "redis-cli is still missing after apt-get install"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Every process we started, so that we stop exactly those (never by name).
PIDS=()

# shellcheck disable=SC2317 # invoked by the EXIT trap, which shellcheck cannot see
cleanup() {
    trap - EXIT INT TERM
    [[ ${#PIDS[@]} -gt 0 ]] || return 0
    echo "dev-cluster: stopping ${#PIDS[@]} processes"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    local pid tries
    for pid in "${PIDS[@]}"; do
        for ((tries = 0; tries < 50; tries++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls "$@" every 0.1 s until it succeeds; dies with $1 ... after $2 seconds.
wait_until() {
    local what=$1 seconds=$2 tries
    shift 2
    for ((tries = 0; tries < seconds * 10; tries++)); do
        "$@" && return 0
        sleep 0.1
    done
    die "timed out after ${seconds}s waiting for $what"
}

# shellcheck disable=SC2317 # invoked through wait_until "$@"
node_answers() {
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]]
}

# shellcheck disable=SC2317 # invoked through wait_until "$@"
cluster_ok() {
    local port
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        redis-cli -p "$port" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
}

start_nodes() {
    local port dir mode_args
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        if port_in_use "$port" || port_in_use $((port + 10000)); then
            die "port $port or $((port + 10000)) is in use (an old dev cluster?); try --base-port"
        fi
    done
    rm -rf "$DATA"
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        dir=$DATA/$port
        mkdir -p "$dir"
        if [[ $MODE == cluster ]]; then
            mode_args=(--cluster-enabled yes --cluster-config-file nodes.conf
                --cluster-node-timeout 2000)
        elif ((port == BASE_PORT)); then
            mode_args=() # the primary
        else
            mode_args=(--replicaof 127.0.0.1 "$BASE_PORT")
        fi
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" "${mode_args[@]}" \
            --appendonly no --save '' --repl-diskless-sync-delay 0 --daemonize no \
            >"$dir/redis.log" 2>&1 &
        PIDS+=("$!")
    done
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        wait_until "redis-server on port $port (log: $DATA/$port/redis.log)" 10 node_answers "$port"
    done
}

create_cluster() {
    local addrs=() port
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        addrs+=("127.0.0.1:$port")
    done
    echo "dev-cluster: creating the cluster ($PRIMARIES primaries, $REPLICAS replicas each)"
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$REPLICAS" --cluster-yes \
        >"$DATA/cluster-create.log" 2>&1 ||
        die "redis-cli --cluster create failed; see $DATA/cluster-create.log"
    wait_until "cluster_state:ok on every node" 30 cluster_ok
    SEEDS=$(IFS=,; echo "${addrs[*]}")
}

# shellcheck disable=SC2317 # invoked through wait_until "$@"
replicas_online() {
    [[ $(redis-cli -p "$BASE_PORT" INFO replication 2>/dev/null |
        grep -c '^slave[0-9]*:.*state=online') -eq $REPLICAS ]]
}

# One primary with its replicas: wait until every replica has synced.
start_replication() {
    echo "dev-cluster: one primary on port $BASE_PORT with $REPLICAS replica(s)"
    wait_until "every replica online on the primary" 30 replicas_online
    local addrs=() port
    for ((port = BASE_PORT; port <= LAST_PORT; port++)); do
        addrs+=("127.0.0.1:$port")
    done
    SEEDS=$(IFS=,; echo "${addrs[*]}")
}

# shellcheck disable=SC2317 # invoked through wait_until "$@"
sentinels_agree() {
    local port
    for ((port = SENTINEL_BASE; port < SENTINEL_BASE + 3; port++)); do
        [[ $(redis-cli -p "$port" SENTINEL sentinels "$MASTER_NAME" 2>/dev/null |
            grep -c '^name$') -eq 2 ]] || return 1
    done
}

# Three Sentinels watching the primary; waits until each knows the other two.
start_sentinels() {
    local port dir addrs=()
    for ((port = SENTINEL_BASE; port < SENTINEL_BASE + 3; port++)); do
        port_in_use "$port" && die "Sentinel port $port is in use; try --base-port"
        dir=$DATA/sentinel-$port
        mkdir -p "$dir"
        cat >"$dir/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
dir $dir
sentinel monitor $MASTER_NAME 127.0.0.1 $BASE_PORT 2
sentinel down-after-milliseconds $MASTER_NAME 2000
sentinel failover-timeout $MASTER_NAME 10000
CONF
        redis-server "$dir/sentinel.conf" --sentinel >"$dir/sentinel.log" 2>&1 &
        PIDS+=("$!")
        addrs+=("127.0.0.1:$port")
    done
    for ((port = SENTINEL_BASE; port < SENTINEL_BASE + 3; port++)); do
        wait_until "Sentinel on port $port (log: $DATA/sentinel-$port/sentinel.log)" 10 \
            node_answers "$port"
    done
    echo "dev-cluster: 3 Sentinels on ports $SENTINEL_BASE-$((SENTINEL_BASE + 2)), master name $MASTER_NAME"
    wait_until "the Sentinels to discover each other" 30 sentinels_agree
    SENTINELS=$(IFS=,; echo "${addrs[*]}")
}

start_proxy() {
    echo "dev-cluster: building slotgate (cargo build --release)"
    cargo build --release ||
        die "cargo build --release failed (see above). The cluster itself came up fine;" \
            "run with --no-proxy to keep just the cluster."
    local bin=$ROOT/target/release/slotgate
    [[ -x $bin ]] ||
        die "the build produced no $bin: the crate has no slotgate binary (src/main.rs) yet." \
            "The cluster itself came up fine; run with --no-proxy to keep just the cluster."
    if port_in_use "$PORT"; then
        die "port $PORT is in use; pick another with --port"
    fi
    if port_in_use "$ADMIN_PORT"; then
        die "port $ADMIN_PORT is in use; pick another with --admin-port"
    fi
    echo "dev-cluster: starting slotgate on 127.0.0.1:$PORT (RUST_LOG=${RUST_LOG:-info})"
    local backend_args
    case $MODE in
        cluster) backend_args=(--seeds "$SEEDS") ;;
        standalone) backend_args=(--mode standalone --seeds "$SEEDS") ;;
        sentinel) backend_args=(--mode sentinel --sentinels "$SENTINELS" --master-name "$MASTER_NAME") ;;
    esac
    RUST_LOG=${RUST_LOG:-info} "$bin" --listen "127.0.0.1:$PORT" "${backend_args[@]}" \
        --read-from "$READ_FROM" --admin-listen "127.0.0.1:$ADMIN_PORT" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    local tries
    for ((tries = 0; tries < 150; tries++)); do
        kill -0 "$PROXY_PID" 2>/dev/null || die "slotgate exited during startup (see its output above)"
        node_answers "$PORT" && return 0
        sleep 0.1
    done
    die "slotgate did not answer PING on 127.0.0.1:$PORT within 15s (see its output above)"
}

ensure_redis
start_nodes
case $MODE in
    cluster)
        create_cluster
        BACKEND="a Redis Cluster of $PRIMARIES primaries and $REPLICAS replica(s) each on 127.0.0.1:$BASE_PORT-$LAST_PORT"
        DIRECT="redis-cli -c -p $BASE_PORT      # the cluster itself, bypassing slotgate"
        ;;
    standalone)
        start_replication
        BACKEND="a primary (127.0.0.1:$BASE_PORT) with $REPLICAS replica(s) on 127.0.0.1:$((BASE_PORT + 1))-$LAST_PORT, no Sentinel"
        DIRECT="redis-cli -p $BASE_PORT         # the primary itself, bypassing slotgate"
        ;;
    sentinel)
        start_replication
        start_sentinels
        BACKEND="a Sentinel group '$MASTER_NAME' (Sentinels on 127.0.0.1:$SENTINEL_BASE-$((SENTINEL_BASE + 2)); primary 127.0.0.1:$BASE_PORT, $REPLICAS replica(s))"
        DIRECT="redis-cli -p $SENTINEL_BASE SENTINEL FAILOVER $MASTER_NAME   # try a failover"
        ;;
esac

if [[ $PROXY -eq 1 ]]; then
    start_proxy
    cat <<EOF

slotgate is listening on 127.0.0.1:$PORT in front of $BACKEND.
Connect with:

    redis-cli -p $PORT         # slotgate as one standalone server
    redis-cli -c -p $PORT      # cluster mode (follows redirects)
    $DIRECT

Live topology page (slot map, nodes, failovers): http://127.0.0.1:$ADMIN_PORT/
Its JSON: http://127.0.0.1:$ADMIN_PORT/api/topology   Metrics: http://127.0.0.1:$ADMIN_PORT/metrics

Node logs: $DATA/<port>/redis.log. slotgate logs below. Ctrl-C stops everything.

EOF
    status=0
    wait "$PROXY_PID" || status=$?
    echo "dev-cluster: slotgate exited with status $status; stopping the cluster" >&2
    exit "$status"
else
    cat <<EOF

$BACKEND
(slotgate not started: --no-proxy). Connect with:

    $DIRECT

Node logs: $DATA/<port>/redis.log. Ctrl-C stops everything.

EOF
    status=0
    wait -n || status=$?
    echo "dev-cluster: a redis-server exited (status $status); stopping the cluster" >&2
    exit 1
fi
