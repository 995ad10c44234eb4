//! Metrics one worker thread records: per command, per command family, per backend node.
//!
//! Every field is a relaxed atomic written by its worker thread only (a load and a store,
//! no locked read-modify-write) and read by the scrape collector (`admin::metrics`) on
//! the admin thread, which sums over workers. Arrays are sized by the bounded label sets
//! ([`CommandId`], [`Family`], [`CommandOutcome`], [`BackendError`]), so recording indexes
//! an array: no allocation, no lock, no hashing.
//!
//! Per-node stats are the one map: a backend connection asks for its node's
//! [`NodeStats`] once, when it opens ([`WorkerMetrics::node`], which takes a mutex), and
//! keeps the `Arc`. The collector forgets entries no connection holds for nodes that left
//! the slot map, so the `node` label stays bounded by the cluster's size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::command::{CommandId, CommandOutcome, Family};
use super::histogram::{Histogram, add_single_writer};
use crate::endpoint::Endpoint;

/// Why a backend connection failed: the `kind` label of `slotgate_backend_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendError {
    /// Could not connect (refused, unreachable, connect timeout, handshake refused).
    Connect,
    /// No reply within `backend-reply-timeout`.
    Timeout,
    /// The connection closed or failed while in use.
    Closed,
    /// The node sent bytes that are not RESP (or nested too deep).
    Protocol,
}

impl BackendError {
    pub const ALL: [BackendError; 4] = [
        BackendError::Connect,
        BackendError::Timeout,
        BackendError::Closed,
        BackendError::Protocol,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn label(self) -> &'static str {
        match self {
            BackendError::Connect => "connect",
            BackendError::Timeout => "timeout",
            BackendError::Closed => "closed",
            BackendError::Protocol => "protocol",
        }
    }
}

/// One worker's metrics; lives in [`crate::metrics::WorkerStats::metrics`].
#[derive(Debug)]
pub struct WorkerMetrics {
    /// `[command][outcome]` call counts.
    calls: Box<[[AtomicU64; CommandOutcome::COUNT]]>,
    /// Microseconds spent per command, end to end (for `INFO commandstats`).
    usec: Box<[AtomicU64]>,
    /// End-to-end latency per command family.
    latency: [Histogram; Family::COUNT],
    client_bytes_in: AtomicU64,
    client_bytes_out: AtomicU64,
    /// Bytes held in client read buffers and unanswered replies (a gauge).
    buffered: AtomicU64,
    nodes: Mutex<Vec<Arc<NodeStats>>>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self {
            calls: (0..CommandId::COUNT).map(|_| Default::default()).collect(),
            usec: (0..CommandId::COUNT).map(|_| AtomicU64::new(0)).collect(),
            latency: Default::default(),
            client_bytes_in: AtomicU64::new(0),
            client_bytes_out: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            nodes: Mutex::default(),
        }
    }
}

impl WorkerMetrics {
    /// Records one client command, once, when its reply is ready for the client:
    /// `latency` is end to end, from the moment its request was read to that moment.
    /// Feeds `slotgate_commands_total{command,outcome}`,
    /// `slotgate_command_duration_seconds{family}` and `INFO commandstats`.
    #[inline]
    pub fn record_command(&self, id: CommandId, outcome: CommandOutcome, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = id.index();
        add_single_writer(&self.calls[index][outcome.index()], 1);
        add_single_writer(&self.usec[index], us);
        self.latency[id.family().index()].observe_us(us);
    }

    /// Bytes read from a client socket (`slotgate_client_received_bytes_total`).
    #[inline]
    pub fn record_client_read(&self, bytes: usize) {
        add_single_writer(&self.client_bytes_in, bytes as u64);
    }

    /// Bytes written to a client socket (`slotgate_client_sent_bytes_total`).
    #[inline]
    pub fn record_client_write(&self, bytes: usize) {
        add_single_writer(&self.client_bytes_out, bytes as u64);
    }

    /// Moves the `slotgate_buffered_bytes` gauge by one session's change: `previous` is
    /// what this session reported last (start at 0 and keep it in the session), `current`
    /// what it holds now. Report 0 when the session ends, so the gauge returns to zero.
    #[inline]
    pub fn update_buffered(&self, previous: &mut usize, current: usize) {
        if *previous == current {
            return;
        }
        let value = self
            .buffered
            .load(Ordering::Relaxed)
            .wrapping_add(current as u64)
            .wrapping_sub(*previous as u64);
        self.buffered.store(value, Ordering::Relaxed);
        *previous = current;
    }

    /// The stats of `endpoint` for this worker, created on first use. Call once per
    /// backend connection (it takes a mutex) and keep the `Arc`.
    pub fn node(&self, endpoint: &Endpoint) -> Arc<NodeStats> {
        let mut nodes = lock(&self.nodes);
        if let Some(found) = nodes.iter().find(|n| &n.endpoint == endpoint) {
            return found.clone();
        }
        let stats = Arc::new(NodeStats::new(endpoint.clone()));
        nodes.push(stats.clone());
        stats
    }

    /// Calls for `id` with `outcome` so far.
    pub fn calls(&self, id: CommandId, outcome: CommandOutcome) -> u64 {
        self.calls[id.index()][outcome.index()].load(Ordering::Relaxed)
    }

    /// Microseconds spent in `id` so far.
    pub fn usec(&self, id: CommandId) -> u64 {
        self.usec[id.index()].load(Ordering::Relaxed)
    }

    pub fn latency(&self, family: Family) -> &Histogram {
        &self.latency[family.index()]
    }

    pub fn client_bytes_in(&self) -> u64 {
        self.client_bytes_in.load(Ordering::Relaxed)
    }

    pub fn client_bytes_out(&self) -> u64 {
        self.client_bytes_out.load(Ordering::Relaxed)
    }

    pub fn buffered(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Runs `f` on every node entry, after dropping those that `keep` refuses and that no
    /// connection holds any more (scrape time, off the hot path).
    pub fn visit_nodes(&self, keep: impl Fn(&Endpoint) -> bool, mut f: impl FnMut(&NodeStats)) {
        let mut nodes = lock(&self.nodes);
        nodes.retain(|n| Arc::strong_count(n) > 1 || keep(&n.endpoint));
        for node in nodes.iter() {
            f(node);
        }
    }
}

/// A poisoned metrics mutex still holds valid counters.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One worker's view of one node: what its backend connections record.
#[derive(Debug)]
pub struct NodeStats {
    pub endpoint: Endpoint,
    /// From the moment a request was written to the moment its reply was read.
    latency: Histogram,
    connections: AtomicU64,
    connects: AtomicU64,
    /// Client commands written to the node and not answered yet (a gauge).
    in_flight: AtomicU64,
    errors: [AtomicU64; BackendError::COUNT],
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    /// Reads sent by a read policy, by the role the node had: `[primary, replica]`.
    reads: [AtomicU64; 2],
}

impl NodeStats {
    fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            latency: Histogram::default(),
            connections: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            errors: Default::default(),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            reads: Default::default(),
        }
    }

    /// A read chosen by a read policy went to this node, a replica or its shard's primary.
    #[inline]
    pub fn count_read(&self, replica: bool) {
        add_single_writer(&self.reads[usize::from(replica)], 1);
    }

    /// Reads counted by [`NodeStats::count_read`]: `(to it as primary, as replica)`.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.reads[0].load(Ordering::Relaxed),
            self.reads[1].load(Ordering::Relaxed),
        )
    }

    /// A connection to this node is established (after any handshake).
    #[inline]
    pub fn connection_opened(&self) {
        add_single_writer(&self.connects, 1);
        add_single_writer(&self.connections, 1);
    }

    /// An established connection closed, for whatever reason. Pair with
    /// [`NodeStats::connection_opened`] exactly once.
    #[inline]
    pub fn connection_closed(&self) {
        let open = self.connections.load(Ordering::Relaxed);
        self.connections
            .store(open.saturating_sub(1), Ordering::Relaxed);
    }

    /// `n` client commands were written to the node.
    #[inline]
    pub fn in_flight_add(&self, n: u64) {
        add_single_writer(&self.in_flight, n);
    }

    /// `n` commands written earlier were answered or settled by a connection failure.
    #[inline]
    pub fn in_flight_sub(&self, n: u64) {
        let now = self.in_flight.load(Ordering::Relaxed);
        self.in_flight
            .store(now.saturating_sub(n), Ordering::Relaxed);
    }

    /// Commands written to the node and not answered yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A connection attempt or a connection failed.
    #[inline]
    pub fn record_error(&self, kind: BackendError) {
        add_single_writer(&self.errors[kind as usize], 1);
    }

    /// One reply read, `latency` after its request was written.
    #[inline]
    pub fn record_reply(&self, latency: Duration) {
        self.latency.observe(latency);
    }

    #[inline]
    pub fn record_bytes_sent(&self, bytes: usize) {
        add_single_writer(&self.bytes_sent, bytes as u64);
    }

    #[inline]
    pub fn record_bytes_received(&self, bytes: usize) {
        add_single_writer(&self.bytes_received, bytes as u64);
    }

    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    pub fn errors(&self, kind: BackendError) -> u64 {
        self.errors[kind as usize].load(Ordering::Relaxed)
    }

    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::command::command_id;
    use super::*;

    #[test]
    fn commands_are_counted_by_outcome_and_family() {
        let m = WorkerMetrics::default();
        let get = command_id("get");
        m.record_command(get, CommandOutcome::Ok, Duration::from_micros(40));
        m.record_command(get, CommandOutcome::Error, Duration::from_micros(60));
        m.record_command(CommandId::OTHER, CommandOutcome::Rejected, Duration::ZERO);
        assert_eq!(m.calls(get, CommandOutcome::Ok), 1);
        assert_eq!(m.calls(get, CommandOutcome::Error), 1);
        assert_eq!(m.calls(CommandId::OTHER, CommandOutcome::Rejected), 1);
        assert_eq!(m.usec(get), 100);
        assert_eq!(m.latency(Family::String).snapshot().count(), 2);
        assert_eq!(m.latency(Family::Other).snapshot().count(), 1);
    }

    #[test]
    fn buffered_gauge_follows_sessions() {
        let m = WorkerMetrics::default();
        let (mut a, mut b) = (0, 0);
        m.update_buffered(&mut a, 100);
        m.update_buffered(&mut b, 50);
        assert_eq!(m.buffered(), 150);
        m.update_buffered(&mut a, 10);
        assert_eq!(m.buffered(), 60);
        m.update_buffered(&mut a, 0);
        m.update_buffered(&mut b, 0);
        assert_eq!(m.buffered(), 0);
    }

    #[test]
    fn node_entries_are_shared_and_pruned() {
        let m = WorkerMetrics::default();
        let e = Endpoint::new("127.0.0.1", 7000);
        let a = m.node(&e);
        let b = m.node(&e);
        assert!(Arc::ptr_eq(&a, &b));
        a.connection_opened();
        a.record_error(BackendError::Timeout);
        assert_eq!(b.connections(), 1);
        assert_eq!(b.errors(BackendError::Timeout), 1);
        a.connection_closed();
        a.connection_closed();
        assert_eq!(a.connections(), 0);
        drop((a, b));
        let mut seen = 0;
        m.visit_nodes(|_| true, |_| seen += 1);
        assert_eq!(seen, 1, "kept while in the slot map");
        m.visit_nodes(|_| false, |_| seen += 1);
        assert_eq!(seen, 1, "dropped once unheld and gone from the map");
    }
}
