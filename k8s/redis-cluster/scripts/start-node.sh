#!/bin/sh
# Starts one node of the Redis Cluster StatefulSet (the container's command).
#
# 1. Writes the runtime config: the shared redis.conf plus this pod's announce settings,
#    cluster-announce-ip (the pod IP, from the downward API) and cluster-announce-hostname
#    (the pod's stable DNS name under the headless Service).
# 2. Makes the node survive restarts on new pod IPs. nodes.conf (on the PersistentVolume)
#    remembers every peer by the IP it had; after all pods restarted (a node pool
#    upgrade, a full rollout) every remembered IP is stale and the nodes would never find
#    each other again. Each peer line also carries the peer's announced hostname, so the
#    IP is refreshed from DNS (the headless Service publishes not-ready pods too) before
#    redis-server reads the file. Peers whose name does not resolve yet keep their old IP;
#    the cluster bus corrects them as soon as any node reaches them.
#
# Environment (set in statefulset.yaml):
#   POD_IP, POD_NAME, POD_NAMESPACE   downward API
#   HEADLESS_SERVICE                  default redis-cluster-headless
#   CLUSTER_DOMAIN                    default cluster.local
#   REDIS_CONF                        default /etc/redis/redis.conf (the ConfigMap)
#   RUNTIME_CONF                      default /run/redis/redis.conf (an emptyDir)
#   DATA_DIR                          default /data (the PersistentVolume)
#   RESOLVE_ATTEMPTS                  rounds of DNS look-ups for peers, 2 s apart; default 15
set -eu

: "${POD_IP:?POD_IP is not set}"
: "${POD_NAME:?POD_NAME is not set}"
: "${POD_NAMESPACE:?POD_NAMESPACE is not set}"
headless=${HEADLESS_SERVICE:-redis-cluster-headless}
domain=${CLUSTER_DOMAIN:-cluster.local}
conf_in=${REDIS_CONF:-/etc/redis/redis.conf}
conf_out=${RUNTIME_CONF:-/run/redis/redis.conf}
data_dir=${DATA_DIR:-/data}
attempts=${RESOLVE_ATTEMPTS:-15}

fqdn="$POD_NAME.$headless.$POD_NAMESPACE.svc.$domain"

{
    cat "$conf_in"
    echo
    echo "# Added by start-node.sh for $POD_NAME"
    echo "dir $data_dir"
    echo "cluster-announce-ip $POD_IP"
    echo "cluster-announce-hostname $fqdn"
} >"$conf_out"

# The address family of this pod decides which records to look up.
case "$POD_IP" in
    *:*) family=ahostsv6 ;;
    *) family=ahostsv4 ;;
esac

resolve() {
    getent "$family" "$1" 2>/dev/null | awk 'NR == 1 { print $1 }'
}

# Prints nodes.conf with every address refreshed that can be; returns 1 while some peer
# name did not resolve. A line looks like
#   <id> <ip>:<port>@<bus-port>[,<hostname>[,<aux>=<value>...]] <flags> ...
# (the IP may be IPv6, without brackets); the first line may be "vars ...".
refresh_nodes_conf() {
    missing=0
    while IFS= read -r line || [ -n "$line" ]; do
        set -f
        # shellcheck disable=SC2086 # split the line into fields on purpose
        set -- $line
        set +f
        if [ "$#" -lt 3 ] || [ "$1" = vars ]; then
            printf '%s\n' "$line"
            continue
        fi
        id=$1
        addr=$2
        flags=$3
        shift 3
        hostport=${addr%%,*}          # ip:port@bus
        extra=${addr#"$hostport"}     # ,hostname,aux... or empty
        ip=${hostport%:*}
        portpart=${hostport##*:}
        host=${extra#,}
        host=${host%%,*}
        new_ip=$ip
        case ",$flags," in
            *,myself,*) new_ip=$POD_IP ;;
            *)
                if [ -n "$host" ]; then
                    found=$(resolve "$host")
                    if [ -n "$found" ]; then
                        new_ip=$found
                    else
                        missing=1
                    fi
                fi
                ;;
        esac
        printf '%s %s:%s%s %s' "$id" "$new_ip" "$portpart" "$extra" "$flags"
        [ "$#" -gt 0 ] && printf ' %s' "$@"
        printf '\n'
    done <"$data_dir/nodes.conf"
    return "$missing"
}

if [ -s "$data_dir/nodes.conf" ]; then
    round=1
    while :; do
        if refresh_nodes_conf >"$data_dir/nodes.conf.new"; then
            complete=yes
        else
            complete=no
        fi
        if [ "$complete" = yes ] || [ "$round" -ge "$attempts" ]; then
            break
        fi
        round=$((round + 1))
        sleep 2
    done
    if ! cmp -s "$data_dir/nodes.conf" "$data_dir/nodes.conf.new"; then
        echo "start-node: refreshed peer addresses in nodes.conf (all peers resolved: $complete)"
        cp "$data_dir/nodes.conf" "$data_dir/nodes.conf.bak"
        mv "$data_dir/nodes.conf.new" "$data_dir/nodes.conf"
    else
        rm -f "$data_dir/nodes.conf.new"
    fi
fi

exec redis-server "$conf_out"
