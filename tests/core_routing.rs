//! Core routing through slotgate, end to end against a real 3-primary Redis Cluster.
//!
//! - Thousands of keys written with `redis-cli` (commands piped on stdin, as an operator
//!   would) land on every primary, exactly once, and read back through slotgate.
//! - Commands of every data type, and multi-key commands whose keys share a slot, behave
//!   byte for byte as on a standalone redis-server (the oracle), and their keys live on the
//!   primary that owns their slot.
//! - Cross-slot atomic commands answer Redis Cluster's exact `CROSSSLOT`; keyless commands
//!   work; unsupported commands get an `-ERR` naming them; unknown commands and wrong arity
//!   get Redis's exact wording. After every error the connection stays usable.

mod common;

use std::collections::BTreeMap;

use common::extra::{bulk_payload, redis_cli_stdin, slot_owners, tag_for_slot, text};
use common::{RedisCluster, RedisNode, RespConn, Slotgate, key_slot};

const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

fn args(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|a| a.as_bytes().to_vec()).collect()
}

fn send(conn: &mut RespConn, args: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    conn.cmd(&refs)
}

fn assert_pong(conn: &mut RespConn, after: &str) {
    let reply = conn.cmd_str(&["PING"]);
    assert_eq!(
        text(&reply),
        "+PONG\r\n",
        "the connection is not usable after {after}"
    );
}

/// A refusal must be an `-ERR` line; one that does not name the command (or, for
/// `CLUSTER x`, the subcommand) is collected in `unnamed` for a report at the end.
fn check_refusal(line: &str, reply: &str, unnamed: &mut Vec<String>) {
    assert!(reply.starts_with("-ERR "), "{line} answered {reply:?}");
    let words: Vec<String> = line.split(' ').map(str::to_lowercase).collect();
    let name = if words[0] == "cluster" {
        words[..2].join(" ")
    } else {
        words[0].clone()
    };
    if !reply.to_lowercase().contains(&name) {
        unnamed.push(format!("{line} -> {}", reply.trim_end()));
    }
}

#[test]
fn thousands_of_keys_from_redis_cli_land_on_every_primary_and_read_back() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let owners = slot_owners(&cluster);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);

    // 3000 plain keys spread over the slots, plus 3 groups of 100 hash-tagged keys, one
    // group on each primary, for MGET.
    const PLAIN: usize = 3000;
    const GROUP: usize = 100;
    let tags: Vec<String> = primaries
        .iter()
        .map(|p| {
            let slot = (0..16384u16)
                .find(|&s| owners[usize::from(s)] == p.port)
                .unwrap();
            tag_for_slot(slot)
        })
        .collect();
    let mut script = String::new();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..PLAIN {
        let (k, v) = (format!("key:{i}"), format!("value-{i}"));
        script.push_str(&format!("SET {k} {v}\n"));
        expected.insert(k, v);
    }
    for tag in &tags {
        for i in 0..GROUP {
            let (k, v) = (format!("{{{tag}}}:{i}"), format!("tagged-{tag}-{i}"));
            script.push_str(&format!("SET {k} {v}\n"));
            expected.insert(k, v);
        }
    }
    let total = PLAIN + tags.len() * GROUP;

    let out = redis_cli_stdin(sg.port, &[], script.as_bytes());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-cli exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let not_ok: Vec<&str> = stdout.lines().filter(|l| *l != "OK").take(5).collect();
    assert!(
        not_ok.is_empty(),
        "redis-cli got replies other than OK: {not_ok:?}"
    );
    assert_eq!(stdout.lines().count(), total, "one OK per SET");

    // Every primary holds some keys, and together exactly the keys written (no replicas).
    let sizes: Vec<(u16, u64)> = primaries
        .iter()
        .map(|p| (p.port, p.query::<u64>(&["DBSIZE"])))
        .collect();
    for &(port, size) in &sizes {
        assert!(size > 0, "primary {port} got no keys: {sizes:?}");
    }
    let sum: u64 = sizes.iter().map(|&(_, n)| n).sum();
    assert_eq!(sum, total as u64, "DBSIZE per primary {sizes:?}");
    // And each key sits on the primary that owns its slot.
    for (i, (key, value)) in expected.iter().enumerate().step_by(97) {
        let owner = cluster.node_by_port(owners[usize::from(key_slot(key.as_bytes()))]);
        let direct: Option<String> = owner.query(&["GET", key]);
        assert_eq!(
            direct.as_deref(),
            Some(value.as_str()),
            "key #{i} {key} on its owner {}",
            owner.port
        );
    }

    // Read back through slotgate: pipelined GETs of the plain keys ...
    let mut conn = RespConn::connect(sg.addr);
    let mut pipeline = Vec::new();
    for i in 0..PLAIN {
        pipeline.extend(common::extra::encode(&[
            b"GET",
            format!("key:{i}").as_bytes(),
        ]));
    }
    conn.send_raw(&pipeline);
    for i in 0..PLAIN {
        let reply = conn.read_reply();
        assert_eq!(
            bulk_payload(&reply),
            format!("value-{i}").into_bytes(),
            "GET key:{i} through slotgate"
        );
    }
    // ... and one MGET per hash-tagged group.
    for tag in &tags {
        let keys: Vec<String> = (0..GROUP).map(|i| format!("{{{tag}}}:{i}")).collect();
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(keys.iter().map(|k| k.as_bytes()));
        let reply = conn.cmd(&mget);
        let mut want = format!("*{GROUP}\r\n");
        for key in &keys {
            let v = &expected[key];
            want.push_str(&format!("${}\r\n{v}\r\n", v.len()));
        }
        assert_eq!(text(&reply), want, "MGET of the {{{tag}}} group");
    }
}

/// Runs `commands` on slotgate and on a standalone redis-server, one connection each, and
/// asserts byte-identical replies. Returns slotgate's replies.
fn same_as_standalone(
    sg: &mut RespConn,
    oracle: &mut RespConn,
    commands: &[Vec<Vec<u8>>],
) -> Vec<Vec<u8>> {
    commands
        .iter()
        .map(|cmd| {
            let ours = send(sg, cmd);
            let theirs = send(oracle, cmd);
            let shown: Vec<String> = cmd.iter().map(|a| text(a)).collect();
            assert_eq!(
                text(&ours),
                text(&theirs),
                "{shown:?}: slotgate (left) and a standalone redis-server (right) differ"
            );
            ours
        })
        .collect()
}

#[test]
fn commands_of_every_kind_route_to_their_slot_and_errors_keep_the_connection() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let standalone = RedisNode::standalone();
    let owners = slot_owners(&cluster);
    let mut conn = RespConn::connect(sg.addr);
    let mut oracle = RespConn::connect(standalone.addr);

    // --- Single-key commands of every type. Keys are spread so all shards are used.
    let single = [
        "SET str hello",
        "APPEND str -world",
        "GET str",
        "STRLEN str",
        "GETRANGE str 0 4",
        "SETRANGE str 0 J",
        "GET str",
        "SET num 41",
        "INCR num",
        "INCRBY num 10",
        "DECR num",
        "INCRBYFLOAT fl 1.5",
        "OBJECT ENCODING num",
        "OBJECT ENCODING str",
        "TYPE str",
        "SETNX str other",
        "GETDEL gone",
        "HSET hash f1 v1 f2 v2",
        "HGET hash f1",
        "HGETALL hash",
        "HINCRBY hash counter 5",
        "HLEN hash",
        "HEXISTS hash f2",
        "HDEL hash f2",
        "OBJECT ENCODING hash",
        "TYPE hash",
        "RPUSH list a b c d",
        "LPUSH list z",
        "LRANGE list 0 -1",
        "LPOP list",
        "RPOP list",
        "LLEN list",
        "LINDEX list 1",
        "TYPE list",
        "SADD set a b c",
        "SISMEMBER set b",
        "SISMEMBER set q",
        "SCARD set",
        "SREM set c",
        "TYPE set",
        "ZADD zset 1 one 2 two 3 three",
        "ZRANGE zset 0 -1 WITHSCORES",
        "ZSCORE zset two",
        "ZINCRBY zset 10 one",
        "ZRANK zset one",
        "ZREVRANGE zset 0 0",
        "ZCARD zset",
        "TYPE zset",
        "XADD stream 1-1 field value",
        "XADD stream 2-1 field value2 other x",
        "XRANGE stream - +",
        "XREVRANGE stream + - COUNT 1",
        "XLEN stream",
        "XREAD COUNT 5 STREAMS stream 0",
        "TYPE stream",
        "PFADD hll a b c d a",
        "PFCOUNT hll",
        "GEOADD geo 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEODIST geo Palermo Catania km",
        "GEOHASH geo Palermo",
        "GEOSEARCH geo FROMLONLAT 15 37 BYRADIUS 200 km ASC",
        "SETBIT bits 7 1",
        "SETBIT bits 100 1",
        "GETBIT bits 7",
        "GETBIT bits 8",
        "BITCOUNT bits",
        "BITPOS bits 1",
        "EXPIRE str 100",
        "TTL str",
        "PERSIST str",
        "TTL str",
        "PEXPIRE num 100000",
        "EXISTS str",
        "EXISTS nope",
        "TYPE nope",
        "GET nope",
    ];
    let commands: Vec<Vec<Vec<u8>>> = single.iter().map(|l| args(l)).collect();
    let replies = same_as_standalone(&mut conn, &mut oracle, &commands);
    // Spot checks, so that the oracle comparison cannot pass on two broken answers.
    let reply_of = |line: &str| {
        let i = single.iter().position(|l| *l == line).unwrap();
        text(&replies[i])
    };
    assert_eq!(reply_of("GETRANGE str 0 4"), "$5\r\nhello\r\n");
    assert_eq!(reply_of("INCRBY num 10"), ":52\r\n");
    assert_eq!(reply_of("OBJECT ENCODING num"), "$3\r\nint\r\n");
    assert_eq!(
        reply_of("LRANGE list 0 -1"),
        "*5\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n"
    );
    assert_eq!(
        reply_of("XRANGE stream - +"),
        "*2\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$5\r\nfield\r\n$5\r\nvalue\r\n\
         *2\r\n$3\r\n2-1\r\n*4\r\n$5\r\nfield\r\n$6\r\nvalue2\r\n$5\r\nother\r\n$1\r\nx\r\n"
    );
    assert_eq!(reply_of("PFCOUNT hll"), ":4\r\n");
    assert_eq!(
        reply_of("GEODIST geo Palermo Catania km"),
        "$8\r\n166.2742\r\n"
    );
    assert_eq!(reply_of("BITPOS bits 1"), ":7\r\n");
    assert_eq!(reply_of("GET nope"), "$-1\r\n");

    // TTL and MEMORY USAGE depend on timing and allocation: checked by value range.
    let ttl = text(&conn.cmd_str(&["EXPIRE", "hash", "1000"]));
    assert_eq!(ttl, ":1\r\n");
    let ttl = text(&conn.cmd_str(&["TTL", "hash"]));
    let ttl: i64 = ttl.trim_start_matches(':').trim().parse().unwrap();
    assert!((990..=1000).contains(&ttl), "TTL hash = {ttl}");
    let mem = text(&conn.cmd_str(&["MEMORY", "USAGE", "list"]));
    let mem: i64 = mem
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("MEMORY USAGE list answered {mem:?}"));
    assert!(mem > 0, "MEMORY USAGE list = {mem}");

    // DUMP / RESTORE round trip, through slotgate, into a key on (probably) another shard.
    let dump = conn.cmd_str(&["DUMP", "zset"]);
    let payload = bulk_payload(&dump);
    let restored = conn.cmd(&[b"RESTORE", b"zset-copy", b"0", &payload]);
    assert_eq!(text(&restored), "+OK\r\n");
    let a = conn.cmd_str(&["ZRANGE", "zset", "0", "-1", "WITHSCORES"]);
    let b = conn.cmd_str(&["ZRANGE", "zset-copy", "0", "-1", "WITHSCORES"]);
    assert_eq!(text(&a), text(&b), "RESTORE of a DUMP gives the same zset");
    let busy = conn.cmd(&[b"RESTORE", b"zset-copy", b"0", &payload]);
    assert!(
        text(&busy).starts_with("-BUSYKEY"),
        "RESTORE onto an existing key: {}",
        text(&busy)
    );

    // Every key written above lives on the primary that owns its slot, and nowhere else.
    let keys = [
        "str",
        "num",
        "fl",
        "hash",
        "list",
        "set",
        "zset",
        "stream",
        "hll",
        "geo",
        "bits",
        "zset-copy",
    ];
    let slots: Vec<u16> = keys.iter().map(|k| key_slot(k.as_bytes())).collect();
    let used: std::collections::HashSet<u16> =
        slots.iter().map(|&s| owners[usize::from(s)]).collect();
    assert_eq!(
        used.len(),
        3,
        "the sample keys should cover all 3 primaries"
    );
    for (key, slot) in keys.iter().zip(&slots) {
        let owner = cluster.node_by_port(owners[usize::from(*slot)]);
        let exists: i64 = owner.query(&["EXISTS", key]);
        assert_eq!(
            exists, 1,
            "key {key} (slot {slot}) on its owner {}",
            owner.port
        );
        for primary in cluster.primaries() {
            let n: i64 = primary.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
            assert_eq!(
                n > 0,
                primary.port == owner.port,
                "slot {slot} of key {key} has {n} keys on primary {} (owner {})",
                primary.port,
                owner.port
            );
        }
    }

    // --- Multi-key commands whose keys share a slot (hash tags), and scripts.
    let multi = [
        "MSET {t}a 1 {t}b 2",
        "MGET {t}a {t}b {t}missing",
        "MSETNX {t}a 9 {t}new 3",
        "RENAME {t}a {t}renamed",
        "EXISTS {t}a {t}renamed {t}b",
        "SADD {t}s1 x y",
        "SADD {t}s2 y z",
        "SMOVE {t}s1 {t}s2 x",
        "SUNIONSTORE {t}union {t}s1 {t}s2",
        "SINTERCARD 2 {t}s1 {t}s2",
        "SMEMBERS {t}s1",
        "RPUSH {t}l1 a b c",
        "LMOVE {t}l1 {t}l2 LEFT RIGHT",
        "LRANGE {t}l2 0 -1",
        "ZADD {t}z1 1 a 2 b",
        "ZADD {t}z2 10 b 20 c",
        "ZUNIONSTORE {t}zu 2 {t}z1 {t}z2",
        "ZRANGE {t}zu 0 -1 WITHSCORES",
        "PFADD {t}h1 a b",
        "PFADD {t}h2 b c",
        "PFMERGE {t}hm {t}h1 {t}h2",
        "PFCOUNT {t}hm",
        "BITOP OR {t}bo {t}bits1 {t}bits2",
        "COPY {t}b {t}bcopy",
        "GET {t}bcopy",
        "DEL {t}b {t}bcopy {t}missing",
    ];
    let commands: Vec<Vec<Vec<u8>>> = multi.iter().map(|l| args(l)).collect();
    let replies = same_as_standalone(&mut conn, &mut oracle, &commands);
    assert_eq!(
        text(&replies[1]),
        "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n",
        "MGET {{t}}a {{t}}b {{t}}missing"
    );
    assert_eq!(text(&replies[8]), ":3\r\n", "SUNIONSTORE");
    let tag_owner = cluster.node_by_port(owners[usize::from(key_slot(b"{t}"))]);
    let direct: Vec<String> = tag_owner.query(&["LRANGE", "{t}l2", "0", "-1"]);
    assert_eq!(direct, ["a"], "LMOVE's target on the owner of slot {{t}}");

    // EVAL with keys, and EVALSHA of a script loaded on the nodes (slotgate refuses SCRIPT
    // LOAD, which spans all nodes, so the test loads it on each primary directly).
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('MGET', KEYS[1], KEYS[2])";
    let eval = |conn: &mut RespConn, k1: &str, k2: &str, v: &str| {
        text(&conn.cmd_str(&["EVAL", script, "2", k1, k2, v]))
    };
    assert_eq!(
        eval(&mut conn, "{e}1", "{e}2", "x"),
        "*2\r\n$1\r\nx\r\n$-1\r\n"
    );
    let evalsha_script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let mut sha = String::new();
    for primary in cluster.primaries() {
        sha = primary.query(&["SCRIPT", "LOAD", evalsha_script]);
    }
    assert_eq!(sha.len(), 40, "SCRIPT LOAD answered {sha:?}");
    // Keys on every shard: EVALSHA routes by its key like any other command.
    for key in ["a", "b", "c", "d", "e", "f"] {
        let reply = text(&conn.cmd_str(&["EVALSHA", &sha, "1", key, "7"]));
        assert_eq!(reply, ":7\r\n", "EVALSHA INCRBY {key}");
    }
    let noscript = text(&conn.cmd_str(&["EVALSHA", &"0".repeat(40), "1", "k"]));
    assert!(
        noscript.starts_with("-NOSCRIPT"),
        "EVALSHA of an unknown sha: {noscript}"
    );

    // --- Cross-slot atomic commands: Redis Cluster's exact error; the connection lives on.
    assert_ne!(key_slot(b"foo"), key_slot(b"bar"));
    let crossslot = [
        "MSETNX foo 1 bar 2",
        "RENAME foo bar",
        "SMOVE foo bar x",
        "SUNIONSTORE foo bar",
        "SINTERSTORE dst foo bar",
        "LMOVE foo bar LEFT RIGHT",
        "ZUNIONSTORE dst 2 foo bar",
        "PFMERGE foo bar",
        "COPY foo bar",
        "BITOP AND dst foo bar",
    ];
    for line in crossslot {
        let reply = send(&mut conn, &args(line));
        assert_eq!(text(&reply), text(CROSSSLOT), "{line}");
        assert_pong(&mut conn, line);
    }
    let reply = conn.cmd_str(&["EVAL", script, "2", "foo", "bar", "v"]);
    assert_eq!(text(&reply), text(CROSSSLOT), "EVAL with keys in 2 slots");
    assert_pong(&mut conn, "a cross-slot EVAL");
    // Nothing of the refused commands ran.
    for key in ["foo", "bar", "dst"] {
        let slot = key_slot(key.as_bytes()).to_string();
        for primary in cluster.primaries() {
            let n: i64 = primary.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot]);
            assert_eq!(
                n, 0,
                "a refused cross-slot command wrote {key} on {}",
                primary.port
            );
        }
    }

    // --- Keyless commands.
    let time = conn.cmd_str(&["TIME"]);
    let time = text(&time);
    assert!(time.starts_with("*2\r\n$"), "TIME: {time}");
    let secs: u64 = time.split("\r\n").nth(2).unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) < 60, "TIME says {secs}, the clock {now}");
    let count = text(&conn.cmd_str(&["COMMAND", "COUNT"]));
    let count: u64 = count.trim_start_matches(':').trim().parse().unwrap();
    assert!(count > 200, "COMMAND COUNT = {count}");
    let info = text(&conn.cmd_str(&["COMMAND", "INFO", "get"]));
    assert!(
        info.starts_with("*1\r\n*") && info.contains("$3\r\nget\r\n"),
        "COMMAND INFO get: {info}"
    );
    let docs = text(&conn.cmd_str(&["COMMAND", "DOCS", "get"]));
    assert!(
        docs.contains("get") && docs.contains("summary"),
        "COMMAND DOCS get: {docs}"
    );
    assert_eq!(
        text(&conn.cmd_str(&["ECHO", "hi there"])),
        "$8\r\nhi there\r\n"
    );
    assert_eq!(text(&conn.cmd_str(&["PING"])), "+PONG\r\n");
    assert_eq!(text(&conn.cmd_str(&["PING", "msg"])), "$3\r\nmsg\r\n");
    let lolwut = conn.cmd_str(&["LOLWUT"]);
    assert!(
        text(&bulk_payload(&lolwut)).contains("Redis ver."),
        "LOLWUT: {}",
        text(&lolwut)
    );

    // --- Commands slotgate refuses by design (they administer one node, or would show one
    // node only): an -ERR naming the command; the connection stays usable.
    let refused = [
        "SHUTDOWN",
        "SHUTDOWN NOSAVE",
        "MONITOR",
        "CLUSTER FAILOVER",
        "CLUSTER RESET",
        "CLUSTER ADDSLOTS 1",
        "DEBUG SLEEP 0",
        "REPLICAOF NO ONE",
        "FAILOVER",
        "BGSAVE",
        "SWAPDB 0 1",
    ];
    let mut unnamed = Vec::new();
    for line in refused {
        let reply = text(&send(&mut conn, &args(line)));
        check_refusal(line, &reply, &mut unnamed);
        assert_pong(&mut conn, line);
    }
    // None of them reached a node: every primary is up, still a primary, still serving.
    for primary in cluster.primaries() {
        assert_eq!(primary.query::<String>(&["PING"]), "PONG");
    }
    assert_eq!(
        cluster.primaries().len(),
        3,
        "a refused command changed the cluster"
    );

    // --- Commands slotgate serves although they are not plain single-key requests
    // (transactions, pub/sub, blocking commands, fan-out): each is served, with the exact
    // reply Redis gives, never refused.
    assert_eq!(text(&conn.cmd_str(&["MULTI"])), "+OK\r\n", "MULTI");
    assert_eq!(text(&conn.cmd_str(&["SET", "{t}tx", "1"])), "+QUEUED\r\n");
    assert_eq!(text(&conn.cmd_str(&["EXEC"])), "*1\r\n+OK\r\n", "EXEC");
    assert_pong(&mut conn, "MULTI");
    let mut sub = RespConn::connect(sg.addr);
    assert_eq!(
        text(&sub.cmd_str(&["SUBSCRIBE", "channel"])),
        "*3\r\n$9\r\nsubscribe\r\n$7\r\nchannel\r\n:1\r\n",
        "SUBSCRIBE channel"
    );
    drop(sub);
    assert_eq!(
        text(&conn.cmd_str(&["BLPOP", "{t}empty-list", "0.2"])),
        "*-1\r\n",
        "BLPOP on an empty list times out with a null"
    );
    assert_pong(&mut conn, "BLPOP");
    assert_eq!(
        text(&conn.cmd_str(&["KEYS", "{t}renamed*"])),
        "*1\r\n$10\r\n{t}renamed\r\n",
        "KEYS {{t}}renamed*"
    );
    assert_pong(&mut conn, "KEYS");
    assert_eq!(text(&conn.cmd_str(&["GET", "{t}renamed"])), "$1\r\n1\r\n");

    // --- Unknown commands and wrong arity: Redis's exact wording (checked against the node).
    let node = cluster.primaries()[0];
    let mut direct = RespConn::connect(node.addr);
    let cases: [&[&str]; 6] = [
        &["foo", "a"],
        &["FOO", "a", "b c"],
        &["nosuchcommand"],
        &["GET"],
        &["get", "a", "b"],
        &["HSET", "h"],
    ];
    for case in cases {
        let ours = text(&conn.cmd_str(case));
        let redis = text(&direct.cmd_str(case));
        assert_eq!(
            ours, redis,
            "{case:?}: slotgate (left) vs a cluster node (right)"
        );
        assert_pong(&mut conn, &format!("{case:?}"));
    }
    assert_eq!(
        text(&conn.cmd_str(&["foo", "a"])),
        "-ERR unknown command 'foo', with args beginning with: 'a' \r\n"
    );
    assert_eq!(
        text(&conn.cmd_str(&["GET"])),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    // Last, so that every other check above has run when this one fails.
    assert!(
        unnamed.is_empty(),
        "these refusals do not name the refused command:\n{}",
        unnamed.join("\n")
    );
}
