//! The replies one client is waiting for, in the order it sent the requests.
//!
//! The session pushes an [`Entry`] per request; backends complete entries out of order (a
//! fast shard answers before a slow one) through [`ReplySink`]; the session pops finished
//! entries from the head only, so the client always sees replies in request order. Entries
//! that need another attempt (redirects, retries) are counted so the session can skip the
//! scan when there are none.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;
use tokio::time::Instant;

use super::reads::WriteMark;
use crate::backend::{NodeConn, Outcome, ReplySink};
use crate::endpoint::Endpoint;
use crate::metrics::{CommandId, CommandOutcome};
use crate::resp::encode::Protocol;
use crate::router::ReadIntent;
use crate::router::merge::{Merge, merge};

/// Where a forwarded request goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The primary of this slot, looked up in the current map at each attempt.
    Slot(u16),
    /// Any primary: a keyless command.
    AnyPrimary,
}

/// What the session must do with an entry next.
#[derive(Debug)]
pub enum EntryState {
    /// Sent; waiting for the backend.
    Waiting,
    /// Ready to write to the client.
    Ready(Bytes),
    /// Ready to write, and the connection closes after it (QUIT, protocol errors).
    Final(Bytes),
    /// The backend said something other than a final reply; the session decides.
    Attention(Outcome),
    /// Resend at this time (a retry's backoff).
    RetryAt(Instant),
}

/// Which connection an entry's request travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The worker's shared connection to the node.
    Shared,
    /// A single-use connection of its own (a command that may block).
    Dedicated,
    /// The session's pinned connection (a watched transaction).
    Pinned,
    /// The connection of the database the session selected (one-shard backends).
    Db,
}

/// How an entry's reply reaches the client.
#[derive(Debug)]
pub enum Role {
    /// Its own reply is the client's reply.
    Single,
    /// A client request sent as `children` sub-requests (the entries right after this
    /// one); their replies are combined by `merge` once all are ready.
    Parent { children: u32, merge: Merge },
    /// A sub-request; its reply goes into its parent's merge.
    Child,
    /// A SCAN sent to the shard whose first slot is `first_slot`; its reply's cursor is
    /// rewritten to name the next shard once this one is done.
    Scan {
        first_slot: u16,
        next_first_slot: Option<u16>,
        /// The node that served it ([`crate::reads::choose::node_tag`]; 0: none named).
        tag: u8,
    },
}

/// The replica connection a read policy sent a request to.
pub struct ReadOn(pub Rc<NodeConn>);

impl std::fmt::Debug for ReadOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadOn({})", self.0.endpoint())
    }
}

/// One request awaiting its reply.
#[derive(Debug)]
pub struct Entry {
    pub role: Role,
    pub state: EntryState,
    /// The request as received, kept while a resend may be needed.
    pub frame: Option<Bytes>,
    pub target: Target,
    /// MOVED/ASK hops taken so far.
    pub hops: u8,
    /// Set on the first retry: when retrying stops.
    pub retry_deadline: Option<Instant>,
    /// Retries taken so far (drives the backoff).
    pub retries: u32,
    /// The node an ASK redirect points to, for the next attempt only.
    pub ask: Option<Endpoint>,
    pub channel: Channel,
    /// Which node of the target's shard may serve it (from the command's flags).
    pub intent: ReadIntent,
    /// The replica a read policy sent it to, if so: a failure there sends it elsewhere.
    pub read_on: Option<ReadOn>,
    /// Read-your-writes: the write mark its answer closes.
    pub write_mark: Option<WriteMark>,
    /// Commands in `frame` before the one that answers (see `backend::Request::swallow`).
    pub swallow: u32,
    /// The command's metrics label, and when its request was read (end-to-end latency).
    pub command: CommandId,
    pub started: Option<Instant>,
    /// How the command ended when slotgate knows better than the reply's first byte
    /// (refused, or failed for want of a node's answer).
    pub outcome: Option<CommandOutcome>,
    /// Request bytes counted into [`ReplyQueue::request_bytes`] when the entry was pushed
    /// (its frame then; a retry may replace the frame), taken off when it leaves.
    held: usize,
}

impl Entry {
    pub fn forwarded(frame: Bytes, target: Target) -> Self {
        Self {
            role: Role::Single,
            state: EntryState::Waiting,
            frame: Some(frame),
            target,
            hops: 0,
            retry_deadline: None,
            retries: 0,
            ask: None,
            channel: Channel::Shared,
            intent: ReadIntent::Primary,
            read_on: None,
            write_mark: None,
            swallow: 0,
            command: CommandId::OTHER,
            started: None,
            outcome: None,
            held: 0,
        }
    }

    /// A sub-request of the parent pushed just before it.
    pub fn child(frame: Bytes, target: Target) -> Self {
        Self {
            role: Role::Child,
            ..Self::forwarded(frame, target)
        }
    }

    /// The placeholder for a request sent as `children` sub-requests.
    pub fn parent(children: u32, merge: Merge) -> Self {
        Self {
            role: Role::Parent { children, merge },
            frame: None,
            ..Self::forwarded(Bytes::new(), Target::AnyPrimary)
        }
    }

    pub fn ready(reply: Bytes, close_after: bool) -> Self {
        Self {
            role: Role::Single,
            state: if close_after {
                EntryState::Final(reply)
            } else {
                EntryState::Ready(reply)
            },
            frame: None,
            target: Target::AnyPrimary,
            hops: 0,
            retry_deadline: None,
            retries: 0,
            ask: None,
            channel: Channel::Shared,
            intent: ReadIntent::Primary,
            read_on: None,
            write_mark: None,
            swallow: 0,
            command: CommandId::OTHER,
            started: None,
            outcome: None,
            held: 0,
        }
    }
}

/// A client's pending replies; shared (`Rc`) between its session and the backends.
#[derive(Default)]
pub struct ReplyQueue {
    inner: RefCell<Inner>,
    wake: crate::wake::LocalWake,
    /// Set when the client is gone: late outcomes are dropped.
    closed: Cell<bool>,
    /// Frames from subscription connections, with the connection id, in arrival order.
    pushes: RefCell<VecDeque<(u64, Bytes)>>,
    /// Subscription connections that closed since the session last looked.
    lost: RefCell<Vec<u64>>,
    /// No entry retries before this time (`None`: no entry is waiting to retry).
    retry_hint: Cell<Option<Instant>>,
    /// Bytes of pushed frames not yet taken, plus what the session still holds to write.
    relay_bytes: Cell<usize>,
    relay_backlog: Cell<usize>,
    /// The relay limit was exceeded: frames were dropped and the client must go.
    relay_overflow: Cell<bool>,
    /// Hard limit on relayed bytes (`client-output-buffer-limit pubsub`); 0: none.
    relay_limit: Cell<usize>,
    /// Label and read time given to every entry pushed, set per request by the session.
    stamp: Cell<Option<(CommandId, Instant)>>,
}

#[derive(Default)]
struct Inner {
    /// Sequence number of `entries[0]`.
    head_seq: u64,
    entries: VecDeque<Entry>,
    /// Entries in `Attention` state.
    attention: usize,
    /// Sum of the entries' `held`: the request bytes kept until their replies leave.
    request_bytes: usize,
}

impl Inner {
    fn pop_front(&mut self) -> Option<Entry> {
        let entry = self.entries.pop_front()?;
        self.request_bytes -= entry.held;
        Some(entry)
    }
}

impl ReplyQueue {
    /// Labels the entries pushed from now on with the request being handled.
    pub fn stamp(&self, command: CommandId, read_at: Instant) {
        self.stamp.set(Some((command, read_at)));
    }

    /// Appends an entry and returns its sequence number.
    pub fn push(&self, mut entry: Entry) -> u64 {
        if let Some((command, read_at)) = self.stamp.get() {
            entry.command = command;
            entry.started.get_or_insert(read_at);
        }
        let mut inner = self.inner.borrow_mut();
        let seq = inner.head_seq + inner.entries.len() as u64;
        if matches!(entry.state, EntryState::Attention(_)) {
            inner.attention += 1;
        }
        entry.held = entry.frame.as_ref().map_or(0, Bytes::len);
        inner.request_bytes += entry.held;
        inner.entries.push_back(entry);
        seq
    }

    /// Bytes of the requests in the queue (read from the client, not yet answered).
    pub fn request_bytes(&self) -> usize {
        self.inner.borrow().request_bytes
    }

    pub fn len(&self) -> usize {
        self.inner.borrow().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once some outcome has arrived since the last call.
    pub async fn changed(&self) {
        self.wake.wait().await;
    }

    /// Takes the frames pushed by subscription connections and the ids of those lost.
    pub fn take_pushes(&self, frames: &mut VecDeque<(u64, Bytes)>, lost: &mut Vec<u64>) {
        frames.append(&mut self.pushes.borrow_mut());
        self.relay_bytes.set(0);
        lost.append(&mut self.lost.borrow_mut());
    }

    /// Tells the queue how many relayed bytes the session still has to write, so the
    /// limit covers both sides.
    pub fn set_relay_backlog(&self, bytes: usize) {
        self.relay_backlog.set(bytes);
    }

    /// Sets the hard limit on relayed bytes (0: none).
    pub fn set_relay_limit(&self, bytes: usize) {
        self.relay_limit.set(bytes);
    }

    /// Relayed bytes not yet written: those not yet taken plus the session's backlog.
    pub fn relay_pending(&self) -> usize {
        self.relay_bytes.get() + self.relay_backlog.get()
    }

    /// Bytes of replies that are ready but not yet handed to the session's writer: with
    /// what the writer holds, the client's output buffer. Walks the queue, so it is for
    /// the slow path only (a client that is not reading).
    pub fn ready_bytes(&self) -> usize {
        self.inner
            .borrow()
            .entries
            .iter()
            .map(|entry| match &entry.state {
                EntryState::Ready(reply) | EntryState::Final(reply) => reply.len(),
                _ => 0,
            })
            .sum()
    }

    /// True once relayed frames were dropped because the client reads too slowly.
    pub fn relay_overflowed(&self) -> bool {
        self.relay_overflow.get()
    }

    /// True when subscription connections delivered something not yet taken.
    pub fn has_pushes(&self) -> bool {
        !self.pushes.borrow().is_empty() || !self.lost.borrow().is_empty()
    }

    pub fn close(&self) {
        self.closed.set(true);
        self.pushes.borrow_mut().clear();
        let mut inner = self.inner.borrow_mut();
        inner.entries.clear();
        inner.attention = 0;
        inner.request_bytes = 0;
    }

    /// Pops finished entries from the head, in order, and hands each reply to `write`; a
    /// parent leaves with its children, their replies merged. Returns true when a `Final`
    /// reply was popped (the connection must close after it).
    pub fn pop_ready(&self, proto: Protocol, mut write: impl FnMut(Bytes, &Entry)) -> bool {
        let mut inner = self.inner.borrow_mut();
        while let Some(entry) = inner.entries.front() {
            match &entry.role {
                Role::Parent { children, .. } => {
                    let children = *children as usize;
                    let all_ready = inner
                        .entries
                        .range(1..=children)
                        .all(|c| matches!(c.state, EntryState::Ready(_)));
                    if !all_ready || inner.entries.len() <= children {
                        break;
                    }
                    let Some(parent) = inner.pop_front() else {
                        break;
                    };
                    let replies: Vec<Bytes> = (0..children)
                        .filter_map(|_| match inner.pop_front()?.state {
                            EntryState::Ready(reply) => Some(reply),
                            _ => None,
                        })
                        .collect();
                    inner.head_seq += 1 + children as u64;
                    if let Role::Parent { merge: policy, .. } = &parent.role {
                        write(merge(policy, &replies, proto), &parent);
                    }
                }
                Role::Scan {
                    first_slot,
                    next_first_slot,
                    tag,
                } => {
                    let (first_slot, next, tag) = (*first_slot, *next_first_slot, *tag);
                    let EntryState::Ready(reply) = &entry.state else {
                        break;
                    };
                    // An error or an unexpected shape passes through untouched.
                    let reply = super::scan_cursor::rewrite_reply(reply, first_slot, tag, next)
                        .unwrap_or_else(|| reply.clone());
                    let Some(entry) = inner.pop_front() else {
                        break;
                    };
                    inner.head_seq += 1;
                    write(reply, &entry);
                }
                Role::Single | Role::Child => {
                    let close = matches!(entry.state, EntryState::Final(_));
                    if !matches!(entry.state, EntryState::Ready(_) | EntryState::Final(_)) {
                        break;
                    }
                    let Some(entry) = inner.pop_front() else {
                        break;
                    };
                    inner.head_seq += 1;
                    if let EntryState::Ready(reply) | EntryState::Final(reply) = &entry.state {
                        write(reply.clone(), &entry);
                    }
                    if close {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// True when some entry needs the session's attention now.
    pub fn needs_attention(&self) -> bool {
        self.inner.borrow().attention > 0
    }

    /// Takes the entries needing attention, as (sequence, outcome) pairs; each stays in the
    /// queue in `Waiting` state until the session settles it with [`Self::update`].
    pub fn take_attention(&self, out: &mut Vec<(u64, Outcome)>) {
        let mut inner = self.inner.borrow_mut();
        if inner.attention == 0 {
            return;
        }
        let head = inner.head_seq;
        for (i, entry) in inner.entries.iter_mut().enumerate() {
            if matches!(entry.state, EntryState::Attention(_)) {
                let EntryState::Attention(outcome) =
                    std::mem::replace(&mut entry.state, EntryState::Waiting)
                else {
                    continue;
                };
                out.push((head + i as u64, outcome));
            }
        }
        inner.attention = 0;
    }

    /// Records that some entry was put in `RetryAt(at)`, so [`Self::next_retry`] knows to
    /// look: the common case, no retry at all, must not scan the queue on every turn.
    pub fn note_retry(&self, at: Instant) {
        let earliest = self.retry_hint.get().map_or(at, |hint| hint.min(at));
        self.retry_hint.set(Some(earliest));
    }

    /// The earliest `RetryAt` time, if any.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retry_hint.get()
    }

    /// Sequence numbers of entries whose retry time has come; they turn `Waiting`.
    pub fn take_due_retries(&self, now: Instant, out: &mut Vec<u64>) {
        let mut inner = self.inner.borrow_mut();
        let head = inner.head_seq;
        let mut later: Option<Instant> = None;
        for (i, entry) in inner.entries.iter_mut().enumerate() {
            match entry.state {
                EntryState::RetryAt(at) if at <= now => {
                    entry.state = EntryState::Waiting;
                    out.push(head + i as u64);
                }
                EntryState::RetryAt(at) => later = Some(later.map_or(at, |l| l.min(at))),
                _ => {}
            }
        }
        self.retry_hint.set(later);
    }

    /// Runs `f` on the entry with sequence `seq`, if it is still queued.
    pub fn update<R>(&self, seq: u64, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let mut inner = self.inner.borrow_mut();
        let index = seq.checked_sub(inner.head_seq)?;
        let entry = inner.entries.get_mut(usize::try_from(index).ok()?)?;
        Some(f(entry))
    }
}

impl ReplySink for ReplyQueue {
    fn push(&self, conn: u64, frame: Bytes) {
        if self.closed.get() || self.relay_overflow.get() {
            return;
        }
        // Checked as frames arrive, so a subscriber that never reads costs at most the
        // limit, not the whole backlog.
        let buffered = self.relay_bytes.get() + frame.len();
        let limit = self.relay_limit.get();
        if limit > 0 && buffered + self.relay_backlog.get() >= limit {
            self.relay_overflow.set(true);
            self.pushes.borrow_mut().clear();
            self.relay_bytes.set(0);
            self.wake.notify();
            return;
        }
        self.relay_bytes.set(buffered);
        // A copy, so a frame held for a slow reader does not pin the connection's whole
        // read buffer: the limit then bounds memory, not just payload.
        let frame = Bytes::copy_from_slice(&frame);
        self.pushes.borrow_mut().push_back((conn, frame));
        self.wake.notify();
    }

    fn push_lost(&self, conn: u64) {
        if self.closed.get() {
            return;
        }
        self.lost.borrow_mut().push(conn);
        self.wake.notify();
    }

    fn complete(&self, seq: u64, outcome: Outcome) {
        if self.closed.get() {
            return;
        }
        {
            let mut inner = self.inner.borrow_mut();
            let Some(index) = seq.checked_sub(inner.head_seq) else {
                return;
            };
            let Some(entry) = inner.entries.get_mut(index as usize) else {
                return;
            };
            let needs_attention = !matches!(outcome, Outcome::Reply(_));
            entry.state = match outcome {
                // The request stays until the reply leaves: the slow log may want it.
                Outcome::Reply(reply) => EntryState::Ready(reply),
                other => EntryState::Attention(other),
            };
            if needs_attention {
                inner.attention += 1;
            }
        }
        self.wake.notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Failure;

    fn reply(s: &'static [u8]) -> Outcome {
        Outcome::Reply(Bytes::from_static(s))
    }

    fn forwarded() -> Entry {
        Entry::forwarded(
            Bytes::from_static(b"*1\r\n$4\r\nPING\r\n"),
            Target::AnyPrimary,
        )
    }

    #[test]
    fn replies_leave_in_request_order() {
        let q = ReplyQueue::default();
        let a = q.push(forwarded());
        let b = q.push(forwarded());
        q.complete(b, reply(b":2\r\n"));
        let mut out = Vec::new();
        q.pop_ready(Protocol::Resp2, |r, _| out.push(r));
        assert!(out.is_empty(), "second reply must wait for the first");
        q.complete(a, reply(b":1\r\n"));
        q.pop_ready(Protocol::Resp2, |r, _| out.push(r));
        assert_eq!(
            out,
            vec![Bytes::from_static(b":1\r\n"), Bytes::from_static(b":2\r\n")]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn final_entries_stop_the_stream() {
        let q = ReplyQueue::default();
        q.push(Entry::ready(Bytes::from_static(b"+OK\r\n"), true));
        q.push(Entry::ready(Bytes::from_static(b"+PONG\r\n"), false));
        let mut out = Vec::new();
        assert!(q.pop_ready(Protocol::Resp2, |r, _| out.push(r)));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn parents_leave_with_their_children_merged() {
        let q = ReplyQueue::default();
        q.push(Entry::parent(2, Merge::SumIntegers));
        let a = q.push(Entry::child(Bytes::from_static(b"x"), Target::Slot(1)));
        let b = q.push(Entry::child(Bytes::from_static(b"y"), Target::Slot(2)));
        q.push(Entry::ready(Bytes::from_static(b"+PONG\r\n"), false));
        let mut out = Vec::new();
        q.complete(b, reply(b":2\r\n"));
        q.pop_ready(Protocol::Resp2, |r, _| out.push(r));
        assert!(out.is_empty(), "the parent waits for every child");
        q.complete(a, reply(b":1\r\n"));
        q.pop_ready(Protocol::Resp2, |r, _| out.push(r));
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1], Bytes::from_static(b"+PONG\r\n"));
        assert!(q.is_empty());
    }

    #[test]
    fn request_bytes_count_requests_until_their_replies_leave() {
        let q = ReplyQueue::default();
        let ping = forwarded().frame.map_or(0, |f| f.len());
        let a = q.push(forwarded());
        q.push(Entry::parent(2, Merge::SumIntegers));
        let x = q.push(Entry::child(Bytes::from_static(b"x"), Target::Slot(1)));
        let y = q.push(Entry::child(Bytes::from_static(b"yy"), Target::Slot(2)));
        q.push(Entry::ready(Bytes::from_static(b"+PONG\r\n"), false));
        assert_eq!(
            q.request_bytes(),
            ping + 3,
            "a local reply holds no request"
        );
        // A frame replaced for a retry does not change what was counted.
        q.update(a, |entry| {
            entry.frame = Some(Bytes::from_static(b"longer frame"))
        });
        q.complete(a, reply(b"+PONG\r\n"));
        q.pop_ready(Protocol::Resp2, |_, _| {});
        assert_eq!(q.request_bytes(), 3);
        q.complete(x, reply(b":1\r\n"));
        q.complete(y, reply(b":2\r\n"));
        q.pop_ready(Protocol::Resp2, |_, _| {});
        assert_eq!(q.request_bytes(), 0);
        q.push(forwarded());
        q.close();
        assert_eq!(q.request_bytes(), 0);
    }

    #[test]
    fn attention_entries_are_handed_back_once() {
        let q = ReplyQueue::default();
        let a = q.push(forwarded());
        let failure = Failure::ReplyTimeout {
            node: Endpoint::new("127.0.0.1", 1),
        };
        q.complete(a, Outcome::NotSent(failure));
        assert!(q.needs_attention());
        let mut taken = Vec::new();
        q.take_attention(&mut taken);
        assert_eq!(taken.len(), 1);
        assert!(!q.needs_attention());
        q.take_attention(&mut taken);
        assert_eq!(taken.len(), 1);
    }

    #[test]
    fn late_outcomes_after_close_are_dropped() {
        let q = ReplyQueue::default();
        let a = q.push(forwarded());
        q.close();
        q.complete(a, reply(b"+OK\r\n"));
        assert!(q.is_empty());
        // Unknown sequence numbers are ignored too.
        q.complete(99, reply(b"+OK\r\n"));
    }
}
