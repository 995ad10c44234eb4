//! One worker thread's world: its side of every upstream, its read buffers and counters.
//!
//! Every worker runs a current-thread tokio runtime with its own listeners (`SO_REUSEPORT`),
//! its own client sessions and its own connections to the nodes, and shares only the
//! [`ProxyState`] and the [`Upstream`](crate::upstream::Upstream)s with the others, so a
//! request never crosses threads.

use std::rc::Rc;
use std::sync::Arc;

use crate::dns::Dns;
use crate::metrics::WorkerStats;
use crate::state::ProxyState;
use crate::upstream::WorkerUpstream;

/// Per-thread context handed to every session of the thread.
pub struct Worker {
    pub state: Arc<ProxyState>,
    pub stats: Arc<WorkerStats>,
    /// This thread's side of each upstream, in [`ProxyState::upstreams`] order. A session
    /// gets the one its listener is bound to.
    pub upstreams: Vec<Rc<WorkerUpstream>>,
    /// Fires when the process starts draining: a child of [`ProxyState::draining`] per
    /// worker, so the sessions waiting on it lock this thread's token, not one that every
    /// thread's sessions share.
    pub draining: tokio_util::sync::CancellationToken,
    /// The read buffer idle sessions share ([`crate::read_pool`]).
    pub reads: crate::read_pool::ReadPool,
}

impl Worker {
    pub fn new(state: Arc<ProxyState>, index: usize) -> Self {
        let stats = state.workers[index].clone();
        let config = state.config();
        let dns = Rc::new(Dns::with_metrics(
            config.dns_server.as_ref(),
            state.metrics.dns.clone(),
        ));
        drop(config);
        let upstreams = state
            .upstreams
            .iter()
            .map(|upstream| {
                Rc::new(WorkerUpstream::new(
                    upstream.clone(),
                    stats.clone(),
                    dns.clone(),
                    index,
                ))
            })
            .collect();
        Self {
            upstreams,
            reads: crate::read_pool::ReadPool::default(),
            draining: state.draining.child_token(),
            stats,
            state,
        }
    }
}
