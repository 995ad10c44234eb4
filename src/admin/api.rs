//! `GET /api/topology`: everything the admin page shows, as one JSON document that
//! scripts can read too (`docs/operations.md` documents it field by field).
//!
//! It extends what `/topology` renders ([`super::topology::json`]) rather than building a
//! second model: each upstream's object is that document, its node objects decorated with
//! what the refresher observed ([`crate::upstream::observed`]) and what slotgate's own
//! metrics say about the node, plus open slot migrations and the last topology events.
//!
//! Rates and p99 latencies are windowed: every call takes a sample of the cumulative
//! histograms (at most one kept per second, for [`WINDOW`]) and compares it with the
//! oldest kept, so polling once a second shows the last ~10 s, whoever polls.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::topology;
use crate::metrics::{BackendError, Family, HistogramSnapshot};
use crate::state::{ProxyState, Readiness};
use crate::upstream::Upstream;

/// How far back rates and p99 latencies look.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Cumulative counters at one instant.
#[derive(Clone, Default)]
struct Sample {
    /// Every client command, end to end.
    commands: HistogramSnapshot,
    /// Per node address: requests written to it, reply latency.
    nodes: HashMap<String, HistogramSnapshot>,
}

/// The samples kept for the rate window; shared by every caller.
#[derive(Default)]
pub struct Sampler {
    samples: Mutex<VecDeque<(Instant, Sample)>>,
}

/// What the metrics say of one node right now.
#[derive(Default)]
struct NodeNow {
    latency: HistogramSnapshot,
    connections: u64,
    in_flight: u64,
    errors: [u64; BackendError::COUNT],
}

impl Sampler {
    /// Keeps `now` (at most one sample a second) and returns the oldest sample still in the
    /// window with its age, if any.
    fn compare(&self, sample: &Sample) -> Option<(f64, Sample)> {
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW + Duration::from_secs(1))
        {
            samples.pop_front();
        }
        let base = samples
            .front()
            .map(|(at, s)| (now.duration_since(*at).as_secs_f64(), s.clone()));
        if samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= Duration::from_secs(1))
        {
            samples.push_back((now, sample.clone()));
        }
        base.filter(|(age, _)| *age > 0.0)
    }
}

fn minus(now: &HistogramSnapshot, base: Option<&HistogramSnapshot>) -> HistogramSnapshot {
    let mut delta = *now;
    if let Some(base) = base {
        for (d, b) in delta.buckets.iter_mut().zip(&base.buckets) {
            *d = d.saturating_sub(*b);
        }
        delta.sum_us = delta.sum_us.saturating_sub(base.sum_us);
    }
    delta
}

/// `(per second, p99 in ms)` over the window; nulls without a window yet.
fn rate_and_p99(
    now: &HistogramSnapshot,
    base: Option<(f64, &HistogramSnapshot)>,
) -> (Value, Value) {
    let Some((age, base)) = base else {
        return (Value::Null, Value::Null);
    };
    let delta = minus(now, Some(base));
    let rate = (delta.count() as f64 / age * 10.0).round() / 10.0;
    let p99 = match delta.quantile_bound_us(0.99) {
        Some(u64::MAX) => json!("+Inf"),
        Some(us) => json!(us as f64 / 1000.0),
        None => Value::Null,
    };
    (json!(rate), p99)
}

/// The document described in the module docs.
pub fn json(state: &ProxyState, sampler: &Sampler) -> Value {
    let mut nodes_now: HashMap<String, NodeNow> = HashMap::new();
    let mut sample = Sample::default();
    for worker in &state.workers {
        for family in Family::ALL {
            worker.metrics.latency(family).add_to(&mut sample.commands);
        }
        worker.metrics.visit_nodes(
            |_| true,
            |node| {
                let now = nodes_now.entry(node.endpoint.to_string()).or_default();
                node.latency().add_to(&mut now.latency);
                now.connections += node.connections();
                now.in_flight += node.in_flight();
                for kind in BackendError::ALL {
                    now.errors[kind as usize] += node.errors(kind);
                }
            },
        );
    }
    sample.nodes = nodes_now
        .iter()
        .map(|(address, now)| (address.clone(), now.latency))
        .collect();
    let base = sampler.compare(&sample);
    let window = base.as_ref().map(|(age, _)| (age * 10.0).round() / 10.0);
    let (commands_per_second, p99_ms) = rate_and_p99(
        &sample.commands,
        base.as_ref().map(|(age, b)| (*age, &b.commands)),
    );
    let readiness = state.readiness();
    let upstreams: Vec<Value> = state
        .upstreams()
        .iter()
        .map(|upstream| {
            let mut base_doc = topology::json_for(state, upstream);
            base_doc["name"] = json!(upstream.name);
            decorate(upstream, base_doc, &nodes_now, base.as_ref())
        })
        .collect();
    json!({
        "version": 1,
        "generated_unix_ms": crate::clock::unix_ms(),
        "ready": readiness == Readiness::Ready,
        "readiness": readiness_label(readiness),
        "readiness_reason": readiness_reason(state, readiness),
        "window_seconds": window,
        "proxy": {
            "client_connections": state.clients.load(std::sync::atomic::Ordering::Relaxed),
            "commands_per_second": commands_per_second,
            "p99_ms": p99_ms,
        },
        "upstreams": upstreams,
    })
}

fn readiness_label(readiness: Readiness) -> &'static str {
    match readiness {
        Readiness::Starting => "starting",
        Readiness::Draining => "draining",
        Readiness::Degraded => "degraded",
        Readiness::Ready => "ready",
    }
}

/// `/readyz`'s reason, made specific: which slots are missing, which primary is silent.
fn readiness_reason(state: &ProxyState, readiness: Readiness) -> String {
    if readiness != Readiness::Degraded {
        return readiness.describe().to_owned();
    }
    let mut reasons = Vec::new();
    for upstream in state.upstreams().iter() {
        let topology = upstream.topology.load();
        if !topology.is_complete() {
            reasons.push(format!(
                "{}: slot map incomplete ({} of 16384 slots covered)",
                upstream.name,
                topology.covered_slots()
            ));
        }
        let observed = upstream.observed.load();
        for shard in topology.shards() {
            if observed
                .health_since
                .get(&shard.primary.endpoint)
                .is_some_and(|(up, _)| !up)
            {
                reasons.push(format!(
                    "{}: primary {} did not answer the last discovery round",
                    upstream.name, shard.primary.endpoint
                ));
            }
        }
    }
    if reasons.is_empty() {
        readiness.describe().to_owned()
    } else {
        format!("not ready: {}", reasons.join("; "))
    }
}

/// Adds to one upstream's `/topology` document what the page needs beyond it.
fn decorate(
    upstream: &Upstream,
    mut doc: Value,
    nodes_now: &HashMap<String, NodeNow>,
    base: Option<&(f64, Sample)>,
) -> Value {
    let observed = upstream.observed.load();
    let Some(object) = doc.as_object_mut() else {
        return doc;
    };
    object.insert("name".into(), json!(upstream.name));
    // A shape that already says what it is (`mode`) keeps its word.
    object.entry("mode").or_insert(json!("cluster"));
    let topology = upstream.topology.load();
    let offset_of = |address: &str| {
        observed
            .nodes
            .iter()
            .find(|(endpoint, _)| endpoint.to_string() == address)
            .and_then(|(_, d)| d.replication_offset)
    };
    if let Some(Value::Array(shards)) = object.get_mut("shards") {
        for shard in shards.iter_mut() {
            let primary_offset = shard["primary"]["address"].as_str().and_then(offset_of);
            if let Some(primary) = shard.get_mut("primary") {
                decorate_node(primary, "primary", None, &observed, nodes_now, base);
            }
            if let Some(Value::Array(replicas)) = shard.get_mut("replicas") {
                for replica in replicas {
                    decorate_node(
                        replica,
                        "replica",
                        primary_offset,
                        &observed,
                        nodes_now,
                        base,
                    );
                }
            }
        }
    }
    let migrations: Vec<Value> = observed
        .migrations
        .iter()
        .map(|(node, m)| {
            json!({
                "slot": m.slot,
                "state": if m.migrating { "migrating" } else { "importing" },
                "node": node.to_string(),
                "peer_id": m.peer_id,
            })
        })
        .collect();
    object.insert("migrations".into(), Value::Array(migrations));
    object.insert("slot_owners".into(), json!(slot_owner_runs(&topology)));
    let events: Vec<Value> = upstream
        .events
        .snapshot()
        .iter()
        .rev()
        .map(|e| {
            json!({
                "at_unix_ms": e.at_unix_ms,
                "at": topology::rfc3339_ms(e.at_unix_ms),
                "kind": e.kind.label(),
                "message": e.message,
            })
        })
        .collect();
    object.insert("events".into(), Value::Array(events));
    doc
}

/// The slot map as `[first, last, shard index]` runs (shard -1: no owner), in slot order:
/// what the page's slot bar draws.
fn slot_owner_runs(topology: &crate::topology::Topology) -> Vec<[i64; 3]> {
    let mut runs: Vec<[i64; 3]> = Vec::new();
    for slot in 0..crate::slot::SLOT_COUNT as u16 {
        let owner = topology.shard_index(slot).map_or(-1, |i| i as i64);
        match runs.last_mut() {
            Some(run) if run[2] == owner && run[1] == i64::from(slot) - 1 => run[1] += 1,
            _ => runs.push([i64::from(slot), i64::from(slot), owner]),
        }
    }
    runs
}

fn decorate_node(
    node: &mut Value,
    role: &str,
    primary_offset: Option<i64>,
    observed: &crate::upstream::observed::Observed,
    nodes_now: &HashMap<String, NodeNow>,
    base: Option<&(f64, Sample)>,
) {
    let Some(address) = node["address"].as_str().map(str::to_owned) else {
        return;
    };
    let Some(object) = node.as_object_mut() else {
        return;
    };
    let mut extra = Map::new();
    extra.insert("role".into(), json!(role));
    let found = observed
        .nodes
        .iter()
        .find(|(endpoint, _)| endpoint.to_string() == address);
    let detail = found.map(|(_, d)| d);
    extra.insert("ip".into(), json!(detail.and_then(|d| d.ip.clone())));
    extra.insert(
        "hostname".into(),
        json!(detail.and_then(|d| d.hostname.clone())),
    );
    extra.insert(
        "cluster_health".into(),
        json!(detail.map(|d| d.health.clone())),
    );
    let offset = detail.and_then(|d| d.replication_offset);
    extra.insert("replication_offset".into(), json!(offset));
    let lag = match (role, primary_offset, offset) {
        ("replica", Some(primary), Some(own)) => json!((primary - own).max(0)),
        _ => Value::Null,
    };
    extra.insert("replication_lag_bytes".into(), lag);
    let since = observed
        .health_since
        .iter()
        .find(|(endpoint, _)| endpoint.to_string() == address)
        .map(|(_, (_, since))| *since);
    extra.insert("health_since_unix_ms".into(), json!(since));
    extra.insert(
        "health_since".into(),
        json!(since.map(topology::rfc3339_ms)),
    );
    let now = nodes_now.get(&address);
    extra.insert(
        "connections".into(),
        json!(now.map_or(0, |n| n.connections)),
    );
    extra.insert("in_flight".into(), json!(now.map_or(0, |n| n.in_flight)));
    let mut errors = Map::new();
    for kind in BackendError::ALL {
        errors.insert(
            kind.label().into(),
            json!(now.map_or(0, |n| n.errors[kind as usize])),
        );
    }
    extra.insert("errors".into(), Value::Object(errors));
    let empty = HistogramSnapshot::default();
    let latency = now.map_or(&empty, |n| &n.latency);
    let (rate, p99) = rate_and_p99(
        latency,
        base.map(|(age, b)| (*age, b.nodes.get(&address).unwrap_or(&empty))),
    );
    extra.insert("requests_per_second".into(), rate);
    extra.insert("p99_ms".into(), p99);
    for (key, value) in extra {
        object.entry(key).or_insert(value);
    }
}
