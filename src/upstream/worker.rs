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
        let ReadIntent::Primary = intent;
        let shard = match target {
            Target::Node(endpoint) => return Some(self.open(endpoint, using, protocol)),
            Target::Slot(slot) => Err(slot),
            Target::Shard(index) => Ok(Some(index)),
            Target::AnyShard => Ok(None),
        };
        self.with_topology(|topology| {
            let count = topology.shards().len();
            let index = match shard {
                Err(slot) => topology.shard_index(slot)?,
                Ok(Some(index)) if index < count => index,
                Ok(Some(_)) => return None,
                Ok(None) if count == 0 => return None,
                Ok(None) => self.pick_shard(count),
            };
            Some(match using {
                // The hot path: a cached handle, no hashing, no reference counts shared
                // with other threads.
                Use::Shared => self.shared(topology, index, protocol),
                _ => self.open(&topology.shards()[index].primary.endpoint, using, protocol),
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
