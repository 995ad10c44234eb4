//! A node that hangs or dies: its shard's commands get a clear error naming the node within
//! the configured time, and the other shards keep working.
//!
//! The clusters here have no replicas, `cluster-node-timeout` raised to a minute and
//! `cluster-require-full-coverage no`, so the cluster itself neither fails over nor stops
//! serving the healthy shards while a test runs: what is measured is slotgate alone.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::extra::{bulk_payload, slot_owners, text};
use common::{RedisCluster, RespConn, Slotgate, key_slot};

/// Upper margin on top of a configured timeout: process scheduling on a busy 2-core CI box.
const MARGIN: Duration = Duration::from_secs(2);

/// Keeps the cluster still while a node is frozen or dead (see the module docs).
fn hold_cluster_still(cluster: &RedisCluster) {
    for node in &cluster.nodes {
        node.query::<()>(&["CONFIG", "SET", "cluster-node-timeout", "60000"]);
        node.query::<()>(&["CONFIG", "SET", "cluster-require-full-coverage", "no"]);
    }
}

/// `count` keys owned by the primary on `port`, with their values, written through slotgate.
fn keys_on(owners: &[u16], port: u16, count: usize, sg: SocketAddr) -> Vec<(String, String)> {
    let mut conn = RespConn::connect(sg);
    let keys: Vec<(String, String)> = (0u32..)
        .map(|i| format!("fk:{i}"))
        .filter(|k| owners[usize::from(key_slot(k.as_bytes()))] == port)
        .take(count)
        .map(|k| {
            let v = format!("value-of-{k}");
            (k, v)
        })
        .collect();
    for (k, v) in &keys {
        assert_eq!(text(&conn.cmd_str(&["SET", k, v])), "+OK\r\n", "SET {k}");
    }
    keys
}

fn assert_value(conn: &mut RespConn, key: &str, value: &str, when: &str) {
    let reply = conn.cmd_str(&["GET", key]);
    assert_eq!(
        text(&reply),
        format!("${}\r\n{value}\r\n", value.len()),
        "GET {key} {when}"
    );
}

#[test]
fn a_hung_primary_gets_a_timely_error_naming_it_while_other_shards_work() {
    let cluster = RedisCluster::start(3, 0);
    hold_cluster_still(&cluster);
    let sg = Slotgate::start(&cluster.seeds(), &["--backend-reply-timeout", "1s"]);
    let reply_timeout = Duration::from_secs(1);
    let owners = slot_owners(&cluster);
    let primaries = cluster.primaries();
    let victim = primaries[1];
    let victim_keys = keys_on(&owners, victim.port, 10, sg.addr);
    let other_keys: Vec<(String, String)> = [primaries[0].port, primaries[2].port]
        .iter()
        .flat_map(|&p| keys_on(&owners, p, 10, sg.addr))
        .collect();
    // Warm up: connections from slotgate to every node exist before the freeze.
    let mut conn = RespConn::connect(sg.addr);
    for (k, v) in victim_keys.iter().chain(&other_keys) {
        assert_value(&mut conn, k, v, "before the pause");
    }

    victim.pause();
    let started = Instant::now();
    let addr = sg.addr;
    let (hung_key, _) = victim_keys[0].clone();
    let hung = std::thread::spawn(move || {
        let mut conn = RespConn::connect(addr);
        conn.set_read_timeout(Duration::from_secs(15));
        let reply = conn.try_read_reply_after_cmd(&["GET", &hung_key]);
        (reply, started.elapsed())
    });
    // Other shards answer at once, on another connection, while that GET hangs.
    let mut other = RespConn::connect(sg.addr);
    for (k, v) in &other_keys {
        assert_value(
            &mut other,
            k,
            v,
            "on a healthy shard while another primary is frozen",
        );
    }
    let others_done = started.elapsed();
    let (reply, elapsed) = hung.join().expect("the thread with the hung GET");
    let reply = text(&reply.unwrap_or_else(|e| {
        panic!(
            "GET on the frozen primary {}: no reply within 15 s although \
             --backend-reply-timeout is {reply_timeout:?}; slotgate must answer an error \
             naming the node: {e}",
            victim.port
        )
    }));
    assert!(
        reply.starts_with("-") && reply.contains(&victim.port.to_string()),
        "GET on the frozen primary {} must be an error naming it, got {reply:?}",
        victim.port
    );
    assert!(
        elapsed <= reply_timeout + MARGIN,
        "the error for the frozen primary came after {elapsed:?}; \
         --backend-reply-timeout is {reply_timeout:?}: {reply:?}"
    );
    assert!(
        others_done < elapsed,
        "healthy shards were held up by the frozen one: their {} GETs took {others_done:?}, \
         the frozen GET's error came at {elapsed:?}",
        other_keys.len()
    );

    // Still frozen: a new command for that shard errors again in time (slotgate does not
    // hang on a reconnect to a node that accepts but never answers), healthy shards work.
    let t = Instant::now();
    let again = text(&conn.cmd_str(&["GET", &victim_keys[1].0]));
    assert!(
        again.starts_with("-") && again.contains(&victim.port.to_string()),
        "second GET on the frozen primary {}: {again:?}",
        victim.port
    );
    assert!(
        t.elapsed() <= reply_timeout + MARGIN,
        "second error after {:?}",
        t.elapsed()
    );
    for (k, v) in &other_keys {
        assert_value(
            &mut conn,
            k,
            v,
            "after the frozen shard's errors, same connection",
        );
    }

    victim.resume();
    // Back: after a first success, every key of that shard reads its own value (a reply
    // left over from the frozen connection would shift them), pipelined too.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (k0, v0) = &victim_keys[2];
    let want = format!("${}\r\n{v0}\r\n", v0.len());
    let mut last = String::new();
    while Instant::now() < deadline {
        last = text(&conn.cmd_str(&["GET", k0]));
        if last == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        last, want,
        "GET {k0} once the primary {} is resumed",
        victim.port
    );
    for _ in 0..3 {
        for (k, v) in victim_keys.iter().chain(&other_keys) {
            assert_value(&mut conn, k, v, "after the resume");
        }
    }
    let mut pipeline = Vec::new();
    for (k, _) in victim_keys.iter().chain(&other_keys) {
        pipeline.extend(common::extra::encode(&[b"GET", k.as_bytes()]));
    }
    conn.send_raw(&pipeline);
    for (k, v) in victim_keys.iter().chain(&other_keys) {
        assert_eq!(
            bulk_payload(&conn.read_reply()),
            v.as_bytes(),
            "pipelined GET {k} after the resume"
        );
    }
}

#[test]
fn a_dead_primary_gets_an_error_naming_it_within_the_retry_deadline() {
    let mut cluster = RedisCluster::start(3, 0);
    hold_cluster_still(&cluster);
    let mut sg = Slotgate::start(&cluster.seeds(), &["--retry-deadline", "1s"]);
    let retry_deadline = Duration::from_secs(1);
    let owners = slot_owners(&cluster);
    let ports: Vec<u16> = cluster.primaries().iter().map(|p| p.port).collect();
    let victim_port = ports[2];
    let victim_keys = keys_on(&owners, victim_port, 5, sg.addr);
    let other_keys: Vec<(String, String)> = ports[..2]
        .iter()
        .flat_map(|&p| keys_on(&owners, p, 10, sg.addr))
        .collect();
    let mut conn = RespConn::connect(sg.addr);
    for (k, v) in victim_keys.iter().chain(&other_keys) {
        assert_value(&mut conn, k, v, "before the kill");
    }

    let idx = cluster.node_index(victim_port);
    cluster.nodes[idx].stop();

    for (key, _) in &victim_keys[..3] {
        let t = Instant::now();
        let reply = text(&conn.cmd_str(&["GET", key]));
        let elapsed = t.elapsed();
        assert!(
            reply.starts_with("-") && reply.contains(&victim_port.to_string()),
            "GET {key} on the dead primary {victim_port} must be an error naming it, got {reply:?}"
        );
        assert!(
            elapsed <= retry_deadline + MARGIN,
            "the error for the dead primary came after {elapsed:?}; --retry-deadline is \
             {retry_deadline:?}: {reply:?}"
        );
        for (k, v) in &other_keys {
            assert_value(&mut conn, k, v, "on a healthy shard, with one primary dead");
        }
    }
    // A write to the dead shard: refused, and said not to have run.
    let reply = text(&conn.cmd_str(&["SET", &victim_keys[3].0, "new"]));
    assert!(
        reply.starts_with("-") && reply.contains(&victim_port.to_string()),
        "SET on the dead primary {victim_port}: {reply:?}"
    );
    // Pipelined across shards: order kept, each reply its own.
    let mut pipeline = Vec::new();
    pipeline.extend(common::extra::encode(&[b"GET", other_keys[0].0.as_bytes()]));
    pipeline.extend(common::extra::encode(&[
        b"GET",
        victim_keys[4].0.as_bytes(),
    ]));
    pipeline.extend(common::extra::encode(&[
        b"GET",
        other_keys[15].0.as_bytes(),
    ]));
    conn.send_raw(&pipeline);
    assert_eq!(bulk_payload(&conn.read_reply()), other_keys[0].1.as_bytes());
    let middle = text(&conn.read_reply());
    assert!(
        middle.starts_with("-") && middle.contains(&victim_port.to_string()),
        "pipelined GET on the dead shard: {middle:?}"
    );
    assert_eq!(
        bulk_payload(&conn.read_reply()),
        other_keys[15].1.as_bytes()
    );
    // New keys on the healthy shards can be written and read.
    for (i, &port) in ports[..2].iter().enumerate() {
        let key = (0u32..)
            .map(|n| format!("after-kill:{i}:{n}"))
            .find(|k| owners[usize::from(key_slot(k.as_bytes()))] == port)
            .unwrap();
        assert_eq!(
            text(&conn.cmd_str(&["SET", &key, "x"])),
            "+OK\r\n",
            "SET {key}"
        );
        assert_value(&mut conn, &key, "x", "written after the kill");
    }
    assert!(sg.try_wait().is_none(), "slotgate exited");
}

trait SendCmd {
    fn try_read_reply_after_cmd(&mut self, args: &[&str]) -> Result<Vec<u8>, String>;
}

impl SendCmd for RespConn {
    fn try_read_reply_after_cmd(&mut self, args: &[&str]) -> Result<Vec<u8>, String> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_raw(&common::extra::encode(&args));
        self.try_read_reply()
    }
}
