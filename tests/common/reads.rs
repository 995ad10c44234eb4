//! Helpers and shared scenarios for the read-from-replicas tests (issue 16):
//! `tests/read_replicas.rs` (Redis Cluster) and `tests/read_replicas_sentinel.rs` (Sentinel).
//!
//! Where a command ran is measured on the nodes themselves, never inferred from slotgate:
//! [`Calls`] snapshots `INFO commandstats` (`cmdstat_<cmd>:calls=N`) of every data node and
//! reports per-node deltas. Replicas apply the primary's writes through `call()` too, so a
//! write shows up on its replicas as well; only reads (which are never replicated) tell
//! where a command was sent.
//!
//! - [`Backend`]: the deployment under test (a cluster or a Sentinel group) seen as shards
//!   (a primary and its replicas, asked of the live nodes), plus the slotgate flags that
//!   point at it. A Sentinel group is one shard owning every key.
//! - [`start_proxy`]: slotgate with its admin listener ([`OpsProxy`]) in front of a backend.
//! - `/topology` helpers: [`node_view`] finds a node's object by port, [`wait_readable`]
//!   polls its `readable` flag, [`wait_replicas_readable`] waits until every replica may
//!   serve reads (before that, `replica` answers `no replica is eligible`).
//! - [`node_reads`]: `slotgate_node_reads_total{node,role}` from `/metrics`.
//! - [`Paused`]: SIGSTOP a node, SIGCONT on drop (also when the test panics).
//! - [`ReadLoad`]: GETs of known keys from a few client threads; every error and every
//!   wrong value is recorded with its time.
//! - `scenario_*`: the checks both modes share; each test file sets up its backend, takes
//!   the serial lock and calls them.
//!
//! Data flow: test -> slotgate (client port) -> data nodes; the test then asks the data nodes
//! (`INFO commandstats`, `INFO replication`) and slotgate's admin port (`/topology`,
//! `/metrics`) what happened. Every wait is a poll with a generous deadline that fails
//! naming what it waited for and the last thing it saw.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::slot_owners_by;
use super::load::{Client, Reply};
use super::node::info_field;
use super::ops::{OpsProxy, metric_sum};
use super::sentinel::{MASTER_NAME, SentinelGroup};
use super::{RedisCluster, RedisNode, RespConn, encode_command, wait_for};

/// Liveness bound for anything that takes a second on an idle machine (the box has 2
/// cores shared with other builds and tests).
pub const SETTLE: Duration = Duration::from_secs(30);
/// How soon a stopped or cut-off replica must be seen as not readable (2 check intervals
/// of 1 s by the interface, plus room for a loaded machine).
pub const DROP_DEADLINE: Duration = Duration::from_secs(10);
/// The error a client gets under `replica` when no replica of the key's shard may serve.
pub const NO_ELIGIBLE: &str = "no replica is eligible for reads";
/// The metric counting reads forwarded per node and role.
pub const NODE_READS: &str = "slotgate_node_reads_total";

// ---------------------------------------------------------------------------------------
// INFO commandstats

/// One `cmdstat_<name>` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmdStat {
    pub calls: u64,
    pub rejected_calls: u64,
    pub failed_calls: u64,
}

/// `INFO commandstats` of `node`, by lower-case command name (`get`, `eval_ro`,
/// `client|list`).
pub fn commandstats(node: &RedisNode) -> HashMap<String, CmdStat> {
    let info: String = node.query(&["INFO", "commandstats"]);
    parse_commandstats(&info)
}

fn parse_commandstats(info: &str) -> HashMap<String, CmdStat> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim_end().strip_prefix("cmdstat_")?.split_once(':')?;
            let mut stat = CmdStat::default();
            for field in fields.split(',') {
                let Some((k, v)) = field.split_once('=') else {
                    continue;
                };
                let v = v.parse().unwrap_or(0);
                match k {
                    "calls" => stat.calls = v,
                    "rejected_calls" => stat.rejected_calls = v,
                    "failed_calls" => stat.failed_calls = v,
                    _ => {}
                }
            }
            Some((name.to_string(), stat))
        })
        .collect()
}

/// A snapshot of one command's counters on a set of nodes; [`Calls::deltas`] says how many
/// times each node ran it since.
pub struct Calls<'a> {
    cmd: String,
    before: Vec<(&'a RedisNode, CmdStat)>,
}

impl<'a> Calls<'a> {
    /// Snapshots `cmd` (lower case, as in `cmdstat_get`) on every node of `nodes`.
    pub fn take(nodes: &[&'a RedisNode], cmd: &str) -> Calls<'a> {
        let cmd = cmd.to_lowercase();
        let before = nodes
            .iter()
            .map(|n| (*n, commandstats(n).get(&cmd).copied().unwrap_or_default()))
            .collect();
        Calls { cmd, before }
    }

    /// Per port: calls since the snapshot.
    pub fn deltas(&self) -> BTreeMap<u16, u64> {
        self.stat_deltas()
            .into_iter()
            .map(|(port, s)| (port, s.calls))
            .collect()
    }

    /// Per port: calls plus rejected calls (`MOVED`, `-READONLY` ... are rejections) since
    /// the snapshot: anything that reached the node at all.
    pub fn reached(&self) -> BTreeMap<u16, u64> {
        self.stat_deltas()
            .into_iter()
            .map(|(port, s)| (port, s.calls + s.rejected_calls))
            .collect()
    }

    fn stat_deltas(&self) -> BTreeMap<u16, CmdStat> {
        self.before
            .iter()
            .map(|(node, before)| {
                let now = commandstats(node)
                    .get(&self.cmd)
                    .copied()
                    .unwrap_or_default();
                let delta = CmdStat {
                    calls: now.calls.saturating_sub(before.calls),
                    rejected_calls: now.rejected_calls.saturating_sub(before.rejected_calls),
                    failed_calls: now.failed_calls.saturating_sub(before.failed_calls),
                };
                (node.port, delta)
            })
            .collect()
    }

    /// The command counted (for messages).
    pub fn cmd(&self) -> &str {
        &self.cmd
    }
}

/// The sum of `deltas` over `ports`.
pub fn sum_over(deltas: &BTreeMap<u16, u64>, ports: &[u16]) -> u64 {
    ports
        .iter()
        .map(|p| deltas.get(p).copied().unwrap_or(0))
        .sum()
}

// ---------------------------------------------------------------------------------------
// The backend

/// A primary and the replicas that currently follow it (asked of the live nodes).
pub struct Shard<'a> {
    pub primary: &'a RedisNode,
    pub replicas: Vec<&'a RedisNode>,
}

impl Shard<'_> {
    pub fn replica_ports(&self) -> Vec<u16> {
        self.replicas.iter().map(|r| r.port).collect()
    }
}

/// The deployment slotgate is put in front of.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    Cluster(&'a RedisCluster),
    Sentinel(&'a SentinelGroup),
}

impl<'a> Backend<'a> {
    /// The slotgate flags that point at this backend.
    pub fn args(&self) -> Vec<String> {
        match self {
            Backend::Cluster(c) => vec!["--seeds".into(), c.seeds()],
            Backend::Sentinel(g) => vec![
                "--mode".into(),
                "sentinel".into(),
                "--sentinels".into(),
                g.sentinel_list(),
                "--master-name".into(),
                MASTER_NAME.into(),
            ],
        }
    }

    /// Every live data node.
    pub fn live_nodes(&self) -> Vec<&'a RedisNode> {
        match self {
            Backend::Cluster(c) => c.live_nodes().collect(),
            Backend::Sentinel(g) => g.nodes.iter().filter(|n| n.is_live()).collect(),
        }
    }

    /// The shards as the live nodes describe them now, ordered by the cluster's slot order
    /// (one shard for a Sentinel group).
    pub fn shards(&self) -> Vec<Shard<'a>> {
        match self {
            Backend::Cluster(c) => c
                .primaries()
                .into_iter()
                .map(|primary| Shard {
                    primary,
                    replicas: c.replicas_of(primary),
                })
                .collect(),
            Backend::Sentinel(g) => {
                let role = |n: &RedisNode| {
                    n.try_query::<String>(&["INFO", "replication"])
                        .ok()
                        .and_then(|info| info_field(&info, "role"))
                };
                let live: Vec<&'a RedisNode> = g.nodes.iter().filter(|n| n.is_live()).collect();
                let primary = live
                    .iter()
                    .copied()
                    .find(|n| role(n).as_deref() == Some("master"))
                    .expect("a live node says role:master");
                let replicas = live
                    .iter()
                    .copied()
                    .filter(|n| role(n).as_deref() == Some("slave"))
                    .collect();
                vec![Shard { primary, replicas }]
            }
        }
    }

    pub fn primary_ports(&self) -> Vec<u16> {
        self.shards().iter().map(|s| s.primary.port).collect()
    }

    pub fn replica_ports(&self) -> Vec<u16> {
        self.shards()
            .iter()
            .flat_map(|s| s.replica_ports())
            .collect()
    }

    /// For each key, the port of the primary that owns it now.
    pub fn owners(&self, keys: &[String]) -> Vec<u16> {
        match self {
            Backend::Cluster(c) => {
                let live = c.live_nodes().next().expect("a live node");
                let owners = slot_owners_by(live);
                keys.iter()
                    .map(|k| owners[usize::from(super::key_slot(k.as_bytes()))])
                    .collect()
            }
            Backend::Sentinel(_) => {
                let primary = self.shards()[0].primary.port;
                vec![primary; keys.len()]
            }
        }
    }

    /// How many of `keys` each primary (by port) owns.
    pub fn keys_per_primary(&self, keys: &[String]) -> BTreeMap<u16, u64> {
        let mut count = BTreeMap::new();
        for owner in self.owners(keys) {
            *count.entry(owner).or_insert(0) += 1;
        }
        count
    }

    /// Waits until every replica's link is up and its replication offset equals its
    /// primary's: everything written so far can be read from any replica.
    pub fn wait_replicas_synced(&self) {
        wait_for(
            "every replica to catch up with its primary",
            SETTLE,
            Duration::from_millis(50),
            |last| {
                for shard in self.shards() {
                    let info: String = shard.primary.try_query(&["INFO", "replication"]).ok()?;
                    let primary_offset = info_field(&info, "master_repl_offset")?;
                    for replica in &shard.replicas {
                        let info: String = replica.try_query(&["INFO", "replication"]).ok()?;
                        let link = info_field(&info, "master_link_status");
                        let offset = info_field(&info, "slave_repl_offset");
                        *last = format!(
                            "replica {} link {link:?} offset {offset:?}, primary {} at {primary_offset}",
                            replica.port, shard.primary.port
                        );
                        if link.as_deref() != Some("up")
                            || offset.as_deref() != Some(primary_offset.as_str())
                        {
                            return None;
                        }
                    }
                }
                Some(())
            },
        );
    }
}

/// Starts slotgate (with an admin listener) in front of `backend` with `extra` flags.
pub fn start_proxy(backend: Backend<'_>, extra: &[&str]) -> OpsProxy {
    let mut args = backend.args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    OpsProxy::start(&refs)
}

// ---------------------------------------------------------------------------------------
// /topology and /metrics

/// `GET /topology`, parsed.
pub fn topology(proxy: &OpsProxy) -> Value {
    proxy.get("/topology").json()
}

/// Every node object of a `/topology` document (each shard's primary, then its replicas).
pub fn topology_nodes(doc: &Value) -> Vec<Value> {
    let mut nodes = Vec::new();
    for shard in doc["shards"].as_array().into_iter().flatten() {
        nodes.push(shard["primary"].clone());
        nodes.extend(shard["replicas"].as_array().into_iter().flatten().cloned());
    }
    nodes
}

/// The node object for `127.0.0.1:<port>` in a `/topology` document, if listed.
pub fn node_view(doc: &Value, port: u16) -> Option<Value> {
    let address = format!("127.0.0.1:{port}");
    topology_nodes(doc)
        .into_iter()
        .find(|n| n["address"] == address.as_str())
}

/// Waits until `/topology` says node `port` is (`readable = true`) or is not readable.
/// A node no longer listed (slotgate dropped it from the map) counts as not readable.
pub fn wait_readable(proxy: &OpsProxy, port: u16, readable: bool, timeout: Duration) {
    wait_for(
        &format!("/topology to show 127.0.0.1:{port} with readable: {readable}"),
        timeout,
        Duration::from_millis(50),
        |last| {
            let doc = topology(proxy);
            let view = node_view(&doc, port);
            *last = format!("{view:?}");
            let now = view.as_ref().is_some_and(|v| v["readable"] == true);
            (now == readable).then_some(())
        },
    );
}

/// Waits until `/topology` lists every replica of `backend` with `role: replica` and
/// `readable: true`, and every primary with `role: primary`.
pub fn wait_replicas_readable(proxy: &OpsProxy, backend: Backend<'_>) {
    let primaries = backend.primary_ports();
    let replicas = backend.replica_ports();
    assert!(!replicas.is_empty(), "the backend has no replica");
    wait_for(
        "/topology to list every replica as readable",
        SETTLE,
        Duration::from_millis(50),
        |last| {
            let doc = topology(proxy);
            for &port in &primaries {
                let view = node_view(&doc, port);
                if view.as_ref().is_none_or(|v| v["role"] != "primary") {
                    *last = format!("primary {port}: {view:?}; document: {doc}");
                    return None;
                }
            }
            for &port in &replicas {
                let view = node_view(&doc, port);
                if view
                    .as_ref()
                    .is_none_or(|v| v["role"] != "replica" || v["readable"] != true)
                {
                    *last = format!("replica {port}: {view:?}; document: {doc}");
                    return None;
                }
            }
            Some(())
        },
    );
}

/// `slotgate_node_reads_total{node="127.0.0.1:<port>",role=<role>}` (0 when absent).
pub fn node_reads(metrics: &str, port: u16, role: &str) -> f64 {
    let node = format!("127.0.0.1:{port}");
    metric_sum(metrics, NODE_READS, &[("node", &node), ("role", role)])
}

// ---------------------------------------------------------------------------------------
// SIGSTOP guard

/// A node frozen with SIGSTOP; SIGCONT when [`Paused::resume`] is called or on drop.
pub struct Paused<'a> {
    node: &'a RedisNode,
    resumed: bool,
}

impl<'a> Paused<'a> {
    /// Sends SIGSTOP to `node` (by its PID) and returns once the kernel says it stopped.
    pub fn new(node: &'a RedisNode) -> Paused<'a> {
        node.pause();
        Paused {
            node,
            resumed: false,
        }
    }

    /// SIGCONT, and waits until the process runs again.
    pub fn resume(mut self) {
        self.resumed = true;
        self.node.resume();
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if self.resumed {
            return;
        }
        if std::thread::panicking() {
            // No second panic from inside a panic: just send the signal to our own child.
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &self.node.pid().to_string()])
                .status();
        } else {
            self.node.resume();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Keys, GETs and a background read load

/// `n` keys named `<prefix>:<i>`: spread over every slot range of a cluster.
pub fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}:{i}")).collect()
}

/// The value [`write_keys`] stores for `key`.
pub fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

/// SETs every key to [`value_of`] through slotgate (pipelined in batches) and checks
/// every `+OK`.
pub fn write_keys(addr: SocketAddr, keys: &[String]) {
    let mut conn = RespConn::connect(addr);
    for batch in keys.chunks(200) {
        let mut out = Vec::new();
        for key in batch {
            let value = value_of(key);
            out.extend(encode_command(&[b"SET", key.as_bytes(), value.as_bytes()]));
        }
        conn.send_raw(&out);
        for key in batch {
            let reply = conn.read_reply();
            assert_eq!(
                reply,
                b"+OK\r\n",
                "SET {key} through slotgate answered {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
    }
}

/// A connection to slotgate with a read timeout long enough that a held request is not
/// mistaken for a lost one.
pub fn client(addr: SocketAddr) -> Client {
    Client::connect(addr, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("connect to slotgate: {e}"))
}

/// `GET key` on `conn`, panicking unless it answers [`value_of`]`(key)`.
pub fn get_expect(conn: &mut Client, key: &str) {
    let reply = conn.call(&["GET", key]);
    let want = value_of(key);
    assert_eq!(
        reply.as_ref().ok().and_then(Reply::text).as_deref(),
        Some(want.as_str()),
        "GET {key} through slotgate answered {reply:?}"
    );
}

/// One GET of every key in `keys` on one fresh connection, each checked.
pub fn get_all(addr: SocketAddr, keys: &[String]) {
    let mut conn = client(addr);
    for key in keys {
        get_expect(&mut conn, key);
    }
}

/// What a [`ReadLoad`] saw.
pub struct ReadReport {
    pub ok: u64,
    /// `(time since the load started, what happened)`: error replies, I/O failures and
    /// wrong values.
    pub errors: Vec<(Duration, String)>,
}

impl ReadReport {
    /// The first `max` errors, one per line, plus a count of the rest.
    pub fn error_lines(&self, max: usize) -> String {
        let mut lines: Vec<String> = self
            .errors
            .iter()
            .take(max)
            .map(|(at, e)| format!("  +{at:?}: {e}"))
            .collect();
        if self.errors.len() > max {
            lines.push(format!("  ... and {} more", self.errors.len() - max));
        }
        lines.join("\n")
    }
}

/// What one [`ReadLoad`] thread returns: GETs answered right, and its errors.
type ThreadLedger = (u64, Vec<(Duration, String)>);

/// GETs of `keys` (each expected to hold [`value_of`]) from `threads` client threads, one
/// connection each, round-robin over the keys with a short pause between commands.
pub struct ReadLoad {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    handles: Vec<JoinHandle<ThreadLedger>>,
}

impl ReadLoad {
    pub fn start(addr: SocketAddr, keys: &[String], threads: usize) -> ReadLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let keys = Arc::new(keys.to_vec());
        let handles = (0..threads)
            .map(|t| {
                let (stop, done, keys) = (stop.clone(), done.clone(), keys.clone());
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    let mut errors = Vec::new();
                    let mut conn: Option<Client> = None;
                    let mut i = t * keys.len() / threads.max(1);
                    while !stop.load(Ordering::SeqCst) {
                        let c = match conn.as_mut() {
                            Some(c) => c,
                            None => match Client::connect(addr, Duration::from_secs(15)) {
                                Ok(c) => conn.insert(c),
                                Err(e) => {
                                    errors.push((t0.elapsed(), e));
                                    std::thread::sleep(Duration::from_millis(50));
                                    continue;
                                }
                            },
                        };
                        let key = &keys[i % keys.len()];
                        i += 1;
                        match c.call(&["GET", key]) {
                            Ok(Reply::Bulk(Some(v))) if v == value_of(key).as_bytes() => ok += 1,
                            Ok(other) => {
                                errors.push((t0.elapsed(), format!("GET {key}: {other:?}")))
                            }
                            Err(e) => {
                                errors.push((t0.elapsed(), format!("GET {key}: {e}")));
                                conn = None;
                            }
                        }
                        done.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_micros(500));
                    }
                    (ok, errors)
                })
            })
            .collect();
        ReadLoad {
            stop,
            done,
            handles,
        }
    }

    /// GETs completed so far (answered or failed).
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until `n` more GETs completed, proving the load is not stalled.
    pub fn wait_more(&self, n: u64, what: &str) {
        let target = self.done() + n;
        wait_for(what, SETTLE, Duration::from_millis(20), |last| {
            *last = format!("{} of {target} GETs done", self.done());
            (self.done() >= target).then_some(())
        });
    }

    /// Stops every thread (each finishes its GET in flight) and merges their ledgers.
    pub fn stop(self) -> ReadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut report = ReadReport {
            ok: 0,
            errors: Vec::new(),
        };
        for handle in self.handles {
            let (ok, errors) = handle.join().expect("a load thread panicked");
            report.ok += ok;
            report.errors.extend(errors);
        }
        report.errors.sort_by_key(|(at, _)| *at);
        report
    }
}

/// The keys of a full `SCAN 0 MATCH <pattern> COUNT 50` through `conn`, and the number of
/// pages it took.
pub fn full_scan(conn: &mut Client, pattern: &str) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    let mut pages = 0;
    loop {
        let reply = conn
            .call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "50"])
            .unwrap_or_else(|e| panic!("SCAN {cursor}: {e}"));
        pages += 1;
        assert!(pages < 100_000, "SCAN does not end; last cursor {cursor}");
        let Reply::Array(Some(parts)) = &reply else {
            panic!("SCAN {cursor} answered {reply:?}");
        };
        let [next, Reply::Array(Some(found))] = parts.as_slice() else {
            panic!("SCAN {cursor} answered {reply:?}");
        };
        keys.extend(found.iter().filter_map(Reply::text));
        cursor = next
            .text()
            .unwrap_or_else(|| panic!("SCAN cursor {next:?}"));
        if cursor == "0" {
            return (keys, pages);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared scenarios

/// Under `replica`, checks that `reads` (a command run by `run`) landed on replicas only,
/// the right number on each shard: `per_primary[p]` reads for the shard of primary `p`.
fn assert_on_replicas(
    backend: Backend<'_>,
    calls: &Calls<'_>,
    per_primary: &BTreeMap<u16, u64>,
    context: &str,
) {
    let deltas = calls.deltas();
    for shard in backend.shards() {
        let expected = per_primary.get(&shard.primary.port).copied().unwrap_or(0);
        let on_replicas = sum_over(&deltas, &shard.replica_ports());
        let on_primary = sum_over(&deltas, &[shard.primary.port]);
        assert_eq!(
            (on_primary, on_replicas),
            (0, expected),
            "{context}: shard of primary {} ran {} {} on the primary and {on_replicas} on its \
             replicas {:?}; expected 0 and {expected} (deltas per port: {deltas:?})",
            shard.primary.port,
            on_primary,
            calls.cmd(),
            shard.replica_ports(),
        );
    }
}

/// 1 + 7: under `--read-from replica` a GET load lands on replicas only (per shard, exactly
/// the GETs of its keys), SETs are acknowledged by primaries, `/topology` shows the read
/// policy, roles, lag and read shares, and `slotgate_node_reads_total` per node equals what
/// the nodes' own commandstats say.
pub fn scenario_get_load_lands_on_replicas(backend: Backend<'_>) {
    let proxy = start_proxy(backend, &["--read-from", "replica"]);
    let nodes = backend.live_nodes();
    let keys = keys("load", 2000);

    let sets = Calls::take(&nodes, "set");
    write_keys(proxy.addr, &keys);
    let set_deltas = sets.deltas();
    assert_eq!(
        sum_over(&set_deltas, &backend.primary_ports()),
        keys.len() as u64,
        "every SET runs on a primary (SET calls per port: {set_deltas:?}, primaries {:?})",
        backend.primary_ports()
    );
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);

    let metrics_before = proxy.metrics();
    let gets = Calls::take(&nodes, "get");
    get_all(proxy.addr, &keys);
    let per_primary = backend.keys_per_primary(&keys);
    assert_on_replicas(backend, &gets, &per_primary, "2000 GETs under replica");

    // /metrics: per node, the reads slotgate counts are the GETs the node ran.
    let deltas = gets.deltas();
    let metrics_after = proxy.metrics();
    for shard in backend.shards() {
        for (port, role) in std::iter::once((shard.primary.port, "primary"))
            .chain(shard.replica_ports().into_iter().map(|p| (p, "replica")))
        {
            let counted =
                node_reads(&metrics_after, port, role) - node_reads(&metrics_before, port, role);
            assert_eq!(
                counted, deltas[&port] as f64,
                "{NODE_READS}{{node=\"127.0.0.1:{port}\",role=\"{role}\"}} grew by {counted}, \
                 but the node ran {} GETs",
                deltas[&port]
            );
        }
    }
    let replica_reads: f64 = backend
        .replica_ports()
        .iter()
        .map(|&p| node_reads(&metrics_after, p, "replica"))
        .sum();
    assert!(
        replica_reads >= keys.len() as f64,
        "{NODE_READS} with role=replica sums to {replica_reads}, fewer than the {} GETs",
        keys.len()
    );

    // /topology: the policy, and per node its role, readability, lag and share of reads.
    let doc = topology(&proxy);
    assert_eq!(doc["read_from"], "replica", "{doc:#}");
    for shard in backend.shards() {
        let primary = node_view(&doc, shard.primary.port)
            .unwrap_or_else(|| panic!("primary {} not in /topology: {doc:#}", shard.primary.port));
        assert_eq!(primary["role"], "primary", "{primary:#}");
        assert!(primary["readable"].is_boolean(), "{primary:#}");
        assert!(
            primary["lag_bytes"].is_null(),
            "a primary has no lag: {primary:#}"
        );
        assert!(
            primary["lag_seconds"].is_null(),
            "a primary has no lag: {primary:#}"
        );
        assert_eq!(
            primary["reads"], 0,
            "no read went to a primary: {primary:#}"
        );
        assert_eq!(primary["read_share"].as_f64(), Some(0.0), "{primary:#}");
        for port in shard.replica_ports() {
            let replica = node_view(&doc, port)
                .unwrap_or_else(|| panic!("replica {port} not in /topology: {doc:#}"));
            assert_eq!(replica["role"], "replica", "{replica:#}");
            assert_eq!(replica["readable"], true, "{replica:#}");
            assert!(
                replica["lag_bytes"].is_number(),
                "lag known for a readable replica: {replica:#}"
            );
            assert!(
                replica["lag_seconds"].is_number(),
                "lag known for a readable replica: {replica:#}"
            );
            let reads = replica["reads"].as_u64().unwrap_or(0);
            assert!(
                reads >= deltas[&port],
                "reads {reads} < {} GETs: {replica:#}",
                deltas[&port]
            );
            let share = replica["read_share"]
                .as_f64()
                .expect("read_share is a number");
            assert!((0.0..=1.0).contains(&share), "{replica:#}");
        }
        let shares: f64 = shard
            .replica_ports()
            .iter()
            .filter_map(|&p| node_view(&doc, p)?["read_share"].as_f64())
            .sum();
        assert!(
            shares > 0.0,
            "the replicas of {} served reads but their read_share sums to {shares}: {doc:#}",
            shard.primary.port
        );
    }
}

/// 1: MGET over several slots is served by replicas, each part by its shard's replicas.
pub fn scenario_mget_parts_land_on_replicas(backend: Backend<'_>) {
    let proxy = start_proxy(backend, &["--read-from", "replica"]);
    let keys = keys("mget", 300);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);

    let nodes = backend.live_nodes();
    let mgets = Calls::take(&nodes, "mget");
    let mut conn = client(proxy.addr);
    for batch in keys.chunks(10) {
        let mut args = vec!["MGET"];
        args.extend(batch.iter().map(String::as_str));
        let reply = conn.call(&args).unwrap_or_else(|e| panic!("MGET: {e}"));
        let want: Vec<Reply> = batch
            .iter()
            .map(|k| Reply::Bulk(Some(value_of(k).into_bytes())))
            .collect();
        assert_eq!(reply, Reply::Array(Some(want)), "MGET {batch:?}");
    }
    let deltas = mgets.deltas();
    for shard in backend.shards() {
        let on_replicas = sum_over(&deltas, &shard.replica_ports());
        assert_eq!(
            deltas[&shard.primary.port], 0,
            "an MGET part ran on primary {} (MGET calls per port: {deltas:?})",
            shard.primary.port
        );
        assert!(
            on_replicas > 0,
            "no MGET part ran on the replicas {:?} of {} (MGET calls per port: {deltas:?})",
            shard.replica_ports(),
            shard.primary.port
        );
    }
}

/// 1: EVAL (even a read-only script), MULTI/GET/EXEC, WATCH and BLPOP go to the key's
/// primary under `replica`; EVAL_RO goes to one of its replicas.
pub fn scenario_scripts_transactions_and_blocking_go_to_primaries(backend: Backend<'_>) {
    let proxy = start_proxy(backend, &["--read-from", "replica"]);
    let key = "scripted:{k}".to_string();
    write_keys(proxy.addr, std::slice::from_ref(&key));
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let owner = backend.owners(std::slice::from_ref(&key))[0];
    let shard = backend
        .shards()
        .into_iter()
        .find(|s| s.primary.port == owner)
        .expect("the key's shard");
    let nodes = backend.live_nodes();
    let value = value_of(&key);
    let mut conn = client(proxy.addr);
    let script = "return redis.call('GET', KEYS[1])";
    // `n` runs on the key's primary and nothing reaching any other node.
    let only_on = |calls: &Calls<'_>, port: u16, n: u64, what: &str| {
        let runs = calls.deltas()[&port];
        let reached = calls.reached();
        let elsewhere: u64 = reached
            .iter()
            .filter(|(p, _)| **p != port)
            .map(|(_, c)| c)
            .sum();
        assert!(
            runs == n && elsewhere == 0,
            "{what}: {} ran {runs} times on the key's primary {port} (expected {n}) and \
             reached other nodes {elsewhere} times (expected 0); calls+rejected per port: \
             {reached:?}",
            calls.cmd()
        );
    };

    let evals = Calls::take(&nodes, "eval");
    let reply = conn.call(&["EVAL", script, "1", &key]);
    assert_eq!(
        reply.as_ref().ok().and_then(Reply::text).as_deref(),
        Some(value.as_str()),
        "EVAL: {reply:?}"
    );
    only_on(&evals, owner, 1, "EVAL of a read-only script");

    let evals_ro = Calls::take(&nodes, "eval_ro");
    let reply = conn.call(&["EVAL_RO", script, "1", &key]);
    assert_eq!(
        reply.as_ref().ok().and_then(Reply::text).as_deref(),
        Some(value.as_str()),
        "EVAL_RO: {reply:?}"
    );
    let deltas = evals_ro.deltas();
    assert_eq!(
        (
            sum_over(&deltas, &[owner]),
            sum_over(&deltas, &shard.replica_ports())
        ),
        (0, 1),
        "EVAL_RO runs on a replica of {owner} ({:?}); EVAL_RO calls per port: {deltas:?}",
        shard.replica_ports()
    );

    let execs = Calls::take(&nodes, "exec");
    let gets = Calls::take(&nodes, "get");
    assert_eq!(conn.call(&["MULTI"]), Ok(Reply::Status("OK".into())));
    assert_eq!(
        conn.call(&["GET", &key]),
        Ok(Reply::Status("QUEUED".into()))
    );
    let reply = conn.call(&["EXEC"]);
    assert_eq!(
        reply,
        Ok(Reply::Array(Some(vec![Reply::Bulk(Some(
            value.clone().into_bytes()
        ))]))),
        "MULTI/GET/EXEC"
    );
    only_on(&execs, owner, 1, "MULTI/GET/EXEC");
    only_on(&gets, owner, 1, "GET queued in a transaction");

    let watches = Calls::take(&nodes, "watch");
    assert_eq!(conn.call(&["WATCH", &key]), Ok(Reply::Status("OK".into())));
    assert_eq!(conn.call(&["UNWATCH"]), Ok(Reply::Status("OK".into())));
    only_on(&watches, owner, 1, "WATCH");

    let list = "scripted:{k}:list";
    assert_eq!(conn.call(&["RPUSH", list, "x"]), Ok(Reply::Int(1)));
    backend.wait_replicas_synced();
    let blpops = Calls::take(&nodes, "blpop");
    let reply = conn.call(&["BLPOP", list, "0.1"]);
    assert_eq!(
        reply,
        Ok(Reply::Array(Some(vec![
            Reply::Bulk(Some(list.as_bytes().to_vec())),
            Reply::Bulk(Some(b"x".to_vec())),
        ]))),
        "BLPOP of a list with an element"
    );
    // Now empty: waits its 0.2 s timeout on the primary and answers a null array.
    let reply = conn.call(&["BLPOP", list, "0.2"]);
    assert_eq!(reply, Ok(Reply::Array(None)), "BLPOP timing out");
    only_on(&blpops, owner, 2, "BLPOP with a timeout");
}

/// 1: a full SCAN through slotgate under `replica` returns exactly the keys written, and
/// each shard was scanned on one node only: one of its replicas, never the primary.
pub fn scenario_full_scan_runs_on_replicas(backend: Backend<'_>) {
    let proxy = start_proxy(backend, &["--read-from", "replica"]);
    let keys = keys("scanned", 600);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);

    let nodes = backend.live_nodes();
    let scans = Calls::take(&nodes, "scan");
    let mut conn = client(proxy.addr);
    let (found, pages) = full_scan(&mut conn, "scanned:*");
    let found: BTreeSet<String> = found.into_iter().collect();
    let written: BTreeSet<String> = keys.iter().cloned().collect();
    let missing: Vec<&String> = written.difference(&found).take(10).collect();
    let extra: Vec<&String> = found.difference(&written).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "a full SCAN ({pages} pages) returned {} distinct keys of {}; missing (first 10) \
         {missing:?}, unexpected {extra:?}",
        found.len(),
        written.len()
    );
    let deltas = scans.deltas();
    for shard in backend.shards() {
        assert_eq!(
            deltas[&shard.primary.port], 0,
            "a SCAN page ran on primary {} (SCAN calls per port: {deltas:?})",
            shard.primary.port
        );
        let scanned_on: Vec<u16> = shard
            .replica_ports()
            .into_iter()
            .filter(|p| deltas[p] > 0)
            .collect();
        assert_eq!(
            scanned_on.len(),
            1,
            "the shard of {} must be scanned on exactly one of its replicas {:?}, was on \
             {scanned_on:?} (SCAN calls per port: {deltas:?})",
            shard.primary.port,
            shard.replica_ports()
        );
    }
}

/// 5: under `replica`, `READWRITE` sends one connection's GETs to primaries (and only that
/// connection's), `READONLY` sends them back to replicas.
pub fn scenario_readwrite_and_readonly_switch_a_connection(backend: Backend<'_>) {
    let proxy = start_proxy(backend, &["--read-from", "replica"]);
    let keys = keys("switch", 200);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let nodes = backend.live_nodes();
    let per_primary = backend.keys_per_primary(&keys);
    let mut switched = client(proxy.addr);
    let mut other = client(proxy.addr);
    let gets_on = |conn: &mut Client| {
        for key in &keys {
            get_expect(conn, key);
        }
    };

    assert_eq!(
        switched.call(&["READWRITE"]),
        Ok(Reply::Status("OK".into()))
    );
    let gets = Calls::take(&nodes, "get");
    gets_on(&mut switched);
    let deltas = gets.deltas();
    for shard in backend.shards() {
        let expected = per_primary.get(&shard.primary.port).copied().unwrap_or(0);
        assert_eq!(
            (
                deltas[&shard.primary.port],
                sum_over(&deltas, &shard.replica_ports())
            ),
            (expected, 0),
            "after READWRITE, GETs of the shard of {} belong on its primary (GET calls per \
             port: {deltas:?})",
            shard.primary.port
        );
    }

    let gets = Calls::take(&nodes, "get");
    gets_on(&mut other);
    assert_on_replicas(
        backend,
        &gets,
        &per_primary,
        "another connection after READWRITE on the first",
    );

    assert_eq!(switched.call(&["READONLY"]), Ok(Reply::Status("OK".into())));
    let gets = Calls::take(&nodes, "get");
    gets_on(&mut switched);
    assert_on_replicas(backend, &gets, &per_primary, "after READONLY");
}

/// 6: the other policies. No flag and `primary-preferred` read from primaries; `nearest`
/// serves every GET from a node of the key's shard; `any` spreads over primaries and
/// replicas. `/topology` names each policy.
pub fn scenario_other_policies(backend: Backend<'_>) {
    let keys = keys("policy", 600);
    {
        let proxy = start_proxy(backend, &[]);
        write_keys(proxy.addr, &keys);
    }
    backend.wait_replicas_synced();
    let nodes = backend.live_nodes();
    let per_primary = backend.keys_per_primary(&keys);
    for policy in [
        None,
        Some("primary-preferred"),
        Some("nearest"),
        Some("any"),
    ] {
        let args: Vec<&str> = policy.map_or(vec![], |p| vec!["--read-from", p]);
        let proxy = start_proxy(backend, &args);
        let name = policy.unwrap_or("primary");
        if matches!(name, "nearest" | "any") {
            // Whether a replica counts as readable under a primary-only policy is left to
            // the implementation; the policies that may use replicas must see them first.
            wait_replicas_readable(&proxy, backend);
        }
        assert_eq!(topology(&proxy)["read_from"], name, "/topology read_from");
        let gets = Calls::take(&nodes, "get");
        get_all(proxy.addr, &keys);
        let deltas = gets.deltas();
        let mut on_primaries = 0;
        let mut on_replicas = 0;
        for shard in backend.shards() {
            let expected = per_primary.get(&shard.primary.port).copied().unwrap_or(0);
            let p = deltas[&shard.primary.port];
            let r = sum_over(&deltas, &shard.replica_ports());
            on_primaries += p;
            on_replicas += r;
            assert_eq!(
                p + r,
                expected,
                "{name}: the shard of {} ran {} GETs, expected {expected} (GET calls per \
                 port: {deltas:?})",
                shard.primary.port,
                p + r
            );
            if matches!(name, "primary" | "primary-preferred") {
                assert_eq!(
                    r, 0,
                    "{name}: GETs ran on replicas (GET calls per port: {deltas:?})"
                );
            }
        }
        if name == "any" {
            assert!(
                on_primaries > 0 && on_replicas > 0,
                "any: {on_primaries} GETs on primaries and {on_replicas} on replicas; both \
                 must get some (GET calls per port: {deltas:?})"
            );
        }
        println!("{name}: {on_primaries} GETs on primaries, {on_replicas} on replicas");
    }
}

/// 2: under `replica-preferred`, a replica frozen with SIGSTOP while a GET load runs from
/// three client threads: no client error, `/topology` shows it not readable within
/// [`DROP_DEADLINE`], and after SIGCONT it is readable again and serves GETs again.
pub fn scenario_stopped_replica_is_dropped_without_errors(backend: Backend<'_>) {
    let proxy = start_proxy(
        backend,
        &[
            "--read-from",
            "replica-preferred",
            "--replica-check-interval",
            "1s",
        ],
    );
    let keys = keys("stopped", 300);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let shards = backend.shards();
    let victim = shards[0].replicas[0];

    let load = ReadLoad::start(proxy.addr, &keys, 3);
    load.wait_more(300, "the GET load to run before the SIGSTOP");
    let paused = Paused::new(victim);
    let stopped_at = Instant::now();
    wait_readable(&proxy, victim.port, false, DROP_DEADLINE);
    println!(
        "replica {} not readable {:?} after SIGSTOP",
        victim.port,
        stopped_at.elapsed()
    );
    load.wait_more(600, "the GET load to go on while the replica is stopped");

    paused.resume();
    wait_readable(&proxy, victim.port, true, SETTLE);
    let gets = Calls::take(&[victim], "get");
    wait_for(
        &format!("replica {} to serve GETs again after SIGCONT", victim.port),
        SETTLE,
        Duration::from_millis(100),
        |last| {
            let n = gets.deltas()[&victim.port];
            *last = format!("{n} GETs");
            (n > 0).then_some(())
        },
    );
    let report = load.stop();
    assert!(report.ok > 900, "only {} GETs answered", report.ok);
    assert!(
        report.errors.is_empty(),
        "{} client errors under replica-preferred with replica {} stopped:\n{}",
        report.errors.len(),
        victim.port,
        report.error_lines(20)
    );
}

/// 2: with no eligible replica for the shards of `orphaned` (primary ports whose replicas
/// the caller stopped): under `replica` (`strict`) their keys get [`NO_ELIGIBLE`] and are not
/// executed anywhere, while other shards' keys are served by replicas; under
/// `replica-preferred` (`preferred`) every key is served without error, the orphaned
/// shards' by their primaries.
pub fn scenario_no_eligible_replica(
    backend: Backend<'_>,
    orphaned: &[u16],
    strict: &OpsProxy,
    preferred: &OpsProxy,
    keys: &[String],
) {
    let owners = backend.owners(keys);
    let (lost, kept): (Vec<_>, Vec<_>) = keys
        .iter()
        .zip(&owners)
        .partition(|(_, owner)| orphaned.contains(owner));
    assert!(!lost.is_empty(), "no key lives on the shards {orphaned:?}");
    let probe = lost[0].0.clone();
    wait_for(
        &format!("GET {probe} under replica to fail with {NO_ELIGIBLE:?}"),
        SETTLE,
        Duration::from_millis(100),
        |last| {
            let reply = super::load::call_once(strict.addr, &["GET", &probe]);
            *last = format!("{reply:?}");
            matches!(&reply, Ok(Reply::Error(e)) if e.contains(NO_ELIGIBLE)).then_some(())
        },
    );
    let nodes = backend.live_nodes();
    let gets = Calls::take(&nodes, "get");
    let mut conn = client(strict.addr);
    for (key, _) in &lost {
        let reply = conn.call(&["GET", key]);
        assert!(
            matches!(&reply, Ok(Reply::Error(e)) if e.contains(NO_ELIGIBLE)),
            "replica: GET {key} (its shard has no eligible replica) answered {reply:?}"
        );
    }
    for (key, _) in &kept {
        get_expect(&mut conn, key);
    }
    let deltas = gets.deltas();
    assert_eq!(
        sum_over(&deltas, orphaned),
        0,
        "replica: a refused GET ran on a primary anyway (GET calls per port: {deltas:?})"
    );
    let served: u64 = deltas.values().sum();
    assert_eq!(
        served,
        kept.len() as u64,
        "replica: only the {} keys of shards with a replica are served (GET calls per port: \
         {deltas:?})",
        kept.len()
    );

    let gets = Calls::take(&nodes, "get");
    get_all(preferred.addr, keys);
    let deltas = gets.deltas();
    assert_eq!(
        sum_over(&deltas, orphaned),
        lost.len() as u64,
        "replica-preferred: the {} GETs of shards without a replica fall back to their \
         primaries {orphaned:?} (GET calls per port: {deltas:?})",
        lost.len()
    );
    let replicas: u64 = sum_over(&deltas, &backend.replica_ports());
    assert_eq!(
        replicas,
        kept.len() as u64,
        "replica-preferred: the other shards' GETs stay on replicas (GET calls per port: \
         {deltas:?})"
    );
}

/// A SET/GET loop on one connection through `addr`: `rounds` sequential SET then GET, and
/// `rounds` pipelined SET+GET (both sent in one write). Returns the number of GETs that
/// did not see the value just written, the examples of the first few, and the last value
/// written. Stops early once `stop_at_first` and a stale read was seen.
fn set_get_loop(
    addr: SocketAddr,
    key: &str,
    rounds: usize,
    stop_at_first: bool,
) -> (usize, Vec<String>, String) {
    /// Counts `reply` as stale unless it is the bulk string `want`.
    fn check(reply: &[u8], want: &str, how: &str, stale: &mut usize, examples: &mut Vec<String>) {
        let expected = format!("${}\r\n{want}\r\n", want.len());
        if reply != expected.as_bytes() {
            *stale += 1;
            if examples.len() < 5 {
                let short = |text: &str| text.chars().take(24).collect::<String>();
                examples.push(format!(
                    "{how}: wrote {}..., read {:?}...",
                    short(want),
                    short(&String::from_utf8_lossy(reply))
                ));
            }
        }
    }
    let mut conn = RespConn::connect(addr);
    let mut stale = 0;
    let mut examples = Vec::new();
    let mut last = String::new();
    // 16 KiB values: replicating one takes longer than answering a small GET, so a GET
    // sent to a replica right after the SET's reply usually misses it. Without that, a
    // loopback replica is so fast that a loop without read-your-writes rarely reads stale,
    // and the session test could pass with the feature broken.
    let pad = "x".repeat(16 * 1024);
    for i in 0..rounds {
        let v = format!("seq-{i}-{pad}");
        assert_eq!(conn.cmd_str(&["SET", key, &v]), b"+OK\r\n", "SET {key} {v}");
        let reply = conn.cmd_str(&["GET", key]);
        check(&reply, &v, "SET then GET", &mut stale, &mut examples);
        let v = format!("pipe-{i}-{pad}");
        let mut out = encode_command(&[b"SET", key.as_bytes(), v.as_bytes()]);
        out.extend(encode_command(&[b"GET", key.as_bytes()]));
        conn.send_raw(&out);
        assert_eq!(conn.read_reply(), b"+OK\r\n", "pipelined SET {key} {v}");
        let reply = conn.read_reply();
        check(&reply, &v, "pipelined SET+GET", &mut stale, &mut examples);
        last = v;
        if stop_at_first && stale > 0 {
            break;
        }
    }
    (stale, examples, last)
}

/// 3: `--read-your-writes session`: 2000 SET-then-GET and 2000 pipelined SET+GET on one
/// connection under `replica` see no stale value; once the client stops writing (a pause
/// of a few check intervals), the same connection's GETs land on replicas again and still
/// return the last value.
pub fn scenario_read_your_writes_session(backend: Backend<'_>) {
    let proxy = start_proxy(
        backend,
        &[
            "--read-from",
            "replica",
            "--read-your-writes",
            "session",
            "--replica-check-interval",
            "1s",
        ],
    );
    wait_replicas_readable(&proxy, backend);
    let key = "ryw:{session}";
    let (stale, examples, last) = set_get_loop(proxy.addr, key, 2000, false);
    assert_eq!(
        stale, 0,
        "read-your-writes session: {stale} of 4000 GETs did not see the write just \
         acknowledged on the same connection, e.g. {examples:#?}"
    );

    // The writes stop: after a few check intervals a replica is known to have the last
    // write, and reads of that slot may go to replicas again (still returning it).
    std::thread::sleep(Duration::from_secs(3));
    let owner = backend.owners(&[key.to_string()])[0];
    let shard = backend
        .shards()
        .into_iter()
        .find(|s| s.primary.port == owner)
        .expect("the key's shard");
    let replicas = shard.replicas.clone();
    let gets = Calls::take(&replicas, "get");
    let mut conn = client(proxy.addr);
    wait_for(
        "GETs of a key written earlier to land on replicas again",
        SETTLE,
        Duration::from_millis(100),
        |seen| {
            let reply = conn.call(&["GET", key]);
            assert_eq!(
                reply.as_ref().ok().and_then(Reply::text).as_deref(),
                Some(last.as_str()),
                "GET {key} after the writes stopped"
            );
            let n: u64 = gets.deltas().values().sum();
            *seen = format!("{n} GETs on replicas {:?}", shard.replica_ports());
            (n > 0).then_some(())
        },
    );
}

/// 3: the same loop with `--read-your-writes off` sees at least one stale read within
/// 20000 rounds: proof that the session test above can fail.
pub fn scenario_read_your_writes_off_can_read_stale(backend: Backend<'_>) {
    let proxy = start_proxy(
        backend,
        &["--read-from", "replica", "--read-your-writes", "off"],
    );
    wait_replicas_readable(&proxy, backend);
    let key = "ryw:{off}";
    let nodes = backend.live_nodes();
    let gets = Calls::take(&nodes, "get");
    let (stale, examples, _) = set_get_loop(proxy.addr, key, 20_000, true);
    let deltas = gets.deltas();
    let on_replicas = sum_over(&deltas, &backend.replica_ports());
    assert!(
        on_replicas > 0,
        "with read-your-writes off the GETs must go to replicas (GET calls per port: {deltas:?})"
    );
    assert!(
        stale > 0,
        "read-your-writes off: no stale read in up to 40000 GETs right after their SET; the \
         session test cannot tell the feature from its absence (GET calls per port: \
         {deltas:?})"
    );
    println!("read-your-writes off: first stale reads {examples:?}");
}

/// 4 (second half): under `--read-from replica` (`strict`), once `/topology` shows the
/// roles after a failover (`new_primary` promoted), a GET load puts nothing on the new
/// primary and everything on replicas.
pub fn assert_new_primary_gets_no_replica_reads(
    backend: Backend<'_>,
    strict: &OpsProxy,
    new_primary: &RedisNode,
    keys: &[String],
) {
    wait_replicas_readable(strict, backend);
    let doc = topology(strict);
    let view = node_view(&doc, new_primary.port).expect("the new primary in /topology");
    assert_eq!(view["role"], "primary", "{doc:#}");
    let nodes = backend.live_nodes();
    let gets = Calls::take(&nodes, "get");
    get_all(strict.addr, keys);
    let per_primary = backend.keys_per_primary(keys);
    assert_on_replicas(
        backend,
        &gets,
        &per_primary,
        "GETs under replica after the failover",
    );
    assert_eq!(
        gets.deltas()[&new_primary.port],
        0,
        "the promoted node {} still got GETs",
        new_primary.port
    );
}

/// Cuts `replica`'s replication link and keeps it down: a wrong `masterauth` makes every
/// reconnection fail its `AUTH` (the primary has no password), then the link is killed.
/// Returns once the replica reports `master_link_status:down`. Undo with
/// [`restore_replica_link`].
pub fn cut_replica_link(replica: &RedisNode) {
    replica.query::<()>(&["CONFIG", "SET", "masterauth", "not-the-password"]);
    replica.query::<redis::Value>(&["CLIENT", "KILL", "TYPE", "master"]);
    wait_for(
        &format!("replica {} to report its link down", replica.port),
        SETTLE,
        Duration::from_millis(50),
        |last| {
            let info: String = replica.try_query(&["INFO", "replication"]).ok()?;
            let link = info_field(&info, "master_link_status");
            *last = format!("{link:?}");
            (link.as_deref() == Some("down")).then_some(())
        },
    );
}

/// Undoes [`cut_replica_link`] and waits until the link is up again.
pub fn restore_replica_link(replica: &RedisNode) {
    replica.query::<()>(&["CONFIG", "SET", "masterauth", ""]);
    wait_for(
        &format!("replica {} to report its link up", replica.port),
        SETTLE,
        Duration::from_millis(50),
        |last| {
            let info: String = replica.try_query(&["INFO", "replication"]).ok()?;
            let link = info_field(&info, "master_link_status");
            *last = format!("{link:?}");
            (link.as_deref() == Some("up")).then_some(())
        },
    );
}

/// 2: under `replica-preferred`, a replica whose replication link is cut (it still answers,
/// with data growing older) is not readable within [`DROP_DEADLINE`] and then gets no GET
/// while its shard's reads go on without error; once the link is back it is readable again.
pub fn scenario_replica_with_cut_link_is_dropped(backend: Backend<'_>) {
    let proxy = start_proxy(
        backend,
        &[
            "--read-from",
            "replica-preferred",
            "--replica-check-interval",
            "1s",
        ],
    );
    let keys = keys("cut", 300);
    write_keys(proxy.addr, &keys);
    backend.wait_replicas_synced();
    wait_replicas_readable(&proxy, backend);
    let shards = backend.shards();
    let victim = shards[0].replicas[0];
    let load = ReadLoad::start(proxy.addr, &keys, 2);
    load.wait_more(200, "the GET load to run before the link is cut");

    cut_replica_link(victim);
    let cut_at = Instant::now();
    wait_readable(&proxy, victim.port, false, DROP_DEADLINE);
    println!(
        "replica {} not readable {:?} after its link was cut",
        victim.port,
        cut_at.elapsed()
    );
    let gets = Calls::take(&[victim], "get");
    load.wait_more(600, "the GET load to go on while the link is down");
    let served = gets.deltas()[&victim.port];
    assert_eq!(
        served, 0,
        "replica {} (link down, shown not readable) still served {served} GETs",
        victim.port
    );

    restore_replica_link(victim);
    wait_readable(&proxy, victim.port, true, SETTLE);
    let report = load.stop();
    assert!(
        report.errors.is_empty(),
        "{} client errors under replica-preferred with the link of {} cut:\n{}",
        report.errors.len(),
        victim.port,
        report.error_lines(20)
    );
}
