//! What the refresher saw of an upstream, for the admin page (`/api/topology`): per node
//! details from the last discovery round, when each node's health last changed, open slot
//! migrations, and a small ring of topology events (failovers, nodes added or removed,
//! slots moved, MOVED storms, DNS changes, health changes).
//!
//! Written by the refresher once per round (or per event), read by the admin listener:
//! nothing here is on the data path.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::clock::unix_ms;
use crate::endpoint::Endpoint;
use crate::slot::SLOT_COUNT;
use crate::topology::Topology;
use crate::topology::details::{Migration, NodeDetail};

/// How many events [`EventLog`] keeps (the oldest are dropped).
pub const EVENTS_KEPT: usize = 64;

/// One round's observations, swapped in whole.
#[derive(Debug, Default)]
pub struct Observed {
    /// Per node, the details it reported about itself when it answered, else what the
    /// node the map came from said about it.
    pub nodes: HashMap<Endpoint, NodeDetail>,
    /// Per node, whether it answered and since when (ms since the Unix epoch): the first
    /// round that saw it in its current state.
    pub health_since: HashMap<Endpoint, (bool, u64)>,
    /// Open migrations, each with the node that reported it.
    pub migrations: Vec<(Endpoint, Migration)>,
}

/// What kind of thing happened; the `kind` field of an event in `/api/topology`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The first complete slot map was loaded.
    MapLoaded,
    Failover,
    NodeAdded,
    NodeRemoved,
    SlotsMoved,
    MovedStorm,
    DnsChanged,
    NodeUnreachable,
    NodeOnline,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            EventKind::MapLoaded => "map_loaded",
            EventKind::Failover => "failover",
            EventKind::NodeAdded => "node_added",
            EventKind::NodeRemoved => "node_removed",
            EventKind::SlotsMoved => "slots_moved",
            EventKind::MovedStorm => "moved_storm",
            EventKind::DnsChanged => "dns_changed",
            EventKind::NodeUnreachable => "node_unreachable",
            EventKind::NodeOnline => "node_online",
        }
    }
}

/// One topology event.
#[derive(Clone, Debug)]
pub struct Event {
    pub at_unix_ms: u64,
    pub kind: EventKind,
    /// One line for people: addresses and slot counts, never a credential.
    pub message: String,
}

/// The last [`EVENTS_KEPT`] events, oldest first.
#[derive(Debug, Default)]
pub struct EventLog {
    events: Mutex<VecDeque<Event>>,
}

impl EventLog {
    pub fn record(&self, kind: EventKind, message: String) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() == EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(Event {
            at_unix_ms: unix_ms(),
            kind,
            message,
        });
    }

    /// A copy, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().cloned().collect()
    }
}

/// The events between two slot maps: the first map loaded, failovers (a replica of a
/// shard became its primary), nodes added and removed, slots moved between shards.
pub fn map_changes(old: &Topology, new: &Topology) -> Vec<(EventKind, String)> {
    let mut events = Vec::new();
    if old.shards().is_empty() {
        let nodes: usize = new.shards().iter().map(|s| 1 + s.replicas.len()).sum();
        events.push((
            EventKind::MapLoaded,
            format!(
                "slot map loaded: {} shards, {nodes} nodes, {} slots covered",
                new.shards().len(),
                new.covered_slots()
            ),
        ));
        return events;
    }
    let nodes_of = |t: &Topology| -> HashMap<Arc<str>, (Endpoint, bool)> {
        t.shards()
            .iter()
            .flat_map(|s| {
                std::iter::once((s.primary.id.clone(), (s.primary.endpoint.clone(), true))).chain(
                    s.replicas
                        .iter()
                        .map(|r| (r.id.clone(), (r.endpoint.clone(), false))),
                )
            })
            .collect()
    };
    let (before, after) = (nodes_of(old), nodes_of(new));
    for shard in new.shards() {
        if let Some((_, false)) = before.get(&shard.primary.id) {
            let replaced = old
                .shards()
                .iter()
                .find(|s| s.replicas.iter().any(|r| r.id == shard.primary.id))
                .map(|s| s.primary.endpoint.to_string())
                .unwrap_or_else(|| "?".to_owned());
            events.push((
                EventKind::Failover,
                format!(
                    "{} took over as primary from {replaced}",
                    shard.primary.endpoint
                ),
            ));
        }
    }
    let mut added: Vec<_> = after
        .iter()
        .filter(|(id, _)| !before.contains_key(*id))
        .collect();
    added.sort_by(|a, b| a.1.0.cmp(&b.1.0));
    for (_, (endpoint, primary)) in added {
        let role = if *primary { "primary" } else { "replica" };
        events.push((
            EventKind::NodeAdded,
            format!("{endpoint} joined as a {role}"),
        ));
    }
    let mut removed: Vec<_> = before
        .iter()
        .filter(|(id, _)| !after.contains_key(*id))
        .collect();
    removed.sort_by(|a, b| a.1.0.cmp(&b.1.0));
    for (_, (endpoint, _)) in removed {
        events.push((
            EventKind::NodeRemoved,
            format!("{endpoint} left the slot map"),
        ));
    }
    // A slot moved when its new shard's primary was no member of its old shard (a
    // failover keeps the slot within the same shard).
    let mut moves: BTreeMap<(String, String), usize> = BTreeMap::new();
    for slot in 0..SLOT_COUNT as u16 {
        let (Some(from), Some(to)) = (old.shard_index(slot), new.shard_index(slot)) else {
            continue;
        };
        let (from, to) = (&old.shards()[from], &new.shards()[to]);
        let same =
            from.primary.id == to.primary.id || from.replicas.iter().any(|r| r.id == to.primary.id);
        if !same {
            *moves
                .entry((
                    from.primary.endpoint.to_string(),
                    to.primary.endpoint.to_string(),
                ))
                .or_default() += 1;
        }
    }
    for ((from, to), count) in moves {
        events.push((
            EventKind::SlotsMoved,
            format!(
                "{count} slot{} moved from {from} to {to}",
                if count == 1 { "" } else { "s" }
            ),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Node, Shard};

    fn node(id: &str, port: u16) -> Node {
        Node {
            id: id.into(),
            endpoint: Endpoint::new("127.0.0.1", port),
        }
    }

    #[test]
    fn failover_added_removed_and_moved_slots() {
        let old = Topology::from_ranges(
            vec![
                Shard {
                    primary: node("a", 1),
                    replicas: vec![node("c", 3)],
                },
                Shard {
                    primary: node("b", 2),
                    replicas: vec![],
                },
            ],
            &[(0, 0, 8191), (1, 8192, 16383)],
        );
        let new = Topology::from_ranges(
            vec![
                Shard {
                    primary: node("c", 3),
                    replicas: vec![node("a", 1)],
                },
                Shard {
                    primary: node("b", 2),
                    replicas: vec![node("d", 4)],
                },
            ],
            &[(0, 0, 8190), (1, 8191, 16383)],
        );
        let events = map_changes(&old, &new);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.label()).collect();
        assert_eq!(
            kinds,
            ["failover", "node_added", "slots_moved"],
            "{events:?}"
        );
        assert_eq!(
            events[0].1,
            "127.0.0.1:3 took over as primary from 127.0.0.1:1"
        );
        assert_eq!(events[2].1, "1 slot moved from 127.0.0.1:1 to 127.0.0.1:2");
        let first = map_changes(&Topology::empty(), &new);
        assert_eq!(first[0].0, EventKind::MapLoaded);
        let back = map_changes(&new, &old);
        assert!(
            back.iter()
                .any(|(k, m)| *k == EventKind::NodeRemoved && m.contains(":4"))
        );
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let log = EventLog::default();
        for i in 0..EVENTS_KEPT + 3 {
            log.record(EventKind::SlotsMoved, format!("{i}"));
        }
        let events = log.snapshot();
        assert_eq!(events.len(), EVENTS_KEPT);
        assert_eq!(events[0].message, "3");
        assert_eq!(
            events[EVENTS_KEPT - 1].message,
            format!("{}", EVENTS_KEPT + 2)
        );
    }
}
