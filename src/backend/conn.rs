//! One multiplexed connection from a worker to a node.
//!
//! Requests from many clients queue here; the writer half drains the queue into one
//! buffer and writes it in a single call (so a burst from many clients costs one syscall),
//! recording each request as in flight first. The reader half walks replies off the socket
//! and hands each to the oldest in-flight request: Redis answers in order, so FIFO matching
//! is exact. When the connection fails, requests already written are reported
//! [`Outcome::Unknown`] and requests never written [`Outcome::NotSent`], so the session
//! knows which ones are safe to retry.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use super::{Failure, Mode, Outcome, ReplySink, Request, classify_reply};
use crate::connector::{ConnectError, NodeConnector};
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::metrics::{NodeStats, WorkerStats};
use crate::resp::encode::Protocol;
use crate::resp::walk::{ReplyKind, ReplyWalker};
use crate::transport::{ReadHalf, Stream, WriteHalf};
use crate::wake::LocalWake;

/// Requests larger than this are written on their own instead of being copied into the batch.
const COPY_LIMIT: usize = 64 * 1024;
/// Stop filling one batch past this many bytes, so a flood cannot grow the buffer unbounded.
const BATCH_LIMIT: usize = 256 * 1024;
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// A request written to the node and waiting for its reply.
struct InFlight {
    /// `None` for a command whose reply is swallowed: an `ASKING` sent ahead of a request,
    /// or the MULTI and queued commands of a transaction.
    sink: Option<(Rc<dyn ReplySink>, u64)>,
    written_at: Instant,
    /// A redirect seen in a swallowed reply of the same request, reported instead of the
    /// final reply if that is an error (EXECABORT: nothing ran, so following it is safe).
    stash: Option<Outcome>,
}

/// Why a connection closed by [`NodeConn::close`] ended: its node is gone from the map.
const LEFT_THE_CLUSTER: &str = "the node left the cluster";

/// One connection to one node (shared, pinned, single-use or push); see the module docs.
pub struct NodeConn {
    id: u64,
    endpoint: Endpoint,
    protocol: Protocol,
    mode: Mode,
    /// How this connection was opened; its reply timeout and limits apply to it for life.
    connector: Arc<NodeConnector>,
    stats: Arc<WorkerStats>,
    /// This node's metrics (connections, errors, reply latency, bytes).
    node: Arc<NodeStats>,
    /// The connection was established (its close is counted once).
    connected: Cell<bool>,
    /// Ended by design (a single-use connection answered, or its node left the cluster):
    /// not an error.
    finished: Cell<bool>,
    queue: RefCell<VecDeque<Request>>,
    in_flight: RefCell<VecDeque<InFlight>>,
    wake_writer: LocalWake,
    broken: Cell<bool>,
    /// Fired by [`NodeConn::close`] to end the connection task.
    closed: Notify,
    /// Why [`NodeConn::close_because`] ended it, for the errors of its requests.
    close_reason: Cell<Option<&'static str>>,
    /// Close once nothing is queued or in flight ([`NodeConn::close_when_idle`]).
    retiring: Cell<bool>,
    /// Where a [`Mode::Push`] connection sends its frames (the first request's sink).
    push_sink: RefCell<Option<Rc<dyn ReplySink>>>,
    dns: Rc<Dns>,
}

impl NodeConn {
    /// Creates the connection and starts its task on the current `LocalSet`.
    pub fn open(
        endpoint: Endpoint,
        protocol: Protocol,
        mode: Mode,
        connector: Arc<NodeConnector>,
        stats: Arc<WorkerStats>,
        dns: Rc<Dns>,
    ) -> Rc<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let node = stats.metrics.node(&endpoint);
        let backend = Rc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            node,
            connected: Cell::new(false),
            finished: Cell::new(false),
            endpoint,
            protocol,
            mode,
            connector,
            stats,
            queue: RefCell::default(),
            in_flight: RefCell::default(),
            wake_writer: LocalWake::default(),
            broken: Cell::new(false),
            closed: Notify::new(),
            close_reason: Cell::new(None),
            retiring: Cell::new(false),
            push_sink: RefCell::default(),
            dns,
        });
        tokio::task::spawn_local(backend.clone().run());
        backend
    }

    /// Unique over the process: tells connections to the same node apart.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Counts a read a read policy sent here ([`crate::reads`]), by the node's role.
    pub fn count_read(&self, replica: bool) {
        self.node.count_read(replica);
    }

    /// True once the connection has failed; the pool then opens a new one.
    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Queues `request`; its outcome reaches its sink later, never synchronously.
    pub fn send(&self, request: Request) {
        if self.broken.get() {
            // Report asynchronously-shaped: the sink only records the outcome and wakes
            // its session, so calling it from here is safe.
            let reason = self.close_reason.get().unwrap_or("connection closed");
            let failure = Failure::ConnectionLost {
                node: self.endpoint.clone(),
                reason: reason.into(),
            };
            request
                .sink
                .complete(request.seq, Outcome::NotSent(failure));
            return;
        }
        self.queue.borrow_mut().push_back(request);
        self.wake_writer.notify();
    }

    /// Ends the connection (its node left the cluster). Requests it holds are settled as
    /// for any failure: retried if never written, reported unknown otherwise.
    pub fn close(&self) {
        self.close_because(LEFT_THE_CLUSTER);
    }

    /// Ends the connection for `reason`, which the errors of its requests carry.
    pub fn close_because(&self, reason: &'static str) {
        self.close_reason.set(Some(reason));
        self.finished.set(true);
        self.broken.set(true);
        self.closed.notify_one();
    }

    /// Closes the connection once every request it was given is answered.
    pub fn close_when_idle(&self) {
        self.retiring.set(true);
        self.close_if_retired();
    }

    fn close_if_retired(&self) {
        if self.retiring.get()
            && self.queue.borrow().is_empty()
            && self.in_flight.borrow().is_empty()
        {
            self.close();
        }
    }

    async fn run(self: Rc<Self>) {
        let left = || Failure::ConnectionLost {
            node: self.endpoint.clone(),
            reason: self.close_reason.get().unwrap_or(LEFT_THE_CLUSTER).into(),
        };
        let failure = tokio::select! {
            failure = self.serve() => failure,
            _ = self.closed.notified() => left(),
        };
        self.fail(failure);
    }

    async fn serve(&self) -> Failure {
        match self.connect().await {
            Ok(stream) => {
                let (reader, writer) = stream.into_split();
                tokio::select! {
                    failure = self.read_loop(reader) => failure,
                    failure = self.write_loop(writer) => failure,
                }
            }
            Err(failure) => failure,
        }
    }

    async fn connect(&self) -> Result<Stream, Failure> {
        let reason = match self
            .connector
            .open(&self.dns, &self.endpoint, self.protocol)
            .await
        {
            Ok(stream) => {
                debug!(node = %self.endpoint, protocol = ?self.protocol, "backend connected");
                self.node.connection_opened();
                self.connected.set(true);
                return Ok(stream);
            }
            Err(ConnectError::ConnectTimeout) => "timed out".to_owned(),
            Err(ConnectError::Connect(reason) | ConnectError::Handshake(reason)) => reason,
            Err(ConnectError::Refused(text)) => format!("handshake refused: {text}"),
            Err(ConnectError::HandshakeTimeout) => "handshake timed out".to_owned(),
        };
        Err(Failure::Connect {
            node: self.endpoint.clone(),
            reason,
        })
    }

    fn walker(&self) -> ReplyWalker {
        ReplyWalker::new(self.connector.max_reply_depth)
            .with_max_bulk_len(self.connector.max_bulk_len)
    }

    async fn write_loop(&self, mut writer: WriteHalf) -> Failure {
        let mut batch = BytesMut::with_capacity(16 * 1024);
        loop {
            if self.queue.borrow().is_empty() {
                self.wake_writer.wait().await;
                continue;
            }
            let large = self.fill_batch(&mut batch);
            let sent = batch.len() + large.as_ref().map_or(0, Bytes::len);
            if !batch.is_empty() {
                if let Err(e) = writer.write_all_flushed(&batch).await {
                    return self.lost(e);
                }
                batch.clear();
            }
            if let Some(frame) = large
                && let Err(e) = writer.write_all_flushed(&frame).await
            {
                return self.lost(e);
            }
            self.node.record_bytes_sent(sent);
            // A batch that grew for one burst should not pin its memory forever.
            if batch.capacity() > 4 * BATCH_LIMIT {
                batch = BytesMut::with_capacity(16 * 1024);
            }
        }
    }

    /// Moves queued requests into `batch`, marking each in flight before it is written.
    /// Returns a large frame to write after the batch, uncopied.
    fn fill_batch(&self, batch: &mut BytesMut) -> Option<Bytes> {
        let now = Instant::now();
        let mut queue = self.queue.borrow_mut();
        let mut in_flight = self.in_flight.borrow_mut();
        while let Some(request) = queue.front() {
            let large = request.frame.len() > COPY_LIMIT;
            if large && !batch.is_empty() {
                break;
            }
            let Some(request) = queue.pop_front() else {
                break;
            };
            if self.mode == Mode::Push {
                // No reply is matched to a request here: frames flow to the push sink.
                self.push_sink.borrow_mut().get_or_insert(request.sink);
                batch.extend_from_slice(&request.frame);
                continue;
            }
            let swallowed = u32::from(request.asking) + request.swallow;
            if request.asking {
                batch.extend_from_slice(ASKING);
            }
            for _ in 0..swallowed {
                in_flight.push_back(InFlight {
                    sink: None,
                    written_at: now,
                    stash: None,
                });
            }
            in_flight.push_back(InFlight {
                sink: Some((request.sink, request.seq)),
                written_at: now,
                stash: None,
            });
            self.node.in_flight_add(1);
            if large {
                return Some(request.frame);
            }
            batch.extend_from_slice(&request.frame);
            if batch.len() >= BATCH_LIMIT {
                break;
            }
        }
        None
    }

    async fn read_loop(&self, mut reader: ReadHalf) -> Failure {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut walker = self.walker();
        // A single-use connection carries a command that may block on purpose, and a push
        // connection waits for messages: only shared and pinned connections time replies out.
        let timed = matches!(self.mode, Mode::Shared | Mode::Pinned);
        let reply_timeout = self.connector.reply_timeout;
        // One timer, checked lazily: it is reset only when it fires (at most once per
        // `reply_timeout` while busy), never per read. Re-arming a timer per read would
        // re-register it with the runtime's timer wheel each time, and an earlier deadline
        // than the wheel's next wake-up costs a wake-up of the I/O driver (an eventfd write
        // and an extra epoll_wait) per read.
        let timer = sleep_until(Instant::now() + reply_timeout);
        tokio::pin!(timer);
        loop {
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            let n = tokio::select! {
                biased;
                read = reader.read_some(&mut buf) => read,
                () = &mut timer, if timed => {
                    let oldest = self.in_flight.borrow().front().map(|f| f.written_at);
                    let now = Instant::now();
                    match oldest {
                        Some(written_at) if written_at + reply_timeout <= now => {
                            warn!(node = %self.endpoint, "reply timeout; closing the connection");
                            return Failure::ReplyTimeout { node: self.endpoint.clone() };
                        }
                        Some(written_at) => timer.as_mut().reset(written_at + reply_timeout),
                        None => timer.as_mut().reset(now + reply_timeout),
                    }
                    continue;
                }
            };
            match n {
                Ok(0) => return self.lost(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.node.record_bytes_received(n),
                Err(e) => return self.lost(e),
            }
            // One clock read per read: the reply latency of everything it completes.
            let now = Instant::now();
            loop {
                match walker.walk(&buf) {
                    Ok(Some(walked)) => {
                        let reply = buf.split_to(walked.len).freeze();
                        match self.deliver(reply, walked.kind, now) {
                            Err(failure) => return failure,
                            Ok(true) if self.mode == Mode::SingleUse => {
                                self.finished.set(true);
                                return Failure::ConnectionLost {
                                    node: self.endpoint.clone(),
                                    reason: "single-use connection done".into(),
                                };
                            }
                            Ok(_) => {}
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        return Failure::Protocol {
                            node: self.endpoint.clone(),
                            reason: e.to_string(),
                        };
                    }
                }
            }
            if buf.is_empty() && buf.capacity() > 4 * BATCH_LIMIT {
                buf = BytesMut::with_capacity(16 * 1024);
            }
        }
    }

    /// Hands one reply to the oldest request in flight. Returns true when it answered a
    /// request (rather than being swallowed).
    fn deliver(&self, reply: Bytes, kind: ReplyKind, now: Instant) -> Result<bool, Failure> {
        if self.mode == Mode::Push {
            let sink = self.push_sink.borrow().clone();
            if let Some(sink) = sink {
                sink.push(self.id, reply);
            }
            return Ok(false);
        }
        if kind == ReplyKind::Push {
            // Shared connections never subscribe; a stray push frame answers no request.
            debug!(node = %self.endpoint, "ignoring push frame on a shared connection");
            return Ok(false);
        }
        let mut in_flight = self.in_flight.borrow_mut();
        let Some(entry) = in_flight.pop_front() else {
            return Err(Failure::Protocol {
                node: self.endpoint.clone(),
                reason: "reply with no request in flight".into(),
            });
        };
        let outcome = classify_reply(reply, kind, &self.endpoint);
        let Some((sink, seq)) = entry.sink else {
            if matches!(
                outcome,
                Outcome::Moved { .. }
                    | Outcome::Ask { .. }
                    | Outcome::NotNow(_)
                    | Outcome::NotPrimary(_)
            ) && let Some(owner) = in_flight.iter_mut().find(|f| f.sink.is_some())
            {
                owner.stash.get_or_insert(outcome);
            }
            return Ok(false);
        };
        drop(in_flight);
        self.node.in_flight_sub(1);
        self.node
            .record_reply(now.saturating_duration_since(entry.written_at));
        let outcome = match (entry.stash, &outcome) {
            (Some(stashed), Outcome::Reply(r)) if r.first() == Some(&b'-') => stashed,
            _ => outcome,
        };
        sink.complete(seq, outcome);
        self.close_if_retired();
        Ok(true)
    }

    fn lost(&self, error: std::io::Error) -> Failure {
        Failure::ConnectionLost {
            node: self.endpoint.clone(),
            reason: error.to_string(),
        }
    }

    /// Marks the connection broken and settles every request it holds.
    fn fail(&self, failure: Failure) {
        self.broken.set(true);
        if self.connected.replace(false) {
            self.node.connection_closed();
        }
        if !self.finished.get() {
            WorkerStats::bump(&self.stats.backend_errors);
            self.node.record_error(failure.metric_kind());
        }
        debug!(node = %self.endpoint, failure = %failure.describe(), "backend connection failed");
        let in_flight: Vec<InFlight> = self.in_flight.borrow_mut().drain(..).collect();
        self.node
            .in_flight_sub(in_flight.iter().filter(|e| e.sink.is_some()).count() as u64);
        for entry in in_flight {
            if let Some((sink, seq)) = entry.sink {
                sink.complete(seq, Outcome::Unknown(failure.clone()));
            }
        }
        let push_sink = self.push_sink.borrow_mut().take();
        if let Some(sink) = push_sink {
            sink.push_lost(self.id);
        }
        let queued: Vec<Request> = self.queue.borrow_mut().drain(..).collect();
        if self.mode == Mode::Push {
            if let Some(request) = queued.first() {
                request.sink.push_lost(self.id);
            }
            return;
        }
        for request in queued {
            request
                .sink
                .complete(request.seq, Outcome::NotSent(failure.clone()));
        }
    }
}
