//! Tests of the test fixtures themselves (`tests/common`).
//!
//! Every other integration test takes for granted what is checked here: that a cluster is
//! really formed when `RedisCluster::start` returns, that the topology helpers tell the
//! truth, that `migrate_slot` really migrates (with an observable `ASK` window), that
//! `RespConn` returns exact wire bytes, that parallel fixtures do not collide, and that
//! dropping a fixture leaves no process behind.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{RedisCluster, RedisNode, RespConn, Slotgate, free_port, key_slot, process_state};

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn cluster_info(node: &RedisNode, field: &str) -> String {
    let info = node.cmd(&["CLUSTER", "INFO"]);
    info.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{field}:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no {field} in CLUSTER INFO:\n{info}"))
}

#[test]
fn free_ports_are_unique_in_range_and_bindable_with_bus_port() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let unique: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ports.len(),
        "free_port handed out a port twice"
    );
    for port in ports {
        assert!((20000..22700).contains(&port), "{port} out of range");
        // Both must still be bindable: nothing took them while we held the lock.
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        std::net::TcpListener::bind(("127.0.0.1", port + 10000)).unwrap();
    }
}

#[test]
fn cluster_of_three_primaries_with_replicas_is_formed_and_described_truthfully() {
    let cluster = RedisCluster::start(3, 1);
    assert_eq!(cluster.nodes.len(), 6);
    for node in &cluster.nodes {
        assert_eq!(cluster_info(node, "cluster_state"), "ok");
        assert_eq!(cluster_info(node, "cluster_slots_assigned"), "16384");
        assert_eq!(cluster_info(node, "cluster_known_nodes"), "6");
        assert!(node.addr.ip().is_loopback());
        assert!(node.port + 10000 < 32768, "bus port must stay below 32768");
    }

    let seeds: Vec<SocketAddr> = cluster
        .seeds()
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let node_addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.addr).collect();
    assert_eq!(seeds, node_addrs);

    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    for primary in &primaries {
        assert!(primary.cmd(&["ROLE"]).starts_with("master"));
        let replicas = cluster.replicas_of(primary);
        assert_eq!(replicas.len(), 1, "each primary has one replica");
        assert!(replicas[0].cmd(&["ROLE"]).starts_with("slave"));
    }
    // primaries() is ordered by lowest owned slot.
    assert_eq!(cluster.node_for_slot(0).port, primaries[0].port);
    assert_eq!(cluster.node_for_slot(16383).port, primaries[2].port);

    // node_for_slot agrees with the servers themselves: the owner serves the key, every
    // other primary redirects to it; key_slot agrees with CLUSTER KEYSLOT.
    for i in 0..20 {
        let key = format!("harness:{i}");
        let slot = key_slot(key.as_bytes());
        assert_eq!(
            primaries[0].cmd(&["CLUSTER", "KEYSLOT", &key]),
            slot.to_string()
        );
        let owner = cluster.node_for_slot(slot);
        assert_eq!(owner.cmd(&["SET", &key, "v"]), "OK");
        for other in primaries.iter().filter(|p| p.port != owner.port) {
            assert_eq!(
                other.cmd(&["GET", &key]),
                format!("MOVED {slot} 127.0.0.1:{}", owner.port)
            );
        }
    }
    // Hash-tag edge cases: the slot Redis computes (CLUSTER KEYSLOT) is the expected value,
    // for the fixture's key_slot and for slotgate's own (src/slot.rs), which routes requests.
    for key in [
        "{user1000}.following",
        "user1000",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "{bar",
        "foo{bar}{zap}",
        "foo{bar",
        "{}",
        "}{",
        "a{b}c{d}",
    ] {
        let redis = primaries[0].cmd(&["CLUSTER", "KEYSLOT", key]);
        assert_eq!(
            key_slot(key.as_bytes()).to_string(),
            redis,
            "slot of {key:?}: the fixture's (left) vs CLUSTER KEYSLOT (right)"
        );
        assert_eq!(
            slotgate::slot::key_slot(key.as_bytes()).to_string(),
            redis,
            "slot of {key:?}: slotgate's (left) vs CLUSTER KEYSLOT (right)"
        );
    }

    let by_node = cluster.dbsize_by_node();
    assert_eq!(by_node.len(), 6);
    let on_primaries: u64 = by_node
        .iter()
        .filter(|(port, _)| primaries.iter().any(|p| p.port == *port))
        .map(|&(_, n)| n)
        .sum();
    assert_eq!(on_primaries, 20);
}

#[test]
fn failover_kill_and_restart_are_reflected_by_the_topology_helpers() {
    let mut cluster = RedisCluster::start(3, 1);

    // Planned failover: the replica becomes the owner of the old primary's slots.
    let old = cluster.node_for_slot(0).port;
    let replica = cluster.replicas_of(cluster.node_by_port(old))[0].port;
    cluster.failover(cluster.node_by_port(replica));
    assert_eq!(cluster.node_for_slot(0).port, replica);
    assert!(!cluster.primaries().iter().any(|p| p.port == old));

    // Crash the new primary: wait_ok waits until its replica (the old primary) took over.
    let crashed = cluster.node_index(replica);
    let crashed_pid = cluster.nodes[crashed].pid();
    cluster.nodes[crashed].stop();
    assert!(!process_exists(crashed_pid));
    assert!(!cluster.nodes[crashed].is_live());
    cluster.wait_ok(Duration::from_secs(30));
    assert_eq!(cluster.node_for_slot(0).port, old);
    assert_eq!(cluster.dbsize_by_node().len(), 5);

    // Restart: same port and node id, it rejoins as a replica.
    let id_before = {
        let text = std::fs::read_to_string(cluster.nodes[crashed].dir.join("nodes.conf")).unwrap();
        let myself = text.lines().find(|l| l.contains("myself")).unwrap();
        myself.split(' ').next().unwrap().to_string()
    };
    cluster.nodes[crashed].restart();
    assert_eq!(cluster.nodes[crashed].node_id(), id_before);
    cluster.wait_ok(Duration::from_secs(30));
    let primary = cluster.node_by_port(old);
    let rejoined = cluster.nodes[crashed].port;
    common::wait_for_test(
        "the restarted node to replicate",
        Duration::from_secs(30),
        || {
            cluster
                .replicas_of(primary)
                .iter()
                .any(|r| r.port == rejoined)
        },
    );
}

#[test]
fn single_primary_cluster_is_wired_by_hand() {
    // redis-cli refuses fewer than 3 primaries; the fixture must still build one.
    let cluster = RedisCluster::start(1, 1);
    assert_eq!(cluster.primaries().len(), 1);
    let primary = cluster.primaries()[0].port;
    for slot in [0, 8191, 16383] {
        assert_eq!(cluster.node_for_slot(slot).port, primary);
    }
    let replicas = cluster.replicas_of(cluster.node_by_port(primary));
    assert_eq!(replicas.len(), 1);
    assert_eq!(cluster_info(replicas[0], "cluster_state"), "ok");
}

#[test]
fn migrate_slot_moves_every_key_with_an_ask_window() {
    let cluster = RedisCluster::start(3, 0);
    let slot = key_slot(b"{mig}");
    let from = cluster.node_for_slot(slot);
    let to = *cluster
        .primaries()
        .iter()
        .find(|p| p.port != from.port)
        .unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("{{mig}}:{i}")).collect();
    let mut conn = from.conn();
    for key in &keys {
        redis::cmd("SET")
            .arg(key)
            .arg(format!("value-of-{key}"))
            .exec(&mut conn)
            .unwrap();
    }
    let count = |node: &RedisNode| node.cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
    assert_eq!(count(from), "50");
    assert_eq!(count(to), "0");

    let ask = format!("-ASK {slot} 127.0.0.1:{}\r\n", to.port);
    std::thread::scope(|s| {
        let migration = s.spawn(|| {
            cluster.migrate_slot(slot, from, to, 10, Duration::from_millis(200));
        });
        // While the slot is migrating, a moved key is answered with ASK by the source.
        let mut client = RespConn::connect(from.addr);
        let saw_ask = (0..200).any(|_| {
            let asked = keys
                .iter()
                .any(|k| client.cmd(&[b"GET", k.as_bytes()]) == ask.as_bytes());
            std::thread::sleep(Duration::from_millis(10));
            asked
        });
        migration.join().unwrap();
        assert!(saw_ask, "never saw {ask:?} during the migration");
    });

    assert_eq!(count(from), "0");
    assert_eq!(count(to), "50");
    assert_eq!(cluster.node_for_slot(slot).port, to.port);
    let mut client = RespConn::connect(from.addr);
    assert_eq!(
        client.cmd(&[b"GET", keys[0].as_bytes()]),
        format!("-MOVED {slot} 127.0.0.1:{}\r\n", to.port).as_bytes()
    );
    let mut client = RespConn::connect(to.addr);
    for key in &keys {
        let value = format!("value-of-{key}");
        let expected = format!("${}\r\n{value}\r\n", value.len());
        assert_eq!(client.cmd(&[b"GET", key.as_bytes()]), expected.as_bytes());
    }
    cluster.wait_ok(Duration::from_secs(10));

    // An empty slot migrates too (one pause, no MIGRATE).
    let empty = (slot + 1) % 16384;
    let owner = cluster.node_for_slot(empty);
    let target = *cluster
        .primaries()
        .iter()
        .find(|p| p.port != owner.port)
        .unwrap();
    cluster.migrate_slot(empty, owner, target, 5, Duration::ZERO);
    assert_eq!(cluster.node_for_slot(empty).port, target.port);
}

#[test]
fn resp_conn_returns_exact_reply_bytes() {
    let node = RedisNode::standalone();
    let mut c = RespConn::connect(node.addr);
    assert_eq!(c.cmd(&[b"SET", b"k", b"v\r\nx"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$4\r\nv\r\nx\r\n");
    assert_eq!(c.cmd(&[b"GET", b"missing"]), b"$-1\r\n");
    assert_eq!(
        c.cmd(&[b"MGET", b"missing", b"k"]),
        b"*2\r\n$-1\r\n$4\r\nv\r\nx\r\n"
    );
    assert_eq!(c.cmd_str(&["INCR", "n"]), b":1\r\n");
    assert!(
        c.cmd_str(&["NOSUCHCOMMAND"])
            .starts_with(b"-ERR unknown command")
    );

    // Pipelined replies arrive in one read but come back one at a time.
    c.send_raw(b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n");
    assert_eq!(c.read_reply(), b"+PONG\r\n");
    assert_eq!(c.read_reply(), b"$2\r\nhi\r\n");
    assert_eq!(c.read_reply(), b"+PONG\r\n");

    // A request split across writes.
    c.send_raw(b"*2\r\n$3\r\nGET");
    // The node has read the first write: its unparsed `GET` shows as `qbuf=3`.
    let mut probe = RespConn::connect(node.addr);
    common::wait_for_test(
        "the node to read the first part",
        Duration::from_secs(30),
        || String::from_utf8_lossy(&probe.cmd_str(&["CLIENT", "LIST"])).contains(" qbuf=3 "),
    );
    c.send_raw(b"\r\n$1\r\nk\r\n");
    assert_eq!(c.read_reply(), b"$4\r\nv\r\nx\r\n");

    // RESP3 after HELLO 3: maps and the `_` null.
    let hello = c.cmd_str(&["HELLO", "3"]);
    assert!(
        hello.starts_with(b"%"),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(c.cmd_str(&["GET", "missing"]), b"_\r\n");
    assert_eq!(c.cmd_str(&["HSET", "h", "f", "v"]), b":1\r\n");
    assert_eq!(
        c.cmd_str(&["HGETALL", "h"]),
        b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );

    // A protocol error: the server answers with an error and closes.
    let mut bad = RespConn::connect(node.addr);
    bad.send_raw(b"*1\r\n$abc\r\n");
    let rest = bad.read_to_close();
    assert!(
        rest.starts_with(b"-ERR Protocol error"),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn pause_and_resume_freeze_and_thaw_the_server() {
    let node = RedisNode::standalone();
    let mut conn = RespConn::connect(node.addr);
    assert_eq!(conn.cmd_str(&["PING"]), b"+PONG\r\n");

    node.pause();
    assert_eq!(process_state(node.pid()), Some('T'));
    assert!(!node.is_live());
    conn.set_read_timeout(Duration::from_millis(300));
    conn.send_raw(b"PING\r\n");
    assert!(conn.try_read_reply().is_err(), "a paused server answered");

    node.resume();
    assert_ne!(process_state(node.pid()), Some('T'));
    assert!(node.is_live());
    conn.set_read_timeout(Duration::from_secs(5));
    assert_eq!(conn.read_reply(), b"+PONG\r\n");
}

#[test]
fn two_clusters_in_parallel_do_not_collide() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| RedisCluster::start(3, 0));
        let b = s.spawn(|| RedisCluster::start(3, 0));
        (a.join().unwrap(), b.join().unwrap())
    });
    let ports_a: HashSet<u16> = a.nodes.iter().map(|n| n.port).collect();
    let ports_b: HashSet<u16> = b.nodes.iter().map(|n| n.port).collect();
    assert!(ports_a.is_disjoint(&ports_b));
    assert_ne!(a.dir(), b.dir());
    for node in a.nodes.iter().chain(&b.nodes) {
        // Each node knows only its own cluster.
        assert_eq!(cluster_info(node, "cluster_known_nodes"), "3");
    }
    let slot = key_slot(b"shared-key");
    assert_eq!(a.node_for_slot(slot).cmd(&["SET", "shared-key", "a"]), "OK");
    assert_eq!(b.node_for_slot(slot).cmd(&["GET", "shared-key"]), "");
}

#[test]
fn drop_and_stop_kill_every_process() {
    let cluster = RedisCluster::start(3, 0);
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.pid()).collect();
    let dir = cluster.dir().to_path_buf();
    assert!(pids.iter().all(|&pid| process_exists(pid)));
    drop(cluster);
    for pid in pids {
        assert!(!process_exists(pid), "redis-server {pid} survived the drop");
    }
    if std::env::var_os("SLOTGATE_KEEP_TEST_DIRS").is_none() {
        assert!(!dir.exists(), "the cluster's temp dir survived the drop");
    }

    let mut node = RedisNode::standalone();
    let pid = node.pid();
    node.stop();
    assert!(!process_exists(pid));
    node.stop(); // idempotent

    // A paused node is killed too (SIGKILL works on stopped processes).
    let node = RedisNode::standalone();
    let pid = node.pid();
    node.pause();
    drop(node);
    assert!(!process_exists(pid));
}

#[test]
fn slotgate_fixture_starts_the_proxy_logs_and_stops_it() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = Slotgate::start(&cluster.seeds(), &[]);
    assert!(proxy.addr.ip().is_loopback());
    let mut conn = RespConn::connect(proxy.addr);
    assert_eq!(conn.cmd_str(&["PING"]), b"+PONG\r\n");
    assert_eq!(conn.cmd_str(&["SET", "through-proxy", "1"]), b"+OK\r\n");
    let owner = cluster.node_for_slot(key_slot(b"through-proxy"));
    assert_eq!(owner.cmd(&["GET", "through-proxy"]), "1");
    // The fixture passes RUST_LOG=debug (or the caller's RUST_LOG), which slotgate honours
    // when no log-level is set: the backend connection the SET opened is logged at debug.
    assert!(
        proxy.log().contains("backend connected"),
        "slotgate did not log at debug level (RUST_LOG={:?}):\n{}",
        std::env::var("RUST_LOG").ok(),
        proxy.log()
    );

    let pid = proxy.pid();
    drop(proxy);
    assert!(!process_exists(pid), "slotgate {pid} survived the drop");
}

/// Starts slotgate with `RUST_LOG=rust_log` and `args`, seeded with a port nobody serves
/// so that every discovery round logs a `WARN` (and, at debug, a `DEBUG` line first);
/// returns the log once a `WARN` line is there, with colour sequences left in.
fn log_with_rust_log(rust_log: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("a temp dir");
    let log_path = dir.path().join("slotgate.log");
    let log = std::fs::File::create(&log_path).expect("create the log");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = std::process::Command::new(common::slotgate_bin())
        .args(["--listen", &listen, "--seeds", "127.0.0.1:1"])
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone the log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn slotgate");
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // Generous: a discovery round starts at once and fails in milliseconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !read().contains("WARN") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = read();
    assert!(text.contains("WARN"), "no WARN line within 20 s:\n{text}");
    text
}

#[test]
fn rust_log_sets_the_level_unless_log_level_is_given() {
    // A DEBUG line ("discovery failed") is written before the round's WARN.
    let log = log_with_rust_log("debug", &[]);
    assert!(log.contains("DEBUG"), "RUST_LOG=debug ignored:\n{log}");
    // --log-level wins over RUST_LOG.
    let log = log_with_rust_log("debug", &["--log-level", "warn"]);
    assert!(
        !log.contains("DEBUG"),
        "--log-level warn must win over RUST_LOG=debug:\n{log}"
    );
}

#[test]
#[should_panic(expected = "did not start")]
fn slotgate_fixture_fails_loudly_when_the_proxy_cannot_start() {
    // An unknown flag makes the binary exit at once; the fixture must say so, not hang.
    let _proxy = Slotgate::start("127.0.0.1:1", &["--no-such-flag-for-the-harness"]);
}
