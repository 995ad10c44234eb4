//! The client-facing wire protocol, byte for byte, over raw sockets ([`RespConn`]).
//!
//! - A pipeline of 100,000 commands written at once comes back as 100,000 replies, in order.
//! - Inline commands (quoting, escapes, empty lines) parse as redis-server parses them (a
//!   standalone redis-server is the oracle).
//! - Protocol errors (bad multibulk or bulk length, over `proto-max-bulk-len`, over
//!   `max-request-args`, unbalanced quotes, over `client-query-buffer-limit`) answer
//!   `-ERR Protocol error: ...` after the replies to earlier pipelined commands and close
//!   that connection only: another client keeps working and slotgate stays up.
//! - `QUIT` answers `+OK` and closes; large and binary keys and values round-trip exactly.

mod common;

use std::io::Write;
use std::time::Duration;

use common::extra::{bulk_payload, encode, slot_owners, text};
use common::{RedisCluster, RedisNode, RespConn, Slotgate, key_slot};

#[test]
fn pipeline_of_100k_commands_in_one_write_gets_every_reply_in_order() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let mut conn = RespConn::connect(sg.addr);
    conn.set_read_timeout(Duration::from_secs(30));

    // 50,000 SET/GET pairs; every GET also reads back the key set two commands earlier.
    const PAIRS: usize = 50_000;
    let mut pipeline = Vec::with_capacity(PAIRS * 60);
    for i in 0..PAIRS {
        let key = format!("pipe:{i}");
        let value = format!("v{i}");
        pipeline.extend(encode(&[b"SET", key.as_bytes(), value.as_bytes()]));
        pipeline.extend(encode(&[b"GET", key.as_bytes()]));
    }
    // One write, from another thread: slotgate answers while it reads, and a client that
    // only reads after writing everything could deadlock on full socket buffers.
    let mut writer = conn.stream().try_clone().expect("clone the socket");
    let total_bytes = pipeline.len();
    let write = std::thread::spawn(move || writer.write_all(&pipeline));

    let mut slots_seen = std::collections::HashSet::new();
    for i in 0..PAIRS {
        let set = conn
            .try_read_reply()
            .unwrap_or_else(|e| panic!("reply #{} (SET pipe:{i}): {e}", 2 * i));
        assert_eq!(text(&set), "+OK\r\n", "reply #{} (SET pipe:{i})", 2 * i);
        let get = conn
            .try_read_reply()
            .unwrap_or_else(|e| panic!("reply #{} (GET pipe:{i}): {e}", 2 * i + 1));
        let want = format!("v{i}");
        assert_eq!(
            text(&get),
            format!("${}\r\n{want}\r\n", want.len()),
            "reply #{} (GET pipe:{i})",
            2 * i + 1
        );
        slots_seen.insert(key_slot(format!("pipe:{i}").as_bytes()));
    }
    write
        .join()
        .expect("writer thread")
        .unwrap_or_else(|e| panic!("writing {total_bytes} bytes: {e}"));
    assert!(slots_seen.len() > 15_000, "keys should cover most slots");
    // Nothing more: exactly one reply per command.
    conn.set_read_timeout(Duration::from_millis(300));
    assert!(
        conn.try_read_reply().is_err(),
        "a reply beyond the 100,000 expected"
    );
    // The keys really are spread over the primaries.
    let sizes = cluster.dbsize_by_node();
    assert!(
        sizes.iter().all(|&(_, n)| n > 0),
        "DBSIZE by node: {sizes:?}"
    );
    let sum: u64 = sizes.iter().map(|&(_, n)| n).sum();
    assert_eq!(sum, PAIRS as u64, "DBSIZE by node: {sizes:?}");
}

/// Sends `raw` to slotgate and to a standalone redis-server and asserts the same `replies`
/// replies, byte for byte. Returns slotgate's.
fn same_as_redis(sg: &mut RespConn, oracle: &mut RespConn, raw: &[u8], replies: usize) -> String {
    sg.send_raw(raw);
    oracle.send_raw(raw);
    let mut ours = String::new();
    let mut theirs = String::new();
    for _ in 0..replies {
        ours.push_str(&text(&sg.read_reply()));
        theirs.push_str(&text(&oracle.read_reply()));
    }
    assert_eq!(
        ours,
        theirs,
        "for {:?}: slotgate (left) and redis-server (right) differ",
        text(raw)
    );
    ours
}

#[test]
fn inline_commands_quit_large_and_binary_values() {
    let cluster = RedisCluster::start(3, 0);
    let sg = Slotgate::start(&cluster.seeds(), &[]);
    let standalone = RedisNode::standalone();
    let mut conn = RespConn::connect(sg.addr);
    let mut oracle = RespConn::connect(standalone.addr);

    // --- Inline commands, as redis-server parses them.
    let got = same_as_redis(&mut conn, &mut oracle, b"PING\r\n", 1);
    assert_eq!(got, "+PONG\r\n");
    let got = same_as_redis(&mut conn, &mut oracle, b"SET a b\r\nGET a\r\n", 2);
    assert_eq!(got, "+OK\r\n$1\r\nb\r\n");
    let got = same_as_redis(
        &mut conn,
        &mut oracle,
        b"SET \"quoted arg\" \"x y\"\r\nGET \"quoted arg\"\r\n",
        2,
    );
    assert_eq!(got, "+OK\r\n$3\r\nx y\r\n");
    // Empty lines (CRLF or bare LF, blanks) are skipped without a reply.
    let got = same_as_redis(&mut conn, &mut oracle, b"\r\n\r\n\n   \r\nPING\r\n", 1);
    assert_eq!(got, "+PONG\r\n");
    // Escapes in double quotes, single quotes, LF-only lines, extra spaces, tabs.
    same_as_redis(
        &mut conn,
        &mut oracle,
        b"SET esc \"a\\x41\\n\\t\\\"z\"\r\nGET esc\r\nSET 'single q' 'x'\r\n\
          SET sq 'a\\'b'\nGET sq\n  ECHO   spaced\t\targs  \r\nPING \"\"\r\n",
        7,
    );
    let got = text(&conn.cmd_str(&["GET", "esc"]));
    assert_eq!(got, "$6\r\naA\n\t\"z\r\n", "escapes decoded");
    // An inline line mixed into a RESP pipeline.
    let mut mixed = encode(&[b"SET", b"m", b"1"]);
    mixed.extend_from_slice(b"INCR m\r\n");
    mixed.extend(encode(&[b"GET", b"m"]));
    let got = same_as_redis(&mut conn, &mut oracle, &mixed, 3);
    assert_eq!(got, "+OK\r\n:2\r\n$1\r\n2\r\n");

    // --- A large value round-trips byte for byte, and lands whole on its node.
    let big: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(text(&conn.cmd(&[b"SET", b"big", &big])), "+OK\r\n");
    let back = conn.cmd(&[b"GET", b"big"]);
    assert!(
        bulk_payload(&back) == big,
        "GET big: the 5 MB value differs"
    );
    let owners = slot_owners(&cluster);
    let owner = cluster.node_by_port(owners[usize::from(key_slot(b"big"))]);
    let len: u64 = owner.query(&["STRLEN", "big"]);
    assert_eq!(len, big.len() as u64, "STRLEN big on its owner");

    // --- Binary keys and values with CR, LF and NUL inside.
    let cases: [(&[u8], &[u8]); 4] = [
        (b"bin\r\nkey\0", b"val\0\r\n\r\n$3\r\nfoo\r\n"),
        (b"\0", b"\r\n"),
        (b"{tag}\r\n*1\r\n", b"\0\0\0\xff\xfe"),
        (b"\xff\xfe\xfd", b"-ERR not an error\r\n"),
    ];
    for (key, value) in cases {
        assert_eq!(
            text(&conn.cmd(&[b"SET", key, value])),
            "+OK\r\n",
            "SET {key:?}"
        );
        assert_eq!(
            bulk_payload(&conn.cmd(&[b"GET", key])),
            value,
            "GET {key:?}"
        );
        let owner = cluster.node_by_port(owners[usize::from(key_slot(key))]);
        let direct: Vec<u8> = owner
            .try_query_cmd(redis::cmd("GET").arg(key))
            .unwrap_or_else(|e| panic!("GET {key:?} on its owner: {e}"));
        assert_eq!(
            direct, value,
            "{key:?} as stored on its owner {}",
            owner.port
        );
    }
    let got = conn.cmd(&[b"MGET", b"{tag}\r\n*1\r\n", b"{tag}nope"]);
    assert_eq!(
        got,
        b"*2\r\n$5\r\n\0\0\0\xff\xfe\r\n$-1\r\n",
        "{}",
        text(&got)
    );

    // --- QUIT: +OK, then the connection closes; nothing after QUIT is executed.
    let mut quitter = RespConn::connect(sg.addr);
    quitter.send_raw(b"PING\r\nQUIT\r\nSET after-quit 1\r\n");
    let rest = text(&quitter.read_to_close());
    assert_eq!(rest, "+PONG\r\n+OK\r\n", "replies up to QUIT, then EOF");
    let mut quitter = RespConn::connect(sg.addr);
    quitter.send_raw(&encode(&[b"QUIT"]));
    assert_eq!(text(&quitter.read_to_close()), "+OK\r\n");
    assert_eq!(
        text(&conn.cmd_str(&["EXISTS", "after-quit"])),
        ":0\r\n",
        "a command after QUIT was executed"
    );
    assert_eq!(text(&conn.cmd_str(&["PING"])), "+PONG\r\n");
}

/// Sends `bad` on a fresh connection and asserts that slotgate answers `want` (the replies
/// to earlier pipelined commands, then the protocol error) and closes; then that `good`,
/// opened before, still works and the process is alive.
fn assert_protocol_error(sg: &mut Slotgate, good: &mut RespConn, bad: &[u8], want: &str) {
    let mut conn = RespConn::connect(sg.addr);
    conn.send_raw(bad);
    let got = text(&conn.read_to_close());
    let shown: String = text(bad).chars().take(80).collect();
    assert_eq!(got, want, "for {shown:?}: reply, then EOF");
    let marker = format!("{}", bad.len());
    assert_eq!(
        text(&good.cmd_str(&["SET", "survivor", &marker])),
        "+OK\r\n",
        "the other connection after {shown:?}"
    );
    assert_eq!(
        bulk_payload(&good.cmd_str(&["GET", "survivor"])),
        marker.as_bytes()
    );
    assert!(sg.try_wait().is_none(), "slotgate exited after {shown:?}");
}

const MB: usize = 1024 * 1024;

#[test]
fn protocol_errors_answer_then_close_only_the_offending_connection() {
    let cluster = RedisCluster::start(3, 0);
    let mut sg = Slotgate::start(
        &cluster.seeds(),
        &[
            "--proto-max-bulk-len",
            "1mb",
            "--max-request-args",
            "10",
            "--client-query-buffer-limit",
            "2mb",
        ],
    );
    let mut good = RespConn::connect(sg.addr);
    assert_eq!(text(&good.cmd_str(&["PING"])), "+PONG\r\n");

    assert_protocol_error(
        &mut sg,
        &mut good,
        b"*abc\r\n",
        "-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_protocol_error(
        &mut sg,
        &mut good,
        b"*1\r\n$-5\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_protocol_error(
        &mut sg,
        &mut good,
        b"*2\r\n$3\r\nGET\r\n$abc\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_protocol_error(
        &mut sg,
        &mut good,
        b"*1\r\nPING\r\n",
        "-ERR Protocol error: expected '$', got 'P'\r\n",
    );
    // One byte over proto-max-bulk-len, refused at the header (before any payload).
    let over = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", MB + 1);
    assert_protocol_error(
        &mut sg,
        &mut good,
        over.as_bytes(),
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    // Exactly proto-max-bulk-len is fine.
    let value = vec![b'x'; MB];
    assert_eq!(text(&good.cmd(&[b"SET", b"max", &value])), "+OK\r\n");
    assert_eq!(bulk_payload(&good.cmd(&[b"GET", b"max"])).len(), MB);
    // max-request-args 10: ten arguments pass, eleven are a protocol error.
    let ten: Vec<String> = (0..9).map(|i| format!("{{a}}{i}")).collect();
    let mut del: Vec<&str> = vec!["DEL"];
    del.extend(ten.iter().map(String::as_str));
    assert_eq!(text(&good.cmd_str(&del)), ":0\r\n", "DEL with 10 arguments");
    let mut eleven = del.clone();
    eleven.push("{a}9");
    let eleven: Vec<&[u8]> = eleven.iter().map(|a| a.as_bytes()).collect();
    let bad = encode(&eleven);
    let mut conn = RespConn::connect(sg.addr);
    conn.send_raw(&bad);
    let got = text(&conn.read_to_close());
    assert!(
        got.starts_with("-ERR Protocol error")
            && got.ends_with("\r\n")
            && got.matches("\r\n").count() == 1,
        "11 arguments with --max-request-args 10: want one protocol error then EOF, got {got:?}"
    );
    // Unbalanced quotes in an inline command.
    assert_protocol_error(
        &mut sg,
        &mut good,
        b"SET k \"unbalanced\r\n",
        "-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    // Replies to the commands before the bad frame come first, in order, forwarded ones
    // included; the bad frame's own error comes last.
    let mut before = b"PING\r\n".to_vec();
    before.extend(encode(&[b"SET", b"pe1", b"one"]));
    before.extend(encode(&[b"GET", b"pe1"]));
    before.extend_from_slice(b"INCR pe2\r\nGET nope\r\n");
    before.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$-7\r\n");
    assert_protocol_error(
        &mut sg,
        &mut good,
        &before,
        "+PONG\r\n+OK\r\n$3\r\none\r\n:1\r\n$-1\r\n-ERR Protocol error: invalid bulk length\r\n",
    );
    // What followed the bad frame was not executed.
    let mut after = encode(&[b"SET", b"pe3", b"x"]);
    after.extend_from_slice(b"*x\r\n");
    after.extend(encode(&[b"SET", b"pe4", b"x"]));
    assert_protocol_error(
        &mut sg,
        &mut good,
        &after,
        "+OK\r\n-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_eq!(text(&good.cmd_str(&["EXISTS", "pe4"])), ":0\r\n");

    // client-query-buffer-limit 2mb: an incomplete request growing past 2 MiB (each bulk
    // within proto-max-bulk-len) is an error, then close. Exactly limit + 1 bytes, so
    // slotgate has read everything when it closes (no reset losing the reply).
    let mut huge = format!("*5\r\n$3\r\nSET\r\n${MB}\r\n").into_bytes();
    huge.extend(std::iter::repeat_n(b'a', MB));
    huge.extend_from_slice(format!("\r\n${MB}\r\n").as_bytes());
    let fill = 2 * MB + 1 - huge.len();
    assert!(fill < MB, "the frame must stay incomplete");
    huge.extend(std::iter::repeat_n(b'b', fill));
    let mut conn = RespConn::connect(sg.addr);
    conn.set_read_timeout(Duration::from_secs(10));
    conn.send_raw(&huge);
    let got = text(&conn.read_to_close());
    assert!(
        got.starts_with("-ERR ") && got.ends_with("\r\n") && got.matches("\r\n").count() == 1,
        "an incomplete {} byte request over client-query-buffer-limit 2mb: want one error \
         then EOF, got {got:?}",
        huge.len()
    );
    assert_eq!(text(&good.cmd_str(&["PING"])), "+PONG\r\n");
    assert!(sg.try_wait().is_none(), "slotgate exited");

    // The proxy counted them.
    let info = text(&good.cmd_str(&["INFO", "proxy"]));
    let errors: u64 = common::extra::info_field(&info, "protocol_errors")
        .unwrap_or_else(|| panic!("no protocol_errors in INFO proxy:\n{info}"))
        .parse()
        .unwrap();
    assert!(errors >= 10, "protocol_errors:{errors}");
}
