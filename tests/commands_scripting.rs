//! Scripting and functions through slotgate (issue 4, item 3), against a real cluster of
//! 3 primaries with a replica each.
//!
//! - EVAL/EVALSHA/EVAL_RO/EVALSHA_RO/FCALL/FCALL_RO run on the primary owning their keys
//!   (checked on the nodes); keys in two slots answer CROSSSLOT; no keys runs on a primary.
//! - SCRIPT LOAD answers the script's SHA1, once, and loads it on every primary (SCRIPT
//!   EXISTS 1 through slotgate and on each node); SCRIPT FLUSH empties every primary.
//! - FUNCTION LOAD/LIST/DUMP/RESTORE/DELETE/FLUSH apply to every primary and answer once.
//! - EVALSHA and FCALL still work after the key's primary fails over to its replica; redis-py
//!   `register_script` works through slotgate.

mod common;

use std::time::Duration;

use common::commands::{Client, Problems, Reply, keys_by_primary, python};
use common::{RedisCluster, Slotgate};

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
const SET_SCRIPT: &str = "return redis.call('SET', KEYS[1], ARGV[1])";
const GET_SCRIPT: &str = "return redis.call('GET', KEYS[1])";
const LIBRARY: &str = "#!lua name=testlib\n\
    redis.register_function('tset', function(keys, args) return redis.call('SET', keys[1], args[1]) end)\n\
    redis.register_function{function_name='tget', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}\n";

fn sha1_hex(text: &str) -> String {
    python(
        &format!("import hashlib; print(hashlib.sha1({text:?}.encode()).hexdigest())"),
        Duration::from_secs(10),
    )
    .trim()
    .to_owned()
}

#[test]
fn scripts_and_functions_route_by_key_and_apply_to_every_primary() {
    let cluster = RedisCluster::start(3, 1);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let mut c = Client::connect(sg.addr);
    let by_primary = keys_by_primary(&cluster, "sc", 2);
    let mut problems = Problems::default();

    // ----- EVAL by key, EVAL without keys, CROSSSLOT -----------------------------------
    for (port, keys) in &by_primary {
        let key = &keys[0];
        let reply = c.call_args(&["EVAL", SET_SCRIPT, "1", key, "by-eval"]);
        assert_eq!(reply, Reply::Simple("OK".into()), "EVAL on {key}");
        let direct: String = cluster.node_by_port(*port).query(&["GET", key]);
        assert_eq!(
            direct, "by-eval",
            "EVAL must run on {key}'s primary, port {port}"
        );
        let reply = c.call_args(&["EVAL_RO", GET_SCRIPT, "1", key]);
        assert_eq!(reply, Reply::bulk("by-eval"), "EVAL_RO on {key}");
        let reply = c.call_args(&["EVAL_RO", SET_SCRIPT, "1", key, "no"]);
        assert!(
            reply.is_error(),
            "a write from EVAL_RO must fail: {reply:?}"
        );
    }
    assert_eq!(c.call_args(&["EVAL", "return 1 + 1", "0"]), Reply::Int(2));
    assert_eq!(
        c.call_args(&["EVAL", "return {ARGV[1], ARGV[2]}", "0", "x", "y"]),
        Reply::Array(vec![Reply::bulk("x"), Reply::bulk("y")])
    );
    let (k0, k1) = (&by_primary[0].1[0], &by_primary[1].1[0]);
    assert_eq!(
        c.call_args(&["EVAL", "return 1", "2", k0, k1]),
        Reply::Error(CROSSSLOT.into())
    );
    assert_eq!(
        c.call_args(&[
            "EVAL",
            "return redis.call('MSET', KEYS[1], 1, KEYS[2], 2)",
            "2",
            "{sc}a",
            "{sc}b"
        ]),
        Reply::Simple("OK".into())
    );

    // Malformed numkeys: Redis's own errors.
    for (args, want) in [
        (
            vec!["EVAL", "return 1", "-1"],
            "ERR Number of keys can't be negative",
        ),
        (
            vec!["EVAL", "return 1", "abc"],
            "ERR value is not an integer or out of range",
        ),
        (
            vec!["EVAL", "return 1", "3", "a"],
            "ERR Number of keys can't be greater than number of args",
        ),
    ] {
        assert_eq!(c.call_args(&args), Reply::Error(want.into()), "{args:?}");
    }

    // ----- SCRIPT LOAD / EXISTS / EVALSHA / FLUSH ---------------------------------------
    let sha = sha1_hex(SET_SCRIPT);
    let loaded = c.call_args(&["SCRIPT", "LOAD", SET_SCRIPT]);
    assert_eq!(
        loaded,
        Reply::bulk(&sha),
        "SCRIPT LOAD answers the SHA1 of the script"
    );
    assert_eq!(c.call_args(&["SCRIPT", "LOAD", SET_SCRIPT]), loaded);
    let unknown = "0123456789012345678901234567890123456789";
    assert_eq!(
        c.call_args(&["SCRIPT", "EXISTS", &sha, unknown]),
        Reply::Array(vec![Reply::Int(1), Reply::Int(0)])
    );
    for node in cluster.primaries() {
        let exists: Vec<i64> = node.query(&["SCRIPT", "EXISTS", &sha]);
        assert_eq!(exists, vec![1], "SCRIPT LOAD must reach port {}", node.port);
    }
    for (port, keys) in &by_primary {
        let key = &keys[1];
        let reply = c.call_args(&["EVALSHA", &sha, "1", key, "by-evalsha"]);
        assert_eq!(reply, Reply::Simple("OK".into()), "EVALSHA on {key}");
        let direct: String = cluster.node_by_port(*port).query(&["GET", key]);
        assert_eq!(direct, "by-evalsha", "EVALSHA must run on port {port}");
    }
    let get_sha = c.call_args(&["SCRIPT", "LOAD", GET_SCRIPT]).str();
    assert_eq!(
        c.call_args(&["EVALSHA_RO", &get_sha, "1", &by_primary[2].1[1]]),
        Reply::bulk("by-evalsha")
    );
    assert_eq!(
        c.call_args(&["EVALSHA", &sha, "2", k0, k1, "v"]),
        Reply::Error(CROSSSLOT.into())
    );
    assert_eq!(c.call("SCRIPT FLUSH"), Reply::Simple("OK".into()));
    assert_eq!(
        c.call_args(&["SCRIPT", "EXISTS", &sha, &get_sha]),
        Reply::Array(vec![Reply::Int(0), Reply::Int(0)])
    );
    for node in cluster.primaries() {
        let exists: Vec<i64> = node.query(&["SCRIPT", "EXISTS", &sha]);
        assert_eq!(
            exists,
            vec![0],
            "SCRIPT FLUSH must reach port {}",
            node.port
        );
    }
    let after_flush = c.call_args(&["EVALSHA", &sha, "1", k0, "after-flush"]);
    problems.check(
        matches!(&after_flush, Reply::Error(e) if e.starts_with("NOSCRIPT")),
        || {
            format!(
                "after SCRIPT FLUSH through slotgate, EVALSHA must answer NOSCRIPT as Redis \
                 does (the client asked for an empty cache), got {after_flush:?}"
            )
        },
    );

    // ----- FUNCTION LOAD / LIST / FCALL / DUMP / RESTORE / DELETE / FLUSH ----------------
    assert_eq!(
        c.call_args(&["FUNCTION", "LOAD", LIBRARY]),
        Reply::bulk("testlib")
    );
    let again = c.call_args(&["FUNCTION", "LOAD", LIBRARY]);
    assert!(
        matches!(&again, Reply::Error(e) if e.contains("already exists")),
        "loading a library twice: {again:?}"
    );
    assert_eq!(
        c.call_args(&["FUNCTION", "LOAD", "REPLACE", LIBRARY]),
        Reply::bulk("testlib")
    );
    let list = c.call("FUNCTION LIST");
    assert_eq!(list.items().len(), 1, "one library: {list:?}");
    let listed = format!("{list:?}");
    assert!(
        listed.contains("testlib") && listed.contains("tset") && listed.contains("tget"),
        "{listed}"
    );
    for node in cluster.primaries() {
        let names: Vec<redis::Value> = node.query(&["FUNCTION", "LIST"]);
        assert_eq!(
            names.len(),
            1,
            "FUNCTION LOAD must reach port {}",
            node.port
        );
    }
    for (port, keys) in &by_primary {
        let key = &keys[0];
        let reply = c.call_args(&["FCALL", "tset", "1", key, "by-fcall"]);
        assert_eq!(reply, Reply::Simple("OK".into()), "FCALL on {key}");
        let direct: String = cluster.node_by_port(*port).query(&["GET", key]);
        assert_eq!(direct, "by-fcall", "FCALL must run on port {port}");
        assert_eq!(
            c.call_args(&["FCALL_RO", "tget", "1", key]),
            Reply::bulk("by-fcall")
        );
    }
    assert_eq!(
        c.call_args(&["FCALL", "tset", "2", k0, k1, "v"]),
        Reply::Error(CROSSSLOT.into())
    );
    let dump = match c.call("FUNCTION DUMP") {
        Reply::Bulk(dump) => dump,
        other => panic!("FUNCTION DUMP answered {other:?}"),
    };
    assert_eq!(c.call("FUNCTION FLUSH"), Reply::Simple("OK".into()));
    assert_eq!(c.call("FUNCTION LIST"), Reply::Array(vec![]));
    for node in cluster.primaries() {
        let names: Vec<redis::Value> = node.query(&["FUNCTION", "LIST"]);
        assert!(
            names.is_empty(),
            "FUNCTION FLUSH must reach port {}",
            node.port
        );
    }
    let restored = c.call_args(&[b"FUNCTION".as_slice(), b"RESTORE", &dump]);
    assert_eq!(restored, Reply::Simple("OK".into()));
    for node in cluster.primaries() {
        let names: Vec<redis::Value> = node.query(&["FUNCTION", "LIST"]);
        assert_eq!(
            names.len(),
            1,
            "FUNCTION RESTORE must reach port {}",
            node.port
        );
    }
    assert_eq!(
        c.call("FUNCTION DELETE testlib"),
        Reply::Simple("OK".into())
    );
    for node in cluster.primaries() {
        let names: Vec<redis::Value> = node.query(&["FUNCTION", "LIST"]);
        assert!(
            names.is_empty(),
            "FUNCTION DELETE must reach port {}",
            node.port
        );
    }
    assert!(c.call("FUNCTION DELETE testlib").is_error());
    assert_eq!(
        c.call_args(&["FUNCTION", "LOAD", LIBRARY]),
        Reply::bulk("testlib")
    );
    c.assert_usable("scripting");

    // ----- redis-py's Script object: EVALSHA, loading on NOSCRIPT ----------------------
    let out = python(
        &format!(
            r#"
import redis
r = redis.Redis(host="127.0.0.1", port={port})
incr = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
print(incr(keys=["py:a"], args=[5]), incr(keys=["py:b"], args=[7]), incr(keys=["py:a"], args=[1]))
"#,
            port = sg.port
        ),
        Duration::from_secs(20),
    );
    assert_eq!(out, "5 7 6\n", "redis-py register_script through slotgate");

    // ----- EVALSHA and FCALL after a failover ---------------------------------------------
    let (port, keys) = &by_primary[0];
    let key = &keys[1];
    let sha = c.call_args(&["SCRIPT", "LOAD", SET_SCRIPT]).str();
    let primary = cluster.node_by_port(*port);
    let replica = cluster.replicas_of(primary)[0];
    // Redis 7 does not replicate SCRIPT LOAD: the replica's cache says whether the promoted
    // node will know the script (shown in the failure message below).
    let replica_has_script: Vec<i64> = replica.query(&["SCRIPT", "EXISTS", &sha]);
    let replica_port = replica.port;
    eprintln!("before the failover, SCRIPT EXISTS on the replica: {replica_has_script:?}");
    cluster.failover(replica);
    let mut answers = Vec::new();
    let mut ok = false;
    for _ in 0..100 {
        let reply = c.call_args(&["EVALSHA", &sha, "1", key, "after-failover"]);
        ok = reply == Reply::Simple("OK".into());
        answers.push(format!("{reply:?}"));
        if ok || matches!(&reply, Reply::Error(e) if e.starts_with("NOSCRIPT")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    problems.check(ok, || {
        format!(
            "EVALSHA of a script loaded through slotgate must work after its key's primary \
         (port {port}) failed over to port {replica_port} (whose SCRIPT EXISTS before the \
         failover was {replica_has_script:?}); answers: {answers:?}"
        )
    });
    if ok {
        let direct: String = cluster.node_by_port(replica_port).query(&["GET", key]);
        assert_eq!(direct, "after-failover");
    }
    let reply = c.call_args(&["FCALL", "tset", "1", key, "fcall-after-failover"]);
    assert_eq!(
        reply,
        Reply::Simple("OK".into()),
        "FCALL after failover (functions replicate)"
    );
    problems.assert_none("scripting and functions through slotgate");
}
