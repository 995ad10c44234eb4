//! Options that change what slotgate does with the nodes, each end to end against real
//! `redis-server` processes (issue 13, item 8); every test fails when its option is ignored:
//! - `max-redirects`: two nodes send MOVED at each other for one slot (`CLUSTER SETSLOT
//!   NODE` on one of them); the client gets slotgate's "too many redirects" error after
//!   exactly `max-redirects` + 1 attempts, counted by the nodes' own `errorstat_MOVED`;
//! - `topology-refresh-min-interval`: the same loop makes every command ask for a refresh;
//!   the refresh counter grows by no more than the floor allows;
//! - `max-reply-depth`: a script returns nested arrays; one level deeper than the option
//!   allows is refused as a broken backend reply, the same depth within it passes
//!   byte for byte as the node sent it;
//! - `backend-connect-timeout`: a node announces the port of a listener whose accept queue
//!   is full, so that TCP handshakes to it never complete on loopback (the kernel drops
//!   the SYN); the connect is given up after the option's time, not the default's;
//! - `log-format`: `json` makes every log line a JSON object, `human` makes none (and, written
//!   to a file, carries no colour codes).

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::extra::text;
use common::ops::{OpsProxy, metric_sum};
use common::{RedisCluster, RedisNode, RespConn, Slotgate, free_port, key_slot, wait_for_test};

/// For conditions that hold within milliseconds on an idle machine; generous because
/// other builds and tests share the two cores.
const LIVENESS: Duration = Duration::from_secs(30);

fn cmd(conn: &mut RespConn, args: &[&str]) -> String {
    text(&conn.cmd_str(args))
}

/// Sum over the cluster's nodes of how often each answered MOVED.
fn moved_replies(cluster: &RedisCluster) -> u64 {
    cluster
        .live_nodes()
        .map(|node| {
            let info = node.cmd(&["INFO", "errorstats"]);
            info.lines()
                .find_map(|l| l.strip_prefix("errorstat_MOVED:count="))
                .map_or(0, |n| n.trim().parse::<u64>().expect("a count"))
        })
        .sum()
}

/// Makes the owner of `key`'s slot believe another primary owns it, so that the owner
/// answers MOVED to that primary, which answers MOVED back (it still sees the owner in
/// its map). Returns the slot.
fn redirect_loop(cluster: &RedisCluster, key: &str) -> u16 {
    let slot = key_slot(key.as_bytes());
    let owner = cluster.node_for_slot(slot);
    let other = cluster
        .primaries()
        .into_iter()
        .find(|n| n.port != owner.port)
        .expect("a second primary");
    let (slot_s, other_id) = (slot.to_string(), other.node_id());
    assert_eq!(
        owner.cmd(&["CLUSTER", "SETSLOT", &slot_s, "NODE", &other_id]),
        "OK"
    );
    let moved_to = |node: &RedisNode, to: &RedisNode| {
        node.cmd(&["GET", key]) == format!("MOVED {slot} 127.0.0.1:{}", to.port)
    };
    assert!(moved_to(owner, other), "{}", owner.cmd(&["GET", key]));
    assert!(moved_to(other, owner), "{}", other.cmd(&["GET", key]));
    for node in cluster.live_nodes() {
        assert_eq!(node.cmd(&["CONFIG", "RESETSTAT"]), "OK");
    }
    slot
}

#[test]
fn max_redirects_bounds_the_moved_hops_of_one_command() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &["--max-redirects", "3"]);
    let mut client = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut client, &["SET", "loop", "v"]), "+OK\r\n");
    assert_eq!(cmd(&mut client, &["DEL", "loop"]), ":1\r\n");
    let slot = redirect_loop(&cluster, "loop");

    let reply = cmd(&mut client, &["GET", "loop"]);
    assert!(
        reply.starts_with(&format!(
            "-ERR slotgate: too many redirects for slot {slot} (last to 127.0.0.1:"
        )),
        "{reply}"
    );
    // The first attempt and three redirects followed, each answered MOVED; the nodes'
    // statistics are final once the reply is here.
    assert_eq!(moved_replies(&cluster), 4);

    // A second command, after the MOVED replies scheduled refreshes: the same bound.
    let reply = cmd(&mut client, &["GET", "loop"]);
    assert!(reply.contains("too many redirects"), "{reply}");
    assert_eq!(moved_replies(&cluster), 8);
}

#[test]
fn topology_refresh_min_interval_spaces_refreshes_asked_for_by_moved() {
    let cluster = RedisCluster::start(3, 0);
    let floor = Duration::from_secs(3);
    let sg = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--topology-refresh-interval",
        "1h",
        "--topology-refresh-min-interval",
        "3s",
    ]);
    let refreshes = || {
        let metrics = sg.metrics();
        metric_sum(&metrics, "slotgate_topology_refreshes_total", &[])
    };
    redirect_loop(&cluster, "loop");
    let before = refreshes();
    // Every command below is answered MOVED and asks for a refresh. For `window`, a
    // refresher that keeps the floor runs at most window / floor + 1 rounds; one that
    // ignores it runs a round for every burst of requests, dozens here.
    let window = Duration::from_secs(7);
    let mut client = RespConn::connect(sg.addr);
    let started = std::time::Instant::now();
    let mut commands = 0;
    while started.elapsed() < window {
        let reply = cmd(&mut client, &["GET", "loop"]);
        assert!(reply.contains("too many redirects"), "{reply}");
        commands += 1;
    }
    let during = refreshes() - before;
    let allowed = (window.as_secs_f64() / floor.as_secs_f64()).ceil() + 1.0;
    eprintln!("{during} refreshes in {window:?} for {commands} commands");
    assert!(
        commands >= 10,
        "only {commands} commands asked for a refresh"
    );
    assert!(
        during <= allowed,
        "{during} refreshes in {window:?} with a {floor:?} floor ({commands} commands)"
    );
    // And the MOVED replies did lead to a refresh (the periodic one is an hour away).
    wait_for_test("a refresh asked for by MOVED", LIVENESS, || {
        refreshes() > before
    });
}

/// `EVAL` of a script returning `depth` nested arrays around the integer 1, on the
/// key's node (one key, so it routes by slot).
fn nested_reply_script(depth: usize) -> String {
    format!("local t = 1 for i = 1, {depth} do t = {{t}} end return t")
}

#[test]
fn max_reply_depth_refuses_a_reply_nested_deeper_than_allowed() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &["--max-reply-depth", "8"]);
    let mut client = RespConn::connect(sg.addr);
    let node = cluster.node_for_slot(key_slot(b"deep"));
    let mut direct = RespConn::connect(SocketAddr::from(([127, 0, 0, 1], node.port)));
    // Within the limit: exactly the node's bytes.
    let script = nested_reply_script(8);
    let expected = text(&direct.cmd_str(&["EVAL", &script, "1", "deep"]));
    assert!(expected.starts_with("*1\r\n*1\r\n"), "{expected}");
    assert_eq!(cmd(&mut client, &["EVAL", &script, "1", "deep"]), expected);
    // One level deeper: the node answers it fine, slotgate refuses it.
    let script = nested_reply_script(9);
    assert!(text(&direct.cmd_str(&["EVAL", &script, "1", "deep"])).starts_with("*1\r\n"));
    let reply = cmd(&mut client, &["EVAL", &script, "1", "deep"]);
    assert!(
        reply.starts_with("-ERR slotgate: node 127.0.0.1:"),
        "{reply}"
    );
    assert!(reply.contains("sent an invalid reply"), "{reply}");
    assert!(reply.contains("nested too deeply"), "{reply}");
    // The connection and the proxy carry on.
    assert_eq!(cmd(&mut client, &["SET", "deep", "v"]), "+OK\r\n");
    assert_eq!(cmd(&mut client, &["GET", "deep"]), "$1\r\nv\r\n");
}

/// A loopback listener whose accept queue is full and never drained: `listen(0)` (one
/// pending connection), filled by one connection of its own, so that the kernel drops
/// every further SYN and a connect never completes. Python sets the backlog; the test
/// checks the effect before relying on it. Killed by its PID on drop.
struct FullBacklog {
    port: u16,
    child: Child,
}

impl FullBacklog {
    fn start() -> FullBacklog {
        let port = free_port();
        let script = format!(
            "import socket, sys, time\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', {port}))\n\
             s.listen(0)\n\
             c = socket.create_connection(('127.0.0.1', {port}))\n\
             print('ready', flush=True)\n\
             sys.stdin.read()\n\
             time.sleep(3600)\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listener's ready line");
        assert_eq!(line.trim(), "ready");
        let backlog = FullBacklog { port, child };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
            "a connect to the full listener completed"
        );
        backlog
    }
}

impl Drop for FullBacklog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a slotgate that believes a primary is at the full listener: the primary
/// announces the listener's port (`cluster-announce-port`), and the test waits until
/// slotgate's map (`GET /topology`) says so.
fn slotgate_sent_to_the_full_listener(
    cluster: &RedisCluster,
    backlog: &FullBacklog,
    connect_timeout: &str,
) -> OpsProxy {
    let sg = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--backend-connect-timeout",
        connect_timeout,
        // Neither a reply timeout nor a retry may end the wait before the connect does.
        "--backend-reply-timeout",
        "1h",
        "--retry-deadline",
        "0s",
        "--topology-refresh-interval",
        "1s",
        "--topology-refresh-min-interval",
        "100ms",
    ]);
    let announced = format!("127.0.0.1:{}", backlog.port);
    wait_for_test(
        "slotgate's map to name the announced port",
        LIVENESS,
        || sg.get("/topology").body.contains(&announced),
    );
    sg
}

#[test]
fn backend_connect_timeout_gives_up_a_handshake_that_never_completes() {
    let cluster = RedisCluster::start(3, 0);
    let backlog = FullBacklog::start();
    let node = cluster.node_for_slot(key_slot(b"stuck"));
    assert_eq!(
        node.cmd(&[
            "CONFIG",
            "SET",
            "cluster-announce-port",
            &backlog.port.to_string()
        ]),
        "OK"
    );

    // A short timeout: the client hears "timed out" (liveness bound, LIVENESS).
    let short = slotgate_sent_to_the_full_listener(&cluster, &backlog, "300ms");
    let mut client = RespConn::connect(short.addr);
    client.set_read_timeout(LIVENESS);
    let reply = cmd(&mut client, &["GET", "stuck"]);
    assert_eq!(
        reply,
        format!(
            "-ERR slotgate: cannot connect to node 127.0.0.1:{}: timed out; the command was not executed\r\n",
            backlog.port
        )
    );

    // A long one: no answer while the handshake is pending. The default (1 s) would have
    // answered the same error after 1 s; a busy machine only makes it later, never sooner,
    // so silence for 6 s shows the option is in force.
    let long = slotgate_sent_to_the_full_listener(&cluster, &backlog, "1h");
    let mut client = RespConn::connect(long.addr);
    client.send_raw(&common::encode_command(&[b"GET", b"stuck"]));
    client.set_read_timeout(Duration::from_secs(6));
    let silence = client.try_read_reply();
    assert!(silence.is_err(), "{:?}", silence.map(|r| text(&r)));
}

/// slotgate's own lines: not blank, not the fixture's `=== fixture: ...` markers.
fn log_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("=== fixture"))
        .collect()
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let cluster = RedisCluster::start(3, 0);
    let json = Slotgate::start(&cluster.seeds(), &["--log-format", "json"]);
    let mut client = RespConn::connect(json.addr);
    assert_eq!(cmd(&mut client, &["SET", "k", "v"]), "+OK\r\n");
    let log = json.log();
    let lines = log_lines(&log);
    assert!(lines.len() >= 2, "{log}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
    }

    let human = Slotgate::start(&cluster.seeds(), &["--log-format", "human"]);
    let log = human.log();
    let lines = log_lines(&log);
    assert!(lines.len() >= 2, "{log}");
    // The fixture sends stderr to a file: colour codes are for terminals only.
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log written to a file: {log:?}"
    );
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "a JSON line in the human log: {line}"
        );
    }
}
