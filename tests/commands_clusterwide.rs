//! Cluster-wide and node-introspection commands through slotgate (issue 4, items 6 and 8),
//! against a real 3-primary cluster holding 5000 keys.
//!
//! - SCAN (plain, MATCH, COUNT, TYPE) returns every key exactly once over all primaries, ends
//!   with cursor 0, rejects a bad cursor like Redis; a scan that spans a slot migration
//!   returns every key when the slot moves between shards it has not visited yet, and every
//!   key outside the moved slot when the slot leaves the shard being scanned (the documented
//!   limit); redis-py `scan_iter` sees every key.
//! - KEYS, DBSIZE (the nodes' sum), RANDOMKEY (an existing key), INFO keyspace (summed).
//! - OBJECT ENCODING/IDLETIME, MEMORY USAGE, TYPE, DUMP/RESTORE routed by key (answers equal
//!   to the owner's own).
//! - FLUSHDB/FLUSHALL empty every primary.
//! - Refused commands (CLUSTER ADDSLOTS/FAILOVER, DEBUG, SHUTDOWN, MONITOR, SELECT 1, MOVE,
//!   SWAPDB, CLIENT TRACKING on) answer `-ERR` naming the command with a reason, nothing
//!   reaches the nodes, and the connection stays usable.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::time::Duration;

use common::commands::{Client, Problems, Reply, python, show};
use common::extra::{encode, info_field, slot_owners};
use common::{RedisCluster, RespConn, Slotgate, key_slot, wait_for_test};

/// Runs a full SCAN with `options` (e.g. `COUNT 100 TYPE hash`); returns every key
/// returned, duplicates included, and the number of calls.
fn full_scan(c: &mut Client, options: &str) -> (Vec<String>, usize) {
    let mut cursor = "0".to_owned();
    let mut keys = Vec::new();
    let mut calls = 0;
    loop {
        let reply = c.call(&format!("SCAN {cursor} {options}"));
        calls += 1;
        let items = reply.items();
        assert_eq!(items.len(), 2, "SCAN reply {reply:?}");
        cursor = items[0].str();
        keys.extend(items[1].strings());
        if cursor == "0" {
            return (keys, calls);
        }
        assert!(calls < 100_000, "SCAN never ended");
    }
}

/// Asserts `keys` holds each of `expected` exactly once and nothing else.
fn exactly_once(what: &str, keys: &[String], expected: &BTreeSet<String>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for key in keys {
        *seen.entry(key.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(10).collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|k| !seen.contains_key(k.as_str()))
        .take(10)
        .collect();
    let extra: Vec<_> = seen
        .keys()
        .filter(|k| !expected.contains(**k))
        .take(10)
        .collect();
    assert!(
        repeated.is_empty() && missing.is_empty() && extra.is_empty(),
        "{what}: {} keys returned for {} expected; repeated {repeated:?}, missing {missing:?}, \
         unexpected {extra:?}",
        keys.len(),
        expected.len()
    );
}

/// True when slotgate's own slot map (`INFO topology`) has `slot` on the primary at `port`.
fn slotgate_maps(c: &mut Client, slot: u16, port: u16) -> bool {
    let info = c.call("INFO topology").str();
    let primary = format!("primary=127.0.0.1:{port},");
    info.lines()
        .filter(|line| line.contains(&primary))
        .filter_map(|line| line.split_once(",slots=").map(|(_, slots)| slots.trim()))
        .flat_map(|slots| slots.split('|'))
        .any(|range| {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                _ => false,
            }
        })
}

#[test]
fn cluster_wide_commands_cover_every_primary_and_refusals_keep_the_connection() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &["--enable-flush-commands", "true"]);
    let mut problems = Problems::default();
    let mut c = Client::connect(sg.addr);

    // ----- 5000 keys: 4000 strings, 500 hashes, 500 lists, pipelined -------------------
    let mut all = BTreeSet::new();
    let mut hashes = BTreeSet::new();
    let mut lists = BTreeSet::new();
    let mut pipeline = Vec::new();
    for i in 0..5000 {
        let (key, command): (String, Vec<Vec<u8>>) = match i % 10 {
            0 => {
                let key = format!("scan:hash:{i}");
                hashes.insert(key.clone());
                (
                    key.clone(),
                    vec![
                        b"HSET".to_vec(),
                        key.into_bytes(),
                        b"f".to_vec(),
                        b"v".to_vec(),
                    ],
                )
            }
            1 => {
                let key = format!("scan:list:{i}");
                lists.insert(key.clone());
                (
                    key.clone(),
                    vec![b"RPUSH".to_vec(), key.into_bytes(), b"e".to_vec()],
                )
            }
            _ => {
                let key = format!("scan:str:{i}");
                (
                    key.clone(),
                    vec![
                        b"SET".to_vec(),
                        key.into_bytes(),
                        i.to_string().into_bytes(),
                    ],
                )
            }
        };
        all.insert(key);
        let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        pipeline.extend(encode(&args));
    }
    let mut loader = RespConn::connect(sg.addr);
    let mut writer = loader.stream().try_clone().expect("clone the socket");
    let write = std::thread::spawn(move || writer.write_all(&pipeline));
    for i in 0..5000 {
        let reply = loader.read_reply();
        assert!(!reply.starts_with(b"-"), "load #{i}: {}", show(&reply));
    }
    write.join().expect("writer").expect("write the load");
    let per_node: Vec<(u16, u64)> = cluster
        .primaries()
        .iter()
        .map(|n| (n.port, n.query::<u64>(&["DBSIZE"])))
        .collect();
    assert!(
        per_node.iter().all(|&(_, n)| n > 1000),
        "keys on every primary: {per_node:?}"
    );
    // Let each node finish any incremental rehash, so SCAN sees a stable table: wait until
    // no node reports a rehashing target for db 0.
    common::wait_for_test(
        "the nodes to finish rehashing",
        Duration::from_secs(30),
        || {
            cluster.primaries().iter().all(|n| {
                !n.cmd(&["DEBUG", "HTSTATS", "0"])
                    .contains("rehashing target")
            })
        },
    );

    // ----- SCAN -------------------------------------------------------------------------
    let (keys, calls) = full_scan(&mut c, "COUNT 100");
    exactly_once("SCAN COUNT 100", &keys, &all);
    assert!(
        calls >= 50,
        "SCAN COUNT 100 over 5000 keys took only {calls} calls"
    );
    let (keys, _) = full_scan(&mut c, "");
    exactly_once("SCAN (default COUNT)", &keys, &all);
    let (keys, _) = full_scan(&mut c, "MATCH scan:hash:* COUNT 500");
    exactly_once("SCAN MATCH scan:hash:*", &keys, &hashes);
    let (keys, _) = full_scan(&mut c, "COUNT 1000 TYPE list");
    exactly_once("SCAN TYPE list", &keys, &lists);
    let matching: BTreeSet<String> = all
        .iter()
        .filter(|k| k.starts_with("scan:str:1"))
        .cloned()
        .collect();
    let (keys, _) = full_scan(&mut c, "MATCH scan:str:1* TYPE string COUNT 300");
    exactly_once("SCAN MATCH scan:str:1* TYPE string", &keys, &matching);
    assert_eq!(
        c.call("SCAN abc"),
        Reply::Error("ERR invalid cursor".into())
    );
    let reply = c.call("SCAN 0 MATCH nothing:* COUNT 10");
    assert_eq!(reply.items().len(), 2, "{reply:?}");

    // redis-py's scan_iter.
    let out = python(
        &format!(
            "import redis\nr = redis.Redis(host='127.0.0.1', port={})\nkeys = list(r.scan_iter(count=250))\nprint(len(keys), len(set(keys)))\n",
            sg.port
        ),
        Duration::from_secs(30),
    );
    assert_eq!(out, "5000 5000\n", "redis-py scan_iter through slotgate");

    // ----- KEYS, DBSIZE, RANDOMKEY, INFO keyspace ---------------------------------------
    let keys = c.call("KEYS *").strings();
    exactly_once("KEYS *", &keys, &all);
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|k| k.starts_with("scan:hash:1") && k.len() == "scan:hash:1000".len())
        .cloned()
        .collect();
    let keys = c.call("KEYS scan:hash:1???").strings();
    exactly_once("KEYS scan:hash:1???", &keys, &expected);
    let total: u64 = per_node.iter().map(|&(_, n)| n).sum();
    assert_eq!(total, 5000);
    assert_eq!(
        c.call("DBSIZE"),
        Reply::Int(5000),
        "DBSIZE: the primaries' sum"
    );
    for _ in 0..20 {
        let key = c.call("RANDOMKEY").str();
        assert!(all.contains(&key), "RANDOMKEY answered {key:?}");
    }
    let info = c.call("INFO keyspace").str();
    let db0 = info_field(&info, "db0");
    problems.check(
        db0.as_deref().is_some_and(|v| v.starts_with("keys=5000,")),
        || {
            format!(
                "INFO keyspace must sum the primaries' keyspace (db0:keys=5000,...), got {info:?}"
            )
        },
    );

    // ----- Introspection by key, answered by the key's primary ------------------------------
    let owners = slot_owners(&cluster);
    let owner = |key: &str| cluster.node_by_port(owners[usize::from(key_slot(key.as_bytes()))]);
    for (key, encoding, kind) in [
        ("scan:str:2", "int", "string"),
        ("scan:hash:10", "listpack", "hash"),
        ("scan:list:11", "quicklist", "list"),
    ] {
        let node = owner(key);
        assert_eq!(
            c.call(&format!("OBJECT ENCODING {key}")),
            Reply::bulk(encoding),
            "{key}"
        );
        let direct: String = node.query(&["OBJECT", "ENCODING", key]);
        assert_eq!(direct, encoding);
        assert_eq!(c.call(&format!("TYPE {key}")), Reply::Simple(kind.into()));
        let usage = c.call(&format!("MEMORY USAGE {key}")).int();
        let direct: i64 = node.query(&["MEMORY", "USAGE", key]);
        assert_eq!(usage, direct, "MEMORY USAGE {key}: slotgate vs its primary");
        assert!(matches!(
            c.call(&format!("OBJECT IDLETIME {key}")),
            Reply::Int(_)
        ));
    }
    c.call("SET intro:text some-longer-text-value");
    assert_eq!(c.call("OBJECT ENCODING intro:text"), Reply::bulk("embstr"));
    assert_eq!(c.call("OBJECT ENCODING no:such:key"), Reply::Nil);
    assert_eq!(c.call("TYPE no:such:key"), Reply::Simple("none".into()));
    assert_eq!(c.call("MEMORY USAGE no:such:key"), Reply::Nil);
    // DUMP on one primary, RESTORE on another.
    let source = "scan:hash:20";
    let dump = match c.call(&format!("DUMP {source}")) {
        Reply::Bulk(dump) => dump,
        other => panic!("DUMP {source}: {other:?}"),
    };
    let target = (0..)
        .map(|i| format!("restored:{i}"))
        .find(|k| owner(k).port != owner(source).port)
        .expect("a key on another primary");
    let restore = |c: &mut Client, extra: &[&str]| {
        let mut args: Vec<&[u8]> = vec![b"RESTORE", target.as_bytes(), b"0", &dump];
        args.extend(extra.iter().map(|a| a.as_bytes()));
        c.call_args(&args)
    };
    assert_eq!(restore(&mut c, &[]), Reply::Simple("OK".into()));
    assert_eq!(
        restore(&mut c, &[]),
        Reply::Error("BUSYKEY Target key name already exists.".into())
    );
    assert_eq!(restore(&mut c, &["REPLACE"]), Reply::Simple("OK".into()));
    assert_eq!(
        c.call(&format!("HGETALL {target}")),
        Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")])
    );
    let direct: i64 = owner(&target).query(&["EXISTS", &target]);
    assert_eq!(direct, 1, "RESTORE ran on {target}'s primary");
    assert_eq!(c.call("DUMP no:such:key"), Reply::Nil);

    // ----- A SCAN across a slot migration ----------------------------------------------------
    // docs/commands.md#scan: the cursor names a shard by its first slot, shards are visited in
    // ascending order of first slot, and after resharding only keys *in moved slots* may be
    // missed or repeated. None of its documented errors (a non-decimal cursor, a node cursor
    // over 50 bits) can arise here, so any error fails the test.
    let first_slot = |port: u16| {
        (0..16384u16)
            .find(|&s| owners[usize::from(s)] == port)
            .expect("every primary serves a slot")
    };
    let mut shards: Vec<u16> = cluster.primaries().iter().map(|p| p.port).collect();
    shards.sort_by_key(|&port| first_slot(port));
    let (first, source, target) = (shards[0], shards[1], shards[2]);
    // Slots with keys strictly inside the source's range (neither its first slot nor its
    // last): the source keeps its first slot, and the target's new first slot (the moved
    // one) is still above it, so the order of the shards does not change.
    let mut inner_slots = all
        .iter()
        .map(|k| key_slot(k.as_bytes()))
        .filter(|&s| {
            s > first_slot(source)
                && owners[usize::from(s)] == source
                && owners[usize::from(s) + 1] == source
        })
        .collect::<BTreeSet<u16>>()
        .into_iter();
    let shard_of = |cursor: &str| cursor.parse::<u64>().expect("a decimal cursor") >> 50;
    let scan_page = |c: &mut Client, cursor: &str, seen: &mut Vec<String>| -> String {
        match c.call(&format!("SCAN {cursor} COUNT 200")) {
            Reply::Error(e) => panic!(
                "SCAN {cursor} across a migration answered {e:?}; no documented error applies"
            ),
            reply => {
                seen.extend(reply.items()[1].strings());
                reply.items()[0].str()
            }
        }
    };
    // A full scan here takes about 30 pages of 200; 1000 means the cursor went round in
    // circles.
    // Moves `slot` and waits until slotgate routes by the new map, so the rest of the scan
    // is resolved against it (a key of the slot read through slotgate gets MOVED, which
    // makes slotgate refresh its map).
    let move_slot = |c: &mut Client, slot: u16| {
        cluster.migrate_slot(
            slot,
            cluster.node_by_port(source),
            cluster.node_by_port(target),
            100,
            Duration::ZERO,
        );
        let key = all
            .iter()
            .find(|k| key_slot(k.as_bytes()) == slot)
            .expect("a key in the moved slot");
        // Generous: a refresh round takes milliseconds; this bounds a loaded machine.
        wait_for_test(
            &format!("slotgate to map slot {slot} to port {target}"),
            Duration::from_secs(20),
            || {
                c.call(&format!("GET {key}"));
                slotgate_maps(c, slot, target)
            },
        );
    };
    let finish_scan = |c: &mut Client, mut cursor: String, seen: &mut Vec<String>| {
        for _ in 0..1000 {
            if cursor == "0" {
                return;
            }
            cursor = scan_page(c, &cursor, seen);
        }
        panic!("a SCAN across a migration did not end within 1000 pages (cursor {cursor})");
    };

    // (a) The slot moves while the scan is still on the first shard: neither the source nor
    // the target has been visited, so every key, those of the moved slot included, comes.
    let moved_slot = inner_slots
        .nth(10)
        .expect("a slot with keys inside the source");
    let mut seen = Vec::new();
    let mut cursor = scan_page(&mut c, "0", &mut seen);
    assert_eq!(
        shard_of(&cursor),
        u64::from(first_slot(first)),
        "after one page of 200 the scan is still on the first shard"
    );
    move_slot(&mut c, moved_slot);
    cursor = scan_page(&mut c, &cursor, &mut seen);
    finish_scan(&mut c, cursor, &mut seen);
    let seen_set: BTreeSet<&String> = seen.iter().collect();
    let missed: Vec<&String> = all
        .iter()
        .filter(|k| !seen_set.contains(k))
        .take(10)
        .collect();
    assert!(
        missed.is_empty(),
        "a SCAN on the first shard while slot {moved_slot} moved from the second to the third \
         shard missed keys (first 10): {missed:?}"
    );

    // (b) The slot moves while the scan is inside the source shard: keys of that slot may be
    // missed or repeated (documented), every other key comes at least once.
    let moved_slot = inner_slots
        .nth(10)
        .expect("another slot with keys inside the source");
    let mut seen = Vec::new();
    let mut cursor = "0".to_owned();
    while shard_of(&cursor) != u64::from(first_slot(source)) {
        cursor = scan_page(&mut c, &cursor, &mut seen);
        assert_ne!(
            cursor, "0",
            "the scan ended before reaching the second shard"
        );
    }
    move_slot(&mut c, moved_slot);
    finish_scan(&mut c, cursor, &mut seen);
    let seen_set: BTreeSet<&String> = seen.iter().collect();
    let missed: Vec<&String> = all
        .iter()
        .filter(|k| key_slot(k.as_bytes()) != moved_slot && !seen_set.contains(k))
        .take(10)
        .collect();
    assert!(
        missed.is_empty(),
        "a SCAN inside the second shard while its slot {moved_slot} moved missed keys of other \
         slots (first 10): {missed:?}"
    );
    c.assert_usable("SCAN across a migration");

    // ----- Refused on purpose ---------------------------------------------------------------
    for (line, name) in [
        ("CLUSTER ADDSLOTS 1", "cluster addslots"),
        ("CLUSTER FAILOVER", "cluster failover"),
        ("CLUSTER FAILOVER FORCE", "cluster failover"),
        ("DEBUG SLEEP 0", "debug"),
        ("DEBUG OBJECT scan:str:2", "debug"),
        ("SHUTDOWN", "shutdown"),
        ("SHUTDOWN NOSAVE", "shutdown"),
        ("MONITOR", "monitor"),
        ("SELECT 1", "select"),
        ("MOVE scan:str:2 1", "move"),
        ("SWAPDB 0 1", "swapdb"),
        ("CLIENT TRACKING on", "client tracking"),
        ("CLIENT TRACKING ON BCAST", "client tracking"),
    ] {
        let reply = c.call(line);
        match &reply {
            Reply::Error(message) => {
                let lower = message.to_lowercase();
                assert!(message.starts_with("ERR "), "{line}: {message}");
                assert!(
                    lower.contains(name) && !lower.contains("unknown command"),
                    "{line} must be refused with an error naming it and saying why: {message}"
                );
                assert!(
                    message.len() > "ERR ".len() + name.len() + 15,
                    "{line}: the refusal gives no reason: {message}"
                );
            }
            other => panic!("{line} must be refused, got {other:?}"),
        }
        c.assert_usable(line);
    }
    assert_eq!(c.call("SELECT 0"), Reply::Simple("OK".into()));
    assert_eq!(c.call("GET scan:str:2"), Reply::bulk("2"));
    assert_eq!(
        cluster.live_nodes().count(),
        3,
        "a refused command reached a node"
    );
    for node in cluster.primaries() {
        assert_eq!(node.query::<String>(&["PING"]), "PONG");
        let slots: String = node.query(&["CLUSTER", "INFO"]);
        assert_eq!(info_field(&slots, "cluster_state").as_deref(), Some("ok"));
    }
    assert_eq!(cluster.primaries().len(), 3);

    // ----- FLUSHDB / FLUSHALL empty every primary --------------------------------------------
    assert_eq!(c.call("FLUSHDB"), Reply::Simple("OK".into()));
    for node in cluster.primaries() {
        assert_eq!(
            node.query::<u64>(&["DBSIZE"]),
            0,
            "FLUSHDB on port {}",
            node.port
        );
    }
    assert_eq!(c.call("DBSIZE"), Reply::Int(0));
    assert_eq!(c.call("RANDOMKEY"), Reply::Nil);
    assert_eq!(c.call("SCAN 0").items()[1], Reply::Array(vec![]));
    c.call("MSET a 1 b 2 c 3 d 4 e 5 f 6");
    assert_eq!(c.call("DBSIZE"), Reply::Int(6));
    assert_eq!(c.call("FLUSHALL ASYNC"), Reply::Simple("OK".into()));
    for node in cluster.primaries() {
        assert_eq!(
            node.query::<u64>(&["DBSIZE"]),
            0,
            "FLUSHALL on port {}",
            node.port
        );
    }
    c.call("MSET a 1 b 2 c 3");
    assert_eq!(c.call("FLUSHALL SYNC"), Reply::Simple("OK".into()));
    assert_eq!(c.call("DBSIZE"), Reply::Int(0));

    problems.assert_none("cluster-wide commands through slotgate");
}
