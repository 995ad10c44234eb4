//! Commands slotgate answers itself, checked on the wire.
//!
//! - `HELLO 2/3` (with `AUTH` and `SETNAME`), and what the chosen protocol does to forwarded
//!   replies: RESP3 maps, sets, doubles and nulls after `HELLO 3`, RESP2 again after `HELLO 2`.
//! - Connection commands: `CLIENT SETNAME/GETNAME/ID/SETINFO/INFO`, `SELECT`, `ECHO`,
//!   `PING`, `INFO` (with slotgate's `# Proxy` section), `COMMAND COUNT`.
//! - The cluster emulation that lets cluster-mode clients use slotgate as a one-node cluster:
//!   `CLUSTER INFO/SLOTS/SHARDS/NODES/MYID/KEYSLOT` at the announced address (default and
//!   `--announce`), `redis-cli -c`, and the `redis` crate's `ClusterClient` pointed at
//!   slotgate alone, for keys in every slot.

mod common;

use std::collections::HashSet;

use common::extra::{SlotgateOnPort, info_field, redis_cli_stdin, slot_owners, text};
use common::{RedisCluster, RespConn, Slotgate, key_slot};

fn int_reply(reply: &[u8]) -> i64 {
    let s = text(reply);
    s.strip_prefix(':')
        .and_then(|r| r.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("expected an integer reply, got {s:?}"))
}

#[test]
fn hello_resp3_and_connection_commands() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let mut conn = RespConn::connect(sg.addr);

    // --- HELLO 2: the RESP2 flat array, proto 2.
    let hello2 = text(&conn.cmd_str(&["HELLO", "2"]));
    assert!(hello2.starts_with("*14\r\n"), "HELLO 2: {hello2:?}");
    assert!(
        hello2.contains("$5\r\nproto\r\n:2\r\n"),
        "HELLO 2: {hello2:?}"
    );
    assert!(
        hello2.contains("$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{hello2:?}"
    );

    // Forwarded replies in RESP2.
    assert_eq!(
        text(&conn.cmd_str(&["HSET", "h", "f1", "v1", "f2", "v2"])),
        ":2\r\n"
    );
    assert_eq!(text(&conn.cmd_str(&["SADD", "s", "m"])), ":1\r\n");
    assert_eq!(text(&conn.cmd_str(&["ZADD", "z", "1.5", "m"])), ":1\r\n");
    let resp2_replies = |conn: &mut RespConn| {
        assert_eq!(
            text(&conn.cmd_str(&["HGETALL", "h"])),
            "*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"
        );
        assert_eq!(text(&conn.cmd_str(&["GET", "nope"])), "$-1\r\n");
        assert_eq!(text(&conn.cmd_str(&["SMEMBERS", "s"])), "*1\r\n$1\r\nm\r\n");
        assert_eq!(text(&conn.cmd_str(&["ZSCORE", "z", "m"])), "$3\r\n1.5\r\n");
        assert_eq!(text(&conn.cmd_str(&["CLIENT", "GETNAME"])), "$-1\r\n");
    };
    resp2_replies(&mut conn);

    // --- HELLO 3: a RESP3 map of 7 entries, proto 3; forwarded replies become RESP3.
    let hello3 = text(&conn.cmd_str(&["HELLO", "3"]));
    assert!(hello3.starts_with("%7\r\n"), "HELLO 3: {hello3:?}");
    assert!(
        hello3.contains("$5\r\nproto\r\n:3\r\n"),
        "HELLO 3: {hello3:?}"
    );
    for field in [
        "server", "version", "proto", "id", "mode", "role", "modules",
    ] {
        assert!(
            hello3.contains(&format!("${}\r\n{field}\r\n", field.len())),
            "HELLO 3 lacks {field}: {hello3:?}"
        );
    }
    let hgetall = text(&conn.cmd_str(&["HGETALL", "h"]));
    assert_eq!(
        hgetall, "%2\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n",
        "HGETALL after HELLO 3 must be a RESP3 map"
    );
    assert_eq!(
        text(&conn.cmd_str(&["GET", "nope"])),
        "_\r\n",
        "a null after HELLO 3 must be RESP3's `_`"
    );
    assert_eq!(text(&conn.cmd_str(&["SMEMBERS", "s"])), "~1\r\n$1\r\nm\r\n");
    assert_eq!(text(&conn.cmd_str(&["ZSCORE", "z", "m"])), ",1.5\r\n");
    assert_eq!(text(&conn.cmd_str(&["CLIENT", "GETNAME"])), "_\r\n");
    // Keys on every shard answer in RESP3 (each node connection speaks the client's protocol).
    let owners = slot_owners(&cluster);
    let mut ports = HashSet::new();
    for i in 0..30 {
        let key = format!("r3:{i}");
        ports.insert(owners[usize::from(key_slot(key.as_bytes()))]);
        assert_eq!(
            text(&conn.cmd_str(&["HGETALL", &key])),
            "%0\r\n",
            "empty HGETALL {key} after HELLO 3"
        );
    }
    assert_eq!(ports.len(), 3, "the sample keys cover every primary");

    // --- HELLO 2 again: RESP2 replies again.
    let hello2 = text(&conn.cmd_str(&["HELLO", "2"]));
    assert!(hello2.starts_with("*14\r\n"), "HELLO 2 after 3: {hello2:?}");
    resp2_replies(&mut conn);

    // --- HELLO 3 with SETNAME and with AUTH (default user, no password configured).
    let hello = text(&conn.cmd_str(&["HELLO", "3", "SETNAME", "x"]));
    assert!(hello.starts_with("%7\r\n"), "HELLO 3 SETNAME x: {hello:?}");
    assert_eq!(text(&conn.cmd_str(&["CLIENT", "GETNAME"])), "$1\r\nx\r\n");
    let hello = text(&conn.cmd_str(&["HELLO", "3", "AUTH", "default", "anything"]));
    assert!(
        hello.starts_with("%7\r\n"),
        "HELLO 3 AUTH default anything: {hello:?}"
    );
    let hello = text(&conn.cmd_str(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "both"]));
    assert!(
        hello.starts_with("%7\r\n"),
        "HELLO 3 AUTH .. SETNAME ..: {hello:?}"
    );
    assert_eq!(
        text(&conn.cmd_str(&["CLIENT", "GETNAME"])),
        "$4\r\nboth\r\n"
    );
    // HELLO 4: -NOPROTO, and the connection keeps its protocol.
    let noproto = text(&conn.cmd_str(&["HELLO", "4"]));
    assert!(noproto.starts_with("-NOPROTO"), "HELLO 4: {noproto:?}");
    assert_eq!(text(&conn.cmd_str(&["GET", "nope"])), "_\r\n");
    // HELLO with no version: the current protocol's reply, no switch.
    let hello = text(&conn.cmd_str(&["HELLO"]));
    assert!(
        hello.starts_with("%7\r\n"),
        "bare HELLO on RESP3: {hello:?}"
    );
    assert_eq!(
        text(&conn.cmd_str(&["HELLO", "2"]))[..5].to_string(),
        "*14\r\n"
    );

    // --- CLIENT commands.
    let mut other = RespConn::connect(sg.addr);
    let mut third = RespConn::connect(sg.addr);
    let ids: Vec<i64> = [&mut conn, &mut other, &mut third]
        .into_iter()
        .map(|c| int_reply(&c.cmd_str(&["CLIENT", "ID"])))
        .collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 3, "CLIENT ID per connection: {ids:?}");
    assert_eq!(
        int_reply(&conn.cmd_str(&["CLIENT", "ID"])),
        ids[0],
        "CLIENT ID is stable on a connection"
    );
    let hello = text(&other.cmd_str(&["HELLO", "2"]));
    assert!(
        hello.contains(&format!("$2\r\nid\r\n:{}\r\n", ids[1])),
        "HELLO's id is CLIENT ID {}: {hello:?}",
        ids[1]
    );
    assert_eq!(
        text(&other.cmd_str(&["CLIENT", "SETNAME", "alpha"])),
        "+OK\r\n"
    );
    assert_eq!(
        text(&other.cmd_str(&["CLIENT", "GETNAME"])),
        "$5\r\nalpha\r\n"
    );
    assert_eq!(
        text(&third.cmd_str(&["CLIENT", "GETNAME"])),
        "$-1\r\n",
        "names are per connection"
    );
    let bad = text(&other.cmd_str(&["CLIENT", "SETNAME", "has space"]));
    assert!(
        bad.starts_with("-ERR"),
        "CLIENT SETNAME 'has space': {bad:?}"
    );
    assert_eq!(
        text(&other.cmd_str(&["CLIENT", "SETINFO", "lib-name", "x"])),
        "+OK\r\n"
    );
    assert_eq!(
        text(&other.cmd_str(&["CLIENT", "SETINFO", "lib-ver", "1.2.3"])),
        "+OK\r\n"
    );
    let info = text(&other.cmd_str(&["CLIENT", "INFO"]));
    assert!(
        info.starts_with('$'),
        "CLIENT INFO is a bulk string: {info:?}"
    );
    for field in [
        format!("id={}", ids[1]),
        "name=alpha".to_string(),
        "lib-name=x".to_string(),
        "lib-ver=1.2.3".to_string(),
        "resp=2".to_string(),
    ] {
        assert!(
            info.split_whitespace().any(|f| f == field),
            "CLIENT INFO lacks {field}: {info:?}"
        );
    }
    assert_eq!(text(&other.cmd_str(&["CLIENT", "SETNAME", ""])), "+OK\r\n");
    assert_eq!(text(&other.cmd_str(&["CLIENT", "GETNAME"])), "$-1\r\n");

    // --- SELECT, ECHO, PING.
    assert_eq!(text(&conn.cmd_str(&["SELECT", "0"])), "+OK\r\n");
    assert_eq!(
        text(&conn.cmd_str(&["SELECT", "1"])),
        "-ERR SELECT is not allowed in cluster mode\r\n"
    );
    assert_eq!(text(&conn.cmd_str(&["ECHO", "hello"])), "$5\r\nhello\r\n");
    assert_eq!(text(&conn.cmd_str(&["PING"])), "+PONG\r\n");
    assert_eq!(text(&conn.cmd_str(&["PING", "msg"])), "$3\r\nmsg\r\n");
    let arity = text(&conn.cmd_str(&["ECHO"]));
    assert_eq!(
        arity,
        "-ERR wrong number of arguments for 'echo' command\r\n"
    );

    // --- INFO: Redis's sections, plus slotgate's own.
    let info = text(&conn.cmd_str(&["INFO"]));
    assert!(
        info.starts_with('$'),
        "INFO is a bulk string in RESP2: {info:?}"
    );
    assert!(info.contains("redis_version:"), "INFO: {info}");
    assert!(info.contains("# Proxy\r\n"), "INFO lacks # Proxy: {info}");
    assert_eq!(
        info_field(&info, "slots_covered").as_deref(),
        Some("16384"),
        "INFO: {info}"
    );
    assert_eq!(info_field(&info, "shards").as_deref(), Some("3"), "{info}");
    let proxy_only = text(&conn.cmd_str(&["INFO", "proxy"]));
    assert!(
        proxy_only.contains("# Proxy\r\n"),
        "INFO proxy: {proxy_only}"
    );
    assert!(
        !proxy_only.contains("redis_version:"),
        "INFO proxy shows only that section: {proxy_only}"
    );

    // --- COMMAND COUNT (served by a node: Redis 7 has well over 200 commands).
    let count = int_reply(&conn.cmd_str(&["COMMAND", "COUNT"]));
    assert!(count > 200, "COMMAND COUNT = {count}");
}

/// `CLUSTER *` of a slotgate announcing `host:port` with node id `id`, all checked.
fn assert_cluster_emulation(addr: std::net::SocketAddr, host: &str, port: u16) {
    let mut conn = RespConn::connect(addr);
    let info = text(&conn.cmd_str(&["CLUSTER", "INFO"]));
    assert!(info.contains("cluster_state:ok"), "CLUSTER INFO: {info}");
    assert!(
        info.contains("cluster_slots_assigned:16384"),
        "CLUSTER INFO: {info}"
    );

    let myid = text(&conn.cmd_str(&["CLUSTER", "MYID"]));
    let id = myid
        .strip_prefix("$40\r\n")
        .and_then(|r| r.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("CLUSTER MYID: {myid:?}"))
        .to_string();
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "CLUSTER MYID is 40 lowercase hex digits: {id:?}"
    );

    let slots = text(&conn.cmd_str(&["CLUSTER", "SLOTS"]));
    let want_prefix = format!(
        "*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n${}\r\n{host}\r\n:{port}\r\n$40\r\n{id}\r\n",
        host.len()
    );
    assert!(
        slots.starts_with(&want_prefix),
        "CLUSTER SLOTS must be one range 0-16383 at {host}:{port} (id {id}):\n{slots:?}"
    );

    let shards = text(&conn.cmd_str(&["CLUSTER", "SHARDS"]));
    for part in [
        "$5\r\nslots\r\n*2\r\n:0\r\n:16383\r\n".to_string(),
        format!("$2\r\nid\r\n$40\r\n{id}\r\n"),
        format!("$4\r\nport\r\n:{port}\r\n"),
        format!("$8\r\nendpoint\r\n${}\r\n{host}\r\n", host.len()),
        "$4\r\nrole\r\n$6\r\nmaster\r\n".to_string(),
        "$6\r\nhealth\r\n$6\r\nonline\r\n".to_string(),
    ] {
        assert!(
            shards.starts_with("*1\r\n") && shards.contains(&part),
            "CLUSTER SHARDS lacks {part:?}:\n{shards:?}"
        );
    }

    let nodes = text(&conn.cmd_str(&["CLUSTER", "NODES"]));
    let body = nodes.split_once("\r\n").map(|(_, b)| b).unwrap_or_default();
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "CLUSTER NODES: one node: {nodes:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert!(fields.len() >= 9, "CLUSTER NODES line: {:?}", lines[0]);
    assert_eq!(fields[0], id, "CLUSTER NODES id");
    assert!(
        fields[1].starts_with(&format!("{host}:{port}@")),
        "CLUSTER NODES address: {:?}",
        lines[0]
    );
    assert!(
        fields[2].split(',').any(|f| f == "myself") && fields[2].split(',').any(|f| f == "master"),
        "CLUSTER NODES flags: {:?}",
        lines[0]
    );
    assert_eq!(fields[7], "connected", "{:?}", lines[0]);
    assert_eq!(fields[8], "0-16383", "{:?}", lines[0]);

    assert_eq!(
        text(&conn.cmd_str(&["CLUSTER", "KEYSLOT", "foo"])),
        ":12182\r\n"
    );
    assert_eq!(
        text(&conn.cmd_str(&["CLUSTER", "KEYSLOT", "{user1000}.following"])),
        format!(":{}\r\n", key_slot(b"user1000"))
    );
    for (cmd, what) in [("READONLY", "READONLY"), ("READWRITE", "READWRITE")] {
        assert_eq!(text(&conn.cmd_str(&[cmd])), "+OK\r\n", "{what}");
    }
}

/// A slot → hash tag table covering every slot, built in one pass.
fn tags_for_every_slot() -> Vec<String> {
    let mut tags: Vec<Option<String>> = vec![None; 16384];
    let mut missing = tags.len();
    for i in 0u64.. {
        let tag = format!("s{i}");
        let slot = usize::from(key_slot(tag.as_bytes()));
        if tags[slot].is_none() {
            tags[slot] = Some(tag);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    tags.into_iter().map(Option::unwrap).collect()
}

#[test]
fn cluster_emulation_serves_cluster_mode_clients() {
    let cluster = RedisCluster::start(3, 0);

    // Default announce: the listen address.
    let plain = Slotgate::start(&cluster.seeds(), &[]);
    assert_cluster_emulation(plain.addr, "127.0.0.1", plain.port);

    // An announce naming another host and port is what clients are told, verbatim (only
    // displayed here: nothing connects to it).
    let elsewhere = Slotgate::start(&cluster.seeds(), &["--announce", "proxy.example:6390"]);
    assert_cluster_emulation(elsewhere.addr, "proxy.example", 6390);

    // --announce 127.0.0.1:<its own port>, with real cluster clients following it.
    let sg = SlotgateOnPort::start(&cluster.seeds(), |port| {
        vec!["--announce".into(), format!("127.0.0.1:{port}")]
    });
    assert_cluster_emulation(sg.addr, "127.0.0.1", sg.port);

    // Every slotgate has its own stable node id.
    let id_of = |addr| text(&RespConn::connect(addr).cmd_str(&["CLUSTER", "MYID"]));
    assert_eq!(id_of(sg.addr), id_of(sg.addr), "CLUSTER MYID is stable");
    assert_ne!(id_of(sg.addr), id_of(plain.addr), "two slotgates, two ids");

    // redis-cli in cluster mode.
    let out = redis_cli_stdin(
        sg.port,
        &["-c"],
        b"SET cli-key hello\nGET cli-key\nSET foo 1\nSET bar 2\nGET foo\nGET bar\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redis-cli -c: {}", out.status);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["OK", "hello", "OK", "OK", "1", "2"],
        "redis-cli -c -p <slotgate>"
    );

    // The redis crate's cluster client, seeded with slotgate alone, for keys in every slot.
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}/", sg.addr)])
        .expect("ClusterClient::new");
    let mut cc = client
        .get_connection()
        .unwrap_or_else(|e| panic!("ClusterClient against slotgate: {e}"));
    let tags = tags_for_every_slot();
    let mut pipe = redis::cluster::cluster_pipe();
    for (slot, tag) in tags.iter().enumerate() {
        pipe.cmd("SET")
            .arg(format!("{{{tag}}}:cc"))
            .arg(slot)
            .ignore();
    }
    pipe.exec(&mut cc)
        .unwrap_or_else(|e| panic!("cluster pipeline of 16384 SETs: {e}"));
    let mut pipe = redis::cluster::cluster_pipe();
    for tag in &tags {
        pipe.cmd("GET").arg(format!("{{{tag}}}:cc"));
    }
    let values: Vec<u32> = pipe
        .query(&mut cc)
        .unwrap_or_else(|e| panic!("cluster pipeline of 16384 GETs: {e}"));
    assert_eq!(values.len(), 16384);
    for (slot, value) in values.iter().enumerate() {
        assert_eq!(*value as usize, slot, "GET of the key in slot {slot}");
    }
    // Plain commands too, one round trip each, spread over the slots.
    let mut singles = 0;
    for slot in (0..16384).step_by(211) {
        singles += 1;
        let key = format!("{{{}}}:single", tags[slot]);
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(slot)
            .query(&mut cc)
            .unwrap_or_else(|e| panic!("SET {key}: {e}"));
        let got: usize = redis::cmd("GET")
            .arg(&key)
            .query(&mut cc)
            .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        assert_eq!(got, slot, "GET {key}");
    }
    // And the keys are really spread over the three primaries.
    let sizes = cluster.dbsize_by_node();
    let sum: u64 = sizes.iter().map(|&(_, n)| n).sum();
    assert!(
        sizes.iter().all(|&(_, n)| n > 5000),
        "DBSIZE by node: {sizes:?}"
    );
    // 16384 pipelined keys, the single ones, and redis-cli's cli-key, foo and bar.
    assert_eq!(sum, 16384 + singles + 3, "DBSIZE by node: {sizes:?}");
}
