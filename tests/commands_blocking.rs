//! Blocking commands through slotgate (issue 4, item 5), against a real cluster of 3
//! primaries with a replica each.
//!
//! - 10 clients block for 2 s (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP,
//!   XREAD BLOCK, XREADGROUP BLOCK, WAIT); each returns its null (or WAIT's count) after at
//!   least 2 s.
//! - While 9 clients are blocked with timeout `0`, another client's 1000 GETs all complete
//!   (blocked clients hold up nobody; the nodes still count the 9 blocked after the GETs);
//!   each blocking command returns as soon as another client pushes data, not before;
//!   timeouts (fractional, RESP3 too) return null after at least the timeout.
//!
//! No bound here is a latency target: lower bounds are Redis's timeouts, upper bounds are
//! liveness bounds ([`LIVENESS`]), and waits are on the nodes' `blocked_clients`.
//! - `BLPOP key 0` blocked while its slot migrates returns the element pushed on the new
//!   owner.
//! - A client that disconnects while blocked leaves nothing blocked on the node: a later push
//!   is not consumed by a ghost.
//! - WAIT counts the replicas that acknowledged the client's own writes.

mod common;

use std::time::{Duration, Instant};

use common::commands::{Client, Problems, Reply, keys_by_primary, tag_on};
use common::extra::info_field;
use common::{RedisCluster, Slotgate};

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// For what takes milliseconds on an idle machine (a client blocking on its node, a
/// timeout firing); generous because other builds and tests share the two cores.
const LIVENESS: Duration = Duration::from_secs(30);

/// Waits until the primaries count `n` blocked clients.
fn wait_blocked(cluster: &RedisCluster, n: i64) {
    common::wait_for_test(
        &format!("{n} clients blocked on the nodes"),
        LIVENESS,
        || blocked_on_nodes(cluster) == n,
    );
}

/// Blocked clients on every primary, summed (INFO clients, on the nodes).
fn blocked_on_nodes(cluster: &RedisCluster) -> i64 {
    cluster
        .primaries()
        .iter()
        .map(|n| {
            let info: String = n.query(&["INFO", "clients"]);
            info_field(&info, "blocked_clients")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Sends `line` on a fresh connection in a thread; returns (reply, time it took).
fn blocked(
    addr: std::net::SocketAddr,
    line: String,
) -> std::thread::JoinHandle<(String, Reply, Duration)> {
    std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.conn.set_read_timeout(LIVENESS);
        let start = Instant::now();
        let reply = c.call(&line);
        (line, reply, start.elapsed())
    })
}

#[test]
fn blocking_commands_never_stall_others_and_keep_redis_timeouts() {
    let cluster = RedisCluster::start(3, 1);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let mut problems = Problems::default();
    let mut c = Client::connect(sg.addr);
    let primaries: Vec<u16> = cluster.primaries().iter().map(|p| p.port).collect();
    let tags: Vec<String> = (0..10)
        .map(|i| tag_on(&cluster, primaries[i % 3], &format!("b{i}-")))
        .collect();
    let k = |i: usize, name: &str| format!("{{{}}}{name}", tags[i]);
    assert_eq!(
        c.call(&format!("XGROUP CREATE {} g $ MKSTREAM", k(8, "s"))),
        Reply::Simple("OK".into())
    );

    // ===== 10 clients blocked for 2 s each return at their timeout =======================
    let commands = vec![
        format!("BLPOP {} 2", k(0, "l")),
        format!("BRPOP {} {} 2", k(1, "l"), k(1, "l2")),
        format!("BLMOVE {} {} LEFT RIGHT 2", k(2, "src"), k(2, "dst")),
        format!("BLMPOP 2 2 {} {} LEFT", k(3, "a"), k(3, "b")),
        format!("BZPOPMIN {} 2", k(4, "z")),
        format!("BZPOPMAX {} 2", k(5, "z")),
        format!("BZMPOP 2 1 {} MIN", k(6, "z")),
        format!("XREAD BLOCK 2000 STREAMS {} $", k(7, "s")),
        format!(
            "XREADGROUP GROUP g consumer BLOCK 2000 STREAMS {} >",
            k(8, "s")
        ),
        // Two replicas of one shard never exist here: WAIT waits its whole timeout.
        "WAIT 2 2000".to_owned(),
    ];
    let threads: Vec<_> = commands
        .iter()
        .map(|l| blocked(sg.addr, l.clone()))
        .collect();
    // The most clients seen blocked at once, polled until every one has returned.
    let mut blocked_seen = 0;
    while !threads.iter().all(|t| t.is_finished()) {
        blocked_seen = blocked_seen.max(blocked_on_nodes(&cluster));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut results = Vec::new();
    for thread in threads {
        results.push(thread.join().expect("a blocked client"));
    }
    assert!(
        blocked_seen >= 10,
        "all 10 blocking commands should have been blocked on the nodes, saw {blocked_seen}"
    );
    for (line, reply, took) in &results {
        let expected = if line.starts_with("WAIT") {
            Reply::Int(1)
        } else {
            Reply::Nil
        };
        assert_eq!(reply, &expected, "{line}");
        // Not before Redis's timeout; the upper bound is liveness only.
        assert!(
            *took >= Duration::from_millis(1950) && *took < LIVENESS,
            "{line} returned after {took:?}, expected its 2 s timeout"
        );
    }

    // ===== Blocked until data comes; others are served meanwhile ========================
    let releases = [
        (
            format!("BLPOP {} 0", k(0, "l")),
            format!("RPUSH {} x", k(0, "l")),
        ),
        (
            format!("BRPOP {} 0", k(1, "l")),
            format!("LPUSH {} x", k(1, "l")),
        ),
        (
            format!("BLMOVE {} {} LEFT RIGHT 0", k(2, "src"), k(2, "dst")),
            format!("RPUSH {} x", k(2, "src")),
        ),
        (
            format!("BLMPOP 0 2 {} {} RIGHT COUNT 2", k(3, "a"), k(3, "b")),
            format!("RPUSH {} x y z", k(3, "b")),
        ),
        (
            format!("BZPOPMIN {} 0", k(4, "z")),
            format!("ZADD {} 1 a 2 b", k(4, "z")),
        ),
        (
            format!("BZPOPMAX {} 0", k(5, "z")),
            format!("ZADD {} 1 a 2 b", k(5, "z")),
        ),
        (
            format!("BZMPOP 0 1 {} MAX COUNT 2", k(6, "z")),
            format!("ZADD {} 1 a 2 b 3 c", k(6, "z")),
        ),
        (
            format!("XREAD BLOCK 0 STREAMS {} $", k(7, "s")),
            format!("XADD {} 1-1 f v", k(7, "s")),
        ),
        (
            format!(
                "XREADGROUP GROUP g consumer BLOCK 0 STREAMS {} >",
                k(8, "s")
            ),
            format!("XADD {} 1-1 f v", k(8, "s")),
        ),
    ];
    let mut waiting = Vec::new();
    for (block, _) in &releases {
        waiting.push(blocked(sg.addr, block.clone()));
    }
    wait_blocked(&cluster, releases.len() as i64);
    // Blocked clients hold up nobody: another client's 1000 GETs complete while all of
    // them stay blocked (timeout 0: only a push releases them).
    let keys = keys_by_primary(&cluster, "get", 10);
    for (i, key) in keys.iter().flat_map(|(_, ks)| ks).enumerate() {
        assert_eq!(
            c.call(&format!("SET {key} v{i}")),
            Reply::Simple("OK".into())
        );
    }
    let all_keys: Vec<&String> = keys.iter().flat_map(|(_, ks)| ks).collect();
    for i in 0..1000 {
        let key = all_keys[i % all_keys.len()];
        let reply = c.call(&format!("GET {key}"));
        assert!(matches!(reply, Reply::Bulk(_)), "GET {key}: {reply:?}");
    }
    assert_eq!(
        blocked_on_nodes(&cluster),
        releases.len() as i64,
        "the blocked clients stay blocked while others are served"
    );
    // None returned before its push.
    for ((block, _), thread) in releases.iter().zip(&waiting) {
        assert!(!thread.is_finished(), "{block} returned before the push");
    }
    for (_, push) in &releases {
        assert!(!c.call(push).is_error(), "{push}");
    }
    let mut got = Vec::new();
    for thread in waiting {
        got.push(thread.join().expect("a blocked client"));
    }
    let expected = [
        Reply::Array(vec![Reply::bulk(&k(0, "l")), Reply::bulk("x")]),
        Reply::Array(vec![Reply::bulk(&k(1, "l")), Reply::bulk("x")]),
        Reply::bulk("x"),
        Reply::Array(vec![
            Reply::bulk(&k(3, "b")),
            Reply::Array(vec![Reply::bulk("z"), Reply::bulk("y")]),
        ]),
        Reply::Array(vec![
            Reply::bulk(&k(4, "z")),
            Reply::bulk("a"),
            Reply::bulk("1"),
        ]),
        Reply::Array(vec![
            Reply::bulk(&k(5, "z")),
            Reply::bulk("b"),
            Reply::bulk("2"),
        ]),
        Reply::Array(vec![
            Reply::bulk(&k(6, "z")),
            Reply::Array(vec![
                Reply::Array(vec![Reply::bulk("c"), Reply::bulk("3")]),
                Reply::Array(vec![Reply::bulk("b"), Reply::bulk("2")]),
            ]),
        ]),
    ];
    for ((line, reply, _), want) in got.iter().zip(&expected) {
        assert_eq!(reply, want, "{line} released by a push");
    }
    for ((line, reply, _), stream) in got[7..].iter().zip([k(7, "s"), k(8, "s")]) {
        let entry = Reply::Array(vec![Reply::Array(vec![
            Reply::bulk(&stream),
            Reply::Array(vec![Reply::Array(vec![
                Reply::bulk("1-1"),
                Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")]),
            ])]),
        ])]);
        assert_eq!(reply, &entry, "{line} released by XADD");
    }
    assert_eq!(
        c.call(&format!("LRANGE {} 0 -1", k(2, "dst"))),
        Reply::Array(vec![Reply::bulk("x")])
    );

    // ===== Timeouts: fractional, short, RESP3 ============================================
    for (line, at_least) in [
        (format!("BLPOP {} 0.5", k(0, "empty")), 500),
        (format!("BZPOPMIN {} 0.3", k(4, "empty")), 300),
        (format!("XREAD BLOCK 400 STREAMS {} $", k(7, "s")), 400),
        (
            format!("BLMOVE {} {} LEFT LEFT 0.3", k(2, "e1"), k(2, "e2")),
            300,
        ),
    ] {
        let start = Instant::now();
        let reply = c.call(&line);
        let took = start.elapsed();
        assert_eq!(reply, Reply::Nil, "{line}");
        // Not before the timeout; the upper bound is liveness only.
        assert!(
            took >= Duration::from_millis(at_least - 20) && took < LIVENESS,
            "{line} took {took:?}"
        );
    }
    let mut r3 = Client::connect(sg.addr);
    r3.call("HELLO 3");
    assert_eq!(r3.raw(&format!("BLPOP {} 0.2", k(0, "empty"))), b"_\r\n");
    assert_eq!(
        r3.raw(&format!("XREAD BLOCK 200 STREAMS {} $", k(7, "s"))),
        b"_\r\n"
    );
    assert_eq!(
        c.call(&format!("BLPOP {} {} 1", k(0, "l"), k(1, "l"))),
        Reply::Error(CROSSSLOT.into())
    );
    // A blocking command pipelined with others: replies in order.
    c.send(&format!("BLPOP {} 0.3", k(0, "empty")));
    c.send(&format!("RPUSH {} after", k(0, "later")));
    c.send("PING");
    assert_eq!(c.read(), Reply::Nil);
    assert_eq!(c.read(), Reply::Int(1));
    assert_eq!(c.read(), Reply::Simple("PONG".into()));

    // ===== BLPOP 0 while its slot migrates to another primary ============================
    let moving = k(0, "moving");
    let slot = common::key_slot(moving.as_bytes());
    let old_owner = cluster.node_for_slot(slot);
    let new_owner = cluster.node_by_port(primaries[1]);
    let blocked_on = |node: &common::RedisNode| {
        let info: String = node.query(&["INFO", "clients"]);
        info_field(&info, "blocked_clients").and_then(|v| v.parse::<i64>().ok())
    };
    let blocked_before = blocked_on(new_owner);
    let waiter = blocked(sg.addr, format!("BLPOP {moving} 0"));
    common::wait_for_test("the BLPOP blocked on the slot's owner", LIVENESS, || {
        blocked_on(old_owner) == Some(1)
    });
    cluster.migrate_slot(slot, old_owner, new_owner, 10, Duration::ZERO);
    // The old owner redirects its blocked client (MOVED, from its cron), slotgate follows:
    // push only once the BLPOP is blocked on the new owner.
    common::wait_for_test("the BLPOP to follow the slot", LIVENESS, || {
        blocked_on(old_owner) == Some(0) && blocked_on(new_owner) > blocked_before
    });
    assert_eq!(c.call(&format!("RPUSH {moving} arrived")), Reply::Int(1));
    let (line, reply, _) = waiter.join().expect("the BLPOP across a migration");
    problems.check(
        reply == Reply::Array(vec![Reply::bulk(&moving), Reply::bulk("arrived")]),
        || {
            format!(
                "{line}, blocked while slot {slot} migrated, must return the element pushed on \
                 the new owner, got {reply:?}"
            )
        },
    );

    // ===== A client that disconnects while blocked ======================================
    let ghost_key = k(9, "ghost");
    let before = blocked_on_nodes(&cluster);
    let mut ghost = Client::connect(sg.addr);
    ghost.send(&format!("BLPOP {ghost_key} 0"));
    let deadline = Instant::now() + LIVENESS;
    while blocked_on_nodes(&cluster) <= before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        blocked_on_nodes(&cluster),
        before + 1,
        "the ghost's BLPOP is blocked"
    );
    drop(ghost);
    let deadline = Instant::now() + LIVENESS;
    while blocked_on_nodes(&cluster) > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    problems.check(blocked_on_nodes(&cluster) == before, || {
        "a client that disconnected while blocked must leave nothing blocked on the node".to_owned()
    });
    c.call(&format!("RPUSH {ghost_key} kept"));
    problems.check(
        c.call(&format!("LLEN {ghost_key}")) == Reply::Int(1),
        || "an element pushed after a blocked client left was consumed by its BLPOP".to_owned(),
    );

    // ===== WAIT counts the acknowledgements of the client's own writes ====================
    let key = keys_by_primary(&cluster, "wait", 1)[0].1[0].clone();
    let owner = cluster.node_for_slot(common::key_slot(key.as_bytes()));
    let replica = cluster.replicas_of(owner)[0];
    assert_eq!(c.call(&format!("SET {key} 1")), Reply::Simple("OK".into()));
    assert_eq!(
        c.call("WAIT 1 2000"),
        Reply::Int(1),
        "WAIT with a live replica"
    );
    replica.pause();
    let start = Instant::now();
    c.call(&format!("SET {key} 2"));
    let reply = c.call("WAIT 1 1000");
    let took = start.elapsed();
    replica.resume();
    problems.check(
        reply == Reply::Int(0) && took >= Duration::from_millis(950),
        || {
            format!(
                "SET then WAIT 1 1000 while the key's replica (port {}) is frozen: Redis answers 0 \
             after the timeout (the write is not acknowledged), slotgate answered {reply:?} \
             after {took:?}",
                replica.port
            )
        },
    );
    cluster.wait_ok(Duration::from_secs(20));
    c.assert_usable("blocking commands");

    problems.assert_none("blocking commands through slotgate");
}
