//! One worker thread's world: its backend pool, cached snapshots and counters.
//!
//! Every worker runs a current-thread tokio runtime with its own listener (`SO_REUSEPORT`),
//! its own client sessions and its own backend connections, and shares only the
//! [`ProxyState`] with the others, so a request never crosses threads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use arc_swap::Cache;

use crate::backend::{NodeConn, Pool};
use crate::commands::CommandTable;
use crate::dns::Dns;
use crate::metrics::WorkerStats;
use crate::resp::encode::Protocol;
use crate::state::ProxyState;
use crate::topology::Topology;

/// Per-thread context handed to every session of the thread.
pub struct Worker {
    pub state: Arc<ProxyState>,
    pub stats: Arc<WorkerStats>,
    pub pool: Pool,
    /// Fires when the process starts draining: a child of [`ProxyState::draining`] per
    /// worker, so the sessions waiting on it lock this thread's token, not one that every
    /// thread's sessions share.
    pub draining: tokio_util::sync::CancellationToken,
    /// The read buffer idle sessions share ([`crate::read_pool`]).
    pub reads: crate::read_pool::ReadPool,
    topology: RefCell<Cache<ArcSwapRef<Topology>, Arc<Topology>>>,
    commands: RefCell<Cache<ArcSwapRef<CommandTable>, Arc<CommandTable>>>,
    /// Rotates keyless commands over the primaries.
    next_primary: Cell<usize>,
    /// The map generation the pool was last pruned for.
    pruned_generation: Cell<u64>,
    /// Shared connections by shard index for the current map generation, per protocol.
    by_shard: RefCell<ShardBackends>,
}

/// A cache in front of [`Pool::get`] for the request path: the shard index is known
/// already, so a hit costs an index and an `Rc` clone.
#[derive(Default)]
struct ShardBackends {
    generation: u64,
    resp2: Vec<Option<Rc<NodeConn>>>,
    resp3: Vec<Option<Rc<NodeConn>>>,
}

/// Lets an [`arc_swap::Cache`] borrow an `ArcSwap` inside the shared state.
pub struct ArcSwapRef<T> {
    state: Arc<ProxyState>,
    pick: fn(&ProxyState) -> &arc_swap::ArcSwap<T>,
}

impl<T> std::ops::Deref for ArcSwapRef<T> {
    type Target = arc_swap::ArcSwap<T>;
    fn deref(&self) -> &Self::Target {
        (self.pick)(&self.state)
    }
}

impl Worker {
    pub fn new(state: Arc<ProxyState>, index: usize) -> Self {
        let stats = state.workers[index].clone();
        let config = state.config();

        let topology = Cache::new(ArcSwapRef {
            state: state.clone(),
            pick: |s| &s.topology,
        });
        let commands = Cache::new(ArcSwapRef {
            state: state.clone(),
            pick: |s| &s.commands,
        });
        let dns = Rc::new(Dns::with_metrics(
            config.dns_server.as_ref(),
            state.metrics.dns.clone(),
        ));
        Self {
            pool: Pool::new(state.connector.clone(), stats.clone(), dns),
            reads: crate::read_pool::ReadPool::default(),
            draining: state.draining.child_token(),
            stats,
            state,
            topology: RefCell::new(topology),
            commands: RefCell::new(commands),
            next_primary: Cell::new(index),
            pruned_generation: Cell::new(0),
            by_shard: RefCell::default(),
        }
    }

    /// Runs `f` on the current slot map without touching its reference count, which
    /// would bounce a cache line between threads on every request.
    pub fn with_topology<R>(&self, f: impl FnOnce(&Topology) -> R) -> R {
        let mut cache = self.topology.borrow_mut();
        let topology = cache.load();
        if topology.generation != self.pruned_generation.get() {
            self.pruned_generation.set(topology.generation);
            self.pool.retain(&topology.endpoints());
        }
        f(topology)
    }

    /// The shared connection to the primary of shard `shard` of `topology`.
    pub fn shared_backend(
        &self,
        topology: &Topology,
        shard: usize,
        protocol: Protocol,
    ) -> Rc<NodeConn> {
        let mut cache = self.by_shard.borrow_mut();
        if cache.generation != topology.generation {
            let shards = topology.shards().len();
            *cache = ShardBackends {
                generation: topology.generation,
                resp2: vec![None; shards],
                resp3: vec![None; shards],
            };
        }
        let list = match protocol {
            Protocol::Resp2 => &mut cache.resp2,
            Protocol::Resp3 => &mut cache.resp3,
        };
        if let Some(Some(backend)) = list.get(shard)
            && !backend.is_broken()
        {
            return backend.clone();
        }
        let backend = self
            .pool
            .get(&topology.shards()[shard].primary.endpoint, protocol);
        if let Some(entry) = list.get_mut(shard) {
            *entry = Some(backend.clone());
        }
        backend
    }

    /// Runs `f` on the current command table; see [`Self::with_topology`].
    pub fn with_commands<R>(&self, f: impl FnOnce(&CommandTable) -> R) -> R {
        f(self.commands.borrow_mut().load())
    }

    /// A primary index for a keyless command, rotating over `count` primaries.
    pub fn pick_primary(&self, count: usize) -> usize {
        let next = self.next_primary.get().wrapping_add(1);
        self.next_primary.set(next);
        next % count.max(1)
    }
}
