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
        Self {
            pool: Pool::new(upstream.connector.clone(), stats, dns),
            upstream,
            topology: RefCell::new(topology),
            commands: RefCell::new(commands),
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

    /// The connection that serves `target` for a request with `intent`: the one place
    /// where a target becomes a node and a connection. `None` when no shard serves the
    /// target in the current snapshot (the caller waits for a better one).
    ///
    /// Every intent ends on the shard's primary today; a read policy (replicas, nearest)
    /// changes only the choice of node below.
    pub fn resolve(
        &self,
        target: Target<'_>,
        intent: ReadIntent,
        using: Use<'_>,
        protocol: Protocol,
    ) -> Option<Rc<NodeConn>> {
        // The only intent today; a read policy will choose among the shard's nodes here.
        let ReadIntent::Primary = intent;
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
