//! A throw-away Redis Cluster: [`RedisCluster`].
//!
//! Nodes are [`RedisNode`]s with `--cluster-enabled yes`, all on 127.0.0.1, each in a subdir
//! of one temp dir. With 3+ primaries the cluster is created exactly as an operator would,
//! with `redis-cli --cluster create ... --cluster-replicas R --cluster-yes`; redis-cli refuses
//! fewer than 3 primaries, so 1 or 2 are wired by hand (ADDSLOTS, MEET, REPLICATE).
//! Either way `start` returns only once every node reports `cluster_state:ok`, all nodes
//! agree on one topology covering all 16384 slots, and every replica's link is up.
//!
//! All questions about the *current* topology (owners, roles) are asked of the live nodes
//! with `CLUSTER NODES`, never answered from what we set up, because tests fail over,
//! kill and migrate.
//!
//! Those questions and the agreement checks (`wait_formed`, `wait_ok`) are free functions
//! over [`ClusterMember`]: a node the fixture can send a command to and get text back. The
//! plain [`RedisNode`] answers through redis-rs, `super::tls::TlsRedisNode` through
//! `redis-cli --tls`, so both cluster fixtures check exactly the same things.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::node::{RedisNode, info_field};
use super::{redis_cli_path, temp_dir, wait_for};

/// Number of hash slots in Redis Cluster.
pub const SLOTS: usize = 16384;
/// Creating and converging a cluster: node timeout is 2 s, redis-cli polls once a second.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// A Redis Cluster of child processes; every node is killed on drop.
pub struct RedisCluster {
    /// All nodes, in creation order; roles change, so ask [`RedisCluster::primaries`].
    /// Declared before `tmp` so the processes die before their dirs are removed.
    pub nodes: Vec<RedisNode>,
    tmp: tempfile::TempDir,
}

/// What all nodes must agree on after `start`: per node id, primary or not, its primary,
/// its slots; sorted by id.
type TopologyView = Vec<(String, bool, Option<String>, Vec<(u16, u16)>)>;

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// The primary's id for a replica.
    pub master: Option<String>,
    /// Owned slot ranges, inclusive; migration markers (`[slot->-id]`) are left out.
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn is_primary(&self) -> bool {
        self.has_flag("master")
    }
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas_per_primary` replicas each and waits until
    /// the cluster is fully formed and agreed (see the module docs).
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        assert!(primaries >= 1, "a cluster needs at least one primary");
        let total = primaries * (1 + replicas_per_primary);
        let tmp = temp_dir("slotgate-cluster-");
        let nodes: Vec<RedisNode> = (0..total)
            .map(|_| RedisNode::cluster_node(tmp.path()))
            .collect();
        let cluster = RedisCluster { nodes, tmp };
        if primaries >= 3 {
            cluster.create_with_redis_cli(replicas_per_primary);
        } else {
            cluster.create_by_hand(primaries, replicas_per_primary);
        }
        cluster.wait_formed(START_TIMEOUT);
        cluster
    }

    fn create_with_redis_cli(&self, replicas: usize) {
        let out = Command::new(redis_cli_path())
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(|n| n.addr.to_string()))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::write(self.tmp.path().join("cluster-create.log"), &text);
        assert!(
            out.status.success() && !text.contains("[ERR]"),
            "redis-cli --cluster create failed ({}):\n{text}",
            out.status
        );
    }

    /// What `redis-cli --cluster create` does, for the 1- and 2-primary clusters it refuses.
    fn create_by_hand(&self, primaries: usize, replicas: usize) {
        for (i, node) in self.nodes[..primaries].iter().enumerate() {
            let first = SLOTS * i / primaries;
            let last = SLOTS * (i + 1) / primaries - 1;
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("ADDSLOTS");
            for slot in first..=last {
                cmd.arg(slot);
            }
            node.try_query_cmd::<()>(&cmd)
                .unwrap_or_else(|e| panic!("CLUSTER ADDSLOTS: {e}"));
            // Distinct epochs, so no two primaries start out with a colliding config epoch.
            node.query::<()>(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()]);
        }
        let first_port = self.nodes[0].port.to_string();
        for node in &self.nodes[1..] {
            node.query::<()>(&["CLUSTER", "MEET", "127.0.0.1", &first_port]);
        }
        let total = self.nodes.len();
        wait_for("all nodes to meet", START_TIMEOUT, POLL, |last| {
            self.nodes
                .iter()
                .all(|n| {
                    let known = n
                        .try_query::<String>(&["CLUSTER", "INFO"])
                        .ok()
                        .and_then(|info| info_field(&info, "cluster_known_nodes"));
                    *last = format!("port {}: cluster_known_nodes={known:?}", n.port);
                    known == Some(total.to_string())
                })
                .then_some(())
        });
        for p in 0..primaries {
            let primary_id = self.nodes[p].node_id();
            for r in 0..replicas {
                let replica = &self.nodes[primaries + p * replicas + r];
                // The replica must have learned (by gossip) that the target is a primary.
                wait_for(
                    "REPLICATE to succeed",
                    START_TIMEOUT,
                    POLL,
                    |last| match replica.try_query::<()>(&["CLUSTER", "REPLICATE", &primary_id]) {
                        Ok(()) => Some(()),
                        Err(e) => {
                            *last = e;
                            None
                        }
                    },
                );
            }
        }
    }

    /// Waits until every node (live or not: right after start all must be) has state ok, the
    /// same full topology, no handshake/fail flags, and every replica's link is up.
    fn wait_formed(&self, timeout: Duration) {
        wait_for("the cluster to form", timeout, POLL, |last| {
            is_formed(&self.nodes, last)
        });
    }

    /// `"127.0.0.1:p1,127.0.0.1:p2,..."`: every node, in creation order.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The live nodes that currently call themselves primary, ordered by the lowest slot they
    /// own (slot-less primaries last).
    pub fn primaries(&self) -> Vec<&RedisNode> {
        primaries_among(self.live_nodes())
    }

    /// The live nodes that are currently replicas of `primary`.
    pub fn replicas_of(&self, primary: &RedisNode) -> Vec<&RedisNode> {
        replicas_among(self.live_nodes(), &primary.node_id())
    }

    /// The node that currently owns `slot`: the majority answer of the live nodes' views.
    pub fn node_for_slot(&self, slot: u16) -> &RedisNode {
        self.node_by_port(majority_owner(self.live_nodes(), slot))
    }

    /// The node listening on `port`.
    pub fn node_by_port(&self, port: u16) -> &RedisNode {
        &self.nodes[self.node_index(port)]
    }

    /// Index into [`RedisCluster::nodes`] of the node on `port`, e.g. to `stop()` it.
    pub fn node_index(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node of this cluster listens on port {port}"))
    }

    /// Waits until every live node reports `cluster_state:ok`, they all agree on the owner of
    /// every slot, and every owner is live (so after killing a primary this waits for the
    /// failover). Panics after `timeout`.
    pub fn wait_ok(&self, timeout: Duration) {
        wait_for("cluster_state:ok everywhere", timeout, POLL, |last| {
            let live: Vec<&RedisNode> = self.live_nodes().collect();
            slots_agree(&live, last)
        });
    }

    /// Moves `slot` from `from` to `to` the way `redis-cli --cluster reshard` does: SETSLOT
    /// IMPORTING on `to`, MIGRATING on `from`, then `MIGRATE ... KEYS` in batches of
    /// `keys_per_batch`, sleeping `pause_between_batches` after each batch (and once if the
    /// slot is empty) so a test can observe `ASK` mid-way, and finally SETSLOT NODE on the
    /// target, the source and every other primary. Returns when all live nodes agree that
    /// `to` owns the slot.
    pub fn migrate_slot(
        &self,
        slot: u16,
        from: &RedisNode,
        to: &RedisNode,
        keys_per_batch: usize,
        pause_between_batches: Duration,
    ) {
        assert!(keys_per_batch > 0, "keys_per_batch must be at least 1");
        assert_ne!(from.port, to.port, "migrating slot {slot} to its own node");
        let (slot_s, from_id, to_id) = (slot.to_string(), from.node_id(), to.node_id());
        to.query::<()>(&["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from_id]);
        from.query::<()>(&["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to_id]);
        let mut batches = 0;
        loop {
            let mut get = redis::cmd("CLUSTER");
            get.arg("GETKEYSINSLOT").arg(slot).arg(keys_per_batch);
            let keys: Vec<Vec<u8>> = from
                .try_query_cmd(&get)
                .unwrap_or_else(|e| panic!("GETKEYSINSLOT {slot}: {e}"));
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to.port)
                .arg("")
                .arg(0)
                .arg(10_000)
                .arg("KEYS")
                .arg(&keys);
            let reply: redis::Value = from
                .try_query_cmd(&migrate)
                .unwrap_or_else(|e| panic!("MIGRATE of {} keys in slot {slot}: {e}", keys.len()));
            assert!(
                matches!(reply, redis::Value::Okay) || is_status(&reply, "NOKEY"),
                "MIGRATE in slot {slot} answered {reply:?}"
            );
            batches += 1;
            std::thread::sleep(pause_between_batches);
        }
        if batches == 0 {
            std::thread::sleep(pause_between_batches);
        }
        let set_node = ["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id];
        to.query::<()>(&set_node);
        from.query::<()>(&set_node);
        for primary in self.primaries() {
            if primary.port != to.port && primary.port != from.port {
                primary.query::<()>(&set_node);
            }
        }
        wait_for(
            &format!("all nodes to agree that port {} owns slot {slot}", to.port),
            Duration::from_secs(20),
            POLL,
            |last| {
                self.live_nodes()
                    .all(|node| {
                        let owner = cluster_nodes(node).ok().and_then(|lines| {
                            lines
                                .into_iter()
                                .find(|l| l.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
                                .map(|l| l.port)
                        });
                        *last = format!("port {} says owner {owner:?}", node.port);
                        owner == Some(to.port)
                    })
                    .then_some(())
            },
        );
    }

    /// `(port, DBSIZE)` of every live node, in creation order (replicas included).
    pub fn dbsize_by_node(&self) -> Vec<(u16, u64)> {
        self.live_nodes()
            .map(|n| (n.port, n.query::<u64>(&["DBSIZE"])))
            .collect()
    }

    /// Planned failover: `CLUSTER FAILOVER` on `replica`, then waits until it is a primary
    /// and the cluster is ok again.
    pub fn failover(&self, replica: &RedisNode) {
        replica.query::<()>(&["CLUSTER", "FAILOVER"]);
        wait_promoted(replica, POLL);
        self.wait_ok(Duration::from_secs(30));
    }

    /// Nodes that can answer right now (not stopped, not paused).
    pub fn live_nodes(&self) -> impl Iterator<Item = &RedisNode> {
        self.nodes.iter().filter(|n| n.is_live())
    }

    /// The cluster's temp dir (node subdirs, `cluster-create.log`).
    pub fn dir(&self) -> &std::path::Path {
        self.tmp.path()
    }
}

fn is_status(value: &redis::Value, status: &str) -> bool {
    matches!(value, redis::Value::SimpleString(s) if s == status)
}

/// A node the topology questions below can ask, however the fixture talks to it.
pub trait ClusterMember {
    /// The port it serves clients on (the one `CLUSTER NODES` reports).
    fn port(&self) -> u16;
    /// Sends `args` as one command and returns the reply as text (`CLUSTER NODES`,
    /// `INFO replication`, ...); a failed connection or command is `Err`.
    fn ask(&self, args: &[&str]) -> Result<String, String>;
}

impl ClusterMember for RedisNode {
    fn port(&self) -> u16 {
        self.port
    }

    fn ask(&self, args: &[&str]) -> Result<String, String> {
        self.try_query(args)
    }
}

/// `CLUSTER NODES` of `node`, parsed.
pub fn cluster_nodes(node: &impl ClusterMember) -> Result<Vec<NodeLine>, String> {
    let text = node.ask(&["CLUSTER", "NODES"])?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| parse_node_line(line).ok_or_else(|| format!("bad CLUSTER NODES line: {line}")))
        .collect()
}

/// `node`'s own line of `CLUSTER NODES`.
pub(super) fn myself(node: &impl ClusterMember) -> Option<NodeLine> {
    cluster_nodes(node)
        .ok()?
        .into_iter()
        .find(|l| l.has_flag("myself"))
}

/// The nodes among `nodes` that call themselves primary, ordered by the lowest slot they own
/// (slot-less primaries last), then by port.
pub(super) fn primaries_among<'a, N: ClusterMember>(
    nodes: impl Iterator<Item = &'a N>,
) -> Vec<&'a N> {
    let mut found: Vec<(u32, &N)> = nodes
        .filter_map(|node| {
            let me = myself(node)?;
            let lowest = me.slots.iter().map(|&(a, _)| u32::from(a)).min();
            me.is_primary()
                .then_some((lowest.unwrap_or(u32::MAX), node))
        })
        .collect();
    found.sort_by_key(|&(lowest, node)| (lowest, node.port()));
    found.into_iter().map(|(_, node)| node).collect()
}

/// The nodes among `nodes` that replicate the primary with id `primary_id`.
pub(super) fn replicas_among<'a, N: ClusterMember>(
    nodes: impl Iterator<Item = &'a N>,
    primary_id: &str,
) -> Vec<&'a N> {
    nodes
        .filter(|node| myself(*node).is_some_and(|me| me.master.as_deref() == Some(primary_id)))
        .collect()
}

/// The port that owns `slot` by the majority of `nodes`' views (ties go to the lower port).
/// Panics if no node knows an owner.
pub(super) fn majority_owner<'a, N: ClusterMember + 'a>(
    nodes: impl Iterator<Item = &'a N>,
    slot: u16,
) -> u16 {
    assert!(usize::from(slot) < SLOTS, "slot {slot} out of range");
    let mut votes: HashMap<u16, usize> = HashMap::new();
    for node in nodes {
        let Ok(lines) = cluster_nodes(node) else {
            continue;
        };
        if let Some(owner) = lines
            .iter()
            .find(|l| l.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
        {
            *votes.entry(owner.port).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|&(port, n)| (n, std::cmp::Reverse(port)))
        .map(|(port, _)| port)
        .unwrap_or_else(|| panic!("no live node knows an owner for slot {slot}"))
}

/// Owner port of every slot (index = slot), as `node`'s `CLUSTER NODES` says. Panics if a
/// slot has no owner.
pub fn slot_owners_by(node: &impl ClusterMember) -> Vec<u16> {
    let lines = cluster_nodes(node).unwrap_or_else(|e| panic!("CLUSTER NODES: {e}"));
    let mut owners = vec![0u16; SLOTS];
    for &(a, b, port) in &slot_map(&lines) {
        owners[usize::from(a)..=usize::from(b)].fill(port);
    }
    if let Some(slot) = owners.iter().position(|&p| p == 0) {
        panic!(
            "slot {slot} has no owner in CLUSTER NODES of port {}",
            node.port()
        );
    }
    owners
}

/// One poll of "the cluster is formed": every one of `nodes` says `cluster_state:ok`, knows
/// all of them, flags none `handshake`/`noaddr`/`fail`, has its replica link up if it is a
/// replica, and all agree on one topology covering every slot. `None` with the reason in
/// `last` otherwise; for [`wait_for`].
pub(super) fn is_formed(nodes: &[impl ClusterMember], last: &mut String) -> Option<()> {
    let mut first: Option<TopologyView> = None;
    for node in nodes {
        let port = node.port();
        if !state_ok(node, last) {
            return None;
        }
        let lines = cluster_nodes(node).map_err(|e| *last = e).ok()?;
        if lines.len() != nodes.len() {
            *last = format!("port {port} knows {} nodes", lines.len());
            return None;
        }
        let bad = ["handshake", "noaddr", "fail", "fail?"];
        if let Some(l) = lines.iter().find(|l| bad.iter().any(|b| l.has_flag(b))) {
            *last = format!("port {port} sees {} as {:?}", l.port, l.flags);
            return None;
        }
        let me = lines.iter().find(|l| l.has_flag("myself")).expect("myself");
        if !me.is_primary() {
            let repl = node.ask(&["INFO", "replication"]);
            let link = repl.ok().and_then(|r| info_field(&r, "master_link_status"));
            if link.as_deref() != Some("up") {
                *last = format!("replica {port} link {link:?}");
                return None;
            }
        }
        let mut view: TopologyView = lines
            .into_iter()
            .map(|l| (l.id.clone(), l.is_primary(), l.master.clone(), l.slots))
            .collect();
        view.sort();
        if !same_as_first(&mut first, view) {
            *last = format!("port {port} disagrees on the topology");
            return None;
        }
    }
    let view = first.expect("at least one node");
    let ranges = view
        .iter()
        .flat_map(|(_, _, _, slots)| slots.iter().copied());
    all_slots_covered(ranges, last)
}

/// One poll of "the live nodes agree on the slot map": every one of `live` says
/// `cluster_state:ok`, maps every slot to one of them (no dead owner), and all map the same
/// way. `None` with the reason in `last` otherwise; for [`wait_for`].
pub(super) fn slots_agree<N: ClusterMember>(live: &[&N], last: &mut String) -> Option<()> {
    let live_ports: Vec<u16> = live.iter().map(|n| n.port()).collect();
    let mut first: Option<Vec<(u16, u16, u16)>> = None;
    for node in live {
        let port = node.port();
        if !state_ok(*node, last) {
            return None;
        }
        let map = slot_map(&cluster_nodes(*node).map_err(|e| *last = e).ok()?);
        if let Some(&(a, _, owner)) = map.iter().find(|e| !live_ports.contains(&e.2)) {
            *last = format!("port {port} maps slot {a} to dead port {owner}");
            return None;
        }
        if !same_as_first(&mut first, map) {
            *last = format!("port {port} disagrees on the slot map");
            return None;
        }
    }
    let ranges = first.iter().flatten().map(|&(a, b, _)| (a, b));
    all_slots_covered(ranges, last)
}

/// Waits (30 s) until `replica` calls itself a primary and owns slots, after a
/// `CLUSTER FAILOVER`.
pub(super) fn wait_promoted(replica: &impl ClusterMember, every: Duration) {
    wait_for(
        &format!("port {} to become primary", replica.port()),
        Duration::from_secs(30),
        every,
        |last| {
            let me = myself(replica)?;
            *last = format!("flags {:?}, {} slot ranges", me.flags, me.slots.len());
            (me.is_primary() && !me.slots.is_empty()).then_some(())
        },
    );
}

/// True if `node` says `cluster_state:ok`; else the reason goes to `last`.
fn state_ok(node: &impl ClusterMember, last: &mut String) -> bool {
    let state = match node.ask(&["CLUSTER", "INFO"]) {
        Ok(info) => info_field(&info, "cluster_state"),
        Err(e) => {
            *last = e;
            return false;
        }
    };
    if state.as_deref() != Some("ok") {
        *last = format!("port {}: cluster_state {state:?}", node.port());
    }
    state.as_deref() == Some("ok")
}

/// Keeps the first node's `view` in `first` and tells whether a later one equals it.
fn same_as_first<T: PartialEq>(first: &mut Option<T>, view: T) -> bool {
    match first {
        None => {
            *first = Some(view);
            true
        }
        Some(f) => *f == view,
    }
}

/// `Some(())` if the inclusive `ranges` add up to all 16384 slots; else the count goes to
/// `last`.
fn all_slots_covered(ranges: impl Iterator<Item = (u16, u16)>, last: &mut String) -> Option<()> {
    let covered: usize = ranges.map(|(a, b)| usize::from(b - a) + 1).sum();
    if covered != SLOTS {
        *last = format!("{covered} slots covered");
        return None;
    }
    Some(())
}

/// Parses `<id> <ip:port@cport[,host]> <flags> <master> <ping> <pong> <epoch> <link> <slots>...`.
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let addr = fields[1].split([',', '@']).next()?;
    let port = addr.rsplit_once(':')?.1.parse().ok()?;
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect::<Option<Vec<(u16, u16)>>>()?;
    Some(NodeLine {
        id: fields[0].to_string(),
        port,
        flags: fields[2].split(',').map(str::to_string).collect(),
        master: (fields[3] != "-").then(|| fields[3].to_string()),
        slots,
    })
}

/// `(first, last, owner port)` for every owned range, sorted.
fn slot_map(lines: &[NodeLine]) -> Vec<(u16, u16, u16)> {
    let mut map: Vec<(u16, u16, u16)> = lines
        .iter()
        .flat_map(|l| l.slots.iter().map(move |&(a, b)| (a, b, l.port)))
        .collect();
    map.sort();
    map
}
