//! The replica probe: every `replica-check-interval`, asks every node of an upstream for
//! its `INFO replication` (and `INFO persistence`, for `loading`) and publishes a
//! [`ReadHealth`] snapshot.
//!
//! ```text
//! per shard, concurrently:
//!   primary:  INFO replication            -> master_repl_offset, slaveN: state, lag   (asked first)
//!   replicas: INFO replication+persistence -> role, link, sync, loading, slave_repl_offset
//!   health::judge(replica, own, primary)  -> readable or why not
//! ```
//!
//! A node that does not answer within the interval counts as not answering: a SIGSTOPped
//! or overloaded replica leaves the read set at the next round instead of holding reads.
//! The primary is asked before its replicas so that a replica's offset is never compared
//! with a primary offset read after it (read-your-writes relies on that order). The probe
//! runs only while the backend's policy, or a listener's override, sends reads to replicas;
//! otherwise it idles.

use std::sync::Arc;
use std::time::Duration;

use redis_protocol::resp2::types::OwnedFrame;
use rustc_hash::FxHashMap;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Upstream;
use crate::connector::NodeConnector;
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::reads::health::{NodeHealth, ReadHealth, Replication, Role, judge};

/// Probes `upstream` until `shutdown` fires; see the module docs.
pub async fn run(upstream: Arc<Upstream>, shutdown: CancellationToken) {
    let dns = Arc::new(Dns::new(upstream.settings().dns_server.as_ref()));
    loop {
        let settings = upstream.read_settings();
        let interval = settings.check_interval;
        if upstream.probes_replicas() {
            let started = Instant::now();
            let nodes = round(&upstream, &dns, interval).await;
            upstream.publish_read_health(settings, nodes);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(started + interval) => {}
            }
        } else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sleep(interval) => {}
            }
        }
    }
}

/// One round over every shard of the current topology.
async fn round(
    upstream: &Upstream,
    dns: &Arc<Dns>,
    interval: Duration,
) -> FxHashMap<Endpoint, NodeHealth> {
    let mut connector = NodeConnector::clone(&upstream.connector.load());
    connector.reply_timeout = connector.reply_timeout.min(interval);
    connector.connect_timeout = connector.connect_timeout.min(interval);
    let connector = Arc::new(connector);
    let max_lag = upstream.read_settings().max_lag;
    let topology = upstream.topology.load_full();
    let mut shards = JoinSet::new();
    for shard in topology.shards() {
        let primary = shard.primary.endpoint.clone();
        let replicas: Vec<Endpoint> = shard.replicas.iter().map(|r| r.endpoint.clone()).collect();
        let (dns, connector) = (dns.clone(), connector.clone());
        shards.spawn(async move {
            let mut found = Vec::new();
            let primary_asked = Instant::now();
            let primary_info = ask(&dns, &connector, &primary, interval).await;
            let primary_seen = primary_info.as_ref().ok().cloned();
            found.push((
                primary.clone(),
                NodeHealth {
                    role: Role::Primary,
                    readable: primary_info.is_ok(),
                    why_not: primary_info.as_ref().err().cloned(),
                    lag_bytes: None,
                    lag_seconds: None,
                    offset: primary_seen.as_ref().and_then(|p| p.1.master_repl_offset),
                    asked_at: primary_asked.into_std(),
                    round_trip: primary_seen.as_ref().map(|p| p.0),
                },
            ));
            let primary_seen = primary_seen.map(|(_, info)| Arc::new(info));
            let mut asks = JoinSet::new();
            for replica in replicas {
                let (dns, connector, primary) =
                    (dns.clone(), connector.clone(), primary_seen.clone());
                asks.spawn(async move {
                    let asked_at = Instant::now();
                    let own = ask(&dns, &connector, &replica, interval).await;
                    let verdict = judge(
                        &replica,
                        own.as_ref().map(|(_, info)| info).map_err(String::as_str),
                        primary.as_deref(),
                        max_lag,
                    );
                    let health = NodeHealth {
                        role: Role::Replica,
                        readable: verdict.why_not.is_none(),
                        why_not: verdict.why_not,
                        lag_bytes: verdict.lag_bytes,
                        lag_seconds: verdict.lag_seconds,
                        offset: own.as_ref().ok().and_then(|(_, i)| i.slave_repl_offset),
                        asked_at: asked_at.into_std(),
                        round_trip: own.as_ref().ok().map(|(rtt, _)| *rtt),
                    };
                    (replica, health)
                });
            }
            while let Some(Ok(answer)) = asks.join_next().await {
                found.push(answer);
            }
            found
        });
    }
    let mut nodes = FxHashMap::default();
    while let Some(joined) = shards.join_next().await {
        match joined {
            Ok(found) => nodes.extend(found),
            Err(e) => debug!(error = %e, "replica probe task failed"),
        }
    }
    nodes
}

/// `INFO replication` and `INFO persistence` from `endpoint`, with the round trip, or why
/// not (within `limit`).
async fn ask(
    dns: &Dns,
    connector: &NodeConnector,
    endpoint: &Endpoint,
    limit: Duration,
) -> Result<(Duration, Replication), String> {
    let started = Instant::now();
    let request = crate::control::request_many(
        dns,
        endpoint,
        &[&[b"INFO", b"replication"], &[b"INFO", b"persistence"]],
        connector,
    );
    let replies = tokio::time::timeout(limit, request)
        .await
        .map_err(|_| {
            format!(
                "no answer within {}",
                crate::config::units::format_duration(limit)
            )
        })?
        .map_err(|e| e.to_string())?;
    let round_trip = started.elapsed();
    let mut text = String::new();
    for reply in replies {
        match reply.map_err(|e| e.to_string())? {
            OwnedFrame::BulkString(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
            other => return Err(format!("unexpected INFO reply {other:?}")),
        }
    }
    Ok((round_trip, Replication::parse(&text)))
}

/// Logs the replicas whose eligibility changed between two snapshots.
pub fn log_changes(old: &ReadHealth, new: &FxHashMap<Endpoint, NodeHealth>) {
    for (endpoint, health) in new {
        if health.role != Role::Replica {
            continue;
        }
        let was = old.node(endpoint).map(|h| h.readable);
        match (was, health.readable) {
            (Some(true), false) | (None, false) => info!(
                node = %endpoint,
                why = health.why_not.as_deref().unwrap_or(""),
                "replica does not serve reads"
            ),
            (Some(false), true) | (None, true) => {
                info!(node = %endpoint, "replica serves reads");
            }
            _ => {}
        }
    }
}
