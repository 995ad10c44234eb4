//! Client authentication, ACL users and the dangerous-command gate, end to end (issue 8,
//! items 1 and 5), over real sockets against a real Redis Cluster.
//!
//! Replies are compared byte for byte with Redis' own texts:
//! - before AUTH: `-NOAUTH Authentication required.`; HELLO without AUTH: `-NOAUTH HELLO
//!   must be called with the client already authenticated, ...`;
//! - a failed AUTH: `-WRONGPASS invalid username-password pair or user is disabled.`;
//! - `AUTH <password>` with no password configured: Redis' `-ERR AUTH <password> called
//!   without any password configured for the default user. ...`;
//! - a refused command or key: `-NOPERM ...` exactly as the redis-server on this machine
//!   words it for the same users (set up there with `ACL SETUSER`) and commands;
//! - FLUSHALL/FLUSHDB/DEBUG refused by default, naming the key that enables them.
//!
//! Users come from a TOML config file (`users = [...]`), a users file in ACL format and
//! flags; passwords from flags, files and `#<sha256>` hashes. A configuration with a bad
//! rule is refused at start with the user and rule named and no password shown. Nothing
//! slotgate logs contains a password, at debug and at trace level.

mod common;

use std::process::Command;
use std::time::Duration;

use common::extra::text;
use common::security::{
    SecureSlotgate, require_password_on_nodes, run_expecting_failure, sha256_hex,
};
use common::{RedisCluster, RedisNode, RespConn, key_slot, redis_cli_path, wait_for_test};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";

/// One command's reply as text.
fn cmd(conn: &mut RespConn, args: &[&str]) -> String {
    text(&conn.cmd_str(args))
}

/// The value of `key` read straight from the node owning it (`""` when missing).
fn on_cluster(cluster: &RedisCluster, key: &str) -> String {
    cluster
        .node_for_slot(key_slot(key.as_bytes()))
        .cmd(&["GET", key])
}

const USERS: &str = r#"
users = [
    "alice on >alice-pw ~cache:* +get +set +config|get +ping",
    "bob off >bob-pw allkeys allcommands",
    "carol on >carol-1 >carol-2 allkeys +@all -@dangerous",
    "ci on nopass ~ci:* +@read +@write +@connection",
]
"#;

#[test]
fn requirepass_answers_noauth_until_the_client_authenticates() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), "", &[], &["--requirepass", "s3cret"]);
    let mut conn = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut conn, &["PING"]), NOAUTH);
    assert_eq!(cmd(&mut conn, &["SET", "k", "v"]), NOAUTH);
    assert_eq!(cmd(&mut conn, &["CLUSTER", "SLOTS"]), NOAUTH);
    assert_eq!(
        on_cluster(&cluster, "k"),
        "",
        "a refused SET must not reach the cluster"
    );
    assert_eq!(cmd(&mut conn, &["AUTH", "wrong"]), WRONGPASS);
    assert_eq!(
        cmd(&mut conn, &["GET", "k"]),
        NOAUTH,
        "a failed AUTH changes nothing"
    );
    assert_eq!(cmd(&mut conn, &["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(on_cluster(&cluster, "k"), "v");
    // AUTH default <password> is the same user.
    let mut other = RespConn::connect(sg.addr);
    assert_eq!(
        cmd(&mut other, &["GET", "k"]),
        NOAUTH,
        "authentication is per connection"
    );
    assert_eq!(cmd(&mut other, &["AUTH", "default", "s3cret"]), "+OK\r\n");
    assert_eq!(cmd(&mut other, &["GET", "k"]), "$1\r\nv\r\n");
    // Wrong arity is Redis' syntax error, not an authentication failure.
    assert_eq!(
        cmd(&mut other, &["AUTH", "a", "b", "c"]),
        "-ERR syntax error\r\n"
    );
}

#[test]
fn pipelined_commands_before_auth_are_all_refused() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), "", &[], &["--requirepass", "s3cret"]);
    let mut conn = RespConn::connect(sg.addr);
    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend(common::encode_command(&[
            b"SET",
            format!("p:{i}").as_bytes(),
            b"x",
        ]));
    }
    pipeline.extend(common::encode_command(&[b"AUTH", b"s3cret"]));
    pipeline.extend(common::encode_command(&[b"SET", b"p:after", b"y"]));
    conn.send_raw(&pipeline);
    for i in 0..50 {
        assert_eq!(text(&conn.read_reply()), NOAUTH, "reply {i}");
    }
    assert_eq!(text(&conn.read_reply()), "+OK\r\n");
    assert_eq!(text(&conn.read_reply()), "+OK\r\n");
    for i in 0..50 {
        assert_eq!(on_cluster(&cluster, &format!("p:{i}")), "");
    }
    assert_eq!(on_cluster(&cluster, "p:after"), "y");
}

#[test]
fn named_users_authenticate_with_auth_user_password() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), USERS, &[], &["--requirepass", "s3cret"]);
    let mut conn = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut conn, &["AUTH", "alice", "wrong"]), WRONGPASS);
    assert_eq!(
        cmd(&mut conn, &["AUTH", "bob", "bob-pw"]),
        WRONGPASS,
        "bob is off"
    );
    assert_eq!(cmd(&mut conn, &["AUTH", "nobody", "x"]), WRONGPASS);
    assert_eq!(cmd(&mut conn, &["AUTH", "ALICE", "alice-pw"]), WRONGPASS);
    assert_eq!(cmd(&mut conn, &["AUTH", "alice", "alice-pw"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["SET", "cache:1", "v"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["GET", "cache:1"]), "$1\r\nv\r\n");

    // Either of carol's passwords works; ci is nopass, so any password does.
    for (user, password) in [
        ("carol", "carol-1"),
        ("carol", "carol-2"),
        ("ci", "anything"),
    ] {
        let mut conn = RespConn::connect(sg.addr);
        assert_eq!(
            cmd(&mut conn, &["AUTH", user, password]),
            "+OK\r\n",
            "{user}"
        );
        assert_eq!(cmd(&mut conn, &["PING"]), "+PONG\r\n", "{user}");
    }

    // A later AUTH switches user; a failed one keeps the current user.
    assert_eq!(cmd(&mut conn, &["AUTH", "carol", "nope"]), WRONGPASS);
    assert_eq!(cmd(&mut conn, &["GET", "cache:1"]), "$1\r\nv\r\n");
    assert_eq!(cmd(&mut conn, &["AUTH", "ci", "x"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["SET", "ci:1", "w"]), "+OK\r\n");
}

#[test]
fn hello_3_auth_authenticates_and_switches_protocol() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), USERS, &[], &["--requirepass", "s3cret"]);
    let mut conn = RespConn::connect(sg.addr);
    let refused = cmd(&mut conn, &["HELLO", "3"]);
    assert!(
        refused.starts_with(
            "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO"
        ),
        "{refused:?}"
    );
    assert_eq!(
        cmd(&mut conn, &["HELLO", "3", "AUTH", "alice", "wrong"]),
        WRONGPASS
    );
    assert_eq!(cmd(&mut conn, &["GET", "cache:1"]), NOAUTH);
    let hello = cmd(&mut conn, &["HELLO", "3", "AUTH", "alice", "alice-pw"]);
    assert!(hello.starts_with('%'), "a RESP3 map: {hello:?}");
    assert!(hello.contains("proto\r\n:3\r\n"), "{hello:?}");
    assert_eq!(cmd(&mut conn, &["SET", "cache:h", "v"]), "+OK\r\n");

    // The default user through HELLO, with SETNAME after AUTH, as redis-py sends it.
    let mut conn = RespConn::connect(sg.addr);
    let hello = cmd(
        &mut conn,
        &["HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "app"],
    );
    assert!(hello.starts_with('*'), "a RESP2 array: {hello:?}");
    assert_eq!(cmd(&mut conn, &["CLIENT", "GETNAME"]), "$3\r\napp\r\n");
}

/// A standalone redis-server with the users of [`USERS`] (`ACL SETUSER`), the oracle for
/// slotgate's replies to them.
fn oracle_with_users() -> RedisNode {
    let node = RedisNode::standalone();
    let rules = USERS
        .lines()
        .filter_map(|line| line.trim().strip_prefix('"')?.strip_suffix("\","));
    for rule in rules {
        let mut args = vec!["ACL", "SETUSER"];
        args.extend(rule.split_whitespace());
        assert_eq!(node.cmd(&args), "OK", "ACL SETUSER {rule}");
    }
    node
}

/// Sends `args` to slotgate and to the oracle; the replies must be the same bytes.
fn same_as_redis(ours: &mut RespConn, redis: &mut RespConn, args: &[&str]) -> String {
    let (got, want) = (cmd(ours, args), cmd(redis, args));
    assert_eq!(
        got, want,
        "{args:?}: slotgate (left) vs redis-server (right)"
    );
    got
}

#[test]
fn noperm_names_the_command_and_refuses_keys_outside_the_patterns() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(
        &cluster.seeds(),
        USERS,
        &[],
        &["--requirepass", "s3cret", "--enable-flush-commands"],
    );
    // The expected texts are the running redis-server's, given the same users and commands.
    let oracle = oracle_with_users();
    let session = |user: &str, password: &str| {
        let mut ours = RespConn::connect(sg.addr);
        let mut redis = RespConn::connect(oracle.addr);
        same_as_redis(&mut ours, &mut redis, &["AUTH", user, password]);
        (ours, redis)
    };
    let (mut conn, mut redis) = session("alice", "alice-pw");
    for args in [
        &["FLUSHALL"][..],
        &["config", "set", "maxmemory", "1"],
        &["DEL", "cache:1"],
        &["GET", "secret"],
        &["SET", "secret", "x"],
    ] {
        let reply = same_as_redis(&mut conn, &mut redis, args);
        assert!(reply.starts_with("-NOPERM "), "{args:?} answered {reply:?}");
    }
    assert_eq!(on_cluster(&cluster, "secret"), "");
    // The connection stays usable, and allowed commands work.
    assert_eq!(cmd(&mut conn, &["SET", "cache:ok", "1"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["PING"]), "+PONG\r\n");

    // carol: +@all -@dangerous, every key.
    let (mut carol, mut redis) = session("carol", "carol-1");
    assert_eq!(cmd(&mut carol, &["SET", "anything", "1"]), "+OK\r\n");
    for args in [&["KEYS", "*"][..], &["FLUSHALL"]] {
        let reply = same_as_redis(&mut carol, &mut redis, args);
        assert!(reply.starts_with("-NOPERM "), "{args:?} answered {reply:?}");
    }

    // ci: ~ci:* only; a multi-key command with one key outside is refused whole.
    let (mut ci, mut redis) = session("ci", "whatever");
    let reply = same_as_redis(&mut ci, &mut redis, &["MSET", "ci:1", "a", "other", "b"]);
    assert!(reply.starts_with("-NOPERM "), "MSET answered {reply:?}");
    assert_eq!(on_cluster(&cluster, "ci:1"), "");
    assert_eq!(cmd(&mut ci, &["MSET", "ci:1", "a", "ci:2", "b"]), "+OK\r\n");
}

#[test]
fn without_a_password_no_auth_is_needed_like_redis() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), "", &[], &[]);
    let mut conn = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut conn, &["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(
        cmd(&mut conn, &["AUTH", "anything"]),
        "-ERR AUTH <password> called without any password configured for the default user. \
         Are you sure your configuration is correct?\r\n"
    );
    assert_eq!(cmd(&mut conn, &["AUTH", "default", "anything"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["AUTH", "nobody", "anything"]), WRONGPASS);
    assert_eq!(cmd(&mut conn, &["GET", "k"]), "$1\r\nv\r\n");
}

#[test]
fn passwords_from_files_and_hashes() {
    let cluster = RedisCluster::start(3, 0);
    let acl = format!(
        "# users, as in a Redis ACL file\nuser dave on #{} ~* +@all\n",
        sha256_hex("dave-pw")
    );
    let sg = SecureSlotgate::start(
        &cluster.seeds(),
        "requirepass-file = \"{dir}/requirepass\"\nusers-file = \"{dir}/users.acl\"\n",
        &[("requirepass", "from-a-secret\n"), ("users.acl", &acl)],
        &[],
    );
    let mut conn = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut conn, &["GET", "k"]), NOAUTH);
    // The file's trailing newline is not part of the password.
    assert_eq!(cmd(&mut conn, &["AUTH", "from-a-secret\n"]), WRONGPASS);
    assert_eq!(cmd(&mut conn, &["AUTH", "from-a-secret"]), "+OK\r\n");
    let mut dave = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut dave, &["AUTH", "dave", "dave-pw"]), "+OK\r\n");
    assert_eq!(cmd(&mut dave, &["SET", "k", "v"]), "+OK\r\n");
}

#[test]
fn redis_cli_authenticates_with_a_password_or_a_user() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), USERS, &[], &["--requirepass", "s3cret"]);
    let port = sg.port.to_string();
    let run = |args: &[&str]| {
        let out = Command::new(redis_cli_path())
            .args(["-h", "127.0.0.1", "-p", &port, "--no-auth-warning"])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(run(&["-a", "s3cret", "SET", "cli", "1"]), "OK");
    assert_eq!(run(&["-a", "s3cret", "GET", "cli"]), "1");
    assert_eq!(
        run(&[
            "--user",
            "alice",
            "--pass",
            "alice-pw",
            "SET",
            "cache:cli",
            "2"
        ]),
        "OK"
    );
    // RESP3 through HELLO 3 AUTH, as redis-cli -3 sends it.
    assert_eq!(
        run(&[
            "-3",
            "--user",
            "alice",
            "--pass",
            "alice-pw",
            "GET",
            "cache:cli"
        ]),
        "2"
    );
    assert!(run(&["GET", "cli"]).contains("NOAUTH"));
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), which the human log format writes
/// around levels and field names even into a file.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs failed and successful AUTHs with slotgate logging at `level`, then checks that the
/// log really is at that level (a line of it is there) and holds no password, attempted or
/// configured.
fn passwords_never_reach_the_log_at(level: &str) {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(
        &cluster.seeds(),
        USERS,
        &[],
        &["--requirepass", "s3cret", "--log-level", level],
    );
    let mut conn = RespConn::connect(sg.addr);
    for attempt in ["wrong-guess-1", "wrong-guess-2"] {
        assert_eq!(cmd(&mut conn, &["AUTH", attempt]), WRONGPASS);
        assert_eq!(cmd(&mut conn, &["AUTH", "alice", attempt]), WRONGPASS);
        assert_eq!(
            cmd(&mut conn, &["HELLO", "3", "AUTH", "alice", attempt]),
            WRONGPASS
        );
    }
    assert_eq!(cmd(&mut conn, &["AUTH", "alice", "alice-pw"]), "+OK\r\n");
    assert_eq!(cmd(&mut conn, &["AUTH", "s3cret"]), "+OK\r\n");
    // A failed AUTH logs "authentication failed" at debug, a successful one
    // "authenticated" at trace: a line at `level` shows the level took effect.
    drop(conn);
    let marker = format!(" {} ", level.to_uppercase());
    // Generous: the line is written within milliseconds; this bounds a loaded machine.
    wait_for_test(
        &format!("a {marker:?} line in slotgate's log"),
        Duration::from_secs(10),
        || {
            without_colours(&sg.log())
                .lines()
                .any(|line| line.contains(&marker))
        },
    );
    let log = without_colours(&sg.log());
    for secret in [
        "wrong-guess-1",
        "wrong-guess-2",
        "alice-pw",
        "s3cret",
        "carol-1",
        "bob-pw",
    ] {
        assert!(
            !log.contains(secret),
            "the log at {level} contains {secret:?}"
        );
    }
}

#[test]
fn passwords_never_reach_the_log_at_debug() {
    passwords_never_reach_the_log_at("debug");
}

#[test]
fn passwords_never_reach_the_log_at_trace() {
    passwords_never_reach_the_log_at("trace");
}

#[test]
fn flush_commands_are_refused_unless_enabled() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), "", &[], &[]);
    let mut conn = RespConn::connect(sg.addr);
    assert_eq!(cmd(&mut conn, &["SET", "keep", "1"]), "+OK\r\n");
    assert_eq!(
        cmd(&mut conn, &["FLUSHALL"]),
        "-ERR slotgate refuses FLUSHALL by default: set enable-flush-commands = true to allow it\r\n"
    );
    assert_eq!(
        cmd(&mut conn, &["flushdb", "ASYNC"]),
        "-ERR slotgate refuses FLUSHDB by default: set enable-flush-commands = true to allow it\r\n"
    );
    assert_eq!(
        cmd(&mut conn, &["DEBUG", "SLEEP", "0"]),
        "-ERR slotgate refuses DEBUG by default: set enable-debug-command = true to allow it\r\n"
    );
    // Commands Redis allows by default stay allowed.
    assert!(cmd(&mut conn, &["KEYS", "*"]).starts_with('*'));
    assert_eq!(cmd(&mut conn, &["SCRIPT", "FLUSH"]), "+OK\r\n");
    assert_eq!(on_cluster(&cluster, "keep"), "1");
    drop(conn);
    drop(sg);

    let enabled =
        SecureSlotgate::start(&cluster.seeds(), "enable-flush-commands = true\n", &[], &[]);
    let mut conn = RespConn::connect(enabled.addr);
    assert_eq!(cmd(&mut conn, &["FLUSHALL"]), "+OK\r\n");
    assert_eq!(on_cluster(&cluster, "keep"), "");
    assert_eq!(cmd(&mut conn, &["DBSIZE"]), ":0\r\n");
}

#[test]
fn backend_password_reaches_every_node() {
    let cluster = RedisCluster::start(3, 0);
    require_password_on_nodes(&cluster, "n0de-s3cret");
    let sg = SecureSlotgate::start(
        &cluster.seeds(),
        "backend-password-file = \"{dir}/backend-secret\"\n",
        &[("backend-secret", "n0de-s3cret\n")],
        &[],
    );
    let mut conn = RespConn::connect(sg.addr);
    // Keys on every node: discovery and data connections all authenticated.
    for i in 0..30 {
        let key = format!("b:{i}");
        assert_eq!(cmd(&mut conn, &["SET", &key, "v"]), "+OK\r\n", "{key}");
        assert_eq!(cmd(&mut conn, &["GET", &key]), "$1\r\nv\r\n", "{key}");
    }
    assert!(!sg.log().contains("n0de-s3cret"));
}

/// Needs no wiring: the configuration is validated before anything starts.
#[test]
fn a_bad_user_rule_stops_the_start_naming_user_and_rule_but_no_password() {
    let (code, output) = run_expecting_failure(&[
        "--seeds",
        "127.0.0.1:1",
        "--users",
        "alice on >hunter2 ~cache:* +gte",
        "--users",
        "bob on hunter3",
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("key `users`: entry 1: user `alice`, rule 4 `+gte`: unknown command `gte`"),
        "{output}"
    );
    assert!(
        output.contains("entry 2: user `bob`, rule 2 (not shown, in case it is a password)"),
        "{output}"
    );
    assert!(
        !output.contains("hunter2") && !output.contains("hunter3"),
        "{output}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pass = dir.path().join("pass");
    std::fs::write(&pass, "x").unwrap();
    let (code, output) = run_expecting_failure(&[
        "--seeds",
        "127.0.0.1:1",
        "--requirepass",
        "hunter4",
        "--requirepass-file",
        pass.to_str().unwrap(),
        "--backend-user",
        "slotgate",
    ]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("set only one of requirepass and requirepass-file"),
        "{output}"
    );
    assert!(
        output.contains("key `backend-user`: needs backend-password"),
        "{output}"
    );
    assert!(!output.contains("hunter4"), "{output}");
}
