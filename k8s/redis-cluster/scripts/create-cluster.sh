#!/bin/sh
# Creates the Redis Cluster once all its nodes answer (the Job's command). Idempotent:
# when the nodes already form a cluster it only waits for cluster_state:ok, so the Job
# can be run again (kubectl apply after a delete, a new namespace, a restore) safely.
#
#   fresh nodes (no slot assigned anywhere, each knows only itself)
#       -> redis-cli --cluster create ... --cluster-replicas $REPLICAS
#   an existing cluster
#       -> nothing to create; wait for cluster_state:ok
#   anything else (slots assigned on some nodes, others alone: a node lost its volume)
#       -> refuse, and say how to repair by hand; never reshuffle slots holding data
#
# Environment (set in job-create-cluster.yaml):
#   POD_NAMESPACE      downward API
#   STATEFULSET        default redis-cluster
#   HEADLESS_SERVICE   default redis-cluster-headless
#   CLUSTER_DOMAIN     default cluster.local
#   NODES              default 6 (StatefulSet replicas)
#   REPLICAS           default 1 (replicas per primary)
#   PORT               default 6379
#   WAIT_SECONDS       default 600: how long to wait for the nodes, then for the cluster
set -eu

: "${POD_NAMESPACE:?POD_NAMESPACE is not set}"
sts=${STATEFULSET:-redis-cluster}
headless=${HEADLESS_SERVICE:-redis-cluster-headless}
domain=${CLUSTER_DOMAIN:-cluster.local}
nodes=${NODES:-6}
replicas=${REPLICAS:-1}
port=${PORT:-6379}
wait_seconds=${WAIT_SECONDS:-600}

log() { echo "create-cluster: $*"; }

deadline=$(($(date +%s) + wait_seconds))
before_deadline() { [ "$(date +%s)" -lt "$deadline" ]; }

# Addresses of the nodes, looked up through the headless Service (IPv4 first, then IPv6).
# redis-cli --cluster create wants addresses; the nodes announce their hostnames anyway.
resolve() {
    getent ahostsv4 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }' | grep . ||
        getent ahostsv6 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }'
}

info_field() { # info_field <ip> <field>: one field of CLUSTER INFO
    redis-cli -h "$1" -p "$port" cluster info 2>/dev/null | tr -d '\r' |
        awk -F: -v f="$2" '$1 == f { print $2 }'
}

ips=""
i=0
while [ "$i" -lt "$nodes" ]; do
    name="$sts-$i.$headless.$POD_NAMESPACE.svc.$domain"
    while :; do
        ip=$(resolve "$name" || true)
        if [ -n "$ip" ] && [ "$(redis-cli -h "$ip" -p "$port" ping 2>/dev/null)" = PONG ]; then
            break
        fi
        before_deadline || { log "gave up waiting for $name"; exit 1; }
        log "waiting for $name"
        sleep 3
    done
    case "$ip" in *:*) ips="$ips [$ip]:$port" ;; *) ips="$ips $ip:$port" ;; esac
    i=$((i + 1))
done
log "all $nodes nodes answer:$ips"

clustered=0 # nodes that have slots or know other nodes
for addr in $ips; do
    ip=${addr%:*}
    ip=${ip#[}
    ip=${ip%]}
    assigned=$(info_field "$ip" cluster_slots_assigned)
    known=$(info_field "$ip" cluster_known_nodes)
    if [ "${assigned:-0}" -gt 0 ] || [ "${known:-1}" -gt 1 ]; then
        clustered=$((clustered + 1))
    fi
done

first=${ips# }
first=${first%% *}
first_ip=${first%:*}
first_ip=${first_ip#[}
first_ip=${first_ip%]}

if [ "$clustered" -eq 0 ]; then
    log "fresh nodes: creating the cluster ($replicas replica(s) per primary)"
    # shellcheck disable=SC2086 # one argument per node address
    redis-cli --cluster create $ips --cluster-replicas "$replicas" --cluster-yes
elif [ "$clustered" -lt "$nodes" ]; then
    log "only $clustered of $nodes nodes are part of a cluster; refusing to touch it."
    log "repair by hand, e.g. redis-cli --cluster fix $first, or CLUSTER MEET the lone nodes."
    exit 1
else
    log "the cluster exists already"
fi

while [ "$(info_field "$first_ip" cluster_state)" != ok ]; do
    before_deadline || { log "cluster_state is not ok; see redis-cli --cluster check $first"; exit 1; }
    log "waiting for cluster_state:ok"
    sleep 3
done
redis-cli --cluster check "$first"
log "cluster_state:ok"
