//! Credentials reloaded live (SIGHUP), end to end against a real Redis Cluster (issue 13,
//! item 6):
//! - a user removed or turned `off` by a reload loses its connection at its next command,
//!   which is answered with an error and not run; a user whose rules changed runs under the
//!   new rules from its next command; connections already authenticated as `default` stay
//!   when `requirepass` changes (as `CONFIG SET requirepass` leaves them on Redis), while new
//!   ones need the new password (docs/security.md, "Reloading credentials");
//! - a changed `backend-password` is used by every node connection opened after the reload;
//!   before it, a node that changed its password makes slotgate answer a clear error naming
//!   the refused handshake, never a silent hang or a wrong reply.
//!
//! Every wait is on something observable: the "config reloaded" log line, a reply.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::extra::text;
use common::ops::signal_pid;
use common::security::{SecureSlotgate, require_password_on_nodes};
use common::{RedisCluster, RespConn, key_slot, wait_for_test};

/// Generous: a reload is a file read and a few hashes, but the machine is shared.
const RELOAD_WAIT: Duration = Duration::from_secs(20);

fn cmd(conn: &mut RespConn, args: &[&str]) -> String {
    text(&conn.cmd_str(args))
}

/// Rewrites slotgate's config file, sends SIGHUP and waits for the log to say it applied.
fn reload_with(sg: &SecureSlotgate, toml: &str) {
    let before = sg.log().matches("config reloaded").count();
    std::fs::write(sg.dir().join("slotgate.toml"), toml).expect("rewrite slotgate.toml");
    signal_pid(sg.pid(), "HUP");
    wait_for_test("the reload to be applied", RELOAD_WAIT, || {
        sg.log().matches("config reloaded").count() > before
    });
    assert!(!sg.log().contains("config reload refused"), "{}", sg.log());
}

const USERS_BEFORE: &str = r#"
requirepass = "old-default-pw"
users = [
    "alice on >alice-pw allkeys +@all",
    "bob on >bob-pw allkeys +get +set",
    "carol on >carol-pw allkeys +@all",
]
"#;

/// alice removed, bob's `+set` taken away, carol turned off, a new default password.
const USERS_AFTER: &str = r#"
requirepass = "new-default-pw"
users = [
    "bob on >bob-pw allkeys +get",
    "carol off >carol-pw allkeys +@all",
]
"#;

#[test]
fn a_reload_cuts_removed_users_applies_new_rules_and_new_passwords() {
    let cluster = RedisCluster::start(3, 0);
    let sg = SecureSlotgate::start(&cluster.seeds(), USERS_BEFORE, &[], &[]);
    let login = |user: Option<&str>, password: &str| {
        let mut conn = RespConn::connect(sg.addr);
        let reply = match user {
            Some(user) => cmd(&mut conn, &["AUTH", user, password]),
            None => cmd(&mut conn, &["AUTH", password]),
        };
        assert_eq!(reply, "+OK\r\n", "AUTH {user:?}");
        conn
    };
    let mut alice = login(Some("alice"), "alice-pw");
    let mut bob = login(Some("bob"), "bob-pw");
    let mut carol = login(Some("carol"), "carol-pw");
    let mut default = login(None, "old-default-pw");
    for conn in [&mut alice, &mut bob, &mut carol, &mut default] {
        assert_eq!(cmd(conn, &["SET", "reload:k", "before"]), "+OK\r\n");
    }

    reload_with(&sg, USERS_AFTER);

    // Removed: this command is refused, not run, and the connection closes.
    alice.send_raw(&common::encode_command(&[b"SET", b"reload:k", b"by-alice"]));
    assert_eq!(
        text(&alice.read_to_close()),
        "-ERR user 'alice' was removed or disabled by a config reload; connection closed\r\n"
    );
    // Turned off: the same.
    carol.send_raw(&common::encode_command(&[b"SET", b"reload:k", b"by-carol"]));
    assert_eq!(
        text(&carol.read_to_close()),
        "-ERR user 'carol' was removed or disabled by a config reload; connection closed\r\n"
    );
    let owner = cluster.node_for_slot(key_slot(b"reload:k"));
    assert_eq!(
        owner.cmd(&["GET", "reload:k"]),
        "before",
        "no refused SET reached the node"
    );
    assert!(
        sg.log()
            .contains("user removed or disabled by a config reload")
    );

    // Still on, new rules: SET is gone, GET stays; the connection stays open.
    let refused = cmd(&mut bob, &["SET", "reload:k", "by-bob"]);
    assert!(refused.starts_with("-NOPERM"), "{refused}");
    assert!(refused.contains("'set'"), "{refused}");
    assert_eq!(cmd(&mut bob, &["GET", "reload:k"]), "$6\r\nbefore\r\n");

    // The default user keeps its open connections across a password change, as Redis does.
    assert_eq!(cmd(&mut default, &["GET", "reload:k"]), "$6\r\nbefore\r\n");

    // New connections see the new users and passwords.
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    for (user, password) in [
        (Some("alice"), "alice-pw"),
        (Some("carol"), "carol-pw"),
        (None, "old-default-pw"),
    ] {
        let mut conn = RespConn::connect(sg.addr);
        let reply = match user {
            Some(user) => cmd(&mut conn, &["AUTH", user, password]),
            None => cmd(&mut conn, &["AUTH", password]),
        };
        assert_eq!(reply, wrongpass, "AUTH {user:?} after the reload");
        assert_eq!(
            cmd(&mut conn, &["GET", "reload:k"]),
            "-NOAUTH Authentication required.\r\n"
        );
    }
    let mut fresh = login(None, "new-default-pw");
    assert_eq!(cmd(&mut fresh, &["SET", "reload:k", "after"]), "+OK\r\n");
    assert_eq!(owner.cmd(&["GET", "reload:k"]), "after");
    let log = sg.log();
    for secret in [
        "alice-pw",
        "bob-pw",
        "carol-pw",
        "old-default-pw",
        "new-default-pw",
    ] {
        assert!(!log.contains(secret), "the log shows {secret}");
    }
}

/// A connection to `node` authenticated with `password` (the fixture's own helpers speak
/// without a password).
fn node_conn(node: &common::RedisNode, password: &str) -> RespConn {
    let mut conn = RespConn::connect(SocketAddr::from(([127, 0, 0, 1], node.port)));
    assert_eq!(cmd(&mut conn, &["AUTH", password]), "+OK\r\n");
    conn
}

/// Closes every client connection of every node but the caller's own: slotgate's next
/// request to a node needs a new connection, with a new handshake.
fn drop_node_connections(cluster: &RedisCluster, password: &str) {
    for node in cluster.live_nodes() {
        let mut conn = node_conn(node, password);
        let killed = cmd(
            &mut conn,
            &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"],
        );
        assert!(killed.starts_with(':'), "{killed}");
        // Gone for sure: the node lists only this connection.
        wait_for_test(
            "the node to drop slotgate's connections",
            RELOAD_WAIT,
            || {
                let list = text(&conn.cmd_str(&["CLIENT", "LIST", "TYPE", "normal"]));
                list.lines().filter(|l| l.contains("id=")).count() == 1
            },
        );
    }
}

/// One key on each primary.
fn keys(cluster: &RedisCluster) -> Vec<String> {
    let mut keys: Vec<(u16, String)> = Vec::new();
    for i in 0.. {
        let key = format!("bp:{i}");
        let port = cluster.node_for_slot(key_slot(key.as_bytes())).port;
        if !keys.iter().any(|(p, _)| *p == port) {
            keys.push((port, key));
        }
        if keys.len() == cluster.primaries().len() {
            break;
        }
    }
    keys.into_iter().map(|(_, key)| key).collect()
}

#[test]
fn a_reloaded_backend_password_authenticates_new_node_connections() {
    let cluster = RedisCluster::start(3, 0);
    let keys = keys(&cluster);
    require_password_on_nodes(&cluster, "node-pw-1");
    // A short retry deadline: the refused handshake is retried until then, and the test
    // waits for the error it ends with.
    let config =
        |password: &str| format!("backend-password = {password:?}\nretry-deadline = \"1s\"\n");
    let sg = SecureSlotgate::start(&cluster.seeds(), &config("node-pw-1"), &[], &[]);
    let mut client = RespConn::connect(sg.addr);
    for key in &keys {
        assert_eq!(cmd(&mut client, &["SET", key, "v1"]), "+OK\r\n", "{key}");
    }

    // The nodes change their password; slotgate still has the old one.
    for node in cluster.live_nodes() {
        let mut conn = node_conn(node, "node-pw-1");
        assert_eq!(
            cmd(&mut conn, &["CONFIG", "SET", "requirepass", "node-pw-2"]),
            "+OK\r\n"
        );
    }
    drop_node_connections(&cluster, "node-pw-2");
    // Every key is refused with an error naming the node and the refused handshake.
    for key in &keys {
        let reply = cmd(&mut client, &["GET", key]);
        assert!(reply.starts_with("-"), "{key}: {reply}");
        assert!(reply.contains("handshake refused"), "{key}: {reply}");
        assert!(reply.contains("WRONGPASS"), "{key}: {reply}");
    }

    reload_with(&sg, &config("node-pw-2"));
    for key in &keys {
        assert_eq!(cmd(&mut client, &["GET", key]), "$2\r\nv1\r\n", "{key}");
        assert_eq!(cmd(&mut client, &["SET", key, "v2"]), "+OK\r\n", "{key}");
    }
    // The new connections are there and were made after the reload, with the new password:
    // each node lists a client besides this probe, and its only AUTH failures are the
    // handshakes before the reload.
    for node in cluster.live_nodes() {
        let mut conn = node_conn(node, "node-pw-2");
        let list = text(&conn.cmd_str(&["CLIENT", "LIST", "TYPE", "normal"]));
        assert!(
            list.lines().filter(|l| l.contains("id=")).count() >= 2,
            "node {} has no slotgate connection: {list}",
            node.port
        );
    }
    let log = sg.log();
    assert!(
        !log.contains("node-pw-1") && !log.contains("node-pw-2"),
        "{log}"
    );
}
