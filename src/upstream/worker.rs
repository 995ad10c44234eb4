//! One worker thread's side of one upstream: its connection pool, its cached snapshots,
//! and [`WorkerUpstream::resolve`], the one function that turns a target into a connection.
//!
//! Everything here lives on one thread (`Rc`, `RefCell`, `Cell`). The snapshots are read
//! through [`arc_swap::Cache`]: an unchanged snapshot costs one atomic load and no
//! reference-count traffic shared with other threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::{ArcSwap, Cache};

use super::Upstream;
use crate::backend::{Mode, NodeConn, Pool};
use crate::commands::CommandTable;
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::metrics::WorkerStats;
use crate::reads::ReadFrom;
use crate::reads::choose::{Candidates, Choice, ReadRequest};
use crate::reads::health::ReadHealth;
use crate::resp::encode::Protocol;
use crate::router::ReadIntent;
use crate::topology::Topology;

/// What a request is for, in the terms of the upstream's topology.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// The shard owning this slot in the current snapshot.
    Slot(u16),
    /// This shard of the current snapshot, by index.
    Shard(usize),
    /// Any shard: a keyless command (rotated over the shards).
    AnyShard,
    /// This node, named by a `MOVED`/`ASK` redirect.
    Node(&'a Endpoint),
}

/// Which kind of connection the caller wants.
#[derive(Clone, Copy)]
pub enum Use<'a> {
    /// The worker's pooled, multiplexed connection (the common case and the hot path).
    Shared,
    /// A new connection owned by the caller: single-use (blocking commands), pinned
    /// (`WATCH`) or push (subscriptions).
    Own(Mode),
    /// One of the caller's own connections if `find` has one to the chosen node, else a
    /// new one in this mode (a subscriber's shard connections, one per node).
    Reuse(Mode, &'a dyn Fn(&Endpoint) -> Option<Rc<NodeConn>>),
}

/// Where a read went ([`WorkerUpstream::resolve_read`]).
pub enum ReadResolved {
    /// `conn` serves it; `replica` when the node is a replica, `tag` names the node for a
    /// SCAN cursor ([`crate::reads::choose::node_tag`]).
    Conn {
        conn: Rc<NodeConn>,
        replica: bool,
        tag: u8,
    },
    /// No shard serves the target in the current snapshot.
    Unserved,
    /// `read-from = replica` and the shard has no eligible replica.
    NoReplica,
}

/// Lets an [`arc_swap::Cache`] borrow an `ArcSwap` inside the upstream.
pub struct UpstreamRef<T> {
    upstream: Arc<Upstream>,
    pick: fn(&Upstream) -> &ArcSwap<T>,
}

impl<T> std::ops::Deref for UpstreamRef<T> {
    type Target = ArcSwap<T>;
    fn deref(&self) -> &Self::Target {
        (self.pick)(&self.upstream)
    }
}

/// One worker's view of one upstream; see the module docs.
pub struct WorkerUpstream {
    pub upstream: Arc<Upstream>,
    pub pool: Pool,
    topology: RefCell<Cache<UpstreamRef<Topology>, Arc<Topology>>>,
    commands: RefCell<Cache<UpstreamRef<CommandTable>, Arc<CommandTable>>>,
    reads: RefCell<Cache<UpstreamRef<ReadHealth>, Arc<ReadHealth>>>,
    /// The nodes that may serve reads now, per shard, for the snapshots in force.
    candidates: RefCell<Candidates>,
    worker: usize,
    /// Rotates keyless commands over the shards.
    next_shard: Cell<usize>,
    /// The map generation the pool was last pruned for.
    pruned_generation: Cell<u64>,
    /// Shared connections by shard index for the current map generation, per protocol.
    by_shard: RefCell<ShardConns>,
}

/// A cache in front of [`Pool::get`] for the request path: the shard index is known
/// already, so a hit costs an index and an `Rc` clone.
#[derive(Default)]
struct ShardConns {
    generation: u64,
    resp2: Vec<Option<Rc<NodeConn>>>,
    resp3: Vec<Option<Rc<NodeConn>>>,
}

impl WorkerUpstream {
    /// `worker` (the thread's index) staggers where each thread's keyless rotation starts.
    pub fn new(
        upstream: Arc<Upstream>,
        stats: Arc<WorkerStats>,
        dns: Rc<Dns>,
        worker: usize,
    ) -> Self {
        let topology = Cache::new(UpstreamRef {
            upstream: upstream.clone(),
            pick: |u| &u.topology,
        });
        let commands = Cache::new(UpstreamRef {
            upstream: upstream.clone(),
            pick: |u| &u.commands,
        });
        let reads = Cache::new(UpstreamRef {
            upstream: upstream.clone(),
            pick: |u| &u.reads,
        });
        Self {
            pool: Pool::new(upstream.connector.clone(), stats, dns),
            upstream,
            topology: RefCell::new(topology),
            commands: RefCell::new(commands),
            reads: RefCell::new(reads),
            candidates: RefCell::default(),
            worker,
            next_shard: Cell::new(worker),
            pruned_generation: Cell::new(0),
            by_shard: RefCell::default(),
        }
    }

    /// Runs `f` on the current snapshot without touching its reference count, which
    /// would bounce a cache line between threads on every request. The first look at a
    /// new generation closes the pool's connections to nodes that left it.
    pub fn with_topology<R>(&self, f: impl FnOnce(&Topology) -> R) -> R {
        let mut cache = self.topology.borrow_mut();
        let topology = cache.load();
        if topology.generation != self.pruned_generation.get() {
            self.pruned_generation.set(topology.generation);
            self.pool.retain(&topology.endpoints());
            // A backend without slots switched primaries: nothing a client pinned to the
            // old one may go on there (an empty map, a failover hold, keeps them until the
            // new primary is known).
            if self.upstream.shape.is_one_shard()
                && let Some(shard) = topology.shards().first()
            {
                self.pool
                    .close_dedicated_except(std::slice::from_ref(&shard.primary.endpoint));
            }
        }
        f(topology)
    }

    /// Runs `f` on the current command table; see [`Self::with_topology`].
    pub fn with_commands<R>(&self, f: impl FnOnce(&CommandTable) -> R) -> R {
        f(self.commands.borrow_mut().load())
    }

    /// The backend's read policy in force (one atomic load).
    pub fn read_policy(&self) -> ReadFrom {
        self.reads.borrow_mut().load().settings.read_from
    }

    /// The backend's read settings in force.
    pub fn read_settings(&self) -> crate::reads::ReadSettings {
        self.reads.borrow_mut().load().settings
    }

    /// The shared connection that serves a read of `target` under `read`'s policy: the
    /// shard's primary or one of its eligible replicas ([`crate::reads::choose`]). A
    /// redirect's node (`Target::Node`) is taken as named.
    pub fn resolve_read(
        &self,
        target: Target<'_>,
        read: ReadRequest,
        protocol: Protocol,
    ) -> ReadResolved {
        let conn = |conn, replica, tag| ReadResolved::Conn { conn, replica, tag };
        self.with_topology(|topology| {
            let count = topology.shards().len();
            let shard = match target {
                Target::Slot(slot) => topology.shard_index(slot),
                Target::Shard(index) => (index < count).then_some(index),
                Target::AnyShard => (count > 0).then(|| self.pick_shard(count)),
                Target::Node(endpoint) => {
                    return conn(self.pool.get(endpoint, protocol), false, 0);
                }
            };
            let Some(shard) = shard else {
                return ReadResolved::Unserved;
            };
            let mut reads = self.reads.borrow_mut();
            let health = reads.load();
            let mut candidates = self.candidates.borrow_mut();
            if !candidates.is_for(topology, health) {
                *candidates = self.rebuild_candidates(topology, health);
            }
            let choice = candidates.choose(shard, read);
            let tag = candidates.tag_of(shard, &choice);
            match choice {
                Choice::Primary => {
                    let primary = self.shared(topology, shard, protocol);
                    primary.count_read(false);
                    conn(primary, false, tag)
                }
                Choice::Replica(endpoint) => {
                    // A cluster replica redirects reads unless told READONLY; the other
                    // shapes' replicas serve them as they are.
                    let replica = if self.upstream.shape.is_one_shard() {
                        self.pool.get(endpoint, protocol)
                    } else {
                        self.pool.get_readonly(endpoint, protocol)
                    };
                    replica.count_read(true);
                    conn(replica, true, tag)
                }
                Choice::NoReplica => ReadResolved::NoReplica,
            }
        })
    }

    /// The candidates for new snapshots. Replicas the probe found unfit lose this worker's
    /// read connections now: reads waiting on a hung replica are retried elsewhere at once
    /// rather than at `backend-reply-timeout`.
    fn rebuild_candidates(&self, topology: &Topology, health: &ReadHealth) -> Candidates {
        let readonly = !self.upstream.shape.is_one_shard();
        for shard in topology.shards() {
            for replica in &shard.replicas {
                if health.node(&replica.endpoint).is_some_and(|h| !h.readable) {
                    self.pool.close_reads_to(
                        &replica.endpoint,
                        readonly,
                        "the replica stopped serving reads (replica probe)",
                    );
                }
            }
        }
        Candidates::build(topology, health, self.worker)
    }

    /// Follows the replica probe for as long as the worker runs: each new snapshot is
    /// applied at once, not at the next read, because the reads that would trigger it may
    /// all be waiting on the replica that stopped answering.
    pub async fn follow_read_health(self: Rc<Self>) {
        loop {
            self.upstream.read_health_changed().await;
            if self.upstream.probes_replicas() {
                self.with_candidates(|_, _| ());
            }
        }
    }

    /// Takes `endpoint` out of this worker's read choices until the next probe round: a
    /// read there failed before it ran (refused, loading), or its reply never came.
    pub fn avoid_for_reads(&self, endpoint: &Endpoint) {
        self.candidates.borrow_mut().exclude(endpoint);
    }

    /// True when the node tagged `tag` in a SCAN cursor may serve the next page of the
    /// shard serving `slot`, under `policy` (`None`: the primary alone).
    pub fn scan_node_serves(&self, slot: u16, tag: u8, policy: Option<ReadFrom>) -> bool {
        self.with_candidates(|topology, candidates| {
            topology.shard_index(slot).is_some_and(|shard| {
                candidates.has_tag(shard, tag, policy.unwrap_or(ReadFrom::Primary))
            })
        })
    }

    /// Runs `f` on the current topology and this worker's read candidates for it.
    fn with_candidates<R>(&self, f: impl FnOnce(&Topology, &Candidates) -> R) -> R {
        self.with_topology(|topology| {
            let mut reads = self.reads.borrow_mut();
            let health = reads.load();
            let mut candidates = self.candidates.borrow_mut();
            if !candidates.is_for(topology, health) {
                *candidates = self.rebuild_candidates(topology, health);
            }
            f(topology, &candidates)
        })
    }

    /// True when every eligible replica of the shard serving `slot` is known to hold the
    /// writes acknowledged before `written_at` (read-your-writes can forget them).
    pub fn caught_up(&self, slot: u16, written_at: std::time::Instant) -> bool {
        self.with_candidates(|topology, candidates| {
            topology
                .shard_index(slot)
                .is_some_and(|shard| candidates.caught_up(shard, written_at))
        })
    }

    /// The connection that serves `target` on its shard's primary: the one place where a
    /// target becomes a node and a connection (reads by policy: [`Self::resolve_read`]).
    /// `None` when no shard serves the target in the current snapshot (the caller waits
    /// for a better one).
    pub fn resolve(
        &self,
        target: Target<'_>,
        intent: ReadIntent,
        using: Use<'_>,
        protocol: Protocol,
    ) -> Option<Rc<NodeConn>> {
        // Reads by policy go through `resolve_read`; here every intent means the primary.
        let _ = intent;
        self.with_topology(|topology| {
            let count = topology.shards().len();
            let shard = match target {
                Target::Slot(slot) => topology.shard_index(slot)?,
                Target::Shard(index) => (index < count).then_some(index)?,
                Target::AnyShard => (count > 0).then(|| self.pick_shard(count))?,
                // A redirect names the node itself.
                Target::Node(endpoint) => return Some(self.open(endpoint, using, protocol)),
            };
            Some(match using {
                // The hot path: a cached handle, no hashing, no reference counts shared
                // with other threads.
                Use::Shared => self.shared(topology, shard, protocol),
                _ => self.open(&topology.shards()[shard].primary.endpoint, using, protocol),
            })
        })
    }

    /// A connection to `endpoint` of the kind `using` asks for.
    fn open(&self, endpoint: &Endpoint, using: Use<'_>, protocol: Protocol) -> Rc<NodeConn> {
        match using {
            Use::Shared => self.pool.get(endpoint, protocol),
            Use::Own(mode) => self.pool.dedicated(endpoint, protocol, mode),
            Use::Reuse(mode, find) => {
                find(endpoint).unwrap_or_else(|| self.pool.dedicated(endpoint, protocol, mode))
            }
        }
    }

    /// The shared connection to the primary of shard `shard` of `topology`.
    fn shared(&self, topology: &Topology, shard: usize, protocol: Protocol) -> Rc<NodeConn> {
        let mut cache = self.by_shard.borrow_mut();
        if cache.generation != topology.generation {
            let shards = topology.shards().len();
            *cache = ShardConns {
                generation: topology.generation,
                resp2: vec![None; shards],
                resp3: vec![None; shards],
            };
        }
        let list = match protocol {
            Protocol::Resp2 => &mut cache.resp2,
            Protocol::Resp3 => &mut cache.resp3,
        };
        if let Some(Some(conn)) = list.get(shard)
            && !conn.is_broken()
        {
            return conn.clone();
        }
        let conn = self
            .pool
            .get(&topology.shards()[shard].primary.endpoint, protocol);
        if let Some(entry) = list.get_mut(shard) {
            *entry = Some(conn.clone());
        }
        conn
    }

    /// A shard index for a keyless command, rotating over `count` shards.
    fn pick_shard(&self, count: usize) -> usize {
        let next = self.next_shard.get().wrapping_add(1);
        self.next_shard.set(next);
        next % count.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HostPort};
    use crate::topology::{Node, Shard};

    /// A worker's side of an upstream whose map has two shards (ports 1 and 2 on
    /// 127.0.0.1: nothing listens there, and nothing here waits for a connection).
    fn two_shards() -> WorkerUpstream {
        let config = Config::with_seeds(vec![HostPort::new("127.0.0.1", 1)]);
        let upstream = Arc::new(Upstream::from_config(&config));
        let node = |port| Node {
            id: format!("node{port}").into(),
            endpoint: Endpoint::new("127.0.0.1", port),
        };
        let mut topology = Topology::from_ranges(
            vec![
                Shard {
                    primary: node(1),
                    replicas: vec![],
                },
                Shard {
                    primary: node(2),
                    replicas: vec![],
                },
            ],
            &[(0, 0, 8191), (1, 8192, 16383)],
        );
        topology.generation = 1;
        upstream.topology.store(Arc::new(topology));
        WorkerUpstream::new(upstream, Arc::default(), Rc::new(Dns::new(None)), 0)
    }

    fn port(conn: &Rc<NodeConn>) -> u16 {
        conn.endpoint().port
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_target_resolves_to_the_node_that_serves_it() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let up = two_shards();
                let primary = ReadIntent::Primary;
                let resp2 = Protocol::Resp2;
                let slot = |s| up.resolve(Target::Slot(s), primary, Use::Shared, resp2);
                assert_eq!(slot(0).map(|c| port(&c)), Some(1));
                assert_eq!(slot(16383).map(|c| port(&c)), Some(2));
                // The hot path hands out the same shared connection each time.
                assert!(Rc::ptr_eq(&slot(5).unwrap(), &slot(6).unwrap()));
                let shard = |i| up.resolve(Target::Shard(i), primary, Use::Shared, resp2);
                assert_eq!(shard(1).map(|c| port(&c)), Some(2));
                assert!(shard(2).is_none(), "no such shard");
                // Keyless commands rotate over the shards.
                let any: Vec<u16> = (0..4)
                    .map(|_| {
                        port(
                            &up.resolve(Target::AnyShard, primary, Use::Shared, resp2)
                                .unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(any, [2, 1, 2, 1]);
                let there = Endpoint::new("127.0.0.1", 3);
                let redirected = up.resolve(Target::Node(&there), primary, Use::Shared, resp2);
                assert_eq!(redirected.map(|c| port(&c)), Some(3));
                // A connection of the caller's own is never the shared one.
                let own = up
                    .resolve(Target::Slot(0), primary, Use::Own(Mode::Pinned), resp2)
                    .unwrap();
                assert_eq!(port(&own), 1);
                assert!(!Rc::ptr_eq(&own, &slot(0).unwrap()));
                // Reuse: the caller's connection to the chosen node, else a new one.
                let mine = own.clone();
                let find = move |e: &Endpoint| (e.port == 1).then(|| mine.clone());
                let reused = up.resolve(
                    Target::Slot(1),
                    primary,
                    Use::Reuse(Mode::Push, &find),
                    resp2,
                );
                assert!(Rc::ptr_eq(&reused.unwrap(), &own));
                let fresh = up
                    .resolve(
                        Target::Slot(9000),
                        primary,
                        Use::Reuse(Mode::Push, &find),
                        resp2,
                    )
                    .unwrap();
                assert_eq!(port(&fresh), 2);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn nothing_resolves_without_a_map() {
        let config = Config::with_seeds(vec![HostPort::new("127.0.0.1", 1)]);
        let upstream = Arc::new(Upstream::from_config(&config));
        let up = WorkerUpstream::new(upstream, Arc::default(), Rc::new(Dns::new(None)), 0);
        for target in [Target::Slot(0), Target::Shard(0), Target::AnyShard] {
            assert!(
                up.resolve(target, ReadIntent::Primary, Use::Shared, Protocol::Resp2)
                    .is_none()
            );
        }
    }
}
