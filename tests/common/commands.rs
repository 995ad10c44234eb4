//! Helpers for the command-compatibility tests (`tests/commands_*.rs`, issue 4).
//!
//! - [`Reply`] / [`parse`]: a decoded RESP2/RESP3 reply, so tests can assert on values
//!   (`Reply::Nil`, `Reply::Int(3)`, arrays in order) rather than on bytes; [`Client`] wraps
//!   a [`RespConn`] and answers each command with both the raw bytes and the decoded reply.
//! - [`keys_by_primary`]: key names that live on each primary (by the live slot map).
//! - [`Transcript`]: the same commands on slotgate and on a standalone redis-server (the
//!   oracle), collecting every byte-level difference for one report.
//! - [`python`]: runs a redis-py snippet (a real client's pub/sub or pipeline behaviour)
//!   and returns its stdout.
//! - [`rss_kib`]: a process's resident memory, to show a buffer stays bounded.
//! - [`begin_migration`] / [`migrate_keys`] / [`finish_migration`]: a slot migration in
//!   steps, to run commands while a slot is half migrated (ASK).
//! - [`Problems`]: checks that record a failure and go on, so one slotgate bug does not hide
//!   the next; the test fails at its end listing them all.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::RedisCluster;
use super::extra::slot_owners;
use super::{RespConn, key_slot};

/// A decoded reply. RESP2 and RESP3 nulls are both [`Reply::Nil`]; RESP3 sets and maps keep
/// their own variants so a test can tell the protocol apart when it wants to.
#[derive(Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Push(Vec<Reply>),
    Double(String),
    Bool(bool),
    BigNumber(String),
    Verbatim(String),
}

/// Bulk strings are shown as (lossy) text, so failure messages stay readable.
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Simple(s) => write!(f, "+{s:?}"),
            Reply::Error(s) => write!(f, "-{s:?}"),
            Reply::Int(i) => write!(f, "{i}"),
            Reply::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Reply::Nil => write!(f, "nil"),
            Reply::Array(items) => f.debug_list().entries(items).finish(),
            Reply::Map(pairs) => f
                .debug_map()
                .entries(pairs.iter().map(|(k, v)| (k, v)))
                .finish(),
            Reply::Set(items) => write!(f, "set{items:?}"),
            Reply::Push(items) => write!(f, ">{items:?}"),
            Reply::Double(d) => write!(f, ",{d}"),
            Reply::Bool(b) => write!(f, "#{b}"),
            Reply::BigNumber(n) => write!(f, "({n}"),
            Reply::Verbatim(s) => write!(f, "={s:?}"),
        }
    }
}

impl Reply {
    /// The text of a bulk, simple, verbatim or error reply; panics on anything else.
    pub fn str(&self) -> String {
        match self {
            Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Simple(s) | Reply::Error(s) | Reply::Verbatim(s) => s.clone(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// The elements of an array, set or push reply; panics on anything else.
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(a) | Reply::Set(a) | Reply::Push(a) => a,
            other => panic!("expected an array reply, got {other:?}"),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The elements as text (bulk/simple strings; nil as `"<nil>"`).
    pub fn strings(&self) -> Vec<String> {
        self.items()
            .iter()
            .map(|r| match r {
                Reply::Nil => "<nil>".to_owned(),
                r => r.str(),
            })
            .collect()
    }

    pub fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }
}

/// Decodes one complete reply frame (exactly the bytes [`RespConn`] returns).
pub fn parse(bytes: &[u8]) -> Reply {
    let (reply, used) = parse_at(bytes, 0)
        .unwrap_or_else(|| panic!("cannot parse reply {:?}", String::from_utf8_lossy(bytes)));
    assert_eq!(
        used,
        bytes.len(),
        "trailing bytes after a reply: {:?}",
        String::from_utf8_lossy(bytes)
    );
    reply
}

fn line_at(bytes: &[u8], at: usize) -> Option<(&str, usize)> {
    let end = at + bytes.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    Some((std::str::from_utf8(&bytes[at..end]).ok()?, end + 2))
}

fn parse_at(bytes: &[u8], at: usize) -> Option<(Reply, usize)> {
    let kind = *bytes.get(at)?;
    let (line, next) = line_at(bytes, at + 1)?;
    let many = |count: i64, mut next: usize| -> Option<(Vec<Reply>, usize)> {
        let mut items = Vec::new();
        for _ in 0..count {
            let (item, after) = parse_at(bytes, next)?;
            items.push(item);
            next = after;
        }
        Some((items, next))
    };
    Some(match kind {
        b'+' => (Reply::Simple(line.to_owned()), next),
        b'-' => (Reply::Error(line.to_owned()), next),
        b':' => (Reply::Int(line.parse().ok()?), next),
        b'_' => (Reply::Nil, next),
        b',' => (Reply::Double(line.to_owned()), next),
        b'#' => (Reply::Bool(line == "t"), next),
        b'(' => (Reply::BigNumber(line.to_owned()), next),
        b'$' | b'!' | b'=' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some((Reply::Nil, next));
            }
            let end = next + len as usize;
            let payload = bytes.get(next..end)?.to_vec();
            let reply = match kind {
                b'$' => Reply::Bulk(payload),
                b'!' => Reply::Error(String::from_utf8_lossy(&payload).into_owned()),
                _ => Reply::Verbatim(String::from_utf8_lossy(payload.get(4..)?).into_owned()),
            };
            (reply, end + 2)
        }
        b'*' | b'~' | b'>' => {
            let count: i64 = line.parse().ok()?;
            if count < 0 {
                return Some((Reply::Nil, next));
            }
            let (items, next) = many(count, next)?;
            let reply = match kind {
                b'*' => Reply::Array(items),
                b'~' => Reply::Set(items),
                _ => Reply::Push(items),
            };
            (reply, next)
        }
        b'%' => {
            let count: i64 = line.parse().ok()?;
            let (items, next) = many(count * 2, next)?;
            let mut pairs = Vec::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            (Reply::Map(pairs), next)
        }
        b'|' => {
            // An attribute: skip it, the reply follows.
            let count: i64 = line.parse().ok()?;
            let (_, next) = many(count * 2, next)?;
            return parse_at(bytes, next);
        }
        _ => return None,
    })
}

/// A raw connection that answers with decoded replies too.
pub struct Client {
    pub conn: RespConn,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client {
            conn: RespConn::connect(addr),
        }
    }

    /// Sends `line` split on spaces (no quoting) and returns the decoded reply.
    pub fn call(&mut self, line: &str) -> Reply {
        parse(&self.raw(line))
    }

    /// Sends `line` split on spaces and returns the raw reply bytes.
    pub fn raw(&mut self, line: &str) -> Vec<u8> {
        let args: Vec<&str> = line.split(' ').filter(|a| !a.is_empty()).collect();
        self.conn.cmd_str(&args)
    }

    /// Sends the given arguments (binary-safe) and returns the decoded reply.
    pub fn call_args<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(AsRef::as_ref).collect();
        parse(&self.conn.cmd(&args))
    }

    /// Sends without reading (to pipeline or to block).
    pub fn send(&mut self, line: &str) {
        let args: Vec<&[u8]> = line
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(str::as_bytes)
            .collect();
        self.conn.send_raw(&super::resp::encode_command(&args));
    }

    /// Reads one reply and decodes it.
    pub fn read(&mut self) -> Reply {
        parse(&self.conn.read_reply())
    }

    /// Reads one reply; `None` if nothing arrives within `timeout`.
    pub fn read_within(&mut self, timeout: Duration) -> Option<Reply> {
        self.conn.set_read_timeout(timeout);
        let reply = self.conn.try_read_reply();
        self.conn.set_read_timeout(Duration::from_secs(5));
        reply.ok().map(|r| parse(&r))
    }

    /// Asserts the connection still answers `PING` with `+PONG`.
    pub fn assert_usable(&mut self, after: &str) {
        assert_eq!(
            self.call("PING"),
            Reply::Simple("PONG".into()),
            "the connection is not usable after {after}"
        );
    }
}

/// Raw bytes of a reply, shown as text.
pub fn show(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// `per_primary` key names (`{prefix}:<n>`) for each current primary, in the order of
/// [`RedisCluster::primaries`]; every key lives in its own slot where possible. Returns
/// (primary port, keys).
pub fn keys_by_primary(
    cluster: &RedisCluster,
    prefix: &str,
    per_primary: usize,
) -> Vec<(u16, Vec<String>)> {
    let owners = slot_owners(cluster);
    let mut out: Vec<(u16, Vec<String>)> = cluster
        .primaries()
        .iter()
        .map(|p| (p.port, Vec::new()))
        .collect();
    let mut i = 0u64;
    while out.iter().any(|(_, keys)| keys.len() < per_primary) {
        let key = format!("{prefix}:{i}");
        i += 1;
        let port = owners[usize::from(key_slot(key.as_bytes()))];
        if let Some((_, keys)) = out
            .iter_mut()
            .find(|(p, keys)| *p == port && keys.len() < per_primary)
        {
            keys.push(key);
        }
        assert!(i < 1_000_000, "no keys found for some primary");
    }
    out
}

/// A hash tag (without braces) whose slot the primary on `port` serves.
pub fn tag_on(cluster: &RedisCluster, port: u16, prefix: &str) -> String {
    let owners = slot_owners(cluster);
    (0u64..)
        .map(|i| format!("{prefix}{i}"))
        .find(|tag| owners[usize::from(key_slot(tag.as_bytes()))] == port)
        .expect("some tag hashes to every primary")
}

/// The same commands on slotgate and on a standalone redis-server, one connection each;
/// every difference is recorded, so a test reports them all at once.
pub struct Transcript {
    pub sg: RespConn,
    pub oracle: RespConn,
    pub differences: Vec<String>,
}

impl Transcript {
    pub fn new(sg: SocketAddr, oracle: SocketAddr) -> Transcript {
        Transcript {
            sg: RespConn::connect(sg),
            oracle: RespConn::connect(oracle),
            differences: Vec::new(),
        }
    }

    /// Runs `line` (split on spaces) on both; records a difference; returns slotgate's reply.
    pub fn run(&mut self, line: &str) -> Reply {
        let args: Vec<&[u8]> = line
            .split(' ')
            .filter(|a| !a.is_empty())
            .map(str::as_bytes)
            .collect();
        self.run_args(&args)
    }

    pub fn run_args(&mut self, args: &[&[u8]]) -> Reply {
        let ours = self.sg.cmd(args);
        let theirs = self.oracle.cmd(args);
        if ours != theirs {
            let shown: Vec<String> = args.iter().map(|a| show(a)).collect();
            self.differences.push(format!(
                "{}: slotgate {:?} vs redis {:?}",
                shown.join(" "),
                show(&ours),
                show(&theirs)
            ));
        }
        parse(&ours)
    }

    /// Reads one more reply (or pushed frame) from both, records a difference, and returns
    /// slotgate's; `what` names it in the report.
    pub fn next(&mut self, what: &str) -> Reply {
        let ours = self.sg.try_read_reply();
        let theirs = self.oracle.read_reply();
        let ours = match ours {
            Ok(ours) => ours,
            Err(e) => {
                self.differences.push(format!(
                    "{what}: slotgate sent nothing ({e}) vs redis {:?}",
                    show(&theirs)
                ));
                return Reply::Error(format!("slotgate sent nothing: {e}"));
            }
        };
        if ours != theirs {
            self.differences.push(format!(
                "{what}: slotgate {:?} vs redis {:?}",
                show(&ours),
                show(&theirs)
            ));
        }
        parse(&ours)
    }

    /// Panics listing every difference, if any, under `what`.
    pub fn assert_same(&self, what: &str) {
        assert!(
            self.differences.is_empty(),
            "{what}: slotgate differs from a standalone redis-server:\n  {}",
            self.differences.join("\n  ")
        );
    }
}

/// Runs `python3 -c <script>` (redis-py available), waits up to `timeout`, and returns its
/// stdout; panics with stdout and stderr if it fails or hangs.
pub fn python(script: &str, timeout: Duration) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("wait for python3").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("python3 output");
            panic!(
                "python3 ran longer than {timeout:?}; stdout:\n{}\nstderr:\n{}",
                show(&out.stdout),
                show(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "python3 failed ({}); stdout:\n{}\nstderr:\n{}",
        out.status,
        show(&out.stdout),
        show(&out.stderr)
    );
    show(&out.stdout)
}

/// Resident memory of `pid` in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// First half of a manual slot migration: `to` IMPORTING, `from` MIGRATING. Keys stay on
/// `from` until [`migrate_keys`] moves them; [`finish_migration`] completes it.
pub fn begin_migration(slot: u16, from: &super::RedisNode, to: &super::RedisNode) {
    let slot_s = slot.to_string();
    to.query::<()>(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from.node_id()]);
    from.query::<()>(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to.node_id()]);
}

/// `MIGRATE` of `keys` from `from` to `to` (no REPLACE, as `redis-cli --cluster reshard`
/// does by default); the node's reply, `Err` with its error text.
pub fn migrate_keys(
    from: &super::RedisNode,
    to: &super::RedisNode,
    keys: &[&str],
) -> Result<redis::Value, String> {
    let mut migrate = redis::cmd("MIGRATE");
    migrate
        .arg("127.0.0.1")
        .arg(to.port)
        .arg("")
        .arg(0)
        .arg(10_000)
        .arg("KEYS")
        .arg(keys);
    from.try_query_cmd(&migrate)
}

/// Moves whatever `slot` still holds on `from`, then assigns the slot to `to` on every
/// primary and waits until every live node agrees. Returns the MIGRATE error, if any.
pub fn finish_migration(
    cluster: &RedisCluster,
    slot: u16,
    from: &super::RedisNode,
    to: &super::RedisNode,
) -> Result<(), String> {
    let mut get = redis::cmd("CLUSTER");
    get.arg("GETKEYSINSLOT").arg(slot).arg(1000);
    let keys: Vec<String> = from.try_query_cmd(&get)?;
    let mut result = Ok(());
    if !keys.is_empty() {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        if let Err(e) = migrate_keys(from, to, &keys) {
            result = Err(e);
        }
    }
    let slot_s = slot.to_string();
    let set_node = ["CLUSTER", "SETSLOT", &slot_s, "NODE", &to.node_id()];
    to.query::<()>(&set_node);
    from.query::<()>(&set_node);
    for primary in cluster.primaries() {
        if primary.port != to.port && primary.port != from.port {
            primary.query::<()>(&set_node);
        }
    }
    super::wait_for_test(
        &format!("every node to agree port {} owns slot {slot}", to.port),
        Duration::from_secs(20),
        || {
            cluster.live_nodes().all(|node| {
                super::cluster::cluster_nodes(node).is_ok_and(|lines| {
                    lines.iter().any(|l| {
                        l.port == to.port && l.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
                    })
                })
            })
        },
    );
    result
}

/// Problems found along a test, reported together at its end, so one slotgate bug does not
/// hide the checks that follow it.
#[derive(Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// Records `message` unless `ok`.
    pub fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            let message = message();
            eprintln!("[problem] {message}");
            self.0.push(message);
        }
    }

    /// Panics listing every recorded problem.
    pub fn assert_none(&self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} problem(s):\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}
