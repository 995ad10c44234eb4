//! Connections from one worker thread to the cluster's nodes.
//!
//! Each worker owns a [`Pool`]: one multiplexed, pipelined [`conn::Backend`] per node and
//! protocol version, shared by all of that worker's clients. A session hands a
//! [`Request`] to a backend; the backend writes requests in batches, matches replies in
//! FIFO order and reports each one as an [`Outcome`] to the request's [`ReplySink`].
//! Everything here lives on one thread (`Rc`, `RefCell`): no locks, no cross-thread wake-ups.

pub mod conn;
mod outcome;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustc_hash::FxHashMap;

pub use conn::Backend;
pub use outcome::{Failure, Outcome, classify_reply};

use crate::dns::Dns;
use crate::resp::encode::Protocol;
use crate::state::{ProxyState, WorkerStats};
use crate::topology::Endpoint;

/// Receives the outcome of a forwarded request. Implemented by the client session's reply queue.
pub trait ReplySink {
    fn complete(&self, seq: u64, outcome: Outcome);
    /// A frame from subscription connection `conn` ([`Backend::id`], [`Mode::Push`]):
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
    /// One request that may block for as long as the command says (BLPOP, WAIT, ...):
    /// no reply timeout, and the connection closes after the reply.
    SingleUse,
    /// A subscription connection: every frame the node sends goes to the sink's
    /// [`ReplySink::push`], in order; requests expect no matching reply.
    Push,
}

/// Settings every backend connection of a worker uses.
#[derive(Clone, Debug)]
pub struct BackendSettings {
    pub connect_timeout: Duration,
    pub reply_timeout: Duration,
    pub max_reply_depth: usize,
    pub max_bulk_len: usize,
    /// Sent on every new connection when the nodes require a password.
    pub auth: Option<crate::control::Credentials>,
    /// Speak TLS to the nodes (`backend-tls`).
    pub tls: Option<Arc<crate::tls::Connector>>,
}

impl BackendSettings {
    /// The settings in force now (they change on reload; each new connection takes them).
    pub fn from_state(state: &ProxyState) -> Self {
        let config = state.config();
        Self {
            connect_timeout: config.backend_connect_timeout,
            reply_timeout: config.backend_reply_timeout,
            max_reply_depth: config.max_reply_depth,
            // Values stored through other clients may exceed our request limit; never
            // refuse a reply a default Redis could send.
            max_bulk_len: config.proto_max_bulk_len.max(512 * 1024 * 1024),
            auth: crate::control::Credentials::from_config(&config),
            tls: state.tls.connector(),
        }
    }
}

/// A worker's connections, by node and protocol version.
pub struct Pool {
    state: Arc<ProxyState>,
    stats: Arc<WorkerStats>,
    dns: Rc<Dns>,
    backends: RefCell<FxHashMap<Endpoint, ByProtocol>>,
}

/// A node's connections: one per protocol version, opened on demand.
#[derive(Default)]
struct ByProtocol {
    resp2: Option<Rc<Backend>>,
    resp3: Option<Rc<Backend>>,
}

impl ByProtocol {
    fn slot(&mut self, protocol: Protocol) -> &mut Option<Rc<Backend>> {
        match protocol {
            Protocol::Resp2 => &mut self.resp2,
            Protocol::Resp3 => &mut self.resp3,
        }
    }
}

impl Pool {
    pub fn new(state: Arc<ProxyState>, stats: Arc<WorkerStats>, dns: Rc<Dns>) -> Self {
        Self {
            state,
            stats,
            dns,
            backends: RefCell::default(),
        }
    }

    /// The live connection to `endpoint` for `protocol`, opened on first use and reopened
    /// after it broke. Must be called inside the worker's `LocalSet`. The lookup borrows
    /// `endpoint`: cloning it would touch a shared reference count on every request.
    pub fn get(&self, endpoint: &Endpoint, protocol: Protocol) -> Rc<Backend> {
        let mut backends = self.backends.borrow_mut();
        if let Some(by_protocol) = backends.get_mut(endpoint) {
            let slot = by_protocol.slot(protocol);
            match slot {
                Some(backend) if !backend.is_broken() => return backend.clone(),
                _ => {
                    let backend = self.open(endpoint, protocol);
                    *slot = Some(backend.clone());
                    return backend;
                }
            }
        }
        let backend = self.open(endpoint, protocol);
        let mut by_protocol = ByProtocol::default();
        *by_protocol.slot(protocol) = Some(backend.clone());
        backends.insert(endpoint.clone(), by_protocol);
        backend
    }

    /// A new connection outside the pool, owned by one client: for blocking commands
    /// ([`Mode::SingleUse`]) and watched transactions ([`Mode::Shared`], pinned).
    pub fn dedicated(&self, endpoint: &Endpoint, protocol: Protocol, mode: Mode) -> Rc<Backend> {
        Backend::open(
            endpoint.clone(),
            protocol,
            mode,
            self.settings(),
            self.stats.clone(),
            self.dns.clone(),
        )
    }

    fn settings(&self) -> BackendSettings {
        BackendSettings::from_state(&self.state)
    }

    fn open(&self, endpoint: &Endpoint, protocol: Protocol) -> Rc<Backend> {
        Backend::open(
            endpoint.clone(),
            protocol,
            Mode::Shared,
            self.settings(),
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
        self.backends.borrow_mut().retain(|endpoint, by_protocol| {
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

    /// Number of nodes this worker has connections to.
    pub fn len(&self) -> usize {
        self.backends.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
