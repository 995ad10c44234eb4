//! Transactions through slotgate (issue 4, item 2), against a real 3-primary cluster.
//!
//! - MULTI/EXEC/DISCARD/WATCH/UNWATCH answer byte for byte as a standalone redis-server
//!   does: `+QUEUED`, EXEC's array, EXECABORT after an unknown command or a wrong arity,
//!   runtime errors as elements of EXEC's reply with the other commands applied, WATCH
//!   conflicts (null), DISCARD, nested MULTI, EXEC/DISCARD without MULTI, RESP3, pipelined
//!   transactions, and redis-py's `pipeline(transaction=True)` and WATCH helpers.
//! - Cluster specifics: keys of another slot inside MULTI answer CROSSSLOT and EXEC answers
//!   EXECABORT with nothing written; transactions of concurrent clients never interleave.
//! - A transaction whose slot is migrated between MULTI and EXEC applies fully on the new
//!   owner; a watched one is refused with nothing applied; one that runs while its slot is
//!   half migrated (some keys moved, some not) is applied whole or not at all.

mod common;

use std::time::Duration;

use common::commands::{
    Client, Reply, Transcript, begin_migration, finish_migration, migrate_keys, python, tag_on,
};
use common::extra::encode;
use common::{RedisCluster, RedisNode, RespConn, Slotgate, key_slot};

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Everything under `{tag}` on `node`, read directly.
fn tagged_keys(node: &RedisNode, tag: &str) -> Vec<String> {
    let mut keys: Vec<String> = node.query(&["KEYS", &format!("{{{tag}}}*")]);
    keys.sort();
    keys
}

#[test]
fn transactions_follow_redis_semantics_and_survive_slot_moves() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let oracle = RedisNode::standalone();

    // ===== Redis semantics, compared with a standalone redis-server =====================
    let mut t = Transcript::new(sg.addr, oracle.addr);
    let mut other = Transcript::new(sg.addr, oracle.addr);
    let exec_ok = |reply: &Reply| !reply.is_error() && reply != &Reply::Nil;

    // QUEUED and EXEC's array.
    assert_eq!(t.run("MULTI"), Reply::Simple("OK".into()));
    assert_eq!(t.run("SET {tx}a 1"), Reply::Simple("QUEUED".into()));
    assert_eq!(t.run("INCR {tx}a"), Reply::Simple("QUEUED".into()));
    t.run("GET {tx}a");
    t.run("PING");
    t.run("ECHO hello");
    let reply = t.run("EXEC");
    assert_eq!(
        reply,
        Reply::Array(vec![
            Reply::Simple("OK".into()),
            Reply::Int(2),
            Reply::bulk("2"),
            Reply::Simple("PONG".into()),
            Reply::bulk("hello"),
        ])
    );
    // An empty transaction.
    t.run("MULTI");
    t.run("EXEC");
    // EXEC / DISCARD without MULTI.
    assert_eq!(t.run("EXEC"), Reply::Error("ERR EXEC without MULTI".into()));
    assert_eq!(
        t.run("DISCARD"),
        Reply::Error("ERR DISCARD without MULTI".into())
    );
    // DISCARD drops the queue.
    t.run("MULTI");
    t.run("SET {tx}b discarded");
    assert_eq!(t.run("DISCARD"), Reply::Simple("OK".into()));
    assert_eq!(t.run("GET {tx}b"), Reply::Nil);
    // Nested MULTI.
    t.run("MULTI");
    t.run("MULTI");
    t.run("SET {tx}c 1");
    t.run("EXEC");
    t.run("GET {tx}c");
    // Unknown command inside MULTI: EXECABORT, nothing runs.
    t.run("MULTI");
    t.run("SET {tx}d 1");
    t.run("NOSUCHCOMMAND {tx}d");
    assert_eq!(t.run("EXEC"), Reply::Error(EXECABORT.into()));
    assert_eq!(t.run("GET {tx}d"), Reply::Nil);
    // Wrong arity inside MULTI: EXECABORT.
    t.run("MULTI");
    t.run("SET {tx}d 1");
    t.run("GET");
    t.run("SET {tx}d");
    assert_eq!(t.run("EXEC"), Reply::Error(EXECABORT.into()));
    assert_eq!(t.run("GET {tx}d"), Reply::Nil);
    // Runtime errors are elements of EXEC's reply; the other commands apply.
    t.run("SET {tx}s text");
    t.run("MULTI");
    t.run("INCR {tx}s");
    t.run("SET {tx}e applied");
    t.run("LPUSH {tx}s x");
    t.run("INCR {tx}n");
    let reply = t.run("EXEC");
    let items = reply.items();
    assert!(items[0].is_error() && items[2].is_error(), "{reply:?}");
    assert_eq!(items[1], Reply::Simple("OK".into()));
    assert_eq!(t.run("GET {tx}e"), Reply::bulk("applied"));
    // A blocking command inside MULTI does not block.
    t.run("MULTI");
    t.run("BLPOP {tx}empty 0");
    t.run("BRPOPLPUSH {tx}empty {tx}other 5");
    t.run("XREAD BLOCK 0 STREAMS {tx}stream $");
    t.run("EXEC");
    // WATCH inside MULTI.
    t.run("MULTI");
    t.run("WATCH {tx}w");
    t.run("EXEC");
    // WATCH conflict: another connection changes the key, EXEC answers null.
    t.run("SET {tx}w start");
    t.run("WATCH {tx}w");
    t.run("GET {tx}w");
    other.run("SET {tx}w theirs");
    t.run("MULTI");
    t.run("SET {tx}w mine");
    assert_eq!(t.run("EXEC"), Reply::Nil, "EXEC after a WATCH conflict");
    assert_eq!(t.run("GET {tx}w"), Reply::bulk("theirs"));
    // No conflict: applied.
    t.run("WATCH {tx}w");
    t.run("MULTI");
    t.run("SET {tx}w mine");
    assert!(exec_ok(&t.run("EXEC")));
    assert_eq!(t.run("GET {tx}w"), Reply::bulk("mine"));
    // The watching client's own write also aborts, as in Redis.
    t.run("WATCH {tx}w");
    t.run("SET {tx}w own");
    t.run("MULTI");
    t.run("SET {tx}w mine-again");
    assert_eq!(t.run("EXEC"), Reply::Nil);
    // UNWATCH forgets the watches.
    t.run("WATCH {tx}w");
    t.run("UNWATCH");
    other.run("SET {tx}w theirs-2");
    t.run("MULTI");
    t.run("SET {tx}w after-unwatch");
    assert!(exec_ok(&t.run("EXEC")));
    // DISCARD forgets them too.
    t.run("WATCH {tx}w {tx}a");
    t.run("MULTI");
    t.run("DISCARD");
    other.run("SET {tx}a changed");
    t.run("MULTI");
    t.run("SET {tx}w after-discard");
    assert!(exec_ok(&t.run("EXEC")));
    // Several watched keys, one of them touched.
    t.run("WATCH {tx}a {tx}w {tx}missing");
    other.run("SET {tx}missing now");
    t.run("MULTI");
    t.run("GET {tx}a");
    assert_eq!(t.run("EXEC"), Reply::Nil);
    // RESP3: null is `_`, errors inside EXEC too.
    t.sg.cmd_str(&["HELLO", "3"]);
    t.oracle.cmd_str(&["HELLO", "3"]);
    t.run("WATCH {tx}w");
    other.run("SET {tx}w theirs-3");
    t.run("MULTI");
    t.run("SET {tx}w mine");
    t.run("EXEC");
    t.run("MULTI");
    t.run("INCR {tx}s");
    t.run("HSET {tx}h f v");
    t.run("HGETALL {tx}h");
    t.run("EXEC");
    t.run("MULTI");
    t.run("NOSUCHCOMMAND");
    t.run("EXEC");
    t.sg.cmd_str(&["HELLO", "2"]);
    t.oracle.cmd_str(&["HELLO", "2"]);
    t.assert_same("transactions");
    other.assert_same("the other connection");

    // A whole transaction pipelined in one write, as client libraries send it.
    let lines = [
        "MULTI",
        "SET {tx}p 10",
        "INCRBY {tx}p 5",
        "NOSUCH",
        "EXEC",
        "MULTI",
        "SET {tx}p 10",
        "INCRBY {tx}p 5",
        "GET {tx}p",
        "EXEC",
        "GET {tx}p",
    ];
    let mut pipeline = Vec::new();
    for line in lines {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        pipeline.extend(encode(&args));
    }
    let mut sg_conn = RespConn::connect(sg.addr);
    let mut oracle_conn = RespConn::connect(oracle.addr);
    sg_conn.send_raw(&pipeline);
    oracle_conn.send_raw(&pipeline);
    for line in lines {
        let (ours, theirs) = (sg_conn.read_reply(), oracle_conn.read_reply());
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "pipelined transaction, reply to {line}: slotgate (left) vs redis (right)"
        );
    }

    // redis-py: pipeline(transaction=True) and the WATCH/MULTI helper.
    let script = format!(
        r#"
import redis
r = redis.Redis(host="127.0.0.1", port={port})
p = r.pipeline(transaction=True)
p.set("{{py}}a", 1).incr("{{py}}a").get("{{py}}a")
print(p.execute())
def bump(pipe):
    value = int(pipe.get("{{py}}a"))
    pipe.multi()
    pipe.set("{{py}}a", value + 10)
print(r.transaction(bump, "{{py}}a"))
with r.pipeline() as pipe:
    pipe.watch("{{py}}a")
    r.set("{{py}}a", 0)
    pipe.multi()
    pipe.set("{{py}}a", 99)
    try:
        pipe.execute()
        print("no conflict")
    except redis.WatchError:
        print("WatchError")
print(r.get("{{py}}a"))
"#,
        port = sg.port
    );
    let out = python(&script, Duration::from_secs(20));
    assert_eq!(
        out, "[True, 2, b'2']\n[True]\nWatchError\nb'0'\n",
        "redis-py transactions through slotgate"
    );

    // ===== Cluster specifics =============================================================
    let primaries: Vec<u16> = cluster.primaries().iter().map(|p| p.port).collect();
    let tags: Vec<String> = primaries
        .iter()
        .enumerate()
        .map(|(i, &port)| tag_on(&cluster, port, &format!("x{i}-")))
        .collect();
    let mut c = Client::connect(sg.addr);

    // A transaction on each primary lands there.
    for (tag, &port) in tags.iter().zip(&primaries) {
        c.call("MULTI");
        c.call(&format!("SET {{{tag}}}k v"));
        c.call(&format!("RPUSH {{{tag}}}l a b"));
        let reply = c.call("EXEC");
        assert_eq!(
            reply,
            Reply::Array(vec![Reply::Simple("OK".into()), Reply::Int(2)])
        );
        assert_eq!(
            tagged_keys(cluster.node_by_port(port), tag),
            vec![format!("{{{tag}}}k"), format!("{{{tag}}}l")],
            "a transaction on {{{tag}}} must run on port {port}"
        );
    }

    // CROSSSLOT inside MULTI: the command is refused at once, EXEC aborts, nothing written.
    let (t0, t1) = (&tags[0], &tags[1]);
    for second in [
        format!("SET {{{t1}}}cross 1"),
        format!("MSET {{{t0}}}m 1 {{{t1}}}m 2"),
        format!("MGET {{{t0}}}k {{{t1}}}k"),
        format!("SET {{{t0}}}also-here 1"),
    ] {
        c.call("MULTI");
        assert_eq!(
            c.call(&format!("SET {{{t0}}}first 1")),
            Reply::Simple("QUEUED".into())
        );
        let reply = c.call(&second);
        if second.contains("also-here") {
            // Same slot as the first: fine; make the transaction cross afterwards.
            assert_eq!(reply, Reply::Simple("QUEUED".into()));
            assert_eq!(
                c.call(&format!("DEL {{{t1}}}k")),
                Reply::Error(CROSSSLOT.into())
            );
        } else {
            assert_eq!(
                reply,
                Reply::Error(CROSSSLOT.into()),
                "{second} inside MULTI"
            );
        }
        assert_eq!(
            c.call("EXEC"),
            Reply::Error(EXECABORT.into()),
            "EXEC after {second}"
        );
    }
    for (tag, &port) in tags.iter().zip(&primaries) {
        let keys = tagged_keys(cluster.node_by_port(port), tag);
        assert_eq!(
            keys,
            vec![format!("{{{tag}}}k"), format!("{{{tag}}}l")],
            "an aborted cross-slot transaction wrote something on port {port}"
        );
    }
    // WATCH across slots, and a watch in one slot with a command in another.
    assert_eq!(
        c.call(&format!("WATCH {{{t0}}}k {{{t1}}}k")),
        Reply::Error(CROSSSLOT.into())
    );
    assert_eq!(
        c.call(&format!("WATCH {{{t0}}}k")),
        Reply::Simple("OK".into())
    );
    c.call("MULTI");
    assert_eq!(
        c.call(&format!("SET {{{t1}}}k changed")),
        Reply::Error(CROSSSLOT.into())
    );
    assert_eq!(c.call("EXEC"), Reply::Error(EXECABORT.into()));
    assert_eq!(c.call(&format!("GET {{{t1}}}k")), Reply::bulk("v"));
    c.assert_usable("cross-slot transactions");

    // Concurrent transactions on shared node connections never interleave.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let addr = sg.addr;
            let tag = t0.clone();
            std::thread::spawn(move || {
                let mut conn = Client::connect(addr);
                for _ in 0..100 {
                    conn.call("MULTI");
                    conn.call(&format!("INCR {{{tag}}}counter"));
                    conn.call(&format!("INCR {{{tag}}}counter"));
                    let reply = conn.call("EXEC");
                    let values: Vec<i64> = reply.items().iter().map(Reply::int).collect();
                    assert_eq!(
                        values[1],
                        values[0] + 1,
                        "another client's INCR ran inside a transaction: {reply:?}"
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a transaction worker failed");
    }
    assert_eq!(c.call(&format!("GET {{{t0}}}counter")), Reply::bulk("800"));

    // ===== A slot that moves between MULTI and EXEC ======================================
    let (from_port, to_port) = (primaries[0], primaries[1]);
    let tag = tag_on(&cluster, from_port, "mig");
    let slot = key_slot(tag.as_bytes());
    assert_eq!(
        c.call(&format!("SET {{{tag}}}c 10")),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        c.call(&format!("SET {{{tag}}}old x")),
        Reply::Simple("OK".into())
    );
    c.call("MULTI");
    for line in [
        format!("SET {{{tag}}}a 1"),
        format!("SET {{{tag}}}b 2"),
        format!("INCR {{{tag}}}c"),
        format!("RPUSH {{{tag}}}l x y"),
        format!("DEL {{{tag}}}old"),
    ] {
        assert_eq!(c.call(&line), Reply::Simple("QUEUED".into()), "{line}");
    }
    cluster.migrate_slot(
        slot,
        cluster.node_by_port(from_port),
        cluster.node_by_port(to_port),
        10,
        Duration::ZERO,
    );
    let reply = c.call("EXEC");
    assert_eq!(
        reply,
        Reply::Array(vec![
            Reply::Simple("OK".into()),
            Reply::Simple("OK".into()),
            Reply::Int(11),
            Reply::Int(2),
            Reply::Int(1),
        ]),
        "EXEC after the transaction's slot {slot} moved from port {from_port} to {to_port}"
    );
    let new_owner = cluster.node_by_port(to_port);
    assert_eq!(
        tagged_keys(new_owner, &tag),
        vec![
            format!("{{{tag}}}a"),
            format!("{{{tag}}}b"),
            format!("{{{tag}}}c"),
            format!("{{{tag}}}l")
        ],
        "every key of the transaction on the new owner"
    );
    assert_eq!(
        new_owner.query::<String>(&["GET", &format!("{{{tag}}}c")]),
        "11"
    );
    assert!(
        tagged_keys(cluster.node_by_port(from_port), &tag).is_empty(),
        "nothing of the transaction left on the old owner"
    );

    // A watched transaction whose slot moves: refused (or null), nothing applied.
    let tag = tag_on(&cluster, from_port, "wmig");
    let slot = key_slot(tag.as_bytes());
    c.call(&format!("SET {{{tag}}}w before"));
    assert_eq!(
        c.call(&format!("WATCH {{{tag}}}w")),
        Reply::Simple("OK".into())
    );
    c.call("MULTI");
    c.call(&format!("SET {{{tag}}}w after"));
    c.call(&format!("SET {{{tag}}}new 1"));
    cluster.migrate_slot(
        slot,
        cluster.node_by_port(from_port),
        cluster.node_by_port(to_port),
        10,
        Duration::ZERO,
    );
    let reply = c.call("EXEC");
    assert!(
        reply == Reply::Nil || reply.is_error(),
        "a watched transaction whose slot moved must not run: {reply:?}"
    );
    assert_eq!(
        tagged_keys(cluster.node_by_port(to_port), &tag),
        vec![format!("{{{tag}}}w")],
        "nothing of the watched transaction applied"
    );
    assert_eq!(c.call(&format!("GET {{{tag}}}w")), Reply::bulk("before"));
    c.assert_usable("a watched transaction whose slot moved");

    // A transaction while its slot is half migrated: all its keys already moved.
    let (from, to) = (
        cluster.node_by_port(from_port),
        cluster.node_by_port(to_port),
    );
    let tag = tag_on(&cluster, from_port, "half");
    let slot = key_slot(tag.as_bytes());
    let (ka, kb) = (format!("{{{tag}}}a"), format!("{{{tag}}}b"));
    c.call(&format!("MSET {ka} old-a {kb} old-b"));
    begin_migration(slot, from, to);
    migrate_keys(from, to, &[&kb]).expect("MIGRATE of one key");
    c.call("MULTI");
    c.call(&format!("APPEND {kb} +tx"));
    let reply = c.call("EXEC");
    assert_eq!(
        reply,
        Reply::Array(vec![Reply::Int(8)]),
        "a transaction on keys already moved to the importing node"
    );
    // ... and one key moved, one not: applied whole, or refused with nothing applied, and
    // what the keys hold afterwards is what EXEC told the client.
    c.call("MULTI");
    c.call(&format!("APPEND {ka} +tx2"));
    c.call(&format!("APPEND {kb} +tx2"));
    let reply = c.call("EXEC");
    let finished = finish_migration(&cluster, slot, from, to);
    eprintln!("transaction over a half-migrated slot: EXEC answered {reply:?}");
    assert!(
        finished.is_ok(),
        "the migration must still finish after the transaction: {finished:?}"
    );
    let values = (c.call(&format!("GET {ka}")), c.call(&format!("GET {kb}")));
    let applied = (Reply::bulk("old-a+tx2"), Reply::bulk("old-b+tx+tx2"));
    let not_applied = (Reply::bulk("old-a"), Reply::bulk("old-b+tx"));
    let expected = match &reply {
        // Both APPENDs ran: the new lengths.
        Reply::Array(items) if *items == [Reply::Int(9), Reply::Int(12)] => applied,
        // Refused (an error, or a null) means nothing ran.
        Reply::Error(_) | Reply::Nil => not_applied,
        other => panic!(
            "EXEC over a half-migrated slot must answer both results, an error or null: \
             {other:?}"
        ),
    };
    assert_eq!(
        values, expected,
        "a transaction over a half-migrated slot (one key moved, one not): EXEC answered \
         {reply:?}, so {ka} and {kb} must hold the values on the right"
    );
}
