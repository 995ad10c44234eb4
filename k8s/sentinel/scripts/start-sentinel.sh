#!/bin/sh
# Starts the Sentinel container of one pod of the Sentinel example (its command).
#
# Sentinel rewrites its config file, so it is written fresh into an emptyDir at every start:
# monitor the primary the other Sentinels name (pod 0 on the very first start), track and
# announce nodes by their stable DNS names (resolve-hostnames, announce-hostnames), and
# announce this Sentinel under its own pod name, so a restart on a new IP leaves no stale
# Sentinel behind.
#
# Environment (set in statefulset.yaml): as scripts/start-redis.sh, plus
#   QUORUM   default 2
#   SENTINEL_CONF   default /run/sentinel/sentinel.conf (an emptyDir)
set -eu

: "${POD_NAME:?POD_NAME is not set}"
: "${POD_NAMESPACE:?POD_NAMESPACE is not set}"
headless=${HEADLESS_SERVICE:-redis-sentinel-headless}
domain=${CLUSTER_DOMAIN:-cluster.local}
master_name=${MASTER_NAME:-mymaster}
quorum=${QUORUM:-2}
conf=${SENTINEL_CONF:-/run/sentinel/sentinel.conf}

service="$headless.$POD_NAMESPACE.svc.$domain"
fqdn="$POD_NAME.$service"
first="${POD_NAME%-*}-0.$service"

primary=$(redis-cli -h "$service" -p 26379 --raw SENTINEL get-master-addr-by-name "$master_name" 2>/dev/null | head -n 1 || true)
if [ -z "$primary" ]; then
    primary=$first
fi

{
    echo "port 26379"
    echo "bind * -::*"
    echo "protected-mode no"
    echo "dir /run/sentinel"
    echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"
    echo "sentinel announce-ip $fqdn"
    echo "sentinel monitor $master_name $primary 6379 $quorum"
    echo "sentinel down-after-milliseconds $master_name 5000"
    echo "sentinel failover-timeout $master_name 60000"
    echo "sentinel parallel-syncs $master_name 1"
} >"$conf"

exec redis-server "$conf" --sentinel
