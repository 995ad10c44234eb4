//! `mode = "standalone"`: a primary with replicas and no Sentinel, behind slotgate.
//!
//! Real redis-servers on their own loopback addresses ([`ReplicaSet`]); roles change only
//! through Redis itself (`REPLICAOF`, `FAILOVER`). Where slotgate claims a single Redis's
//! behaviour, the expected bytes come from a plain `redis-server` given the same input.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::dns::{DnsServer, ZONE};
use common::ops::{OpsProxy, eventually, metric, metric_sum};
use common::replication::ReplicaSet;
use common::{RedisNode, RespConn};

/// Liveness bound for discovery and role changes on a loaded 2-core machine; the refresh
/// interval below is 200 ms, so this is dozens of rounds.
const SETTLE: Duration = Duration::from_secs(20);

fn proxy(seeds: &str, extra: &[&str]) -> OpsProxy {
    let mut args = vec![
        "--mode",
        "standalone",
        "--seeds",
        seeds,
        "--topology-refresh-interval",
        "200ms",
    ];
    args.extend_from_slice(extra);
    let proxy = OpsProxy::start(&args);
    proxy.wait_readyz(200, SETTLE);
    proxy
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The primary and replicas `/topology` reports.
fn topology_roles(proxy: &OpsProxy) -> (String, Vec<String>) {
    let json = proxy.get("/topology").json();
    let shard = &json["shards"][0];
    let primary = shard["primary"]["address"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let mut replicas: Vec<String> = shard["replicas"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| r["address"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    replicas.sort();
    (primary, replicas)
}

#[test]
fn roles_come_from_role_and_writes_land_on_the_primary() {
    let set = ReplicaSet::start(2);
    // Replicas first: the list order must not decide who the primary is.
    let proxy = proxy(&set.seeds(&[1, 2, 0]), &[]);
    let (primary, replicas) = topology_roles(&proxy);
    assert_eq!(primary, set.nodes[0].addr.to_string());
    let mut expected = vec![set.nodes[1].addr.to_string(), set.nodes[2].addr.to_string()];
    expected.sort();
    assert_eq!(replicas, expected);
    assert_eq!(proxy.get("/topology").json()["mode"], "standalone");

    let mut client = RespConn::connect(proxy.addr);
    assert_eq!(
        text(&client.cmd_str(&["SET", "greeting", "hello"])),
        "+OK\r\n"
    );
    assert_eq!(
        text(&client.cmd_str(&["GET", "greeting"])),
        "$5\r\nhello\r\n"
    );
    let on_primary: Option<String> = set.nodes[0].query(&["GET", "greeting"]);
    assert_eq!(
        on_primary.as_deref(),
        Some("hello"),
        "the write is on node 0"
    );
    // And it reached the replicas through replication, not through slotgate.
    eventually("the replicas to have the write", SETTLE, || {
        set.nodes[1..].iter().all(|n| {
            n.try_query::<Option<String>>(&["GET", "greeting"])
                .ok()
                .flatten()
                .as_deref()
                == Some("hello")
        })
    });
    let info = text(&client.cmd_str(&["INFO", "server"]));
    assert!(info.contains("slotgate_mode:standalone"), "{info}");
}

/// Commands a Redis Cluster refuses or splits pass through whole, and answer exactly what
/// one plain redis-server answers to the same input.
#[test]
fn one_shard_semantics_match_a_plain_redis() {
    let set = ReplicaSet::start(1);
    let proxy = proxy(&set.seeds(&[0, 1]), &[]);
    let reference = RedisNode::standalone();
    let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
    let mut mset: Vec<&str> = vec!["MSET"];
    for key in &keys {
        mset.push(key);
        mset.push("v");
    }
    let mut mget: Vec<&str> = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("missing");
    let mut del: Vec<&str> = vec!["DEL"];
    del.extend(keys.iter().take(5).map(String::as_str));
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), redis.call('INCR', KEYS[2])}";
    let session: Vec<Vec<&str>> = vec![
        mset,
        mget,
        del,
        // A transaction over keys of many slots.
        vec!["MULTI"],
        vec!["SET", "a", "1"],
        vec!["INCR", "b"],
        vec!["MGET", "a", "b", "c"],
        vec!["EXEC"],
        // WATCH over several slots, then a transaction that runs.
        vec!["WATCH", "a", "b", "c"],
        vec!["MULTI"],
        vec!["INCR", "c"],
        vec!["EXEC"],
        vec!["EVAL", script, "2", "x", "y", "val"],
        vec!["RENAME", "a", "renamed"],
        vec!["SMOVE", "s1", "s2", "m"],
        vec!["SADD", "s1", "m"],
        vec!["SMOVE", "s1", "s2", "m"],
        vec!["SUNION", "s1", "s2"],
        // Other databases.
        vec!["SELECT", "1"],
        vec!["SET", "only1", "yes"],
        vec!["DBSIZE"],
        vec!["KEYS", "only*"],
        vec!["SCAN", "0", "MATCH", "only*", "COUNT", "1000"],
        // Blocking over keys of several slots: on a connection of its own, in database 1.
        vec!["RPUSH", "list1", "in-db1"],
        vec!["BLPOP", "nolist", "list1", "0.05"],
        vec!["BLPOP", "nolist", "other", "0.05"],
        vec!["SELECT", "0"],
        vec!["GET", "only1"],
        vec!["MOVE", "renamed", "1"],
        vec!["SWAPDB", "0", "1"],
        vec!["GET", "only1"],
        vec!["GET", "renamed"],
        vec!["KEYS", "only*"],
        vec!["SELECT", "1"],
        vec!["GET", "key:10"],
        vec!["SELECT", "99"],
        vec!["GET", "key:10"],
        vec!["SELECT", "notanumber"],
    ];
    let mut ours = RespConn::connect(proxy.addr);
    let mut theirs = RespConn::connect(reference.addr);
    for command in &session {
        let expected = theirs.cmd_str(command);
        let got = ours.cmd_str(command);
        assert_eq!(
            text(&got),
            text(&expected),
            "{command:?}: slotgate and redis-server disagree"
        );
    }
    // The data really is where a single Redis would keep it.
    let in_db1: Vec<String> = {
        let mut conn = set.nodes[0].conn();
        redis::cmd("SELECT").arg(1).query::<()>(&mut conn).unwrap();
        redis::cmd("KEYS").arg("key:1*").query(&mut conn).unwrap()
    };
    // key:1 was deleted; key:10..=key:19 moved to database 1 with SWAPDB.
    assert_eq!(in_db1.len(), 10, "{in_db1:?}");
    // Cluster-mode clients still see one node owning every slot.
    let slots = text(&ours.cmd_str(&["CLUSTER", "SLOTS"]));
    assert!(
        slots.starts_with("*1\r\n*3\r\n:0\r\n:16383\r\n"),
        "{slots:?}"
    );
}

/// Another node claiming the primary's role: commands are refused with both nodes named
/// (error, metric, log, readiness) until one steps down.
#[test]
fn two_primaries_are_a_split_brain_until_one_steps_down() {
    let set = ReplicaSet::start(2);
    let proxy = proxy(&set.seeds(&[0, 1, 2]), &["--retry-deadline", "1s"]);
    let mut client = RespConn::connect(proxy.addr);
    assert_eq!(text(&client.cmd_str(&["SET", "k", "before"])), "+OK\r\n");
    let (old, new) = (set.nodes[0].addr.to_string(), set.nodes[1].addr.to_string());

    let _: String = set.nodes[1].query(&["REPLICAOF", "NO", "ONE"]);
    eventually("slotgate to see two primaries", SETTLE, || {
        proxy.get("/topology").json()["no_primary"]["split_brain"] == true
    });
    let refused = text(&client.cmd_str(&["SET", "k", "during"]));
    assert!(
        refused.starts_with("-MASTERDOWN slotgate: split brain:")
            && refused.contains(&old)
            && refused.contains(&new),
        "{refused:?}"
    );
    let metrics = proxy.metrics();
    for node in [&old, &new] {
        let series = format!("slotgate_primary_claims{{node=\"{node}\"}}");
        assert_eq!(metric(&metrics, &series), Some(1.0), "{metrics}");
    }
    let log = proxy.log();
    assert!(
        log.lines()
            .any(|l| l.contains("split brain") && l.contains(&old) && l.contains(&new)),
        "no log line names both nodes"
    );
    proxy.wait_readyz(503, SETTLE);
    let before: Option<String> = set.nodes[0].query(&["GET", "k"]);
    assert_eq!(
        before.as_deref(),
        Some("before"),
        "the refused write did not run"
    );

    // The old primary steps down: the new one serves, and the refusal is gone.
    set.make_replica(0, 1);
    set.make_replica(2, 1);
    proxy.wait_readyz(200, SETTLE);
    assert_eq!(text(&client.cmd_str(&["SET", "k", "after"])), "+OK\r\n");
    let on_new: Option<String> = set.nodes[1].query(&["GET", "k"]);
    assert_eq!(on_new.as_deref(), Some("after"));
    assert!(proxy.get("/topology").json()["no_primary"].is_null());
    assert_eq!(
        metric_sum(&proxy.metrics(), "slotgate_primary_claims", &[]),
        1.0
    );
}

/// `FAILOVER TO` a replica under a steady INCR load: the old primary pauses writes, hands
/// over and answers the paused ones with `-READONLY`; slotgate holds them, re-reads the
/// roles and runs them on the new primary. Every acknowledged INCR is there exactly once.
#[test]
fn a_switchover_under_incr_load_loses_and_doubles_nothing() {
    let set = ReplicaSet::start(2);
    let proxy = proxy(&set.seeds(&[0, 1, 2]), &["--retry-deadline", "10s"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            let addr = proxy.addr;
            std::thread::spawn(move || {
                let key = format!("counter:{t}");
                let mut conn = RespConn::connect(addr);
                let (mut acked, mut errors) = (0i64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let reply = text(&conn.cmd_str(&["INCR", &key]));
                    match reply.strip_prefix(':') {
                        Some(n) => {
                            let value: i64 = n.trim().parse().expect("an integer");
                            // Doubled or lost INCRs show as a jump here.
                            assert_eq!(value, acked + 1, "{key}: acked {acked}, then {value}");
                            acked = value;
                        }
                        None => errors.push(reply),
                    }
                }
                (key, acked, errors)
            })
        })
        .collect();
    let started = Instant::now();
    eventually("some load before the switch", SETTLE, || {
        set.nodes[0]
            .try_query::<Option<i64>>(&["GET", "counter:0"])
            .ok()
            .flatten()
            .unwrap_or(0)
            > 50
    });
    let retries_before = metric(&proxy.metrics(), "slotgate_retries_total").unwrap_or(0.0);
    let target = set.nodes[1].ip.to_string();
    let _: String = set.nodes[0].query(&["FAILOVER", "TO", &target, &set.port.to_string()]);
    eventually("node 1 to be the primary", SETTLE, || {
        set.role(1) == "master" && set.role(0) == "slave"
    });
    eventually("slotgate to serve node 1", SETTLE, || {
        topology_roles(&proxy).0 == set.nodes[1].addr.to_string()
    });
    // Load keeps running on the new primary for a while.
    let switched = set.nodes[1]
        .query::<Option<i64>>(&["GET", "counter:0"])
        .unwrap_or(0);
    eventually("load on the new primary", SETTLE, || {
        set.nodes[1]
            .try_query::<Option<i64>>(&["GET", "counter:0"])
            .ok()
            .flatten()
            .unwrap_or(0)
            > switched + 50
    });
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (key, acked, errors) = client.join().expect("client thread");
        assert!(
            errors.is_empty(),
            "{key}: {} client errors, the first {:?}",
            errors.len(),
            errors.first()
        );
        let stored: Option<i64> = set.nodes[1].query(&["GET", &key]);
        assert_eq!(stored, Some(acked), "{key}: acknowledged vs stored");
        total += acked;
    }
    let retries = metric(&proxy.metrics(), "slotgate_retries_total").unwrap_or(0.0);
    assert!(
        retries > retries_before,
        "the paused writes were held and retried ({retries_before} -> {retries})"
    );
    let log = proxy.log();
    assert!(log.contains("READONLY") || retries > retries_before);
    eprintln!(
        "switchover: {total} INCRs acknowledged in {:?}, 0 errors, 0 lost, 0 doubled, {} retries",
        started.elapsed(),
        retries - retries_before
    );
}

/// One DNS name for every node (a headless Service): slotgate asks each address its role.
#[test]
fn a_dns_seed_expands_to_every_node() {
    let set = ReplicaSet::start(2);
    let dns = DnsServer::start();
    let name = format!("redis.{ZONE}");
    // Replicas first in the records, too.
    let ips: Vec<Ipv4Addr> = [2, 1, 0].iter().map(|&i| set.nodes[i].ip).collect();
    dns.set(&name, &ips);
    let seed = format!("{name}:{}", set.port);
    let proxy = proxy(&seed, &["--dns-server", &dns.server_arg()]);
    let (primary, replicas) = topology_roles(&proxy);
    assert_eq!(primary, set.nodes[0].addr.to_string());
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    let mut client = RespConn::connect(proxy.addr);
    assert_eq!(text(&client.cmd_str(&["SET", "via", "dns"])), "+OK\r\n");
    let stored: Option<String> = set.nodes[0].query(&["GET", "via"]);
    assert_eq!(stored.as_deref(), Some("dns"));
}

/// A session in database 3 stays there across a switchover: its connection of its own is
/// reopened to the new primary and re-SELECTed before the next command.
#[test]
fn a_selected_database_survives_a_switchover() {
    let set = ReplicaSet::start(1);
    let proxy = proxy(&set.seeds(&[0, 1]), &[]);
    let mut client = RespConn::connect(proxy.addr);
    assert_eq!(text(&client.cmd_str(&["SELECT", "3"])), "+OK\r\n");
    assert_eq!(text(&client.cmd_str(&["SET", "where", "db3"])), "+OK\r\n");
    assert_eq!(text(&client.cmd_str(&["GET", "where"])), "$3\r\ndb3\r\n");
    let in_db0: Option<String> = set.nodes[0].query(&["GET", "where"]);
    assert_eq!(in_db0, None, "the write went to database 3, not 0");
    // Another client in database 0 shares nothing with it.
    let mut other = RespConn::connect(proxy.addr);
    assert_eq!(text(&other.cmd_str(&["GET", "where"])), "$-1\r\n");

    let target = set.nodes[1].ip.to_string();
    set.wait_link_up(1);
    let _: String = set.nodes[0].query(&["FAILOVER", "TO", &target, &set.port.to_string()]);
    eventually("slotgate to serve node 1", SETTLE, || {
        set.role(1) == "master" && topology_roles(&proxy).0 == set.nodes[1].addr.to_string()
    });
    assert_eq!(
        text(&client.cmd_str(&["SET", "after", "switch"])),
        "+OK\r\n"
    );
    assert_eq!(text(&client.cmd_str(&["GET", "where"])), "$3\r\ndb3\r\n");
    let mut on_new = set.nodes[1].conn();
    redis::cmd("SELECT")
        .arg(3)
        .query::<()>(&mut on_new)
        .unwrap();
    let after: Option<String> = redis::cmd("GET").arg("after").query(&mut on_new).unwrap();
    assert_eq!(
        after.as_deref(),
        Some("switch"),
        "written to database 3 of node 1"
    );
    // RESET returns to database 0, as in Redis.
    assert_eq!(text(&client.cmd_str(&["RESET"])), "+RESET\r\n");
    assert_eq!(text(&client.cmd_str(&["GET", "where"])), "$-1\r\n");
}

/// The primary crashes and nobody promotes a replica: readiness drops, and commands fail
/// with a clear error once `retry-deadline` is over, naming the nodes that were asked.
#[test]
fn no_primary_fails_commands_clearly_after_the_retry_deadline() {
    let mut set = ReplicaSet::start(2);
    let proxy = proxy(&set.seeds(&[0, 1, 2]), &["--retry-deadline", "1s"]);
    let mut client = RespConn::connect(proxy.addr);
    assert_eq!(text(&client.cmd_str(&["SET", "k", "v"])), "+OK\r\n");
    set.nodes[0].kill();
    proxy.wait_readyz(503, SETTLE);
    eventually("slotgate to report no primary", SETTLE, || {
        let json = proxy.get("/topology").json();
        json["no_primary"]["split_brain"] == false
    });
    let started = Instant::now();
    let refused = text(&client.cmd_str(&["SET", "k", "w"]));
    let waited = started.elapsed();
    assert!(
        refused.starts_with("-MASTERDOWN slotgate: no primary:")
            && refused.contains(&set.nodes[1].addr.to_string())
            && refused.contains(&set.nodes[2].addr.to_string()),
        "{refused:?}"
    );
    // Held for retry-deadline (1 s), then refused: no retry loop beyond it. The upper bound
    // is a liveness bound for a loaded machine, not a latency target.
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Reads too: no replica-read policy yet, and the replicas may be stale.
    let read = text(&client.cmd_str(&["GET", "k"]));
    assert!(
        read.starts_with("-MASTERDOWN slotgate: no primary:"),
        "{read:?}"
    );
    assert_eq!(
        metric_sum(&proxy.metrics(), "slotgate_primary_claims", &[]),
        0.0
    );
}

/// A redis-server with only `databases` databases, a replica of `primary`: the new primary
/// of a failover that cannot serve every database the old one could. Killed by its PID.
struct FewDatabases {
    addr: std::net::SocketAddr,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl FewDatabases {
    fn start(databases: u32, primary: std::net::SocketAddr) -> FewDatabases {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = common::free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--databases", &databases.to_string()])
            .args(["--dir", dir.path().to_str().expect("utf-8 temp dir")])
            .args(["--appendonly", "no", "--save", "", "--daemonize", "no"])
            .args([
                "--logfile",
                "redis.log",
                "--replica-announce-ip",
                "127.0.0.1",
            ])
            .args([
                "--replicaof",
                &primary.ip().to_string(),
                &primary.port().to_string(),
            ])
            .spawn()
            .expect("spawn redis-server");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let node = FewDatabases {
            addr,
            child,
            _dir: dir,
        };
        eventually("the small replica to sync", SETTLE, || {
            node.query::<String>(&["INFO", "replication"])
                .is_ok_and(|info| info.contains("master_link_status:up"))
        });
        node
    }

    fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).expect("client");
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn).map_err(|e| e.to_string())
    }
}

impl Drop for FewDatabases {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A failover to a primary configured with fewer databases than the one the session
/// selected: no command runs in another database. Each gets an error naming the database
/// and the node and is not executed, pipelined or blocking alike, until the client
/// selects a database that exists there.
#[test]
fn a_database_the_new_primary_lacks_refuses_commands_unexecuted() {
    let set = ReplicaSet::start(0);
    let small = FewDatabases::start(2, set.nodes[0].addr);
    let seeds = format!("{},{}", set.nodes[0].addr, small.addr);
    let proxy = proxy(&seeds, &[]);
    let mut client = RespConn::connect(proxy.addr);
    assert_eq!(text(&client.cmd_str(&["SELECT", "3"])), "+OK\r\n");
    // A read: the session's connection is in database 3 of the old primary (no write
    // there, which the small replica could not replicate).
    assert_eq!(text(&client.cmd_str(&["GET", "k"])), "$-1\r\n");

    let _: String = set.nodes[0].query(&[
        "FAILOVER",
        "TO",
        "127.0.0.1",
        &small.addr.port().to_string(),
    ]);
    eventually("slotgate to serve the small node", SETTLE, || {
        small
            .query::<Vec<redis::Value>>(&["ROLE"])
            .is_ok_and(|r| matches!(r.first(), Some(redis::Value::BulkString(b)) if b == b"master"))
            && topology_roles(&proxy).0 == small.addr.to_string()
    });
    let refused = |reply: &[u8]| {
        let reply = text(reply);
        assert!(
            reply.starts_with("-ERR slotgate: database 3 is not available on the primary ")
                && reply.contains(&small.addr.to_string())
                && reply.contains("SELECT failed: ERR DB index is out of range")
                && reply.contains("the command was not executed"),
            "{reply:?}"
        );
    };
    refused(&client.cmd_str(&["SET", "k", "one"]));
    // Pipelined: every command refused, none sent.
    let mut pipeline = Vec::new();
    for args in [&["SET", "a", "1"][..], &["INCR", "n"], &["SET", "b", "2"]] {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        pipeline.extend(common::encode_command(&args));
    }
    client.send_raw(&pipeline);
    for _ in 0..3 {
        refused(&client.read_reply());
    }
    // A blocking command, on a connection of its own: refused too, the list untouched.
    let _: i64 = small.query(&["RPUSH", "list", "x"]).expect("RPUSH");
    refused(&client.cmd_str(&["BLPOP", "list", "0.1"]));
    let dbsize: i64 = small.query(&["DBSIZE"]).expect("DBSIZE");
    assert_eq!(dbsize, 1, "nothing but the list was written to database 0");
    let len: i64 = small.query(&["LLEN", "list"]).expect("LLEN");
    assert_eq!(len, 1, "BLPOP did not run in database 0");

    // The client selects a database that exists there: commands run again, in it.
    assert_eq!(text(&client.cmd_str(&["SELECT", "1"])), "+OK\r\n");
    assert_eq!(text(&client.cmd_str(&["SET", "k", "db1"])), "+OK\r\n");
    let mut conn = redis::Client::open(format!("redis://{}/1", small.addr))
        .expect("client")
        .get_connection()
        .expect("connect");
    let in_db1: Option<String> = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
    assert_eq!(in_db1.as_deref(), Some("db1"));
    // A SELECT the node refuses leaves the client where it was, as in Redis.
    let out_of_range = text(&client.cmd_str(&["SELECT", "3"]));
    assert!(
        out_of_range.starts_with("-ERR DB index is out of range"),
        "{out_of_range:?}"
    );
    assert_eq!(text(&client.cmd_str(&["GET", "k"])), "$3\r\ndb1\r\n");
    let dbsize: i64 = small.query(&["DBSIZE"]).expect("DBSIZE");
    assert_eq!(dbsize, 1, "database 0 still holds only the list");
}

/// `WATCH` then `SELECT`: Redis allows it (the transaction runs in the new database, the
/// watch still guards the old one's key); slotgate refuses the SELECT, so the client stays
/// in the database its watch and transaction share. `SELECT` inside MULTI: Redis queues
/// it; slotgate refuses it and the transaction aborts. Both are documented differences.
#[test]
fn select_while_watching_or_inside_multi_is_refused_where_redis_allows_it() {
    let set = ReplicaSet::start(0);
    let proxy = proxy(&set.seeds(&[0]), &[]);
    let reference = RedisNode::standalone();
    let mut theirs = RespConn::connect(reference.addr);
    let mut ours = RespConn::connect(proxy.addr);

    // What a real redis-server does, so the difference is known, not assumed.
    for (args, expected) in [
        (vec!["WATCH", "k"], "+OK\r\n"),
        (vec!["SELECT", "1"], "+OK\r\n"),
        (vec!["MULTI"], "+OK\r\n"),
        (vec!["SET", "k", "v"], "+QUEUED\r\n"),
        (vec!["EXEC"], "*1\r\n+OK\r\n"),
    ] {
        assert_eq!(
            text(&theirs.cmd_str(&args)),
            expected,
            "redis-server: {args:?}"
        );
    }
    let in_db1: Option<String> = {
        let mut conn = reference.conn();
        redis::cmd("SELECT").arg(1).query::<()>(&mut conn).unwrap();
        redis::cmd("GET").arg("k").query(&mut conn).unwrap()
    };
    assert_eq!(
        in_db1.as_deref(),
        Some("v"),
        "redis-server ran it in database 1"
    );

    assert_eq!(text(&ours.cmd_str(&["WATCH", "k"])), "+OK\r\n");
    assert_eq!(
        text(&ours.cmd_str(&["SELECT", "1"])),
        "-ERR slotgate: SELECT is not supported while keys are watched; send EXEC, DISCARD or UNWATCH first\r\n"
    );
    assert_eq!(text(&ours.cmd_str(&["MULTI"])), "+OK\r\n");
    assert_eq!(text(&ours.cmd_str(&["SET", "k", "v"])), "+QUEUED\r\n");
    assert_eq!(text(&ours.cmd_str(&["EXEC"])), "*1\r\n+OK\r\n");
    // The client was told it stayed in database 0, and that is where it ran.
    let in_db0: Option<String> = set.nodes[0].query(&["GET", "k"]);
    assert_eq!(in_db0.as_deref(), Some("v"));
    let mut conn = set.nodes[0].conn();
    redis::cmd("SELECT").arg(1).query::<()>(&mut conn).unwrap();
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(dbsize, 0, "nothing ran in database 1");
    // Once the watch is gone, SELECT works.
    assert_eq!(text(&ours.cmd_str(&["SELECT", "1"])), "+OK\r\n");

    // SELECT inside MULTI.
    assert_eq!(text(&theirs.cmd_str(&["MULTI"])), "+OK\r\n");
    assert_eq!(text(&theirs.cmd_str(&["SELECT", "0"])), "+QUEUED\r\n");
    assert_eq!(text(&theirs.cmd_str(&["DISCARD"])), "+OK\r\n");
    assert_eq!(text(&ours.cmd_str(&["MULTI"])), "+OK\r\n");
    assert_eq!(
        text(&ours.cmd_str(&["SELECT", "0"])),
        "-ERR slotgate: 'select' cannot be queued in a transaction: slotgate answers it itself\r\n"
    );
    assert!(text(&ours.cmd_str(&["EXEC"])).starts_with("-EXECABORT"));
    assert_eq!(
        text(&ours.cmd_str(&["DBSIZE"])),
        ":0\r\n",
        "still in database 1"
    );
}
