//! Redis-native introspection of slotgate itself: `INFO`, `CLIENT LIST`/`KILL`, `SLOWLOG`.
//!
//! - `INFO` has Redis's `field:value` sections for a proxy plus slotgate's own (`proxy`,
//!   `topology`), no keyspace; `INFO commandstats` counts commands.
//! - `CLIENT LIST` shows every connection of every worker thread with its name, address
//!   and last command; `CLIENT KILL` closes the chosen ones.
//! - `SLOWLOG GET/LEN/RESET` follow `slowlog-log-slower-than` and `slowlog-max-len`.

mod common;

use std::time::Duration;

use common::extra::{bulk_payload, info_field, text};
use common::ops::{OpsProxy, eventually};
use common::{RedisCluster, RespConn};

/// `INFO [section ...]`; `""` sends a bare `INFO`.
fn info(conn: &mut RespConn, sections: &str) -> String {
    let mut args = vec!["INFO"];
    args.extend(sections.split_whitespace());
    String::from_utf8(bulk_payload(&conn.cmd_str(&args))).unwrap()
}

#[test]
fn info_describes_the_proxy_and_its_topology() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&["--seeds", &cluster.seeds(), "--threads", "2"]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let mut conn = RespConn::connect(proxy.addr);
    let all = info(&mut conn, "");
    for section in [
        "# Server",
        "# Clients",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# Proxy",
        "# Topology",
        "# Cluster",
    ] {
        assert!(all.contains(section), "no {section} in\n{all}");
    }
    // The keyspace is the cluster's, summed over every primary (issue 4), as Redis's own
    // default INFO includes it.
    assert!(all.contains("# Keyspace"), "{all}");
    assert!(
        !all.contains("# Commandstats"),
        "only with `all` or by name: {all}"
    );
    assert_eq!(
        info_field(&all, "redis_mode").as_deref(),
        Some("standalone")
    );
    assert_eq!(info_field(&all, "role").as_deref(), Some("master"));
    assert_eq!(info_field(&all, "loading").as_deref(), Some("0"));
    assert_eq!(info_field(&all, "maxclients").as_deref(), Some("10000"));
    assert_eq!(info_field(&all, "io_threads_active").as_deref(), Some("2"));
    assert_eq!(info_field(&all, "readiness").as_deref(), Some("ready"));
    assert_eq!(info_field(&all, "complete").as_deref(), Some("1"));
    assert_eq!(info_field(&all, "primaries").as_deref(), Some("3"));
    let connected: u64 = info_field(&all, "connected_clients")
        .unwrap()
        .parse()
        .unwrap();
    assert!(connected >= 1);

    let topology = info(&mut conn, "topology");
    assert!(topology.starts_with("# Topology"), "{topology}");
    assert!(!topology.contains("# Server"), "{topology}");
    let shard_lines: Vec<&str> = topology
        .lines()
        .filter(|l| l.starts_with("shard"))
        .collect();
    assert_eq!(shard_lines.len(), 3, "{topology}");
    for primary in cluster.primaries() {
        assert!(
            shard_lines
                .iter()
                .any(|l| l.contains(&format!("primary=127.0.0.1:{}", primary.port))),
            "{topology}"
        );
    }
    let several = info(&mut conn, "server clients");
    assert!(
        several.contains("# Server") && several.contains("# Clients"),
        "{several}"
    );
    assert!(!several.contains("# Stats"), "{several}");
}

/// `INFO commandstats` and the byte counters come from the session's recording hooks.
#[test]
fn info_counts_commands_and_bytes() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&["--seeds", &cluster.seeds()]);
    let mut conn = RespConn::connect(proxy.addr);
    for i in 0..25 {
        assert_eq!(conn.cmd_str(&["SET", &format!("k{i}"), "v"]), b"+OK\r\n");
    }
    let stats = info(&mut conn, "commandstats");
    let line = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_set:"))
        .unwrap_or_else(|| panic!("no cmdstat_set in\n{stats}"));
    assert!(line.starts_with("cmdstat_set:calls=25,usec="), "{line}");
    assert!(line.ends_with(",rejected_calls=0,failed_calls=0"), "{line}");
    let stats = info(&mut conn, "stats");
    let input: u64 = info_field(&stats, "total_net_input_bytes")
        .unwrap()
        .parse()
        .unwrap();
    let output: u64 = info_field(&stats, "total_net_output_bytes")
        .unwrap()
        .parse()
        .unwrap();
    assert!(input > 25 * 20, "{stats}");
    assert!(output > 25 * 5, "{stats}");
}

/// The `CLIENT LIST` line of client `id`, if listed.
fn line_of(list: &str, id: u64) -> Option<String> {
    list.lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .map(str::to_owned)
}

fn client_id(conn: &mut RespConn) -> u64 {
    let reply = text(&conn.cmd_str(&["CLIENT", "ID"]));
    reply.trim_start_matches(':').trim().parse().unwrap()
}

#[test]
fn client_list_and_kill_span_every_worker() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&["--seeds", &cluster.seeds(), "--threads", "2"]);
    let mut conns: Vec<RespConn> = (0..6).map(|_| RespConn::connect(proxy.addr)).collect();
    let mut ids = Vec::new();
    for (i, conn) in conns.iter_mut().enumerate() {
        assert_eq!(
            conn.cmd_str(&["CLIENT", "SETNAME", &format!("app-{i}")]),
            b"+OK\r\n"
        );
        ids.push(client_id(conn));
    }
    assert_eq!(
        conns[1].cmd_str(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]),
        b"+OK\r\n"
    );
    assert_eq!(conns[1].cmd_str(&["HELLO", "3"]).first(), Some(&b'%'));

    let list = text(&conns[0].cmd_str(&["CLIENT", "LIST"]));
    for (i, &id) in ids.iter().enumerate() {
        let line = line_of(&list, id).unwrap_or_else(|| panic!("no id={id} in\n{list}"));
        assert!(line.contains(&format!(" name=app-{i} ")), "{line}");
        let local = conns[i].stream().local_addr().unwrap();
        assert!(line.contains(&format!(" addr={local} ")), "{line}");
        assert!(line.contains(&format!(" laddr={} ", proxy.addr)), "{line}");
    }
    let own = line_of(&list, ids[0]).unwrap();
    assert!(own.contains(" cmd=client|list "), "{own}");
    let one = line_of(&list, ids[1]).unwrap();
    assert!(
        one.contains(" resp=3 ") && one.contains(" lib-name=redis-py "),
        "{one}"
    );

    let filtered = text(&conns[0].cmd_str(&[
        "CLIENT",
        "LIST",
        "ID",
        &ids[2].to_string(),
        &ids[3].to_string(),
    ]));
    assert_eq!(
        filtered.lines().filter(|l| l.starts_with("id=")).count(),
        2,
        "{filtered}"
    );
    let none = text(&conns[0].cmd_str(&["CLIENT", "LIST", "TYPE", "pubsub"]));
    assert_eq!(none, "$0\r\n\r\n");

    // CLIENT KILL ID: the other connection is closed; the count is 1.
    let killed = conns[0].cmd_str(&["CLIENT", "KILL", "ID", &ids[4].to_string()]);
    assert_eq!(killed, b":1\r\n");
    conns[4].set_read_timeout(Duration::from_secs(5));
    assert!(conns[4].read_to_close().is_empty());
    // The old form, by address.
    let addr5 = conns[5].stream().local_addr().unwrap().to_string();
    assert_eq!(conns[0].cmd_str(&["CLIENT", "KILL", &addr5]), b"+OK\r\n");
    conns[5].set_read_timeout(Duration::from_secs(5));
    assert!(conns[5].read_to_close().is_empty());
    assert!(
        conns[0]
            .cmd_str(&["CLIENT", "KILL", "127.0.0.1:1"])
            .starts_with(b"-ERR No such client")
    );
    assert_eq!(
        conns[0].cmd_str(&["CLIENT", "KILL", "ID", "999999"]),
        b":0\r\n"
    );
    // Killed clients leave the list.
    eventually(
        "killed clients leave CLIENT LIST",
        Duration::from_secs(5),
        || {
            let list = text(&conns[0].cmd_str(&["CLIENT", "LIST"]));
            line_of(&list, ids[4]).is_none() && line_of(&list, ids[5]).is_none()
        },
    );
    // SKIPME no: a client can kill itself; it gets its reply, then the close.
    let reply = conns[3].cmd_str(&["CLIENT", "KILL", "ID", &ids[3].to_string(), "SKIPME", "no"]);
    assert_eq!(reply, b":1\r\n");
    conns[3].set_read_timeout(Duration::from_secs(5));
    assert!(conns[3].read_to_close().is_empty());
    // By default a client does not kill itself.
    let reply = conns[2].cmd_str(&["CLIENT", "KILL", "ID", &ids[2].to_string()]);
    assert_eq!(reply, b":0\r\n");
    assert_eq!(conns[2].cmd_str(&["PING"]), b"+PONG\r\n");
    assert!(
        conns[0]
            .cmd_str(&["CLIENT", "KILL", "ID", "1", "BOGUS", "x"])
            .starts_with(b"-ERR syntax error")
    );
}

/// The last command and idle time come from the session's per-command hook.
#[test]
fn client_list_shows_each_clients_last_command() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&["--seeds", &cluster.seeds()]);
    let mut a = RespConn::connect(proxy.addr);
    let mut b = RespConn::connect(proxy.addr);
    let id_b = client_id(&mut b);
    assert_eq!(b.cmd_str(&["SET", "x", "1"]), b"+OK\r\n");
    let get_sent = std::time::Instant::now();
    assert_eq!(b.cmd_str(&["GET", "x"]), b"$1\r\n1\r\n");
    let get_answered = std::time::Instant::now();
    let list = text(&a.cmd_str(&["CLIENT", "LIST"]));
    let line = line_of(&list, id_b).unwrap();
    assert!(line.contains(" cmd=get "), "{line}");
    // Not synchronisation: idle time has to pass for `idle=` to show it.
    std::thread::sleep(Duration::from_millis(2100));
    let list_sent = std::time::Instant::now();
    let list = text(&a.cmd_str(&["CLIENT", "LIST"]));
    let list_answered = std::time::Instant::now();
    let line = line_of(&list, id_b).unwrap();
    let idle: u64 = line
        .split(' ')
        .find_map(|f| f.strip_prefix("idle="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no idle= in {line}"));
    // The GET was read between `get_sent` and `get_answered`, the list made between
    // `list_sent` and `list_answered`: idle (whole seconds, rounded down) lies between
    // those bounds however slow the machine (2 ms for slotgate's millisecond clock).
    let least = (list_sent - get_answered).saturating_sub(Duration::from_millis(2));
    let most = list_answered - get_sent + Duration::from_millis(2);
    assert!(
        (least.as_secs()..=most.as_secs()).contains(&idle) && idle >= 2,
        "idle={idle}, expected {least:?}..={most:?}: {line}"
    );
}

#[test]
fn slowlog_records_commands_over_the_threshold() {
    let cluster = RedisCluster::start(3, 0);
    let proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--slowlog-log-slower-than",
        "0",
        "--slowlog-max-len",
        "3",
    ]);
    let mut conn = RespConn::connect(proxy.addr);
    assert_eq!(conn.cmd_str(&["CLIENT", "SETNAME", "slowpoke"]), b"+OK\r\n");
    assert_eq!(conn.cmd_str(&["SLOWLOG", "RESET"]), b"+OK\r\n");
    assert_eq!(conn.cmd_str(&["SET", "slow:a", "1"]), b"+OK\r\n");
    assert_eq!(conn.cmd_str(&["SET", "slow:b", "2"]), b"+OK\r\n");
    let len = text(&conn.cmd_str(&["SLOWLOG", "LEN"]));
    assert!(len == ":2\r\n" || len == ":3\r\n", "{len}");
    for i in 0..5 {
        assert_eq!(
            conn.cmd_str(&["SET", &format!("slow:{i}"), "v"]),
            b"+OK\r\n"
        );
    }
    assert_eq!(
        conn.cmd_str(&["SLOWLOG", "LEN"]),
        b":3\r\n",
        "slowlog-max-len"
    );
    let entry = text(&conn.cmd_str(&["SLOWLOG", "GET", "1"]));
    assert!(entry.starts_with("*1\r\n*6\r\n:"), "{entry}");
    let local = conn.stream().local_addr().unwrap().to_string();
    assert!(
        entry.contains(&format!("${}\r\n{local}\r\n", local.len())),
        "{entry}"
    );
    assert!(entry.contains("$8\r\nslowpoke\r\n"), "{entry}");
    assert_eq!(conn.cmd_str(&["SLOWLOG", "RESET"]), b"+OK\r\n");
    let after = text(&conn.cmd_str(&["SLOWLOG", "LEN"]));
    assert!(after == ":0\r\n" || after == ":1\r\n", "{after}");
    assert!(
        conn.cmd_str(&["SLOWLOG", "NOPE"])
            .starts_with(b"-ERR unknown subcommand")
    );
}
