//! `/metrics`, the scrape side of [`crate::metrics`]: a prometheus-client [`Collector`] that
//! reads [`ProxyState`] and sums the per-worker metrics into the exposition. It lives with
//! the admin listener because it reads the whole shared state, which itself holds the metrics.
//!
//! Nothing is registered per series: at each scrape the collector walks the workers'
//! fixed arrays, emits the command series that have seen calls and the families that
//! have samples, and one series per node. Allocation here is fine: it is off the hot path,
//! on the admin listener's thread.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::endpoint::Endpoint;
use crate::listener::Listener;
use crate::metrics::{BackendError, CommandId, CommandOutcome, Family, HistogramSnapshot};
use crate::state::ProxyState;
use crate::upstream::Upstream;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry with the `slotgate_` prefix and the collector reading `state`.
pub fn registry(state: Arc<ProxyState>) -> Registry {
    let mut registry = Registry::with_prefix("slotgate");
    registry.register_collector(Box::new(StateCollector { state }));
    registry
}

/// The OpenMetrics text exposition of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut text = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail; the encoder only propagates fmt errors.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// Reads the shared state at every scrape.
pub struct StateCollector {
    state: Arc<ProxyState>,
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

/// Per-node sums over workers.
#[derive(Default)]
struct NodeSums {
    /// The backend the node belongs to (a label).
    backend: String,
    latency: HistogramSnapshot,
    connections: u64,
    connects: u64,
    errors: [u64; BackendError::COUNT],
    sent: u64,
    received: u64,
    /// Reads a read policy sent, `(to it as primary, as replica)`.
    reads: (u64, u64),
}

impl Collector for StateCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), fmt::Error> {
        let state = &self.state;
        let config = state.config();
        let total =
            |f: fn(&crate::metrics::WorkerStats) -> &std::sync::atomic::AtomicU64| state.total(f);
        let sum_metrics = |f: fn(&crate::metrics::WorkerMetrics) -> u64| -> u64 {
            state.workers.iter().map(|w| f(&w.metrics)).sum()
        };

        // Process.
        {
            let mut m = e.encode_descriptor(
                "build",
                "slotgate version, always 1",
                None,
                MetricType::Info,
            )?;
            m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }
        gauge(
            &mut e,
            "start_time",
            "When the process started, in seconds since the Unix epoch",
            Some(&Unit::Seconds),
            state.started_unix_ms as f64 / 1000.0,
        )?;
        gauge(
            &mut e,
            "ready",
            "1 when /readyz answers 200: listeners open, complete slot map, every primary answered, not draining",
            None,
            bool_value(state.readiness() == crate::state::Readiness::Ready),
        )?;
        gauge(
            &mut e,
            "draining",
            "1 once a stop signal arrived and connections are being drained",
            None,
            bool_value(state.is_draining()),
        )?;

        // Clients.
        gauge(
            &mut e,
            "client_connections",
            "Open client connections",
            None,
            state.clients.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            &mut e,
            "client_connections_max",
            "The maxclients setting in force",
            None,
            config.maxclients as f64,
        )?;
        counter(
            &mut e,
            "client_connections_accepted",
            "Client connections accepted",
            None,
            total(|w| &w.connections_accepted),
        )?;
        counter(
            &mut e,
            "client_connections_rejected",
            "Client connections refused because maxclients was reached",
            None,
            total(|w| &w.connections_rejected),
        )?;
        counter(
            &mut e,
            "client_tls_handshake_failures",
            "TLS client handshakes that failed or timed out (certificate refused, no common \
             version, not TLS at all)",
            None,
            total(|w| &w.tls_handshake_failures),
        )?;
        counter(
            &mut e,
            "client_output_buffer_limit_disconnects",
            "Clients disconnected for leaving more replies unread than client-output-buffer-limit",
            None,
            total(|w| &w.output_limit_disconnects),
        )?;
        counter(
            &mut e,
            "client_received",
            "Bytes read from client connections",
            Some(&Unit::Bytes),
            sum_metrics(|m| m.client_bytes_in()),
        )?;
        counter(
            &mut e,
            "client_sent",
            "Bytes written to client connections",
            Some(&Unit::Bytes),
            sum_metrics(|m| m.client_bytes_out()),
        )?;
        gauge(
            &mut e,
            "buffered",
            "Bytes held for clients: unprocessed request bytes and replies not yet written",
            Some(&Unit::Bytes),
            sum_metrics(|m| m.buffered()) as f64,
        )?;

        // Commands.
        {
            let mut m = e.encode_descriptor(
                "commands",
                "Client commands by command name (core Redis commands, else other) and outcome",
                None,
                MetricType::Counter,
            )?;
            for index in 0..CommandId::COUNT {
                let id = CommandId(index as u16);
                let counts = CommandOutcome::ALL.map(|outcome| {
                    state
                        .workers
                        .iter()
                        .map(|w| w.metrics.calls(id, outcome))
                        .sum::<u64>()
                });
                if counts.iter().all(|&c| c == 0) {
                    continue;
                }
                for (outcome, count) in CommandOutcome::ALL.iter().zip(counts) {
                    let labels = [("command", id.name()), ("outcome", outcome.label())];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(&count, None)?;
                }
            }
        }
        {
            let mut m = e.encode_descriptor(
                "command_duration",
                "End-to-end command latency (request read to reply ready) by command family",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for family in Family::ALL {
                let mut sums = HistogramSnapshot::default();
                for worker in &state.workers {
                    worker.metrics.latency(family).add_to(&mut sums);
                }
                if sums.count() == 0 {
                    continue;
                }
                let labels = [("family", family.label())];
                histogram(&mut m.encode_family(&labels)?, &sums)?;
            }
        }
        counter(
            &mut e,
            "protocol_errors",
            "Client connections closed for a protocol error",
            None,
            total(|w| &w.protocol_errors),
        )?;
        {
            let mut m = e.encode_descriptor(
                "redirects",
                "MOVED and ASK redirections followed for clients",
                None,
                MetricType::Counter,
            )?;
            for (kind, value) in [
                ("moved", total(|w| &w.redirects_moved)),
                ("ask", total(|w| &w.redirects_ask)),
            ] {
                m.encode_family(&[("kind", kind)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
            }
        }
        counter(
            &mut e,
            "retries",
            "Retries of commands known not to have executed (TRYAGAIN, CLUSTERDOWN, refused connection, ...)",
            None,
            total(|w| &w.retries),
        )?;

        // Listeners and backends, by name.
        listener_metrics(&mut e, state)?;
        backend_metrics(&mut e, state)?;

        // Backends, per node (of every backend, labelled with it).
        let mut known: HashMap<Endpoint, String> = HashMap::new();
        for upstream in state.upstreams().iter() {
            for endpoint in upstream.topology.load().endpoints() {
                known
                    .entry(endpoint)
                    .or_insert_with(|| upstream.name.clone());
            }
        }
        let topology = state.default_upstream().topology.load();
        let mut nodes: BTreeMap<String, NodeSums> = BTreeMap::new();
        for worker in &state.workers {
            worker.metrics.visit_nodes(
                |endpoint| known.contains_key(endpoint),
                |node| {
                    let sums = nodes.entry(node.endpoint.to_string()).or_default();
                    if sums.backend.is_empty() {
                        sums.backend = known.get(&node.endpoint).cloned().unwrap_or_default();
                    }
                    node.latency().add_to(&mut sums.latency);
                    sums.connections += node.connections();
                    sums.connects += node.connects();
                    for kind in BackendError::ALL {
                        sums.errors[kind as usize] += node.errors(kind);
                    }
                    sums.sent += node.bytes_sent();
                    sums.received += node.bytes_received();
                    let (primary, replica) = node.reads();
                    sums.reads.0 += primary;
                    sums.reads.1 += replica;
                },
            );
        }
        {
            let mut m = e.encode_descriptor(
                "backend_request_duration",
                "Time from writing a request to a node to reading its reply",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (node, sums) in &nodes {
                histogram(
                    &mut m.encode_family(&[
                        ("node", node.as_str()),
                        ("backend", sums.backend.as_str()),
                    ])?,
                    &sums.latency,
                )?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "node_reads",
                "Reads (commands flagged readonly) a read policy sent to each node, by the role it had",
                None,
                MetricType::Counter,
            )?;
            for (node, sums) in &nodes {
                for (role, value) in [("primary", sums.reads.0), ("replica", sums.reads.1)] {
                    m.encode_family(&[("node", node.as_str()), ("role", role)])?
                        .encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
                }
            }
        }
        node_gauge(
            &mut e,
            &nodes,
            "backend_connections",
            "Open connections to each node",
            |s| s.connections,
        )?;
        node_counter(
            &mut e,
            &nodes,
            "backend_connects",
            "Connections established to each node",
            None,
            |s| s.connects,
        )?;
        {
            let mut m = e.encode_descriptor(
                "backend_errors",
                "Failed connection attempts and broken connections, by node and kind",
                None,
                MetricType::Counter,
            )?;
            for (node, sums) in &nodes {
                for kind in BackendError::ALL {
                    let labels = [
                        ("node", node.as_str()),
                        ("backend", sums.backend.as_str()),
                        ("kind", kind.label()),
                    ];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(
                            &sums.errors[kind as usize],
                            None,
                        )?;
                }
            }
        }
        node_counter(
            &mut e,
            &nodes,
            "backend_sent",
            "Bytes written to each node",
            Some(&Unit::Bytes),
            |s| s.sent,
        )?;
        node_counter(
            &mut e,
            &nodes,
            "backend_received",
            "Bytes read from each node",
            Some(&Unit::Bytes),
            |s| s.received,
        )?;

        // Topology.
        {
            let mut m = e.encode_descriptor(
                "topology_refreshes",
                "Discovery rounds, by whether some node offered a complete slot map",
                None,
                MetricType::Counter,
            )?;
            for (result, ok) in [("ok", true), ("failed", false)] {
                m.encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&state.metrics.refreshes(ok), None)?;
            }
        }
        counter(
            &mut e,
            "topology_changes",
            "Slot map changes applied since start (the snapshot generation)",
            None,
            topology.generation,
        )?;
        gauge(
            &mut e,
            "topology_epoch",
            "cluster_current_epoch of the slot map in force",
            None,
            topology.epoch as f64,
        )?;
        gauge(
            &mut e,
            "topology_slots_covered",
            "Hash slots served by some shard in the slot map in force (16384 when complete)",
            None,
            topology.covered_slots() as f64,
        )?;
        {
            let mut m = e.encode_descriptor(
                "topology_nodes",
                "Nodes in the slot map in force, by role",
                None,
                MetricType::Gauge,
            )?;
            let primaries = topology.shards().len();
            let replicas: usize = topology.shards().iter().map(|s| s.replicas.len()).sum();
            for (role, count) in [("primary", primaries), ("replica", replicas)] {
                m.encode_family(&[("role", role)])?
                    .encode_gauge(&(count as i64))?;
            }
        }
        if state.default_upstream().shape.is_one_shard() {
            let mut m = e.encode_descriptor(
                "primary_claims",
                "Nodes answering ROLE master in the last discovery round (modes without slots); \
                 more than one series is a split brain, and commands are refused",
                None,
                MetricType::Gauge,
            )?;
            for node in state.default_upstream().primary_claims().iter() {
                m.encode_family(&[("node", node.to_string().as_str())])?
                    .encode_gauge(&1i64)?;
            }
        }
        if state.default_upstream().shape == crate::upstream::Shape::Sentinel {
            super::sentinel_metrics::encode(&mut e, &state.default_upstream())?;
        }
        gauge(
            &mut e,
            "topology_last_refresh_timestamp",
            "When the last discovery round finished, in seconds since the Unix epoch (0: never)",
            Some(&Unit::Seconds),
            state
                .default_upstream()
                .last_refresh_unix_ms
                .load(Ordering::Relaxed) as f64
                / 1000.0,
        )?;
        {
            let mut m = e.encode_descriptor(
                "dns_lookups",
                "DNS lookups of seed and node names, by result",
                None,
                MetricType::Counter,
            )?;
            for (result, ok) in [("ok", true), ("failed", false)] {
                m.encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&state.metrics.dns.lookups(ok), None)?;
            }
        }

        // Operations.
        {
            let mut m = e.encode_descriptor(
                "config_reloads",
                "Config reloads (SIGHUP, POST /reload), by whether the new config was applied",
                None,
                MetricType::Counter,
            )?;
            for (result, ok) in [("ok", true), ("failed", false)] {
                m.encode_family(&[("result", result)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&state.metrics.reloads(ok), None)?;
            }
        }
        gauge(
            &mut e,
            "slowlog_entries",
            "Entries in the slow log (SLOWLOG LEN)",
            None,
            state.slowlog.len() as f64,
        )?;
        Ok(())
    }
}

/// Name, help, type and value of one per-listener family.
type ListenerFamily = (&'static str, &'static str, MetricType, fn(&Listener) -> u64);
/// Name, help and value of one per-backend gauge.
type BackendFamily = (&'static str, &'static str, fn(&Upstream) -> i64);

/// Per listener: its clients, labelled `listener` and `backend` (config names, so the
/// cardinality is the config's).
fn listener_metrics(e: &mut DescriptorEncoder, state: &ProxyState) -> Result<(), fmt::Error> {
    let listeners = state.listeners();
    let families: [ListenerFamily; 4] = [
        (
            "listener_client_connections",
            "Open client connections, per listener",
            MetricType::Gauge,
            |l| l.clients.load(Ordering::Relaxed) as u64,
        ),
        (
            "listener_client_connections_max",
            "The maxclients setting in force, per listener",
            MetricType::Gauge,
            |l| l.config().maxclients as u64,
        ),
        (
            "listener_client_connections_accepted",
            "Client connections accepted, per listener",
            MetricType::Counter,
            |l| l.accepted.load(Ordering::Relaxed),
        ),
        (
            "listener_client_connections_rejected",
            "Client connections refused because the listener's maxclients was reached",
            MetricType::Counter,
            |l| l.rejected.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, kind, value) in families {
        let mut m = e.encode_descriptor(name, help, None, kind)?;
        for listener in listeners.iter() {
            let labels = [
                ("listener", listener.name.as_str()),
                ("backend", listener.upstream.name.as_str()),
            ];
            let mut family = m.encode_family(&labels)?;
            match kind {
                MetricType::Counter => {
                    family.encode_counter::<NoLabelSet, u64, u64>(&value(listener), None)?
                }
                _ => family.encode_gauge(&(value(listener) as i64))?,
            }
        }
    }
    Ok(())
}

/// Per backend: readiness and map coverage, labelled `backend`.
fn backend_metrics(e: &mut DescriptorEncoder, state: &ProxyState) -> Result<(), fmt::Error> {
    let upstreams = state.upstreams();
    let families: [BackendFamily; 4] = [
        (
            "backend_ready",
            "1 when the backend has a complete map and every primary answered the last round",
            |u| i64::from(u.is_ready()),
        ),
        (
            "backend_required",
            "1 when /readyz waits for the backend (required = true)",
            |u| i64::from(u.required()),
        ),
        (
            "backend_slots_covered",
            "Hash slots the backend's map assigns to a shard (16384 when complete)",
            |u| u.topology.load().covered_slots() as i64,
        ),
        (
            "backend_shards",
            "Shards in the backend's map (1 for a Sentinel group or a primary with replicas)",
            |u| u.topology.load().shards().len() as i64,
        ),
    ];
    for (name, help, value) in families {
        let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for upstream in upstreams.iter() {
            m.encode_family(&[("backend", upstream.name.as_str())])?
                .encode_gauge(&value(upstream))?;
        }
    }
    Ok(())
}

fn bool_value(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), fmt::Error> {
    e.encode_descriptor(name, help, unit, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), fmt::Error> {
    e.encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn histogram(
    m: &mut prometheus_client::encoding::MetricEncoder,
    sums: &HistogramSnapshot,
) -> Result<(), fmt::Error> {
    m.encode_histogram::<NoLabelSet>(
        sums.sum_seconds(),
        sums.count(),
        &sums.encoder_buckets(),
        None,
    )
}

fn node_counter(
    e: &mut DescriptorEncoder,
    nodes: &BTreeMap<String, NodeSums>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl Fn(&NodeSums) -> u64,
) -> Result<(), fmt::Error> {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (node, sums) in nodes {
        m.encode_family(&[("node", node.as_str()), ("backend", sums.backend.as_str())])?
            .encode_counter::<NoLabelSet, u64, u64>(&value(sums), None)?;
    }
    Ok(())
}

fn node_gauge(
    e: &mut DescriptorEncoder,
    nodes: &BTreeMap<String, NodeSums>,
    name: &str,
    help: &str,
    value: impl Fn(&NodeSums) -> u64,
) -> Result<(), fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (node, sums) in nodes {
        m.encode_family(&[("node", node.as_str()), ("backend", sums.backend.as_str())])?
            .encode_gauge(&(value(sums) as i64))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HostPort};
    use crate::metrics::command_id;
    use crate::topology::{Node, Shard, Topology};
    use std::time::Duration;

    fn state() -> Arc<ProxyState> {
        let mut config = Config::with_seeds(vec![HostPort::new("127.0.0.1", 7000)]);
        config.threads = 2;
        Arc::new(ProxyState::new(config))
    }

    #[test]
    fn exposition_sums_workers_and_names_series() {
        let state = state();
        let get = command_id("get");
        state.workers[0]
            .metrics
            .record_command(get, CommandOutcome::Ok, Duration::from_micros(80));
        state.workers[1]
            .metrics
            .record_command(get, CommandOutcome::Ok, Duration::from_micros(80));
        state.workers[1].metrics.record_command(
            CommandId::OTHER,
            CommandOutcome::Rejected,
            Duration::from_micros(5),
        );
        state.workers[0].metrics.record_client_read(100);
        let endpoint = Endpoint::new("127.0.0.1", 7000);
        let node = state.workers[0].metrics.node(&endpoint);
        node.connection_opened();
        node.record_reply(Duration::from_micros(30));
        node.record_error(BackendError::Timeout);
        state.metrics.record_refresh(true);
        state.metrics.dns.record(false);
        state
            .default_upstream()
            .topology
            .store(Arc::new(Topology::from_ranges(
                vec![Shard {
                    primary: Node {
                        id: "a".into(),
                        endpoint: endpoint.clone(),
                    },
                    replicas: vec![],
                }],
                &[(0, 0, 16383)],
            )));

        let text = render(&registry(state.clone()));
        for line in [
            "slotgate_build_info{version=\"",
            "slotgate_commands_total{command=\"get\",outcome=\"ok\"} 2",
            "slotgate_commands_total{command=\"get\",outcome=\"error\"} 0",
            "slotgate_commands_total{command=\"other\",outcome=\"rejected\"} 1",
            "slotgate_command_duration_seconds_count{family=\"string\"} 2",
            "slotgate_command_duration_seconds_bucket{le=\"0.0001\",family=\"string\"} 2",
            "slotgate_client_received_bytes_total 100",
            "slotgate_backend_connections{node=\"127.0.0.1:7000\",backend=\"default\"} 1",
            "slotgate_backend_errors_total{node=\"127.0.0.1:7000\",backend=\"default\",kind=\"timeout\"} 1",
            "slotgate_backend_request_duration_seconds_count{node=\"127.0.0.1:7000\",backend=\"default\"} 1",
            "slotgate_listener_client_connections{listener=\"default\",backend=\"default\"} 0",
            "slotgate_backend_ready{backend=\"default\"} 0",
            "slotgate_backend_slots_covered{backend=\"default\"} 16384",
            "slotgate_topology_refreshes_total{result=\"ok\"} 1",
            "slotgate_dns_lookups_total{result=\"failed\"} 1",
            "slotgate_topology_slots_covered 16384",
            "slotgate_topology_nodes{role=\"primary\"} 1",
            "slotgate_ready 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("command=\"set\""),
            "silent commands are left out"
        );
        assert!(
            !text.contains("family=\"hash\""),
            "empty families are left out"
        );
    }

    #[test]
    fn departed_unheld_nodes_disappear() {
        let state = state();
        let node = state.workers[0]
            .metrics
            .node(&Endpoint::new("10.9.9.9", 7000));
        node.connection_opened();
        let text = render(&registry(state.clone()));
        assert!(text.contains("node=\"10.9.9.9:7000\""), "held: kept");
        drop(node);
        let text = render(&registry(state.clone()));
        assert!(
            !text.contains("10.9.9.9"),
            "unheld and not in the map: gone"
        );
    }

    /// `docs/operations.md` names every metric, and the dashboard uses only real ones.
    #[test]
    fn docs_and_dashboard_match_the_exposition() {
        const DOCS: &str = include_str!("../../docs/operations.md");
        const DASHBOARD: &str = include_str!("../../dashboards/slotgate.json");
        let state = state();
        let endpoint = Endpoint::new("127.0.0.1", 7000);
        let node = state.workers[0].metrics.node(&endpoint);
        node.record_reply(Duration::from_micros(1));
        state.workers[0].metrics.record_command(
            command_id("get"),
            CommandOutcome::Ok,
            Duration::from_micros(1),
        );
        let text = render(&registry(state.clone()));
        let mut samples = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let documented = match kind {
                    "counter" => format!("{name}_total"),
                    "info" => format!("{name}_info"),
                    _ => name.to_owned(),
                };
                assert!(
                    DOCS.contains(&format!("`{documented}")),
                    "docs/operations.md does not list {documented}"
                );
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                samples.insert(name.to_owned());
            }
        }
        let mut rest = DASHBOARD;
        while let Some(at) = rest.find("slotgate_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            if name == "slotgate_build_info" {
                continue;
            }
            assert!(
                samples.contains(&name),
                "dashboards/slotgate.json uses {name}, which slotgate does not export"
            );
        }
    }
}
