//! Subscriptions: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs.
//!
//! A subscribing client gets connections of its own in [`Mode::Push`]: one to any primary
//! for global channels and patterns (Redis Cluster propagates PUBLISH to every node), and
//! one per primary for shard channels (SSUBSCRIBE goes to the channel's slot owner). Every
//! frame those connections send (confirmations, messages) is relayed to the client as is.
//!
//! slotgate tracks what the client is subscribed to from the confirmations, so that when a
//! subscription connection dies (failover) or a node drops shard channels (slot migration:
//! Redis sends an `sunsubscribe` the client did not ask for), it subscribes again where the
//! channels now live and hides the confirmations of those re-subscriptions: the client
//! keeps receiving messages without noticing. Relayed frames wait in a bounded buffer; a
//! subscriber too slow to drain it is disconnected by `client-output-buffer-limit pubsub`
//! (hard limit as frames arrive, in [`super::queue`]; soft limit here), as in Redis.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tracing::debug;

use super::Session;
use crate::backend::{Mode, NodeConn, ReplySink, Request};
use crate::endpoint::Endpoint;
use crate::resp::ArgView;
use crate::resp::encode::{self, Protocol, encode_command};
use crate::router::merge::{elements, integer};
use crate::router::{PubSubCommand, ReadIntent};
use crate::slot::key_slot;
use crate::upstream::{self, Use};

/// Delay before subscribing again after a subscription connection was lost, so the slot
/// map has a chance to show the new owner.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(100);

/// A connection for shard channels of one node.
struct ShardConn {
    backend: Rc<NodeConn>,
    channels: HashSet<Bytes>,
    /// Channel lists of SSUBSCRIBEs sent and not yet fully confirmed, oldest first: an
    /// error frame (MOVED) answers the oldest.
    unconfirmed: VecDeque<(Vec<Bytes>, bool)>,
}

/// Everything a subscribing client has.
#[derive(Default)]
pub struct Subscriptions {
    global: Option<Rc<NodeConn>>,
    channels: HashSet<Bytes>,
    patterns: HashSet<Bytes>,
    shards: Vec<ShardConn>,
    /// Confirmations of slotgate's own re-subscriptions, to swallow: (kind, channel).
    hidden: Vec<(&'static [u8], Bytes)>,
    /// Shard channels the client asked to leave (their sunsubscribe is relayed).
    leaving: HashSet<Bytes>,
    /// SUNSUBSCRIBE without channels in flight, per connection id.
    leaving_all: HashSet<u64>,
    /// Shard channels to subscribe again, and whether their confirmation is hidden.
    orphans: Vec<(Bytes, bool)>,
    resubscribe_at: Option<Instant>,
    /// Frames waiting to be written to the client, and their size.
    pub out: VecDeque<Bytes>,
    pub out_bytes: usize,
}

impl Subscriptions {
    /// True while the client has (or is getting) any subscription.
    pub fn active(&self) -> bool {
        self.global.is_some() || !self.shards.is_empty() || !self.orphans.is_empty()
    }

    pub fn resubscribe_at(&self) -> Option<Instant> {
        self.resubscribe_at
    }

    /// Closes every subscription connection (the client left or sent RESET).
    pub fn close_all(&mut self) {
        if let Some(global) = self.global.take() {
            global.close();
        }
        for shard in self.shards.drain(..) {
            shard.backend.close();
        }
        self.orphans.clear();
        self.resubscribe_at = None;
    }
}

/// `(kind, channel, count)` of a confirmation frame; `None` for messages and others.
fn confirmation(frame: &Bytes) -> Option<(Vec<u8>, Bytes, Option<i64>)> {
    let items = elements(frame)?;
    if items.len() != 3 {
        return None;
    }
    let kind = bulk(&items[0])?.to_ascii_lowercase();
    if !kind.ends_with(b"subscribe") {
        return None;
    }
    Some((
        kind,
        bulk(&items[1]).unwrap_or_default(),
        integer(&items[2]),
    ))
}

/// The payload of a bulk (or simple) string frame.
fn bulk(frame: &Bytes) -> Option<Bytes> {
    match frame.first()? {
        b'$' => {
            let header_end = frame.iter().position(|&b| b == b'\n')? + 1;
            let len: usize = std::str::from_utf8(frame.get(1..header_end - 2)?)
                .ok()?
                .parse()
                .ok()?;
            Some(frame.slice(header_end..header_end.checked_add(len)?.min(frame.len())))
        }
        b'+' => Some(frame.slice(1..frame.len().saturating_sub(2))),
        _ => None,
    }
}

impl Session {
    pub(super) fn pubsub(&mut self, command: PubSubCommand, frame: Bytes) {
        match command {
            PubSubCommand::Subscribe | PubSubCommand::PSubscribe => {
                if let Some(global) = self.global_conn() {
                    self.send_push(&global, frame);
                }
            }
            PubSubCommand::Unsubscribe | PubSubCommand::PUnsubscribe => {
                match self.subs.global.clone() {
                    Some(global) => self.send_push(&global, frame),
                    None => {
                        let kind: &[u8] = if command == PubSubCommand::Unsubscribe {
                            b"unsubscribe"
                        } else {
                            b"punsubscribe"
                        };
                        self.reply_no_subscription(kind);
                    }
                }
            }
            PubSubCommand::SSubscribe(Some(slot)) => {
                let args = ArgView::new(&frame, &self.args);
                let channels: Vec<Bytes> = (1..args.len())
                    .map(|i| frame.slice_ref(args.get(i).unwrap_or_default()))
                    .collect();
                self.ssubscribe(slot, frame, channels, false);
            }
            PubSubCommand::SSubscribe(None) => {}
            PubSubCommand::SUnsubscribe(slot) => self.sunsubscribe(slot, frame),
        }
    }

    /// The connection for global channels, if open.
    pub(super) fn subs_global(&self) -> Option<Rc<NodeConn>> {
        self.subs.global.clone()
    }

    /// The connection for global channels, opened on first use.
    fn global_conn(&mut self) -> Option<Rc<NodeConn>> {
        if let Some(global) = &self.subs.global {
            return Some(global.clone());
        }
        let backend = self.up.resolve(
            upstream::Target::AnyShard,
            ReadIntent::Primary,
            Use::Own(Mode::Push),
            self.client.protocol,
        );
        let Some(backend) = backend else {
            self.reply_error("CLUSTERDOWN slotgate has no slot map yet");
            return None;
        };
        self.subs.global = Some(backend.clone());
        Some(backend)
    }

    pub(super) fn send_push(&self, backend: &Rc<NodeConn>, frame: Bytes) {
        let sink: Rc<dyn ReplySink> = self.queue.clone();
        backend.send(Request {
            sink,
            seq: 0,
            frame,
            asking: false,
            swallow: 0,
        });
    }

    /// `["unsubscribe", nil, 0]`: what Redis answers when there is nothing to leave.
    fn reply_no_subscription(&self, kind: &[u8]) {
        let mut out = BytesMut::new();
        match self.client.protocol {
            Protocol::Resp2 => encode::array_header(&mut out, 3),
            Protocol::Resp3 => out.extend_from_slice(b">3\r\n"),
        }
        encode::bulk(&mut out, kind);
        encode::null(&mut out, self.client.protocol);
        encode::integer(&mut out, 0);
        self.queue
            .push(super::queue::Entry::ready(out.freeze(), false));
    }

    /// Sends SSUBSCRIBE for `channels` (all of `slot`) to the slot owner's shard connection.
    fn ssubscribe(&mut self, slot: u16, frame: Bytes, channels: Vec<Bytes>, hide: bool) {
        // One connection per node carries every shard channel this client has there.
        let shards = &self.subs.shards;
        let existing = |endpoint: &Endpoint| {
            shards
                .iter()
                .find(|s| s.backend.endpoint() == endpoint && !s.backend.is_broken())
                .map(|s| s.backend.clone())
        };
        let backend = self.up.resolve(
            upstream::Target::Slot(slot),
            ReadIntent::Primary,
            Use::Reuse(Mode::Push, &existing),
            self.client.protocol,
        );
        let Some(backend) = backend else {
            // Nobody serves the slot right now: try again once the map is better.
            self.up.upstream.request_refresh();
            self.subs
                .orphans
                .extend(channels.into_iter().map(|c| (c, hide)));
            self.subs
                .resubscribe_at
                .get_or_insert(Instant::now() + RESUBSCRIBE_DELAY);
            return;
        };
        let index = match shards.iter().position(|s| Rc::ptr_eq(&s.backend, &backend)) {
            Some(index) => index,
            None => {
                self.subs.shards.push(ShardConn {
                    backend,
                    channels: HashSet::new(),
                    unconfirmed: VecDeque::new(),
                });
                self.subs.shards.len() - 1
            }
        };
        if hide {
            self.subs
                .hidden
                .extend(channels.iter().map(|c| (&b"ssubscribe"[..], c.clone())));
        }
        let shard = &mut self.subs.shards[index];
        shard.unconfirmed.push_back((channels, hide));
        let backend = shard.backend.clone();
        self.send_push(&backend, frame);
    }

    fn sunsubscribe(&mut self, slot: Option<u16>, frame: Bytes) {
        if self.subs.shards.is_empty() {
            return self.reply_no_subscription(b"sunsubscribe");
        }
        let Some(slot) = slot else {
            // Leave every shard channel: each connection confirms its own.
            let conns: Vec<Rc<NodeConn>> =
                self.subs.shards.iter().map(|s| s.backend.clone()).collect();
            for backend in conns {
                self.subs.leaving_all.insert(backend.id());
                self.send_push(&backend, frame.clone());
            }
            return;
        };
        let args = ArgView::new(&frame, &self.args);
        let channels: Vec<Bytes> = (1..args.len())
            .map(|i| frame.slice_ref(args.get(i).unwrap_or_default()))
            .collect();
        let holder = self
            .subs
            .shards
            .iter()
            .find(|s| channels.iter().any(|c| s.channels.contains(c)))
            .or_else(|| self.subs.shards.first())
            .map(|s| s.backend.clone());
        let _ = slot;
        self.subs.leaving.extend(channels);
        if let Some(backend) = holder {
            self.send_push(&backend, frame);
        }
    }

    /// Takes what subscription connections delivered: tracks confirmations, hides those of
    /// re-subscriptions, re-subscribes what a node dropped, and queues the rest for the client.
    pub(super) fn handle_pushes(&mut self) {
        if !self.queue.has_pushes() && !self.queue.relay_overflowed() {
            return;
        }
        let mut frames = VecDeque::new();
        let mut lost = Vec::new();
        self.queue.take_pushes(&mut frames, &mut lost);
        for (conn, frame) in frames {
            if self.relay_decision(conn, &frame) {
                let frame = self.with_client_count(frame);
                self.subs.out_bytes += frame.len();
                self.subs.out.push_back(frame);
            }
        }
        for conn in lost {
            self.connection_lost(conn);
        }
        self.queue.set_relay_backlog(self.subs.out_bytes);
        let limit = self.listener.config().client_output_buffer_limit.pubsub;
        let pending = self.queue.relay_pending();
        if self.queue.relay_overflowed()
            || limit.exceeded(pending, &mut self.over_soft_limit_since, Instant::now())
        {
            self.output_limit_reached("pubsub");
        }
    }

    /// A shard-channel confirmation carries the count of one node's connection; the
    /// client must see its own total over every node, as from a single Redis.
    fn with_client_count(&self, frame: Bytes) -> Bytes {
        let Some((kind, channel, Some(_))) = confirmation(&frame) else {
            return frame;
        };
        if channel.is_empty() || (kind != b"ssubscribe" && kind != b"sunsubscribe") {
            return frame;
        }
        let total: usize = self.subs.shards.iter().map(|s| s.channels.len()).sum();
        let mut out = BytesMut::new();
        match frame.first() {
            Some(b'>') => out.extend_from_slice(b">3\r\n"),
            _ => encode::array_header(&mut out, 3),
        }
        encode::bulk(&mut out, &kind);
        encode::bulk(&mut out, &channel);
        encode::integer(&mut out, total as i64);
        out.freeze()
    }

    /// Updates the bookkeeping for one pushed frame; true when the client should see it.
    fn relay_decision(&mut self, conn: u64, frame: &Bytes) -> bool {
        if frame.first() == Some(&b'-') {
            return self.push_error(conn, frame);
        }
        let Some((kind, channel, count)) = confirmation(frame) else {
            return true;
        };
        let hidden_at = self
            .subs
            .hidden
            .iter()
            .position(|(k, c)| k.eq_ignore_ascii_case(&kind) && *c == channel);
        let hidden = hidden_at.map(|i| self.subs.hidden.swap_remove(i)).is_some();
        match kind.as_slice() {
            b"subscribe" => {
                self.subs.channels.insert(channel);
            }
            b"psubscribe" => {
                self.subs.patterns.insert(channel);
            }
            b"unsubscribe" | b"punsubscribe" => {
                if kind == b"unsubscribe" {
                    self.subs.channels.remove(&channel);
                } else {
                    self.subs.patterns.remove(&channel);
                }
                if count == Some(0)
                    && let Some(global) = self.subs.global.take()
                {
                    global.close();
                }
            }
            b"ssubscribe" => {
                if let Some(shard) = self.subs.shards.iter_mut().find(|s| s.backend.id() == conn) {
                    shard.channels.insert(channel.clone());
                    if let Some((front, _)) = shard.unconfirmed.front_mut() {
                        front.retain(|c| *c != channel);
                        if front.is_empty() {
                            shard.unconfirmed.pop_front();
                        }
                    }
                }
            }
            b"sunsubscribe" => return self.shard_unsubscribed(conn, channel, count),
            _ => {}
        }
        !hidden
    }

    /// A `sunsubscribe` frame: relayed if the client asked; otherwise the node dropped the
    /// channel (its slot moved) and slotgate subscribes again where it lives now.
    fn shard_unsubscribed(&mut self, conn: u64, channel: Bytes, count: Option<i64>) -> bool {
        let asked = self.subs.leaving.remove(&channel)
            || self.subs.leaving_all.contains(&conn)
            || channel.is_empty();
        if let Some(index) = self.subs.shards.iter().position(|s| s.backend.id() == conn) {
            self.subs.shards[index].channels.remove(&channel);
            if count == Some(0) && self.subs.shards[index].unconfirmed.is_empty() {
                self.subs.leaving_all.remove(&conn);
                self.subs.shards.swap_remove(index).backend.close();
            }
        }
        if !asked {
            debug!(
                client = self.client.id,
                "a node dropped a shard channel; subscribing again"
            );
            self.up.upstream.request_refresh();
            self.subs.orphans.push((channel, true));
            self.subs
                .resubscribe_at
                .get_or_insert(Instant::now() + RESUBSCRIBE_DELAY);
        }
        asked
    }

    /// An error on a subscription connection answers the oldest unconfirmed SSUBSCRIBE
    /// (typically `MOVED`): subscribe again once the map shows the owner.
    fn push_error(&mut self, conn: u64, frame: &Bytes) -> bool {
        let Some(shard) = self.subs.shards.iter_mut().find(|s| s.backend.id() == conn) else {
            return true;
        };
        let Some((channels, hide)) = shard.unconfirmed.pop_front() else {
            return true;
        };
        let redirected = frame.starts_with(b"-MOVED")
            || frame.starts_with(b"-ASK")
            || frame.starts_with(b"-TRYAGAIN")
            || frame.starts_with(b"-CLUSTERDOWN");
        if !redirected {
            return !hide;
        }
        self.subs.hidden.retain(|(_, c)| !channels.contains(c));
        self.up.upstream.request_refresh();
        self.subs
            .orphans
            .extend(channels.into_iter().map(|c| (c, hide)));
        self.subs
            .resubscribe_at
            .get_or_insert(Instant::now() + RESUBSCRIBE_DELAY);
        false
    }

    /// A subscription connection closed: everything it carried is subscribed again.
    fn connection_lost(&mut self, conn: u64) {
        if self.subs.global.as_ref().is_some_and(|g| g.id() == conn) {
            self.subs.global = None;
            let channels: Vec<Bytes> = self.subs.channels.iter().cloned().collect();
            let patterns: Vec<Bytes> = self.subs.patterns.iter().cloned().collect();
            if channels.is_empty() && patterns.is_empty() {
                return;
            }
            debug!(
                client = self.client.id,
                "subscription connection lost; subscribing again"
            );
            let Some(global) = self.global_conn() else {
                return;
            };
            for (kind, names) in [
                (&b"subscribe"[..], channels),
                (&b"psubscribe"[..], patterns),
            ] {
                if names.is_empty() {
                    continue;
                }
                self.subs
                    .hidden
                    .extend(names.iter().map(|n| (kind, n.clone())));
                let mut args: Vec<&[u8]> = vec![kind];
                args.extend(names.iter().map(|n| &n[..]));
                let mut out = BytesMut::new();
                encode_command(&mut out, &args);
                self.send_push(&global, out.freeze());
            }
        } else if let Some(index) = self.subs.shards.iter().position(|s| s.backend.id() == conn) {
            let shard = self.subs.shards.swap_remove(index);
            self.subs
                .orphans
                .extend(shard.channels.into_iter().map(|c| (c, true)));
            for (channels, hide) in shard.unconfirmed {
                self.subs
                    .orphans
                    .extend(channels.into_iter().map(|c| (c, hide)));
            }
            self.up.upstream.request_refresh();
            self.subs
                .resubscribe_at
                .get_or_insert(Instant::now() + RESUBSCRIBE_DELAY);
        }
    }

    /// Subscribes orphaned shard channels again at their current owners.
    pub(super) fn resubscribe_due(&mut self) {
        if self
            .subs
            .resubscribe_at
            .is_none_or(|at| at > Instant::now())
        {
            return;
        }
        self.subs.resubscribe_at = None;
        let orphans = std::mem::take(&mut self.subs.orphans);
        for (channel, hide) in orphans {
            let mut out = BytesMut::new();
            encode_command(&mut out, &[b"SSUBSCRIBE", &channel]);
            let slot = key_slot(&channel);
            self.ssubscribe(slot, out.freeze(), vec![channel], hide);
        }
    }
}
