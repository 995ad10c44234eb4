//! Graceful shutdown: SIGTERM drains, a second signal or `shutdown-timeout` cuts it short.
//!
//! - Thousands of pipelined commands, then SIGTERM: every one is answered, then the
//!   connection closes and the process exits 0.
//! - With a command held in flight (its node frozen with SIGSTOP): after SIGTERM `/readyz`
//!   answers 503 `draining`, new connections are refused, the held command is still
//!   answered once the node wakes up, and then the process exits by itself.
//! - Idle connections are closed at once; a second SIGTERM exits at once; the drain never
//!   outlasts `shutdown-timeout`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::extra::{encode, slot_owners};
use common::ops::{OpsProxy, eventually, metric, try_http};
use common::{RedisCluster, RespConn, key_slot};

/// Upper bounds on what should take well under a second; far below the 30 s and 60 s
/// timeouts they tell apart, and generous because other builds and tests share the cores.
const LIVENESS: Duration = Duration::from_secs(20);

/// Waits until slotgate has read and dispatched `conn`'s GET: `CLIENT LIST` (over a probe
/// connection) shows a client whose last command is `get`.
fn wait_get_dispatched(proxy: &OpsProxy) {
    let mut probe = RespConn::connect(proxy.addr);
    eventually("slotgate to dispatch the GET", LIVENESS, || {
        String::from_utf8_lossy(&probe.cmd_str(&["CLIENT", "LIST"])).contains(" cmd=get ")
    });
}

/// A key served by the primary on `port`.
fn key_on(cluster: &RedisCluster, port: u16) -> String {
    let owners = slot_owners(cluster);
    (0..100_000)
        .map(|i| format!("drain:{i}"))
        .find(|k| owners[usize::from(key_slot(k.as_bytes()))] == port)
        .expect("a key for every primary")
}

fn refused(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
}

#[test]
fn every_pipelined_command_is_answered_before_exit() {
    let cluster = RedisCluster::start(3, 0);
    let mut proxy = OpsProxy::start(&["--seeds", &cluster.seeds(), "--shutdown-timeout", "30s"]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let mut conn = RespConn::connect(proxy.addr);
    conn.set_read_timeout(Duration::from_secs(30));

    const COMMANDS: usize = 20_000;
    let mut pipeline = Vec::with_capacity(COMMANDS * 40);
    for i in 0..COMMANDS {
        let key = format!("drain:{i}");
        pipeline.extend(encode(&[b"SET", key.as_bytes(), b"v"]));
    }
    // Write from another thread while this one reads, and signal as soon as the last
    // byte is handed to the kernel: thousands of commands are still unanswered then.
    let mut writer = conn.stream().try_clone().unwrap();
    let pid = proxy.pid();
    let (sent_tx, sent_rx) = mpsc::channel();
    let write = std::thread::spawn(move || {
        writer.write_all(&pipeline).expect("write the pipeline");
        common::ops::signal_pid(pid, "TERM");
        sent_tx.send(Instant::now()).unwrap();
    });
    for i in 0..COMMANDS {
        let reply = conn
            .try_read_reply()
            .unwrap_or_else(|e| panic!("reply #{i} of {COMMANDS}: {e}"));
        assert_eq!(reply, b"+OK\r\n", "reply #{i}");
    }
    write.join().unwrap();
    let sigterm_at = sent_rx.recv().unwrap();
    // Everything was answered; now the connection closes and the process exits.
    let rest = conn.read_to_close();
    assert!(
        rest.is_empty(),
        "unexpected bytes after the last reply: {rest:?}"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("slotgate exits once the connection is drained");
    assert!(status.success(), "{status}");
    assert!(sigterm_at.elapsed() < Duration::from_secs(25));
    let log = proxy.log();
    assert!(log.contains("draining"), "{log}");
    assert!(
        log.contains("drained: every client connection closed"),
        "{log}"
    );
    // Nothing was lost: every key is on the cluster.
    let mut check = 0;
    for node in cluster.primaries() {
        check += node.cmd(&["DBSIZE"]).parse::<usize>().unwrap();
    }
    assert_eq!(check, COMMANDS);
}

#[test]
fn drain_turns_readyz_off_refuses_new_clients_and_answers_in_flight_commands() {
    let cluster = RedisCluster::start(3, 0);
    let mut proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--shutdown-timeout",
        "30s",
        "--backend-reply-timeout",
        "30s",
    ]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let frozen = cluster.primaries()[0];
    let key = key_on(&cluster, frozen.port);
    let mut conn = RespConn::connect(proxy.addr);
    conn.set_read_timeout(Duration::from_secs(20));
    assert_eq!(conn.cmd_str(&["SET", &key, "held"]), b"+OK\r\n");

    frozen.pause();
    conn.send_raw(&encode(&[b"GET", key.as_bytes()]));
    wait_get_dispatched(&proxy);
    proxy.signal("TERM");

    let body = proxy.wait_readyz(503, Duration::from_secs(5));
    assert!(body.starts_with("draining"), "{body}");
    assert_eq!(metric(&proxy.metrics(), "slotgate_draining"), Some(1.0));
    assert_eq!(proxy.get("/healthz").status, 200);
    eventually("the client listeners close", Duration::from_secs(5), || {
        refused(proxy.addr)
    });
    assert!(
        proxy.try_wait().is_none(),
        "slotgate must wait for the held command"
    );

    frozen.resume();
    let reply = conn.read_reply();
    assert_eq!(reply, b"$4\r\nheld\r\n");
    let rest = conn.read_to_close();
    assert!(rest.is_empty(), "{rest:?}");
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("slotgate exits once its last connection closed");
    assert!(status.success(), "{status}");
}

#[test]
fn idle_connections_close_at_once_on_sigterm() {
    let cluster = RedisCluster::start(3, 0);
    let mut proxy = OpsProxy::start(&["--seeds", &cluster.seeds(), "--shutdown-timeout", "30s"]);
    let mut idle: Vec<RespConn> = (0..5).map(|_| RespConn::connect(proxy.addr)).collect();
    for conn in &mut idle {
        assert_eq!(conn.cmd_str(&["PING"]), b"+PONG\r\n");
    }
    let start = Instant::now();
    proxy.signal("TERM");
    for conn in &mut idle {
        conn.set_read_timeout(LIVENESS);
        assert!(conn.read_to_close().is_empty());
    }
    let status = proxy
        .wait_exit(LIVENESS)
        .expect("slotgate exits once idle connections are closed");
    assert!(status.success(), "{status}");
    // Not the 30 s shutdown-timeout.
    assert!(start.elapsed() < LIVENESS, "{:?}", start.elapsed());
}

#[test]
fn a_second_signal_exits_at_once() {
    let cluster = RedisCluster::start(3, 0);
    let mut proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--shutdown-timeout",
        "60s",
        "--backend-reply-timeout",
        "60s",
    ]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let frozen = cluster.primaries()[1];
    let key = key_on(&cluster, frozen.port);
    let mut conn = RespConn::connect(proxy.addr);
    frozen.pause();
    conn.send_raw(&encode(&[b"GET", key.as_bytes()]));
    wait_get_dispatched(&proxy);
    proxy.signal("TERM");
    proxy.wait_readyz(503, Duration::from_secs(5));
    assert!(proxy.try_wait().is_none());

    let start = Instant::now();
    proxy.signal("INT");
    let status = proxy
        .wait_exit(LIVENESS)
        .expect("a second signal exits at once");
    // Not the 60 s shutdown-timeout.
    assert!(start.elapsed() < LIVENESS);
    assert!(status.success(), "{status}");
    assert!(
        proxy.log().contains("second stop signal"),
        "{}",
        proxy.log()
    );
    frozen.resume();
}

#[test]
fn the_drain_never_outlasts_shutdown_timeout() {
    let cluster = RedisCluster::start(3, 0);
    let mut proxy = OpsProxy::start(&[
        "--seeds",
        &cluster.seeds(),
        "--shutdown-timeout",
        "1s",
        "--backend-reply-timeout",
        "60s",
    ]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let frozen = cluster.primaries()[2];
    let key = key_on(&cluster, frozen.port);
    let mut conn = RespConn::connect(proxy.addr);
    frozen.pause();
    conn.send_raw(&encode(&[b"GET", key.as_bytes()]));
    wait_get_dispatched(&proxy);
    let start = Instant::now();
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(LIVENESS)
        .expect("slotgate exits at shutdown-timeout");
    let took = start.elapsed();
    // At its 1 s shutdown-timeout: not before, and not at the 60 s reply timeout.
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < LIVENESS, "{took:?}");
    assert!(status.success(), "{status}");
    assert!(
        proxy.log().contains("shutdown-timeout reached"),
        "{}",
        proxy.log()
    );
    frozen.resume();
    // The admin listener is gone with the process.
    assert!(try_http(proxy.admin, "GET", "/healthz").is_err());
}

/// While draining, the quiet period that closes a client counts from its last byte, not
/// from the first moment it had nothing pending: a client that sends its next command
/// 50 ms after each reply is served for as long as it keeps doing so (the quiet period is
/// 1 s). Each command here is a BLPOP that times out after 1.5 s, longer than the quiet
/// period, so a quiet period counted from an earlier reply would have run out.
#[test]
fn a_draining_client_that_keeps_sending_is_served() {
    let cluster = RedisCluster::start(3, 0);
    let mut proxy = OpsProxy::start(&["--seeds", &cluster.seeds(), "--shutdown-timeout", "30s"]);
    proxy.wait_readyz(200, Duration::from_secs(15));
    let mut conn = RespConn::connect(proxy.addr);
    conn.set_read_timeout(LIVENESS);
    // In flight when the drain starts, so the connection stays.
    conn.send_raw(&encode(&[b"BLPOP", b"drain:none", b"2"]));
    let mut probe = RespConn::connect(proxy.addr);
    eventually("slotgate to dispatch the BLPOP", LIVENESS, || {
        String::from_utf8_lossy(&probe.cmd_str(&["CLIENT", "LIST"])).contains(" cmd=blpop ")
    });
    drop(probe);
    proxy.signal("TERM");
    proxy.wait_readyz(503, LIVENESS);
    for round in 0..3 {
        assert_eq!(conn.read_reply(), b"*-1\r\n", "BLPOP #{round}");
        // The client's think time (not synchronisation): slotgate sees it quiet first.
        std::thread::sleep(Duration::from_millis(50));
        conn.send_raw(&encode(&[b"BLPOP", b"drain:none", b"1.5"]));
    }
    assert_eq!(conn.read_reply(), b"*-1\r\n", "the last BLPOP");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(conn.cmd_str(&["PING"]), b"+PONG\r\n");
    // Quiet now: closed, and the process exits.
    assert!(conn.read_to_close().is_empty());
    let status = proxy.wait_exit(LIVENESS).expect("slotgate exits");
    assert!(status.success(), "{status}");
}
