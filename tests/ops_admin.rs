//! The admin HTTP listener through a real HTTP client (ureq), against real clusters.
//!
//! - Every endpoint answers: `/healthz`, `/readyz`, `/topology` (JSON: shards, slot
//!   ranges, primaries and replicas with address, id and health, epoch, last refresh),
//!   `/metrics` (OpenMetrics text), `POST /reload`; unknown paths 404, wrong methods 405.
//! - Metric values move with traffic: connections, commands, latency histograms,
//!   per-node backend series, redirects, topology changes.
//! - `/readyz` turns 503 while a primary is down and 200 again once it is back.

mod common;

use std::time::Duration;

use common::extra::{slot_owners, tag_for_slot};
use common::ops::{OpsProxy, eventually, metric, metric_sum};
use common::{RedisCluster, RespConn, key_slot};

fn set(conn: &mut RespConn, key: &str, value: &str) {
    let reply = conn.cmd_str(&["SET", key, value]);
    assert_eq!(
        reply,
        b"+OK\r\n",
        "SET {key}: {}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn every_admin_endpoint_answers_over_http() {
    let cluster = RedisCluster::start(3, 1);
    let proxy = OpsProxy::start(&["--seeds", &cluster.seeds()]);

    let health = proxy.get("/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert!(health.content_type.starts_with("text/plain"), "{health:?}");

    let ready = proxy.wait_readyz(200, Duration::from_secs(15));
    assert_eq!(ready, "ready\n");

    // /topology: the cluster as its nodes describe it (replicas are listed once the
    // cluster reports them online, which may take one more discovery round).
    eventually(
        "/topology lists the replicas",
        Duration::from_secs(15),
        || {
            let doc = proxy.get("/topology").json();
            doc["shards"].as_array().is_some_and(|s| {
                s.iter()
                    .all(|s| s["replicas"].as_array().is_some_and(|r| r.len() == 1))
            })
        },
    );
    let topology = proxy.get("/topology");
    assert_eq!(topology.status, 200);
    assert_eq!(topology.content_type, "application/json");
    let doc = topology.json();
    assert_eq!(doc["ready"], true, "{doc:#}");
    assert_eq!(doc["readiness"], "ready");
    assert_eq!(doc["complete"], true);
    assert_eq!(doc["slots_covered"], 16384);
    assert!(doc["epoch"].as_u64().unwrap() > 0, "{doc:#}");
    assert!(doc["generation"].as_u64().unwrap() >= 1, "{doc:#}");
    assert!(doc["last_refresh_unix_ms"].as_u64().unwrap() > 0, "{doc:#}");
    assert!(
        doc["last_refresh"].as_str().unwrap().ends_with('Z'),
        "{doc:#}"
    );
    let shards = doc["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3, "{doc:#}");
    let mut covered = 0u64;
    for shard in shards {
        let primary = &shard["primary"];
        let address = primary["address"].as_str().unwrap();
        let port: u16 = address.rsplit_once(':').unwrap().1.parse().unwrap();
        let node = cluster.node_by_port(port);
        assert_eq!(primary["id"].as_str().unwrap(), node.node_id(), "{shard:#}");
        assert_eq!(primary["health"], "online", "{shard:#}");
        let replicas = shard["replicas"].as_array().unwrap();
        assert_eq!(replicas.len(), 1, "{shard:#}");
        let replica_port: u16 = replicas[0]["address"]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap();
        let replica = cluster.node_by_port(replica_port);
        assert_eq!(replicas[0]["id"].as_str().unwrap(), replica.node_id());
        for range in shard["slots"].as_array().unwrap() {
            let (start, end) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
            assert!(start <= end && end < 16384, "{range}");
            covered += end - start + 1;
            assert_eq!(cluster.node_for_slot(start as u16).port, port);
        }
    }
    assert_eq!(covered, 16384);

    // /metrics: OpenMetrics text with the process and topology series.
    let reply = proxy.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type
    );
    let text = reply.body;
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("slotgate_build_info{version=\""), "{text}");
    assert_eq!(metric(&text, "slotgate_ready"), Some(1.0), "{text}");
    assert_eq!(metric(&text, "slotgate_draining"), Some(0.0));
    assert_eq!(
        metric(&text, "slotgate_topology_slots_covered"),
        Some(16384.0)
    );
    assert_eq!(
        metric(&text, "slotgate_topology_nodes{role=\"primary\"}"),
        Some(3.0)
    );
    assert_eq!(
        metric(&text, "slotgate_topology_nodes{role=\"replica\"}"),
        Some(3.0)
    );
    assert_eq!(
        metric(&text, "slotgate_topology_epoch"),
        Some(doc["epoch"].as_u64().unwrap() as f64)
    );
    assert!(metric(&text, "slotgate_topology_last_refresh_timestamp_seconds").unwrap() > 1e9);
    assert_eq!(
        metric(&text, "slotgate_client_connections_max"),
        Some(10000.0)
    );
    for name in [
        "slotgate_client_connections",
        "slotgate_client_connections_accepted_total",
        "slotgate_client_connections_rejected_total",
        "slotgate_protocol_errors_total",
        "slotgate_retries_total",
        "slotgate_buffered_bytes",
        "slotgate_slowlog_entries",
        "slotgate_topology_changes_total",
        "slotgate_start_time_seconds",
    ] {
        assert!(metric(&text, name).is_some(), "no {name} in\n{text}");
    }
    for series in [
        "slotgate_redirects_total{kind=\"moved\"}",
        "slotgate_redirects_total{kind=\"ask\"}",
        "slotgate_topology_refreshes_total{result=\"ok\"}",
        "slotgate_dns_lookups_total{result=\"failed\"}",
        "slotgate_config_reloads_total{result=\"ok\"}",
    ] {
        assert!(metric(&text, series).is_some(), "no {series} in\n{text}");
    }

    // HEAD works like GET without a body; wrong methods and paths are refused.
    let head = common::ops::try_http(proxy.admin, "HEAD", "/healthz").unwrap();
    assert_eq!(head.status, 200);
    let wrong = common::ops::try_http(proxy.admin, "POST", "/metrics").unwrap();
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.allow, "GET, HEAD");
    let wrong = proxy.get("/reload");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.allow, "POST");
    assert_eq!(proxy.get("/nope").status, 404);

    // POST /reload without a config file: the flags are re-read, nothing changes.
    let reload = proxy.post("/reload");
    assert_eq!(reload.status, 200, "{reload:?}");
    let body = reload.json();
    assert_eq!(body["result"], "applied");
    assert_eq!(body["applied"], serde_json::json!([]));
    let text = proxy.metrics();
    assert_eq!(
        metric(&text, "slotgate_config_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
}

/// What moves with traffic through code the admin listener and the server own: client
/// connections accepted, open and refused, redirects and topology changes.
#[test]
fn connection_redirect_and_topology_metrics_move_with_traffic() {
    let cluster = RedisCluster::start(3, 0);
    // A long refresh interval: after the migration below, only a MOVED updates the map.
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--maxclients",
        "4",
        "--topology-refresh-interval",
        "1h",
    ]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let before = proxy.metrics();
    let accepted = |text: &str| metric(text, "slotgate_client_connections_accepted_total").unwrap();

    let mut conns: Vec<RespConn> = (0..3).map(|_| RespConn::connect(proxy.addr)).collect();
    for (i, conn) in conns.iter_mut().enumerate() {
        set(conn, &format!("metrics:{i}"), "v");
    }
    let text = proxy.metrics();
    assert!(accepted(&text) >= accepted(&before) + 3.0, "{text}");
    assert_eq!(
        metric(&text, "slotgate_client_connections"),
        Some(3.0),
        "{text}"
    );

    // Over maxclients (4): the fifth connection is refused, and counted.
    let mut fourth = RespConn::connect(proxy.addr);
    assert_eq!(fourth.cmd_str(&["PING"]), b"+PONG\r\n");
    let mut fifth = RespConn::connect(proxy.addr);
    let refused = fifth.read_to_close();
    assert_eq!(refused, b"-ERR max number of clients reached\r\n");
    let text = proxy.metrics();
    assert_eq!(
        metric(&text, "slotgate_client_connections_rejected_total"),
        Some(1.0),
        "{text}"
    );
    drop(fourth);
    drop(fifth);

    // Move a slot behind slotgate's back: the next command gets MOVED, follows it, and
    // the new map is loaded.
    let owners = slot_owners(&cluster);
    let slot = 100u16;
    let key = format!("{{{}}}moved", tag_for_slot(slot));
    assert_eq!(key_slot(key.as_bytes()), slot);
    set(&mut conns[0], &key, "before");
    let from = cluster.node_by_port(owners[usize::from(slot)]);
    let to = cluster
        .primaries()
        .into_iter()
        .find(|p| p.port != from.port)
        .unwrap();
    let generation_before = metric(&proxy.metrics(), "slotgate_topology_changes_total").unwrap();
    cluster.migrate_slot(slot, from, to, 10, Duration::ZERO);
    let reply = conns[0].cmd_str(&["GET", &key]);
    assert_eq!(reply, b"$6\r\nbefore\r\n");
    let text = proxy.metrics();
    assert!(
        metric(&text, "slotgate_redirects_total{kind=\"moved\"}").unwrap() >= 1.0,
        "{text}"
    );
    eventually(
        "the slot map change is counted",
        Duration::from_secs(10),
        || metric(&proxy.metrics(), "slotgate_topology_changes_total").unwrap() > generation_before,
    );

    // Closing connections brings the gauge back down.
    drop(conns);
    eventually(
        "the connection gauge drops to 0",
        Duration::from_secs(5),
        || metric(&proxy.metrics(), "slotgate_client_connections") == Some(0.0),
    );
}

/// Series fed by the recording hooks in the session and backend code (see
/// `docs/operations.md`): commands by command and outcome, latency by family, bytes, and
/// per-node backend latency, connections and errors; topology rounds.
#[test]
fn command_backend_and_byte_metrics_move_with_traffic() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&["--seeds", &cluster.seeds(), "--retry-deadline", "0s"]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let mut conn = RespConn::connect(proxy.addr);
    const N: usize = 200;
    for i in 0..N {
        set(&mut conn, &format!("m:{i}"), "value");
    }
    for i in 0..N {
        let reply = conn.cmd_str(&["GET", &format!("m:{i}")]);
        assert_eq!(reply, b"$5\r\nvalue\r\n");
    }
    let reply = conn.cmd_str(&["LPUSH", "m:0", "x"]);
    assert!(reply.starts_with(b"-WRONGTYPE"), "{reply:?}");
    let reply = conn.cmd_str(&["NOSUCHCOMMAND"]);
    assert!(reply.starts_with(b"-ERR unknown command"), "{reply:?}");
    let _ = conn.cmd_str(&["PING"]);

    let text = proxy.metrics();
    let series = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert!(series("slotgate_commands_total{command=\"set\",outcome=\"ok\"}") >= N as f64);
    assert!(series("slotgate_commands_total{command=\"get\",outcome=\"ok\"}") >= N as f64);
    assert_eq!(
        series("slotgate_commands_total{command=\"lpush\",outcome=\"error\"}"),
        1.0
    );
    assert!(series("slotgate_commands_total{command=\"other\",outcome=\"rejected\"}") >= 1.0);
    assert!(series("slotgate_commands_total{command=\"ping\",outcome=\"ok\"}") >= 1.0);
    assert!(series("slotgate_command_duration_seconds_count{family=\"string\"}") >= 2.0 * N as f64);
    assert!(series("slotgate_command_duration_seconds_sum{family=\"string\"}") > 0.0);
    assert!(series("slotgate_client_received_bytes_total") > (N * 20) as f64);
    assert!(series("slotgate_client_sent_bytes_total") > (N * 5) as f64);

    // Every primary served some of the 400 keys: each has backend series.
    for primary in cluster.primaries() {
        let node = primary.addr.to_string();
        let labels = [("node", node.as_str())];
        assert!(
            metric_sum(
                &text,
                "slotgate_backend_request_duration_seconds_count",
                &labels
            ) > 0.0,
            "no backend latency for {node} in\n{text}"
        );
        assert!(
            metric_sum(&text, "slotgate_backend_connections", &labels) >= 1.0,
            "{text}"
        );
        assert!(
            metric_sum(&text, "slotgate_backend_connects_total", &labels) >= 1.0,
            "{text}"
        );
        assert!(
            metric_sum(&text, "slotgate_backend_sent_bytes_total", &labels) > 0.0,
            "{text}"
        );
        assert!(
            metric_sum(&text, "slotgate_backend_received_bytes_total", &labels) > 0.0,
            "{text}"
        );
    }
    assert!(series("slotgate_topology_refreshes_total{result=\"ok\"}") >= 1.0);

    // A node that goes away shows up as backend errors for its address (retries are off
    // for this proxy, so the failing GET answers at once).
    let owners = slot_owners(&cluster);
    let victim = cluster.primaries()[0].port;
    let victim_key = (0..N)
        .map(|i| format!("m:{i}"))
        .find(|k| owners[usize::from(key_slot(k.as_bytes()))] == victim)
        .expect("some key lives on the first primary");
    let index = cluster.node_index(victim);
    let mut cluster = cluster;
    cluster.nodes[index].stop();
    let reply = conn.cmd_str(&["GET", &victim_key]);
    assert!(
        reply.starts_with(b"-"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let victim_addr = format!("127.0.0.1:{victim}");
    eventually(
        "backend errors for the stopped node",
        Duration::from_secs(10),
        || {
            let text = proxy.metrics();
            metric_sum(
                &text,
                "slotgate_backend_errors_total",
                &[("node", victim_addr.as_str())],
            ) >= 1.0
        },
    );
    let text = proxy.metrics();
    assert!(
        series_of(
            &text,
            "slotgate_commands_total{command=\"get\",outcome=\"failed\"}"
        ) >= 1.0,
        "{text}"
    );
}

fn series_of(text: &str, series: &str) -> f64 {
    metric(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[test]
fn readyz_turns_503_while_a_primary_is_down() {
    let mut cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--topology-refresh-interval",
        "300ms",
    ]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    assert_eq!(metric(&proxy.metrics(), "slotgate_ready"), Some(1.0));

    let victim = cluster.primaries()[1].port;
    let index = cluster.node_index(victim);
    cluster.nodes[index].stop();
    let body = proxy.wait_readyz(503, Duration::from_secs(15));
    assert!(body.starts_with("not ready"), "{body}");
    assert_eq!(metric(&proxy.metrics(), "slotgate_ready"), Some(0.0));
    let doc = proxy.get("/topology").json();
    assert_eq!(doc["ready"], false, "{doc:#}");
    assert_eq!(doc["readiness"], "degraded", "{doc:#}");
    // Liveness never depends on the backends.
    assert_eq!(proxy.get("/healthz").status, 200);

    cluster.nodes[index].restart();
    cluster.wait_ok(Duration::from_secs(30));
    proxy.wait_readyz(200, Duration::from_secs(15));
    assert_eq!(metric(&proxy.metrics(), "slotgate_ready"), Some(1.0));
}

/// `/topology` says which node is down (needs the refresher to record each round's
/// answers: `ProxyState::record_discovery`).
#[test]
fn topology_reports_a_down_primary_as_unreachable() {
    let mut cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--topology-refresh-interval",
        "300ms",
    ]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let victim = cluster.primaries()[2].port;
    let index = cluster.node_index(victim);
    cluster.nodes[index].stop();
    let address = format!("127.0.0.1:{victim}");
    eventually(
        "the stopped primary is reported unreachable",
        Duration::from_secs(15),
        || {
            let doc = proxy.get("/topology").json();
            doc["shards"].as_array().unwrap().iter().any(|shard| {
                shard["primary"]["address"] == address.as_str()
                    && shard["primary"]["health"] == "unreachable"
            })
        },
    );
    let doc = proxy.get("/topology").json();
    let online = doc["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["primary"]["health"] == "online")
        .count();
    assert_eq!(online, 2, "{doc:#}");
}
