#!/bin/sh
# Starts the Redis container of one pod of the Sentinel example (its command).
#
# The primary is whatever the Sentinels say it is; only on the very first start, when no
# Sentinel answers yet, is pod 0 the primary. Every pod announces its stable DNS name
# (replica-announce-ip), so the primary lists its replicas, and the Sentinels learn them,
# under names that survive a restart on a new pod IP.
#
# Environment (set in statefulset.yaml):
#   POD_NAME, POD_NAMESPACE   downward API
#   HEADLESS_SERVICE          default redis-sentinel-headless
#   CLUSTER_DOMAIN            default cluster.local
#   MASTER_NAME               default mymaster
#   RUNTIME_CONF              default /run/redis/redis.conf (an emptyDir)
set -eu

: "${POD_NAME:?POD_NAME is not set}"
: "${POD_NAMESPACE:?POD_NAMESPACE is not set}"
headless=${HEADLESS_SERVICE:-redis-sentinel-headless}
domain=${CLUSTER_DOMAIN:-cluster.local}
master_name=${MASTER_NAME:-mymaster}
conf=${RUNTIME_CONF:-/run/redis/redis.conf}

service="$headless.$POD_NAMESPACE.svc.$domain"
fqdn="$POD_NAME.$service"
first="${POD_NAME%-*}-0.$service"

# Ask the Sentinels (any pod's) where the primary is; empty when none answers.
primary=$(redis-cli -h "$service" -p 26379 --raw SENTINEL get-master-addr-by-name "$master_name" 2>/dev/null | head -n 1 || true)
if [ -z "$primary" ]; then
    primary=$first
fi

{
    echo "port 6379"
    echo "bind * -::*"
    echo "protected-mode no"
    echo "dir /data"
    echo "appendonly yes"
    echo "replica-announce-ip $fqdn"
    echo "maxmemory 300mb"
    echo "maxmemory-policy noeviction"
    if [ "$primary" != "$fqdn" ]; then
        echo "replicaof $primary 6379"
    fi
} >"$conf"

exec redis-server "$conf"
