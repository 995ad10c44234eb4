//! `client-output-buffer-limit` end to end: a client that stops reading is disconnected
//! when its unread replies reach the configured limit (hard, and soft after its seconds),
//! counted in `/metrics` and logged with its class, while other clients notice nothing.
//!
//! Real cluster, real slotgate, raw sockets. Each test pipelines far more reply bytes than
//! the loopback socket buffers hold (a few MB), so the excess must wait inside slotgate.
//! Waits are on what can be observed (the disconnect counter, the node's count of GETs
//! served); time bounds are Redis's soft-limit seconds (a lower bound) and liveness.

mod common;

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use common::ops::{OpsProxy, metric};
use common::{RedisCluster, RespConn, encode_command, key_slot};

/// For what takes well under a second on an idle machine; generous because other builds
/// and tests share the two cores.
const LIVENESS: Duration = Duration::from_secs(30);

const DISCONNECTS: &str = "slotgate_client_output_buffer_limit_disconnects_total";
/// Replies queued by the pipelines below: 96 x 1 MB, far beyond socket buffers.
const VALUE_LEN: usize = 1 << 20;
const GETS: usize = 96;

/// Sends `GETS` GETs of a 1 MB value in one write and reads nothing yet.
fn pipeline_big_replies(conn: &mut RespConn, key: &str) {
    let mut pipeline = Vec::new();
    for _ in 0..GETS {
        pipeline.extend(encode_command(&[b"GET", key.as_bytes()]));
    }
    conn.send_raw(&pipeline);
}

/// Reads until the server closes or `limit` passes; returns the bytes read and whether
/// the connection was closed by the server.
fn drain(conn: &mut RespConn, limit: Duration) -> (usize, bool) {
    conn.set_read_timeout(Duration::from_millis(500));
    let deadline = Instant::now() + limit;
    let mut received = 0;
    let mut chunk = vec![0u8; 1 << 20];
    while Instant::now() < deadline {
        match conn.stream().read(&mut chunk) {
            Ok(0) => return (received, true),
            Ok(n) => received += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (received, true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading: {e}"),
        }
    }
    (received, false)
}

/// Whether slotgate logged a disconnection for the output limit of `class`.
fn logged_for_class(proxy: &OpsProxy, class: &str) -> bool {
    proxy
        .log()
        .lines()
        .any(|line| line.contains("client-output-buffer-limit reached") && line.contains(class))
}

fn disconnects(proxy: &OpsProxy) -> f64 {
    metric(&proxy.metrics(), DISCONNECTS).unwrap_or(0.0)
}

/// Waits until the node owning `key` has served `n` GETs (`INFO commandstats`): their
/// replies have left the node, and are in slotgate or the sockets.
fn wait_gets_served(cluster: &RedisCluster, key: &str, n: usize) {
    let node = cluster.node_for_slot(key_slot(key.as_bytes()));
    common::ops::eventually("the node to serve every GET", LIVENESS, || {
        let stats = node.cmd(&["INFO", "commandstats"]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse::<usize>().ok())
            .is_some_and(|calls| calls >= n)
    });
}

fn start(cluster: &RedisCluster, limit: &str) -> OpsProxy {
    let toml = format!("client-output-buffer-limit = {limit:?}\n");
    let proxy = OpsProxy::start_with_config(&toml, &["--seeds", &cluster.seeds()]);
    let mut setup = RespConn::connect(proxy.addr);
    let value = vec![b'v'; VALUE_LEN];
    assert_eq!(setup.cmd(&[b"SET", b"big", &value]), b"+OK\r\n");
    proxy
}

#[test]
fn hard_limit_disconnects_a_client_that_does_not_read() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = start(&cluster, "normal 8mb 0 0");
    let mut slow = RespConn::connect(proxy.addr);
    let mut bystander = RespConn::connect(proxy.addr);
    pipeline_big_replies(&mut slow, "big");
    // The replies pile up while the client reads nothing, until the limit cuts it.
    common::ops::eventually("the hard limit to disconnect", LIVENESS, || {
        disconnects(&proxy) == 1.0
    });
    assert_eq!(bystander.cmd_str(&["PING"]), b"+PONG\r\n");
    let (received, closed) = drain(&mut slow, Duration::from_secs(10));
    assert!(closed, "the connection must be closed by slotgate");
    let all = GETS * (VALUE_LEN + 16);
    assert!(
        received < all / 2,
        "only what the socket buffers and the limit held may arrive: {received} of {all} bytes"
    );
    assert_eq!(disconnects(&proxy), 1.0);
    assert!(logged_for_class(&proxy, "normal"), "{}", proxy.log());
    assert_eq!(bystander.cmd_str(&["GET", "missing"]), b"$-1\r\n");
}

#[test]
fn without_a_limit_a_slow_reader_gets_every_reply() {
    let cluster = RedisCluster::start(3, 0);
    // Redis's default for normal clients: no limit.
    let proxy = start(&cluster, "pubsub 32mb 8mb 60");
    let mut slow = RespConn::connect(proxy.addr);
    pipeline_big_replies(&mut slow, "big");
    // Every reply is out of the node and waits for the client, who has read nothing yet.
    wait_gets_served(&cluster, "big", GETS);
    let (received, closed) = drain(&mut slow, Duration::from_secs(5));
    assert!(!closed, "no limit: the connection stays open");
    let reply_len = format!("${VALUE_LEN}\r\n").len() + VALUE_LEN + 2;
    assert_eq!(received, GETS * reply_len, "every reply arrives, whole");
    assert_eq!(disconnects(&proxy), 0.0);
}

#[test]
fn soft_limit_waits_its_seconds_then_disconnects() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = start(&cluster, "normal 0 4mb 2");
    let mut slow = RespConn::connect(proxy.addr);
    let sent = Instant::now();
    pipeline_big_replies(&mut slow, "big");
    common::ops::eventually("the soft limit to disconnect", LIVENESS, || {
        disconnects(&proxy) == 1.0
    });
    // The limit was first exceeded after `sent`, and must then hold for its 2 s before the
    // disconnect: a lower bound a busy machine can only make longer.
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "the soft limit must wait its seconds: disconnected {waited:?} after the pipeline"
    );
    let (_, closed) = drain(&mut slow, Duration::from_secs(10));
    assert!(closed);
}

#[test]
fn pubsub_class_uses_its_own_limit() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = start(&cluster, "normal 0 0 0 pubsub 2mb 0 0");
    let mut subscriber = RespConn::connect(proxy.addr);
    let confirmation = subscriber.cmd_str(&["SUBSCRIBE", "news"]);
    assert!(String::from_utf8_lossy(&confirmation).contains("subscribe"));
    let mut publisher = RespConn::connect(proxy.addr);
    let message = "m".repeat(256 * 1024);
    // 48 x 256 KB = 12 MB: more than socket buffers plus the 2 MB limit.
    for _ in 0..48 {
        let reply = publisher.cmd_str(&["PUBLISH", "news", &message]);
        assert!(
            reply.starts_with(b":"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    common::ops::eventually(
        "the subscriber to be disconnected",
        Duration::from_secs(5),
        || disconnects(&proxy) == 1.0,
    );
    let (received, closed) = drain(&mut subscriber, Duration::from_secs(10));
    assert!(closed);
    assert!(
        received < 48 * 256 * 1024,
        "{received} bytes reached the subscriber"
    );
    assert!(logged_for_class(&proxy, "pubsub"), "{}", proxy.log());
    // The publisher's connection (normal class, no limit) is untouched.
    assert_eq!(publisher.cmd_str(&["PING"]), b"+PONG\r\n");
}
