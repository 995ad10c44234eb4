//! Several databases behind one slotgate: `[backends.NAME]` and `[[listeners]]`, with real
//! redis-server processes on loopback.
//!
//! - Two listeners in front of a Redis Cluster and a Sentinel group: keys written through
//!   each land only in its backend; each listener's users, `maxclients`, `INFO` and
//!   `CLIENT LIST` are its own; `/topology`, `/readyz` and `/metrics` name both.
//! - SIGKILL of every node of one cluster leaves the other listener's load error-free, and
//!   `/readyz` names the backend that is down until a reload marks it `required = false`.
//! - A reload adds a listener, removes another (its idle client is drained, its port
//!   closes) and changes a backend's seeds, while a load on the remaining listener sees no
//!   error and an idle client of it stays; a second one moves a listener to the other
//!   backend under the same name.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::load::{Load, LoadOptions};
use common::ops::{OpsProxy, eventually, metric};
use common::sentinel::{MASTER_NAME, SentinelGroup};
use common::{RedisCluster, RespConn, free_port, key_slot};

const READY: Duration = Duration::from_secs(30);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn seeds(cluster: &RedisCluster) -> String {
    let list: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("\"{}\"", n.addr))
        .collect();
    format!("[{}]", list.join(", "))
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The value of `key` on the cluster node owning its slot (None: not there).
fn cluster_get(cluster: &RedisCluster, key: &str) -> Option<String> {
    cluster
        .node_for_slot(key_slot(key.as_bytes()))
        .query::<Option<String>>(&["GET", key])
}

#[test]
fn each_listener_keeps_its_backend_users_and_limits() {
    let cluster = RedisCluster::start(3, 0);
    let group = SentinelGroup::start(1, 3);
    let primary = &group.nodes[0];
    let sessions_port = free_port();
    let toml = format!(
        r#"
[backends.orders]
seeds = {seeds}

[backends.sessions]
mode = "sentinel"
sentinels = [{sentinels}]
master-name = "{MASTER_NAME}"

[[listeners]]
backend = "orders"
maxclients = 2

[[listeners]]
listen = "127.0.0.1:{sessions_port}"
backend = "sessions"
requirepass = "s3cret-sessions"
"#,
        seeds = seeds(&cluster),
        sentinels = group
            .sentinel_list()
            .split(',')
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let proxy = OpsProxy::start_with_config(&toml, &[]);
    proxy.wait_readyz(200, READY);
    let sessions = loopback(sessions_port);

    // Keys land only in their listener's backend.
    let mut orders = RespConn::connect(proxy.addr);
    assert_eq!(orders.cmd_str(&["SET", "orders:1", "o"]), b"+OK\r\n");
    let mut s1 = RespConn::connect(sessions);
    let refused = text(&s1.cmd_str(&["SET", "sessions:1", "s"]));
    assert!(refused.starts_with("-NOAUTH"), "{refused}");
    assert_eq!(s1.cmd_str(&["AUTH", "s3cret-sessions"]), b"+OK\r\n");
    assert_eq!(s1.cmd_str(&["SET", "sessions:1", "s"]), b"+OK\r\n");
    assert_eq!(cluster_get(&cluster, "orders:1").as_deref(), Some("o"));
    assert_eq!(cluster_get(&cluster, "sessions:1"), None);
    assert_eq!(
        primary
            .query::<Option<String>>(&["GET", "sessions:1"])
            .as_deref(),
        Some("s")
    );
    assert_eq!(primary.query::<Option<String>>(&["GET", "orders:1"]), None);
    assert_eq!(orders.cmd_str(&["GET", "sessions:1"]), b"$-1\r\n");
    assert_eq!(s1.cmd_str(&["GET", "orders:1"]), b"$-1\r\n");

    // Users are the listener's own: the orders listener has no password to accept.
    let auth = text(&orders.cmd_str(&["AUTH", "s3cret-sessions"]));
    assert!(auth.starts_with("-ERR"), "{auth}");

    // Limits too: a second client fills orders' maxclients = 2, a third is refused, while
    // the sessions listener takes more than that.
    let mut o2 = RespConn::connect(proxy.addr);
    assert_eq!(o2.cmd_str(&["PING"]), b"+PONG\r\n");
    let mut o3 = RespConn::connect(proxy.addr);
    let full = text(&o3.read_to_close());
    assert!(full.contains("max number of clients reached"), "{full}");
    let mut extra = Vec::new();
    for _ in 0..3 {
        let mut c = RespConn::connect(sessions);
        assert_eq!(c.cmd_str(&["AUTH", "s3cret-sessions"]), b"+OK\r\n");
        assert_eq!(c.cmd_str(&["PING"]), b"+PONG\r\n");
        extra.push(c);
    }

    // INFO and CLIENT LIST show the listener's world.
    let info = text(&s1.cmd_str(&["INFO", "server"]));
    assert!(info.contains("slotgate_listener:sessions"), "{info}");
    assert!(info.contains("slotgate_mode:sentinel"), "{info}");
    let info = text(&orders.cmd_str(&["INFO", "clients"]));
    assert!(info.contains("connected_clients:2"), "{info}");
    assert!(info.contains("maxclients:2"), "{info}");
    let list = text(&s1.cmd_str(&["CLIENT", "LIST"]));
    assert_eq!(
        list.matches("id=").count(),
        4,
        "sessions' clients only: {list}"
    );
    let list = text(&orders.cmd_str(&["CLIENT", "LIST"]));
    assert_eq!(
        list.matches("id=").count(),
        2,
        "orders' clients only: {list}"
    );

    // The admin side names both.
    let topology = proxy.get("/topology").json();
    let names: Vec<&str> = topology["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "sessions"], "{topology}");
    assert_eq!(topology["backends"][1]["mode"], "sentinel", "{topology}");
    let metrics = proxy.metrics();
    let series = |listener: &str| {
        format!(
            "slotgate_listener_client_connections{{listener=\"{listener}\",backend=\"{listener}\"}}"
        )
    };
    assert_eq!(metric(&metrics, &series("orders")), Some(2.0), "{metrics}");
    assert_eq!(
        metric(&metrics, &series("sessions")),
        Some(4.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "slotgate_backend_ready{backend=\"sessions\"}"),
        Some(1.0)
    );
    drop((o2, extra));
}

#[test]
fn one_backend_down_leaves_the_other_listener_error_free() {
    let mut orders = RedisCluster::start(3, 0);
    let cache = RedisCluster::start(3, 0);
    let orders_port = free_port();
    let (cache_seeds, orders_seeds) = (seeds(&cache), seeds(&orders));
    let config = |required: bool| {
        format!(
            r#"
[backends.cache]
seeds = {cache}

[backends.orders]
seeds = {orders}
retry-deadline = "500ms"
required = {required}

[[listeners]]
backend = "cache"

[[listeners]]
listen = "127.0.0.1:{orders_port}"
backend = "orders"
"#,
            cache = cache_seeds,
            orders = orders_seeds,
        )
    };
    let toml = config(true);
    let proxy = OpsProxy::start_with_config(&toml, &[]);
    proxy.wait_readyz(200, READY);
    let keys: Vec<String> = (0..6).map(|i| format!("cache:{i}")).collect();
    let load = Load::start(proxy.addr, &keys, LoadOptions::default());
    assert!(
        load.wait_all_acked_since(Instant::now(), READY).is_some(),
        "the load never got going"
    );
    for node in &mut orders.nodes {
        node.stop();
    }
    let killed = Instant::now();
    let body = proxy.wait_readyz(503, READY);
    assert!(body.contains("backend orders: not ready"), "{body}");
    assert!(!body.contains("backend cache"), "{body}");
    // The orders listener answers, with an error, once its retry deadline passed.
    let mut conn = RespConn::connect(loopback(orders_port));
    let reply = text(&conn.cmd_str(&["SET", "orders:1", "x"]));
    assert!(reply.starts_with('-'), "{reply}");
    // Every cache key keeps being served after the kill, without one error.
    assert!(
        load.wait_all_acked_since(killed + Duration::from_secs(2), READY)
            .is_some(),
        "the cache load stalled after the orders nodes died"
    );
    // A backend that is not `required` no longer holds readiness back (reloaded).
    proxy.write_config(&config(false));
    let reply = proxy.post("/reload");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.contains("backends.orders.required"),
        "{}",
        reply.body
    );
    proxy.wait_readyz(200, READY);
    let report = load.stop();
    assert!(report.acks() > 0);
    assert!(
        report.errors().is_empty(),
        "errors on the cache listener:\n{}",
        report.error_lines(10)
    );
}

#[test]
fn reload_adds_and_removes_listeners_under_load() {
    let a = RedisCluster::start(3, 0);
    let b = RedisCluster::start(3, 0);
    let old_port = free_port();
    let new_port = free_port();
    let config = |listeners: &str, a_seeds: &str| {
        format!(
            r#"
[backends.a]
seeds = {a_seeds}

[backends.b]
seeds = {b}

[[listeners]]
name = "main"
backend = "a"
{listeners}"#,
            b = seeds(&b),
        )
    };
    let first_a = format!("[\"{}\"]", a.nodes[0].addr);
    let old = format!(
        "\n[[listeners]]\nname = \"old\"\nlisten = \"127.0.0.1:{old_port}\"\nbackend = \"b\"\n"
    );
    let proxy = OpsProxy::start_with_config(&config(&old, &first_a), &[]);
    proxy.wait_readyz(200, READY);
    let mut idle = RespConn::connect(loopback(old_port));
    assert_eq!(idle.cmd_str(&["SET", "old:1", "x"]), b"+OK\r\n");
    assert_eq!(cluster_get(&b, "old:1").as_deref(), Some("x"));

    // A client of `main` that stays idle across the reload: a listener that stays is the
    // same listener, so its clients are not drained (a replaced one would close this one
    // after a second of quiet, like the removed listener's client below).
    let mut idle_main = RespConn::connect(proxy.addr);
    assert_eq!(idle_main.cmd_str(&["PING"]), b"+PONG\r\n");
    let keys: Vec<String> = (0..6).map(|i| format!("main:{i}")).collect();
    let load = Load::start(proxy.addr, &keys, LoadOptions::default());
    assert!(load.wait_all_acked_since(Instant::now(), READY).is_some());

    // Remove `old`, add `new` on the same backend, and point `a` at another seed.
    let new = format!(
        "\n[[listeners]]\nname = \"new\"\nlisten = \"127.0.0.1:{new_port}\"\nbackend = \"b\"\n"
    );
    let second_a = format!("[\"{}\"]", a.nodes[1].addr);
    proxy.write_config(&config(&new, &second_a));
    let reply = proxy.post("/reload");
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    let applied: Vec<&str> = body["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "listeners.new (added)",
        "listeners.old (removed)",
        "backends.a.seeds",
    ] {
        assert!(applied.contains(&want), "{want} not in {applied:?}");
    }

    // The new listener serves backend b.
    let mut fresh = RespConn::connect(loopback(new_port));
    assert_eq!(fresh.cmd_str(&["SET", "new:1", "y"]), b"+OK\r\n");
    assert_eq!(cluster_get(&b, "new:1").as_deref(), Some("y"));
    // The removed one drains its idle client and stops accepting.
    let rest = idle.read_to_close();
    assert!(rest.is_empty(), "{}", text(&rest));
    eventually("the removed listener's port to close", READY, || {
        TcpStream::connect_timeout(&loopback(old_port), Duration::from_secs(1)).is_err()
    });

    assert!(
        load.wait_all_acked_since(Instant::now(), READY).is_some(),
        "the load on main stalled after the reload"
    );
    let report = load.stop();
    assert!(
        report.errors().is_empty(),
        "errors on the main listener during the reload:\n{}",
        report.error_lines(10)
    );
    let topology = proxy.get("/topology").json();
    let names: Vec<&str> = topology["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "new"], "{topology}");
    assert_eq!(idle_main.cmd_str(&["GET", "main:0"]).first(), Some(&b'$'));

    // `new` moves to backend a under the same name: the old one drains, a new one serves a.
    let moved = format!(
        "\n[[listeners]]\nname = \"new\"\nlisten = \"127.0.0.1:{new_port}\"\nbackend = \"a\"\n"
    );
    proxy.write_config(&config(&moved, &second_a));
    let reply = proxy.post("/reload");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.contains("listeners.new (moved to backend a)"),
        "{}",
        reply.body
    );
    let rest = fresh.read_to_close();
    assert!(rest.is_empty(), "{}", text(&rest));
    let mut again = RespConn::connect(loopback(new_port));
    assert_eq!(again.cmd_str(&["SET", "moved:1", "z"]), b"+OK\r\n");
    assert_eq!(cluster_get(&a, "moved:1").as_deref(), Some("z"));
    assert_eq!(cluster_get(&b, "moved:1"), None);
}
