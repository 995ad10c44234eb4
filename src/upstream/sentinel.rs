//! Sentinel mode's shared state and its event subscriptions.
//!
//! ```text
//! Sentinels ──PSUBSCRIBE *──► subscribe() task, one per known Sentinel (reconnecting)
//!                               +try-failover for our master  -> begin_hold: empty map
//!                               -failover-abort-*             -> end_hold
//!                               +switch-master, +sdown, ...   -> request_refresh
//!           ──SENTINEL ...──► refresher::sentinel round (majority, ROLE) -> topology, status
//! SentinelShared (on the Upstream): status for /topology, INFO and /readyz, hold, counters
//! ```
//!
//! An event is never trusted alone: it only makes the refresher run a verified round at
//! once. The one thing an event does by itself is *hold* writes when a failover starts
//! (`+try-failover`): the map is emptied so commands wait (up to `retry-deadline`) instead
//! of landing on a primary that is about to be demoted, where they would be lost when it
//! resynchronises from the new one. The hold ends when a round confirms a different
//! primary with `ROLE`, when the failover aborts, or after [`HOLD_LIMIT`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::{Buf, BytesMut};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::time::sleep;
use tracing::{debug, info, warn};

use super::{NoPrimary, Upstream};
use crate::clock::unix_ms;
use crate::connector::NodeConnector;
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::resp::encode::{self, Protocol, encode_command};
use crate::topology::Topology;

/// Longest a failover hold lasts without a round confirming the new primary.
pub const HOLD_LIMIT: Duration = Duration::from_secs(5);
/// Pause before a lost subscription is opened again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

/// What `/topology` (`sentinel`), `INFO` and `/readyz` show of sentinel mode; replaced
/// once per round.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SentinelStatus {
    pub master_name: String,
    pub sentinels: Vec<SentinelPeer>,
    /// The primary in force, confirmed by `ROLE` (`None` while none is).
    pub primary: Option<String>,
    pub primary_confirmed_unix_ms: u64,
    pub replicas: Vec<ReplicaStatus>,
    /// Every primary change slotgate made, oldest first (the last [`MAX_SWITCHES`]).
    pub switches: Vec<Switch>,
    /// No Sentinel answered the last round: the last confirmed primary is served.
    pub sentinels_unreachable: bool,
    /// A failover hold is in force.
    pub holding: bool,
}

/// Switches kept for `/topology`.
pub const MAX_SWITCHES: usize = 32;

#[derive(Clone, Debug, Serialize)]
pub struct SentinelPeer {
    pub address: String,
    /// Configured (kept forever) or learned from `SENTINEL sentinels` (pruned).
    pub configured: bool,
    pub reachable: bool,
    /// The primary it names, when it answered.
    pub says: Option<String>,
    pub error: Option<String>,
    pub last_answer_unix_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplicaStatus {
    pub address: String,
    /// `online` when it answers `ROLE slave` with its link up, else Sentinel's flags.
    pub state: String,
    pub offset: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Switch {
    pub from: Option<String>,
    pub to: String,
    pub at_unix_ms: u64,
}

/// Sentinel mode's state on its [`Upstream`]; see the module docs.
#[derive(Default)]
pub struct SentinelShared {
    status: ArcSwapOption<SentinelStatus>,
    /// When the hold in force ends, in Unix milliseconds (0: no hold).
    hold_until_ms: AtomicU64,
    /// The primary that was in force when the hold began.
    held_from: ArcSwapOption<Endpoint>,
    pub queries_ok: AtomicU64,
    pub queries_failed: AtomicU64,
    pub switches: AtomicU64,
    pub events: AtomicU64,
    pub holds: AtomicU64,
    pub disagreements: AtomicU64,
    pub unreachable: AtomicBool,
}

impl SentinelShared {
    pub fn status(&self) -> Option<Arc<SentinelStatus>> {
        self.status.load_full()
    }

    pub fn set_status(&self, status: SentinelStatus) {
        self.unreachable
            .store(status.sentinels_unreachable, Ordering::Relaxed);
        self.status.store(Some(Arc::new(status)));
    }

    /// The primary a hold in force began from (`Some(None)`: there was none), or `None`
    /// when no hold is in force (never begun, ended, or past [`HOLD_LIMIT`]).
    pub fn hold(&self) -> Option<Option<Endpoint>> {
        let until = self.hold_until_ms.load(Ordering::Relaxed);
        (until != 0 && unix_ms() < until).then(|| self.held_from.load_full().map(|e| (*e).clone()))
    }

    /// A line for `/readyz` when sentinel mode serves without the Sentinels' word.
    pub fn readiness_note(&self) -> Option<String> {
        let status = self.status()?;
        if status.sentinels_unreachable {
            return Some(format!(
                "sentinel: no Sentinel answers; serving the last primary confirmed by ROLE ({})\n",
                status.primary.as_deref().unwrap_or("none")
            ));
        }
        status
            .holding
            .then(|| "sentinel: failover in progress; commands held\n".to_owned())
    }

    /// `INFO sentinel`: the mode's state in `key:value` lines (sentinel mode only).
    pub fn info_section(&self) -> Option<String> {
        use std::fmt::Write;
        let status = self.status()?;
        let mut text = String::from("# Sentinel\r\n");
        let _ = write!(
            text,
            "master_name:{}\r\nprimary:{}\r\nprimary_confirmed_unix_ms:{}\r\nsentinels_unreachable:{}\r\nholding:{}\r\nswitches:{}\r\n",
            status.master_name,
            status.primary.as_deref().unwrap_or(""),
            status.primary_confirmed_unix_ms,
            u8::from(status.sentinels_unreachable),
            u8::from(status.holding),
            self.switches.load(Ordering::Relaxed),
        );
        for (i, s) in status.sentinels.iter().enumerate() {
            let _ = write!(
                text,
                "sentinel{i}:address={},configured={},reachable={},says={}\r\n",
                s.address,
                u8::from(s.configured),
                u8::from(s.reachable),
                s.says.as_deref().unwrap_or(""),
            );
        }
        for (i, r) in status.replicas.iter().enumerate() {
            let _ = write!(
                text,
                "replica{i}:address={},state={},offset={}\r\n",
                r.address, r.state, r.offset
            );
        }
        if let Some(last) = status.switches.last() {
            let _ = write!(
                text,
                "last_switch:from={},to={},at_unix_ms={}\r\n",
                last.from.as_deref().unwrap_or(""),
                last.to,
                last.at_unix_ms
            );
        }
        text.push_str("\r\n");
        Some(text)
    }

    pub fn end_hold(&self) {
        self.hold_until_ms.store(0, Ordering::Relaxed);
    }

    /// Begins a hold: the map is emptied so commands wait for the new primary.
    fn begin_hold(&self, upstream: &Upstream) {
        let current = upstream.topology.load_full();
        self.held_from.store(
            current
                .shards()
                .first()
                .map(|s| Arc::new(s.primary.endpoint.clone())),
        );
        self.hold_until_ms
            .store(unix_ms() + HOLD_LIMIT.as_millis() as u64, Ordering::Relaxed);
        self.holds.fetch_add(1, Ordering::Relaxed);
        upstream.set_no_primary(Some(failover_fault()));
        let mut empty = Topology::empty();
        empty.generation = current.generation + 1;
        upstream.topology.store(Arc::new(empty));
        upstream.ready.store(false, Ordering::Relaxed);
    }
}

/// What commands get if a hold outlasts `retry-deadline`.
pub fn failover_fault() -> NoPrimary {
    let mut out = BytesMut::new();
    encode::error(
        &mut out,
        "MASTERDOWN slotgate: a Sentinel failover is in progress; the new primary is not confirmed yet",
    );
    NoPrimary {
        claimants: Vec::new(),
        reply: out.freeze(),
    }
}

/// What an event means for the refresher.
#[derive(Debug, PartialEq, Eq)]
enum EventAction {
    Hold,
    EndHold,
    Refresh,
    Ignore,
}

/// Classifies a Sentinel event on `channel` with `payload` for master `name`.
fn classify(channel: &str, payload: &str, name: &str) -> EventAction {
    let mut words = payload.split(' ');
    let about_us = payload.split(' ').any(|w| w == name);
    if !about_us {
        return EventAction::Ignore;
    }
    match channel {
        // "master <name> <ip> <port>": the failover of our primary begins.
        "+try-failover" if words.next() == Some("master") && words.next() == Some(name) => {
            EventAction::Hold
        }
        c if c.starts_with("-failover-abort") => EventAction::EndHold,
        "+switch-master"
        | "+promoted-slave"
        | "+failover-state-reconf-slaves"
        | "+failover-end"
        | "+failover-end-for-timeout"
        | "+sdown"
        | "-sdown"
        | "+odown"
        | "-odown"
        | "+config-update-from"
        | "+convert-to-slave"
        | "+reboot"
        | "+slave"
        | "+sentinel" => EventAction::Refresh,
        _ => EventAction::Ignore,
    }
}

/// Subscribes to every event of the Sentinel at `endpoint` and acts on those about `name`,
/// reconnecting after [`RESUBSCRIBE_DELAY`] whenever the connection ends. Runs until
/// aborted (the Sentinel was pruned, or shutdown).
pub async fn subscribe(
    upstream: Arc<Upstream>,
    dns: Arc<Dns>,
    endpoint: Endpoint,
    name: String,
    connector: impl Fn() -> NodeConnector,
) {
    loop {
        match listen(&upstream, &dns, &endpoint, &name, &connector()).await {
            Ok(()) => debug!(sentinel = %endpoint, "sentinel subscription closed"),
            Err(e) => debug!(sentinel = %endpoint, error = %e, "sentinel subscription failed"),
        }
        sleep(RESUBSCRIBE_DELAY).await;
    }
}

async fn listen(
    upstream: &Upstream,
    dns: &Dns,
    endpoint: &Endpoint,
    name: &str,
    connector: &NodeConnector,
) -> Result<(), String> {
    let mut stream = connector
        .open(dns, endpoint, Protocol::Resp2)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut out = BytesMut::new();
    encode_command(&mut out, &[b"PSUBSCRIBE", b"*"]);
    stream
        .write_all_flushed(&out)
        .await
        .map_err(|e| e.to_string())?;
    debug!(sentinel = %endpoint, "subscribed to sentinel events");
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        while let Some((frame, used)) = decode(&buf).map_err(|e| e.to_string())? {
            buf.advance(used);
            if let Some((channel, payload)) = pmessage(&frame) {
                on_event(upstream, endpoint, &channel, &payload, name);
            }
        }
        if stream.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        if buf.len() > 1 << 20 {
            return Err("event larger than 1 MiB".into());
        }
    }
}

/// `["pmessage", pattern, channel, payload]` -> (channel, payload).
fn pmessage(frame: &OwnedFrame) -> Option<(String, String)> {
    let OwnedFrame::Array(fields) = frame else {
        return None;
    };
    let text = |i: usize| match fields.get(i)? {
        OwnedFrame::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    (text(0)?.eq_ignore_ascii_case("pmessage")).then_some(())?;
    Some((text(2)?, text(3)?))
}

fn on_event(upstream: &Upstream, from: &Endpoint, channel: &str, payload: &str, name: &str) {
    let action = classify(channel, payload, name);
    if action == EventAction::Ignore {
        return;
    }
    let shared = &upstream.sentinel;
    shared.events.fetch_add(1, Ordering::Relaxed);
    info!(sentinel = %from, event = channel, payload, "sentinel event; re-resolving the primary");
    match action {
        EventAction::Hold => {
            if shared.hold().is_none() {
                warn!(sentinel = %from, "failover started: holding commands until the new primary is confirmed");
                shared.begin_hold(upstream);
            }
        }
        EventAction::EndHold => shared.end_hold(),
        EventAction::Refresh | EventAction::Ignore => {}
    }
    upstream.request_refresh();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified_for_our_master_only() {
        use EventAction::*;
        assert_eq!(
            classify(
                "+try-failover",
                "master mymaster 127.0.0.1 6379",
                "mymaster"
            ),
            Hold
        );
        assert_eq!(
            classify("+try-failover", "master other 127.0.0.1 6379", "mymaster"),
            Ignore
        );
        assert_eq!(
            classify(
                "+switch-master",
                "mymaster 127.0.0.1 6379 127.0.0.1 6380",
                "mymaster"
            ),
            Refresh
        );
        assert_eq!(
            classify(
                "+sdown",
                "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
                "mymaster"
            ),
            Refresh
        );
        assert_eq!(
            classify(
                "-failover-abort-no-good-slave",
                "master mymaster 127.0.0.1 6379",
                "mymaster"
            ),
            EndHold
        );
        assert_eq!(
            classify("__sentinel__:hello", "x mymaster", "mymaster"),
            Ignore
        );
    }

    #[test]
    fn pmessage_frames() {
        let b = |s: &str| OwnedFrame::BulkString(s.as_bytes().to_vec());
        let frame = OwnedFrame::Array(vec![b("pmessage"), b("*"), b("+odown"), b("master m")]);
        assert_eq!(
            pmessage(&frame),
            Some(("+odown".to_owned(), "master m".to_owned()))
        );
        let confirm = OwnedFrame::Array(vec![b("psubscribe"), b("*"), OwnedFrame::Integer(1)]);
        assert_eq!(pmessage(&confirm), None);
    }
}
