//! One worker thread's world: its side of every upstream, its read buffers and counters.
//!
//! Every worker runs a current-thread tokio runtime with its own listeners (`SO_REUSEPORT`),
//! its own client sessions and its own connections to the nodes, and shares only the
//! [`ProxyState`] and the [`Upstream`](crate::upstream::Upstream)s with the others, so a
//! request never crosses threads.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::dns::Dns;
use crate::metrics::WorkerStats;
use crate::state::ProxyState;
use crate::upstream::{Upstream, WorkerUpstream};

/// Per-thread context handed to every session of the thread.
pub struct Worker {
    pub state: Arc<ProxyState>,
    pub stats: Arc<WorkerStats>,
    /// This thread's side of each upstream a listener of this thread is bound to, made on
    /// first use ([`Worker::upstream_for`]). Sessions hold their own `Rc`, so dropping an
    /// entry here never cuts a session off.
    upstreams: RefCell<Vec<Rc<WorkerUpstream>>>,
    dns: Rc<Dns>,
    index: usize,
    /// Fires when the process starts draining: a child of [`ProxyState::draining`] per
    /// worker, so this thread's loops wait on a token of their own.
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
        Self {
            upstreams: RefCell::default(),
            dns,
            index,
            reads: crate::read_pool::ReadPool::default(),
            draining: state.draining.child_token(),
            stats,
            state,
        }
    }

    /// This thread's side of `upstream`, made the first time a listener needs it.
    pub fn upstream_for(&self, upstream: &Arc<Upstream>) -> Rc<WorkerUpstream> {
        let mut known = self.upstreams.borrow_mut();
        if let Some(found) = known.iter().find(|w| Arc::ptr_eq(&w.upstream, upstream)) {
            return found.clone();
        }
        let made = Rc::new(WorkerUpstream::new(
            upstream.clone(),
            self.stats.clone(),
            self.dns.clone(),
            self.index,
        ));
        known.push(made.clone());
        // Follows the replica probe until the upstream is removed.
        let follower = made.clone();
        let stop = upstream.stop.clone();
        tokio::task::spawn_local(async move {
            tokio::select! {
                () = follower.follow_read_health() => {}
                () = stop.cancelled() => {}
            }
        });
        made
    }

    /// Drops this thread's side of upstreams a reload removed (their last sessions keep
    /// their own `Rc` until they end).
    pub fn forget_unused_upstreams(&self) {
        let live = self.state.upstreams();
        self.upstreams
            .borrow_mut()
            .retain(|w| live.iter().any(|u| Arc::ptr_eq(u, &w.upstream)));
    }
}
