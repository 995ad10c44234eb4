//! Multi-key commands across slots (issue 4, item 1), against a real 3-primary cluster.
//!
//! - MGET/MSET/DEL/UNLINK/EXISTS/TOUCH with keys on every primary: byte-identical to a
//!   standalone redis-server holding the same keys (values in the client's order, missing
//!   keys as nil in RESP2 and RESP3, counts summed, duplicates counted like Redis), also
//!   pipelined and with hundreds of keys; the data lands on the primary owning each slot;
//!   while one of their slots is half migrated (ASK), they still answer right.
//! - Atomic multi-key commands across slots (MSETNX, RENAME, SMOVE, SUNIONSTORE, LMOVE,
//!   ZUNIONSTORE, ...) answer exactly `CROSSSLOT Keys in request don't hash to the same slot`
//!   and write nothing; with a common hash tag they run.

mod common;

use std::collections::BTreeMap;

use common::commands::{
    Client, Reply, Transcript, begin_migration, finish_migration, keys_by_primary, migrate_keys,
    show, tag_on,
};
use common::extra::encode;
use common::{RedisCluster, RedisNode, RespConn, Slotgate, key_slot};

const CROSSSLOT: &str = "-CROSSSLOT Keys in request don't hash to the same slot\r\n";

/// What every node holds: key -> owner port, read on the nodes directly.
fn keys_on_nodes(cluster: &RedisCluster) -> BTreeMap<String, u16> {
    let mut found = BTreeMap::new();
    for node in cluster.primaries() {
        let keys: Vec<Vec<u8>> = node.query(&["KEYS", "*"]);
        for key in keys {
            let key = String::from_utf8_lossy(&key).into_owned();
            assert!(
                found.insert(key.clone(), node.port).is_none(),
                "key {key} is on two primaries"
            );
        }
    }
    found
}

fn client_call(sg: &Slotgate, line: &str) -> Reply {
    Client::connect(sg.addr).call(line)
}

#[test]
fn multi_key_commands_split_and_merge_or_answer_crossslot() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let oracle = RedisNode::standalone();
    let by_primary = keys_by_primary(&cluster, "mk", 4);
    assert_eq!(by_primary.len(), 3, "three primaries");
    // k[i][j]: key j of primary i.
    let k: Vec<Vec<String>> = by_primary.iter().map(|(_, keys)| keys.clone()).collect();
    let owner_of = |key: &str| {
        by_primary
            .iter()
            .find(|(_, keys)| keys.iter().any(|x| x == key))
            .map(|(port, _)| *port)
            .expect("a key of ours")
    };

    // --- MSET across all primaries, then where the data is -----------------------------
    let mut t = Transcript::new(sg.addr, oracle.addr);
    let pairs: Vec<(String, String)> = k
        .iter()
        .flatten()
        .map(|key| (key.clone(), format!("value-of-{key}")))
        .collect();
    let mut mset: Vec<&str> = vec!["MSET"];
    for (key, value) in &pairs {
        mset.push(key);
        mset.push(value);
    }
    assert_eq!(t.run(&mset.join(" ")), Reply::Simple("OK".into()));
    let on_nodes = keys_on_nodes(&cluster);
    for (key, value) in &pairs {
        assert_eq!(
            on_nodes.get(key),
            Some(&owner_of(key)),
            "after a cross-slot MSET, {key} must live on the primary owning slot {}",
            key_slot(key.as_bytes())
        );
        let direct: String = cluster.node_by_port(owner_of(key)).query(&["GET", key]);
        assert_eq!(&direct, value, "value of {key} on its primary");
    }
    assert_eq!(on_nodes.len(), pairs.len(), "no other key was written");

    // --- MGET: client order, missing keys, duplicates (RESP2) ---------------------------
    let (a, b, c) = (&k[0][0], &k[1][0], &k[2][0]);
    let mget = format!(
        "MGET {c} missing:1 {a} {b} {a} {} missing:2 {} {c}",
        k[1][3], k[0][2]
    );
    let reply = t.run(&mget);
    assert_eq!(
        reply.strings(),
        vec![
            format!("value-of-{c}"),
            "<nil>".into(),
            format!("value-of-{a}"),
            format!("value-of-{b}"),
            format!("value-of-{a}"),
            format!("value-of-{}", k[1][3]),
            "<nil>".into(),
            format!("value-of-{}", k[0][2]),
            format!("value-of-{c}"),
        ],
        "MGET across slots: values in the client's order, nil for missing keys"
    );
    // A key that holds another type reads as nil in MGET, as in Redis.
    t.run(&format!("DEL {}", k[2][3]));
    t.run(&format!("RPUSH {} x", k[2][3]));
    t.run(&format!("MGET {a} {} {b}", k[2][3]));

    // --- counts: EXISTS / TOUCH / DEL / UNLINK, duplicates counted ----------------------
    assert_eq!(
        t.run(&format!("EXISTS {a} {a} {b} missing {c} {c} {c}"))
            .int(),
        6
    );
    assert_eq!(t.run(&format!("EXISTS {a} {b} {c}")).int(), 3);
    assert_eq!(t.run("EXISTS missing:1 missing:2").int(), 0);
    assert_eq!(t.run(&format!("TOUCH {a} {b} missing {c} {a}")).int(), 4);
    assert_eq!(
        t.run(&format!("DEL {a} {b} {a} missing {}", k[2][1])).int(),
        3,
        "DEL counts each deleted key once, as Redis"
    );
    assert_eq!(t.run(&format!("EXISTS {a} {b} {}", k[2][1])).int(), 0);
    assert_eq!(
        t.run(&format!("UNLINK {} {} {} {c}", k[0][1], k[1][1], k[1][2]))
            .int(),
        4
    );
    let left = keys_on_nodes(&cluster);
    for gone in [a, b, c, &k[0][1], &k[1][1], &k[1][2], &k[2][1]] {
        assert!(
            !left.contains_key(gone),
            "{gone} still on a node after DEL/UNLINK"
        );
    }

    // --- RESP3: nulls are `_` ------------------------------------------------------------
    t.sg.cmd_str(&["HELLO", "3"]);
    t.oracle.cmd_str(&["HELLO", "3"]);
    let reply = t.run(&format!("MGET {} missing {} {}", k[0][2], k[1][3], k[0][2]));
    assert_eq!(reply.items()[1], Reply::Nil);
    t.run(&format!("EXISTS {} {} nothing", k[0][2], k[1][3]));
    t.run(&format!("MSET {a} 1 {b} 2 {c} 3"));
    t.run(&format!("MGET {a} {b} {c} none"));
    t.sg.cmd_str(&["HELLO", "2"]);
    t.oracle.cmd_str(&["HELLO", "2"]);

    // --- arity errors, same wording as Redis ----------------------------------------------
    t.run("MSET");
    t.run(&format!("MSET {a} 1 {b}"));
    t.run("MGET");
    t.run("DEL");
    t.run("EXISTS");

    // --- many keys, many slots: 400 keys, half of them missing ----------------------------
    let many: Vec<String> = (0..400).map(|i| format!("many:{i}")).collect();
    let mut mset: Vec<&str> = vec!["MSET"];
    let values: Vec<String> = (0..400).map(|i| format!("v{i}")).collect();
    for i in (0..400).step_by(2) {
        mset.push(&many[i]);
        mset.push(&values[i]);
    }
    t.run(&mset.join(" "));
    let mut mget: Vec<&str> = vec!["MGET"];
    mget.extend(many.iter().rev().map(String::as_str));
    let reply = t.run(&mget.join(" "));
    assert_eq!(reply.items().len(), 400);
    let mut exists: Vec<&str> = vec!["EXISTS"];
    exists.extend(many.iter().map(String::as_str));
    assert_eq!(t.run(&exists.join(" ")).int(), 200);
    let mut del: Vec<&str> = vec!["DEL"];
    del.extend(many.iter().map(String::as_str));
    assert_eq!(t.run(&del.join(" ")).int(), 200);

    // --- binary keys and values ----------------------------------------------------------
    let bin_keys: Vec<Vec<u8>> = (0u8..6).map(|i| vec![0, 255, b'\r', b'\n', i]).collect();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    let bin_values: Vec<Vec<u8>> = (0u8..6).map(|i| vec![i, 0, b' ', 200]).collect();
    for (key, value) in bin_keys.iter().zip(&bin_values) {
        mset.push(key);
        mset.push(value);
    }
    t.run_args(&mset);
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(bin_keys.iter().rev().map(Vec::as_slice));
    let reply = t.run_args(&mget);
    let expected: Vec<Reply> = bin_values
        .iter()
        .rev()
        .map(|v| Reply::Bulk(v.clone()))
        .collect();
    assert_eq!(reply, Reply::Array(expected), "binary MGET across slots");
    t.assert_same("split commands");

    // --- pipelined: split commands keep their place among other replies -------------------
    let mut pipeline = Vec::new();
    let lines = [
        format!("MSET {a} A {b} B {c} C"),
        format!("MGET {c} {b} {a} nothing"),
        format!("GET {b}"),
        format!("EXISTS {a} {b} {c} {a}"),
        format!("INCR {}", k[0][3]),
        format!("DEL {a} {b} nothing {c}"),
        format!("MGET {a} {b}"),
        "PING".to_owned(),
    ];
    for line in &lines {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        pipeline.extend(encode(&args));
    }
    let mut sg_conn = RespConn::connect(sg.addr);
    let mut oracle_conn = RespConn::connect(oracle.addr);
    sg_conn.send_raw(&pipeline);
    oracle_conn.send_raw(&pipeline);
    for line in &lines {
        let ours = sg_conn.read_reply();
        let theirs = oracle_conn.read_reply();
        assert_eq!(
            show(&ours),
            show(&theirs),
            "pipelined {line}: slotgate (left) vs redis (right)"
        );
    }

    // --- atomic multi-key commands across slots: CROSSSLOT, nothing written ---------------
    let mut client = Client::connect(sg.addr);
    let (s1, s2) = (&k[0][2], &k[1][2]);
    let (x, y, z) = (&k[0][3], &k[1][3], &k[2][3]);
    for setup in [
        format!("DEL {s1} {s2} {x} {y} {z} {a} {b} {c}"),
        format!("SET {a} A"),
        format!("SET {b} B"),
        format!("SADD {s1} m1 m2"),
        format!("SADD {s2} m3"),
        format!("RPUSH {x} l1 l2"),
        format!("ZADD {y} 1 z1"),
    ] {
        let reply = client.call(&setup);
        assert!(!reply.is_error(), "{setup}: {reply:?}");
    }
    let before = keys_on_nodes(&cluster);
    let refused = [
        format!("MSETNX {a} 1 {b} 2"),
        format!("MSETNX {c} 1 {z} 2"),
        format!("RENAME {a} {c}"),
        format!("RENAMENX {a} {c}"),
        format!("COPY {a} {c}"),
        format!("SMOVE {s1} {s2} m1"),
        format!("SUNIONSTORE {z} {s1} {s2}"),
        format!("SINTERSTORE {c} {s1}"),
        format!("SDIFF {s1} {s2}"),
        format!("SUNION {s1} {s2}"),
        format!("LMOVE {x} {z} LEFT RIGHT"),
        format!("RPOPLPUSH {x} {z}"),
        format!("ZUNIONSTORE {z} 2 {y} {s1}"),
        format!("ZINTERSTORE {c} 1 {y}"),
        format!("ZRANGESTORE {c} {y} 0 -1"),
        format!("BITOP OR {c} {a} {b}"),
        format!("PFMERGE {c} {a}"),
        format!("SORT {x} STORE {z}"),
        format!("LMPOP 2 {x} {z} LEFT"),
    ];
    let mut wrong = Vec::new();
    for line in &refused {
        let reply = client.raw(line);
        if show(&reply) != CROSSSLOT {
            wrong.push(format!("{line} -> {:?}", show(&reply)));
        }
    }
    assert!(
        wrong.is_empty(),
        "atomic multi-key commands across slots must answer exactly {CROSSSLOT:?}:\n  {}",
        wrong.join("\n  ")
    );
    client.assert_usable("CROSSSLOT");
    let after = keys_on_nodes(&cluster);
    assert_eq!(
        before, after,
        "a refused cross-slot command wrote or deleted keys"
    );
    assert_eq!(client.call(&format!("SCARD {s1}")).int(), 2);
    assert_eq!(client.call(&format!("LLEN {x}")).int(), 2);
    assert_eq!(client.call(&format!("GET {a}")).str(), "A");

    // --- split commands while one of their slots is half migrated (ASK) ------------------
    // Slot of `mig` moves from primary 0 to primary 1; `mig` itself has already moved and
    // `stay` (same slot) has not; the other keys live elsewhere.
    let (from_port, to_port) = (by_primary[0].0, by_primary[1].0);
    let tag = tag_on(&cluster, from_port, "ask");
    let (moved, stay) = (format!("{{{tag}}}moved"), format!("{{{tag}}}stay"));
    let (other1, other2) = (&k[1][0], &k[2][0]);
    assert_eq!(
        client_call(
            &sg,
            &format!("MSET {moved} M {stay} S {other1} O1 {other2} O2")
        ),
        Reply::Simple("OK".into())
    );
    let (from, to) = (
        cluster.node_by_port(from_port),
        cluster.node_by_port(to_port),
    );
    let slot = key_slot(tag.as_bytes());
    begin_migration(slot, from, to);
    migrate_keys(from, to, &[&moved]).expect("MIGRATE one key");
    let mut mid = Client::connect(sg.addr);
    assert_eq!(
        mid.call(&format!("MGET {other1} {moved} {other2} nothing"))
            .strings(),
        vec!["O1", "M", "O2", "<nil>"],
        "MGET with a key already moved to the importing node (ASK)"
    );
    assert_eq!(
        mid.call(&format!("MGET {stay} {other1}")).strings(),
        vec!["S", "O1"],
        "MGET with a key not yet moved"
    );
    assert_eq!(
        mid.call(&format!("EXISTS {moved} {other1} {other2}")).int(),
        3
    );
    assert_eq!(
        mid.call(&format!("MSET {moved} M2 {other1} O1b")),
        Reply::Simple("OK".into())
    );
    assert_eq!(mid.call(&format!("DEL {moved} {other2}")).int(), 2);
    finish_migration(&cluster, slot, from, to).expect("finish the migration");
    assert_eq!(
        mid.call(&format!("MGET {moved} {stay} {other1} {other2}"))
            .strings(),
        vec!["<nil>", "S", "O1b", "<nil>"],
        "after the migration"
    );

    // --- with a common hash tag the same commands run, on the tag's primary ---------------
    let (port, _) = by_primary[1];
    let tag = tag_on(&cluster, port, "mt");
    let tagged = |name: &str| format!("{{{tag}}}{name}");
    let (ta, tb, ts1, ts2, tl, tz) = (
        tagged("a"),
        tagged("b"),
        tagged("s1"),
        tagged("s2"),
        tagged("l"),
        tagged("z"),
    );
    for (line, want) in [
        (format!("MSETNX {ta} 1 {tb} 2"), Reply::Int(1)),
        (format!("MSETNX {ta} 3 {tb} 4"), Reply::Int(0)),
        (
            format!("RENAME {ta} {}", tagged("renamed")),
            Reply::Simple("OK".into()),
        ),
        (format!("SADD {ts1} m1 m2"), Reply::Int(2)),
        (format!("SMOVE {ts1} {ts2} m1"), Reply::Int(1)),
        (
            format!("SUNIONSTORE {} {ts1} {ts2}", tagged("u")),
            Reply::Int(2),
        ),
        (format!("RPUSH {tl} e1 e2"), Reply::Int(2)),
        (
            format!("LMOVE {tl} {} LEFT RIGHT", tagged("l2")),
            Reply::bulk("e1"),
        ),
        (format!("ZADD {tz} 1 a 2 b"), Reply::Int(2)),
        (
            format!("ZUNIONSTORE {} 1 {tz}", tagged("zu")),
            Reply::Int(2),
        ),
    ] {
        assert_eq!(client.call(&line), want, "{line}");
    }
    let node = cluster.node_by_port(port);
    let on_node: Vec<String> = node.query(&["KEYS", &format!("{{{tag}}}*")]);
    assert_eq!(
        on_node.len(),
        9,
        "the tagged keys live on the tag's primary (port {port}): {on_node:?}"
    );
}
