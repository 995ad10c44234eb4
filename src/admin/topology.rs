//! `GET /topology`: the slot map in force as JSON.
//!
//! Reads the snapshot ([`crate::topology::Topology`]), readiness and the nodes that
//! answered the last discovery round ([`ProxyState::discovery`]) and renders:
//!
//! ```json
//! {"mode": "cluster", "no_primary": null, "ready": true, "readiness": "ready", "complete": true, "slots_covered": 16384,
//!  "epoch": 6, "generation": 1, "source": "10.0.0.5:6379",
//!  "last_refresh_unix_ms": 1700000000000, "last_refresh": "2023-11-14T22:13:20.000Z",
//!  "shards": [{"slots": [[0, 5460]],
//!              "primary": {"address": "10.0.0.5:6379", "id": "…", "health": "online"},
//!              "replicas": [{"address": "10.0.0.8:6379", "id": "…", "health": "online"}]}]}
//! ```
//!
//! `no_primary` is set in the modes without slots while no single node answers `ROLE
//! master`: `{"split_brain": true, "claimants": ["10.0.0.5:6379", "10.0.0.6:6379"],
//! "error": "MASTERDOWN slotgate: split brain: ..."}`.
//!
//! `sentinel` (sentinel mode, else null) is [`crate::upstream::sentinel::SentinelStatus`]:
//! the master name, each Sentinel (`address`, `configured`, `reachable`, `says`, `error`,
//! `last_answer_unix_ms`), the `primary` confirmed by `ROLE` and when, the `replicas`
//! (`address`, `state`, `offset`), every `switches` entry (`from`, `to`, `at_unix_ms`),
//! `sentinels_unreachable` and `holding` (a failover hold is in force).
//!
//! Each node also says how it serves reads ([`crate::reads`]): `role` (`primary` or
//! `replica`), `readable` (it may serve reads now) and `not_readable_because`, `lag_bytes`
//! and `lag_seconds` (replicas, from the last probe; null when unknown), `round_trip_ms`
//! (the probe's), `reads` (reads a read policy sent it) and `read_share` (its share of all
//! such reads of this backend). The top level names the policy: `read_from`,
//! `replica_max_lag`, `read_your_writes`.
//!
//! `health` is `online` when the node answered the last discovery round, `unreachable`
//! when it did not, and `unknown` before any round was recorded.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::endpoint::Endpoint;
use crate::state::{ProxyState, Readiness};
use crate::topology::Node;

/// The JSON document described in the module docs: the first backend's document at the
/// top (what it always was), then `backends` (every backend's document, with its `name`,
/// `required` and its own `backend_ready`) and `listeners` (`name`, `backend`, `listen`).
pub fn json(state: &ProxyState) -> Value {
    let mut doc = json_for(state, &state.default_upstream());
    let backends: Vec<Value> = state
        .upstreams()
        .iter()
        .map(|upstream| {
            let mut one = json_for(state, upstream);
            one["name"] = json!(upstream.name);
            one["required"] = json!(upstream.required());
            one["backend_ready"] = json!(upstream.is_ready());
            one
        })
        .collect();
    let listeners: Vec<Value> = state
        .listeners()
        .iter()
        .map(|listener| {
            let config = listener.config();
            json!({
                "name": listener.name,
                "backend": listener.upstream.name,
                "listen": config.listen.to_string(),
                "tls_port": config.tls.as_ref().map(|tls| tls.port),
            })
        })
        .collect();
    doc["backends"] = json!(backends);
    doc["listeners"] = json!(listeners);
    doc
}

/// One backend's document.
pub fn json_for(state: &ProxyState, upstream: &crate::upstream::Upstream) -> Value {
    let topology = upstream.topology.load();
    let readiness = state.readiness();
    let discovery = upstream.discovery();
    let ready_flag = upstream.ready.load(Ordering::Relaxed);
    let health = |node: &Node, primary: bool| -> &'static str {
        match &discovery {
            Some(answers) if answers.answered.contains(&node.endpoint) => "online",
            Some(_) => "unreachable",
            // No round recorded: readiness still says every primary answered.
            None if primary && ready_flag => "online",
            None => "unknown",
        }
    };
    let reads = upstream.reads.load();
    let counts = reads_by_node(state);
    // This backend's nodes only: another backend's reads are not a share of these.
    let all_reads: u64 = topology
        .endpoints()
        .iter()
        .filter_map(|e| counts.get(e))
        .map(|(p, r)| p + r)
        .sum();
    let describe = |node: &Node, primary: bool| {
        let seen = reads.node(&node.endpoint);
        let (readable, why_not) = match (primary, seen) {
            (_, _) if !primary && !upstream.probes_replicas() => (
                false,
                Some(format!("read-from is {}", reads.settings.read_from)),
            ),
            (true, None) => (true, None),
            (false, None) => (false, Some("not probed yet".to_owned())),
            (_, Some(seen)) => (seen.readable, seen.why_not.clone()),
        };
        let (as_primary, as_replica) = counts.get(&node.endpoint).copied().unwrap_or_default();
        let served = as_primary + as_replica;
        json!({
            "address": node.endpoint.to_string(),
            "id": &*node.id,
            "health": health(node, primary),
            "role": if primary { "primary" } else { "replica" },
            "readable": readable,
            "not_readable_because": why_not,
            "lag_bytes": seen.filter(|_| !primary).and_then(|s| s.lag_bytes),
            "lag_seconds": seen.filter(|_| !primary).and_then(|s| s.lag_seconds),
            "round_trip_ms": seen.and_then(|s| s.round_trip).map(|rtt| rtt.as_secs_f64() * 1000.0),
            "reads": served,
            "read_share": if all_reads == 0 { 0.0 } else { served as f64 / all_reads as f64 },
        })
    };
    let shards: Vec<Value> = topology
        .shards()
        .iter()
        .enumerate()
        .map(|(index, shard)| {
            let slots: Vec<[u16; 2]> = topology
                .ranges_of(index)
                .into_iter()
                .map(|(start, end)| [start, end])
                .collect();
            json!({
                "slots": slots,
                "primary": describe(&shard.primary, true),
                "replicas": shard.replicas.iter().map(|r| describe(r, false)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let last_refresh_ms = upstream.last_refresh_unix_ms.load(Ordering::Relaxed);
    let no_primary = upstream.no_primary().map(|fault| {
        json!({
            "split_brain": fault.is_split_brain(),
            "claimants": fault.claimants.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "error": String::from_utf8_lossy(fault.reply.get(1..fault.reply.len().saturating_sub(2)).unwrap_or_default()),
        })
    });
    json!({
        "mode": upstream.shape.name(),
        "read_from": reads.settings.read_from.name(),
        "replica_max_lag": reads.settings.max_lag.to_string(),
        "read_your_writes": reads.settings.read_your_writes.name(),
        "no_primary": no_primary,
        "ready": readiness == Readiness::Ready,
        "readiness": readiness_label(readiness),
        "complete": topology.is_complete(),
        "slots_covered": topology.covered_slots(),
        "epoch": topology.epoch,
        "generation": topology.generation,
        "source": topology.source.as_ref().map(ToString::to_string),
        "last_refresh_unix_ms": last_refresh_ms,
        "last_refresh": (last_refresh_ms > 0).then(|| rfc3339_ms(last_refresh_ms)),
        "shards": shards,
        "sentinel": upstream.sentinel.status().map(|s| json!(*s)),
    })
}

/// Reads a read policy sent to each node since start, `(as primary, as replica)`, summed
/// over the workers.
fn reads_by_node(state: &ProxyState) -> HashMap<Endpoint, (u64, u64)> {
    let mut counts: HashMap<Endpoint, (u64, u64)> = HashMap::new();
    for worker in &state.workers {
        worker.metrics.visit_nodes(
            |_| true,
            |node| {
                let (primary, replica) = node.reads();
                let sums = counts.entry(node.endpoint.clone()).or_default();
                sums.0 += primary;
                sums.1 += replica;
            },
        );
    }
    counts
}

fn readiness_label(readiness: Readiness) -> &'static str {
    match readiness {
        Readiness::Starting => "starting",
        Readiness::Draining => "draining",
        Readiness::Degraded => "degraded",
        Readiness::Ready => "ready",
    }
}

/// `2023-11-14T22:13:20.000Z` for milliseconds since the Unix epoch (UTC).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Config, HostPort};
    use crate::endpoint::Endpoint;
    use crate::topology::{Shard, Topology};

    #[test]
    fn dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn shards_nodes_and_health() {
        let state = ProxyState::new(Config::with_seeds(vec![HostPort::new("a", 1)]));
        let node = |id: &str, port| Node {
            id: id.into(),
            endpoint: Endpoint::new("127.0.0.1", port),
        };
        state
            .default_upstream()
            .topology
            .store(Arc::new(Topology::from_ranges(
                vec![
                    Shard {
                        primary: node("a", 7000),
                        replicas: vec![node("c", 7002)],
                    },
                    Shard {
                        primary: node("b", 7001),
                        replicas: vec![],
                    },
                ],
                &[(0, 0, 99), (1, 100, 16383)],
            )));
        let doc = json(&state);
        assert_eq!(doc["complete"], true);
        assert_eq!(doc["readiness"], "starting");
        assert_eq!(doc["shards"][0]["slots"], json!([[0, 99]]));
        assert_eq!(doc["shards"][0]["primary"]["address"], "127.0.0.1:7000");
        assert_eq!(doc["shards"][0]["primary"]["health"], "unknown");
        assert_eq!(doc["shards"][0]["replicas"][0]["id"], "c");
        assert_eq!(doc["last_refresh"], Value::Null);

        state
            .default_upstream()
            .record_discovery([Endpoint::new("127.0.0.1", 7000)]);
        let doc = json(&state);
        assert_eq!(doc["shards"][0]["primary"]["health"], "online");
        assert_eq!(doc["shards"][0]["replicas"][0]["health"], "unreachable");
        assert_eq!(doc["shards"][1]["primary"]["health"], "unreachable");
    }
}
