//! Connections from one worker thread to the cluster's nodes.
//!
//! Each worker owns a [`Pool`]: one multiplexed, pipelined [`conn::NodeConn`] per node and
//! protocol version, shared by all of that worker's clients. A session hands a
//! [`Request`] to a backend; the backend writes requests in batches, matches replies in
//! FIFO order and reports each one as an [`Outcome`] to the request's [`ReplySink`].
//! Everything here lives on one thread (`Rc`, `RefCell`): no locks, no cross-thread wake-ups.

pub mod conn;
mod outcome;

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use rustc_hash::FxHashMap;

pub use conn::NodeConn;
pub use outcome::{Failure, Outcome, classify_reply};

use crate::connector::NodeConnector;
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::metrics::WorkerStats;
use crate::resp::encode::Protocol;

/// Receives the outcome of a forwarded request. Implemented by the client session's reply queue.
pub trait ReplySink {
    fn complete(&self, seq: u64, outcome: Outcome);
    /// A frame from subscription connection `conn` ([`NodeConn::id`], [`Mode::Push`]):
    /// a message or a (un)subscribe confirmation.
    fn push(&self, _conn: u64, _frame: Bytes) {}
    /// Subscription connection `conn` closed; its subscriptions are gone.
    fn push_lost(&self, _conn: u64) {}
}

/// One request on its way to a node.
pub struct Request {
    pub sink: Rc<dyn ReplySink>,
    pub seq: u64,
    pub frame: Bytes,
    /// Send `ASKING` first, on the same connection (an `ASK` redirect is being followed).
    pub asking: bool,
    /// `frame` holds this many commands before the one whose reply answers the request
    /// (a transaction: MULTI and the queued commands before EXEC). Their replies are
    /// swallowed, but a redirect among them is reported if the last reply is an error.
    pub swallow: u32,
}

/// How a connection is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Multiplexed: many requests, `backend-reply-timeout` applies.
    Shared,
    /// Like [`Mode::Shared`] (many requests, `backend-reply-timeout`), but owned by one
    /// client and never pooled: the connection a `WATCH` pins, whose state (the watched
    /// keys) belongs to that client alone.
    Pinned,
    /// One request that may block for as long as the command says (BLPOP, WAIT, ...):
    /// no reply timeout, and the connection closes after the reply.
    SingleUse,
    /// A subscription connection: every frame the node sends goes to the sink's
    /// [`ReplySink::push`], in order; requests expect no matching reply.
    Push,
}

/// A worker's connections, by node and protocol version.
pub struct Pool {
    /// How new connections are opened: the connector in force for this pool's backend
    /// (replaced on reload; each new connection takes the current one).
    connector: Arc<ArcSwap<NodeConnector>>,
    stats: Arc<WorkerStats>,
    dns: Rc<Dns>,
    backends: RefCell<FxHashMap<Endpoint, ByProtocol>>,
    /// Connections that sent `READONLY` (cluster replicas serving reads), apart from the
    /// others: a read meant for a primary must never reach a node that would answer it
    /// as a replica instead of redirecting it.
    readers: RefCell<FxHashMap<Endpoint, ByProtocol>>,
    /// The clients' own connections ([`Pool::dedicated`]), so a primary switch can end
    /// those to the demoted node ([`Pool::close_dedicated_except`]).
    dedicated: RefCell<Vec<Weak<NodeConn>>>,
    prune_dedicated_at: Cell<usize>,
}

/// A node's connections: one per protocol version, opened on demand.
#[derive(Default)]
struct ByProtocol {
    resp2: Option<Rc<NodeConn>>,
    resp3: Option<Rc<NodeConn>>,
}

impl ByProtocol {
    fn slot(&mut self, protocol: Protocol) -> &mut Option<Rc<NodeConn>> {
        match protocol {
            Protocol::Resp2 => &mut self.resp2,
            Protocol::Resp3 => &mut self.resp3,
        }
    }
}

impl Pool {
    pub fn new(
        connector: Arc<ArcSwap<NodeConnector>>,
        stats: Arc<WorkerStats>,
        dns: Rc<Dns>,
    ) -> Self {
        Self {
            connector,
            stats,
            dns,
            backends: RefCell::default(),
            readers: RefCell::default(),
            dedicated: RefCell::default(),
            prune_dedicated_at: Cell::new(64),
        }
    }

    /// The live connection to `endpoint` for `protocol`, opened on first use and reopened
    /// after it broke. Must be called inside the worker's `LocalSet`. The lookup borrows
    /// `endpoint`: cloning it would touch a shared reference count on every request.
    pub fn get(&self, endpoint: &Endpoint, protocol: Protocol) -> Rc<NodeConn> {
        self.get_in(&self.backends, endpoint, protocol, false)
    }

    /// Like [`Pool::get`], for reads from a cluster replica: the connection sent `READONLY`
    /// in its handshake.
    pub fn get_readonly(&self, endpoint: &Endpoint, protocol: Protocol) -> Rc<NodeConn> {
        self.get_in(&self.readers, endpoint, protocol, true)
    }

    fn get_in(
        &self,
        map: &RefCell<FxHashMap<Endpoint, ByProtocol>>,
        endpoint: &Endpoint,
        protocol: Protocol,
        readonly: bool,
    ) -> Rc<NodeConn> {
        let mut backends = map.borrow_mut();
        if let Some(by_protocol) = backends.get_mut(endpoint) {
            let slot = by_protocol.slot(protocol);
            match slot {
                Some(backend) if !backend.is_broken() => return backend.clone(),
                _ => {
                    let backend = self.open(endpoint, protocol, readonly);
                    *slot = Some(backend.clone());
                    return backend;
                }
            }
        }
        let backend = self.open(endpoint, protocol, readonly);
        let mut by_protocol = ByProtocol::default();
        *by_protocol.slot(protocol) = Some(backend.clone());
        backends.insert(endpoint.clone(), by_protocol);
        backend
    }

    /// A new connection outside the pool, owned by one client: for blocking commands
    /// ([`Mode::SingleUse`]), watched transactions ([`Mode::Pinned`]) and subscriptions
    /// ([`Mode::Push`]).
    pub fn dedicated(&self, endpoint: &Endpoint, protocol: Protocol, mode: Mode) -> Rc<NodeConn> {
        let conn = NodeConn::open(
            endpoint.clone(),
            protocol,
            mode,
            self.connector(),
            self.stats.clone(),
            self.dns.clone(),
        );
        let mut dedicated = self.dedicated.borrow_mut();
        // Forget the closed ones whenever the list has doubled: amortised O(1) per open,
        // however many blocking commands a worker runs.
        if dedicated.len() >= self.prune_dedicated_at.get() {
            dedicated.retain(|c| c.strong_count() > 0);
            self.prune_dedicated_at.set((dedicated.len() * 2).max(64));
        }
        dedicated.push(Rc::downgrade(&conn));
        conn
    }

    /// Closes the clients' own connections (subscriptions, `WATCH`, blocking commands) to
    /// every node not in `keep`: after a primary switch of a backend without slots, state
    /// held on the demoted node must end (subscriptions are then re-established on the new
    /// primary, the others fail with a lost connection) rather than live on a node that no
    /// longer takes writes.
    pub fn close_dedicated_except(&self, keep: &[Endpoint]) {
        self.dedicated.borrow_mut().retain(|weak| {
            let Some(conn) = weak.upgrade() else {
                return false;
            };
            if keep.contains(conn.endpoint()) {
                return true;
            }
            conn.close_because("the backend's primary changed to another node");
            false
        });
    }

    fn connector(&self) -> Arc<NodeConnector> {
        self.connector.load_full()
    }

    fn open(&self, endpoint: &Endpoint, protocol: Protocol, readonly: bool) -> Rc<NodeConn> {
        let mut connector = self.connector();
        if readonly {
            let mut reader = NodeConnector::clone(&connector);
            reader.readonly = true;
            connector = Arc::new(reader);
        }
        NodeConn::open(
            endpoint.clone(),
            protocol,
            Mode::Shared,
            connector,
            self.stats.clone(),
            self.dns.clone(),
        )
    }

    /// Forgets the connections to nodes not in `keep` and closes each once its requests in
    /// flight are answered: nodes that left the map must not keep sockets (or pod IPs)
    /// alive, but a node can drop out of one snapshot while it still answers (a primary
    /// turning replica in a planned failover), and a command already sent there must get
    /// its reply (or MOVED) rather than an "it may have run" error. A dead node's requests
    /// end at the reply timeout, as on any connection.
    pub fn retain(&self, keep: &[Endpoint]) {
        Self::retain_in(&self.backends, keep);
        Self::retain_in(&self.readers, keep);
    }

    fn retain_in(map: &RefCell<FxHashMap<Endpoint, ByProtocol>>, keep: &[Endpoint]) {
        map.borrow_mut().retain(|endpoint, by_protocol| {
            let kept = keep.contains(endpoint);
            if !kept {
                for backend in [&by_protocol.resp2, &by_protocol.resp3]
                    .into_iter()
                    .flatten()
                {
                    backend.close_when_idle();
                }
            }
            kept
        });
    }

    /// Closes this worker's shared connections to replica `endpoint` that serve reads
    /// (`readonly`: the `READONLY` ones of a cluster; else the plain ones, which only a
    /// backend without slots uses for a replica). Their requests in flight fail at once
    /// instead of waiting for the reply timeout, and reads may run again elsewhere.
    pub fn close_reads_to(&self, endpoint: &Endpoint, readonly: bool, reason: &'static str) {
        let map = if readonly {
            &self.readers
        } else {
            &self.backends
        };
        if let Some(by_protocol) = map.borrow_mut().remove(endpoint) {
            for conn in [by_protocol.resp2, by_protocol.resp3].into_iter().flatten() {
                conn.close_because(reason);
            }
        }
    }

    /// Number of nodes this worker has connections to.
    pub fn len(&self) -> usize {
        self.backends.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
