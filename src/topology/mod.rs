//! The cluster's shape as slotgate sees it: an immutable slot-map snapshot.
//!
//! [`discovery`] turns a node's `CLUSTER SHARDS` (or `CLUSTER SLOTS`) reply into a
//! [`Topology`]; the upstream's refresher ([`crate::upstream::refresher`]) decides when to
//! ask and swaps the new snapshot into the shared [`arc_swap::ArcSwap`]. Workers read the snapshot without locking: a flat
//! 16384-entry table of shard indexes and the shards themselves.

pub mod details;
pub mod discovery;
pub mod role;
pub mod sentinel;

use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::slot::SLOT_COUNT;

/// Marks a slot no shard serves.
const NO_SHARD: u16 = u16::MAX;

/// One cluster node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The 40-character node id; stable across restarts and IP changes.
    pub id: Arc<str>,
    pub endpoint: Endpoint,
}

/// A primary and its replicas, serving a set of slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub primary: Node,
    pub replicas: Vec<Node>,
}

/// An immutable snapshot of the slot map.
#[derive(Debug)]
pub struct Topology {
    /// Bumped on every swap, so workers can tell cheaply that their caches are stale.
    pub generation: u64,
    slots: Box<[u16]>,
    shards: Vec<Shard>,
    /// `cluster_current_epoch` of the node this map came from.
    pub epoch: u64,
    /// Where this map came from, for logs and `INFO`.
    pub source: Option<Endpoint>,
}

impl Topology {
    /// The snapshot in force before any node has answered: no slot is served.
    pub fn empty() -> Self {
        Self {
            generation: 0,
            slots: vec![NO_SHARD; SLOT_COUNT].into_boxed_slice(),
            shards: Vec::new(),
            epoch: 0,
            source: None,
        }
    }

    /// Builds a snapshot from shards and the slot ranges each serves.
    ///
    /// `ranges` pairs a shard index with an inclusive slot range. Out-of-range slots and
    /// indexes are ignored rather than trusted.
    /// Shards and replicas are put in node-id order, so two nodes describing the same
    /// cluster in a different order yield equal snapshots.
    /// Shards that serve no slot are left out: they receive no command, and nodes
    /// disagree about them (Redis 7.0 may list a replica as a shard of its own).
    pub fn from_ranges(shards: Vec<Shard>, ranges: &[(usize, u16, u16)]) -> Self {
        let serving: Vec<bool> = (0..shards.len())
            .map(|i| {
                ranges
                    .iter()
                    .any(|&(s, start, end)| s == i && start <= end && usize::from(end) < SLOT_COUNT)
            })
            .collect();
        let mut renumber = vec![usize::MAX; shards.len()];
        let mut kept = Vec::new();
        for (i, shard) in shards.into_iter().enumerate() {
            if serving[i] {
                renumber[i] = kept.len();
                kept.push(shard);
            }
        }
        let ranges: Vec<(usize, u16, u16)> = ranges
            .iter()
            .filter(|&&(s, _, _)| s < renumber.len() && renumber[s] != usize::MAX)
            .map(|&(s, start, end)| (renumber[s], start, end))
            .collect();
        Self::from_serving_ranges(kept, &ranges)
    }

    fn from_serving_ranges(mut shards: Vec<Shard>, ranges: &[(usize, u16, u16)]) -> Self {
        for shard in &mut shards {
            shard.replicas.sort_by(|a, b| a.id.cmp(&b.id));
        }
        let mut order: Vec<usize> = (0..shards.len()).collect();
        order.sort_by(|&a, &b| shards[a].primary.id.cmp(&shards[b].primary.id));
        // new_index[old] = position of shard `old` after sorting.
        let mut new_index = vec![0usize; shards.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut sorted: Vec<Option<Shard>> = shards.into_iter().map(Some).collect();
        let shards: Vec<Shard> = order.iter().filter_map(|&old| sorted[old].take()).collect();
        let mut slots = vec![NO_SHARD; SLOT_COUNT].into_boxed_slice();
        for &(shard, start, end) in ranges {
            if shard >= shards.len() || start > end || usize::from(end) >= SLOT_COUNT {
                continue;
            }
            let shard = new_index[shard];
            for slot in &mut slots[usize::from(start)..=usize::from(end)] {
                *slot = shard as u16;
            }
        }
        Self {
            generation: 0,
            slots,
            shards,
            epoch: 0,
            source: None,
        }
    }

    /// The shard index serving `slot`, if any.
    #[inline]
    pub fn shard_index(&self, slot: u16) -> Option<usize> {
        match self.slots.get(usize::from(slot)) {
            Some(&NO_SHARD) | None => None,
            Some(&index) => Some(usize::from(index)),
        }
    }

    /// The primary serving `slot`, if any.
    pub fn primary_for(&self, slot: u16) -> Option<&Node> {
        self.shard_index(slot).map(|i| &self.shards[i].primary)
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// How many of the 16384 slots some shard serves.
    pub fn covered_slots(&self) -> usize {
        self.slots.iter().filter(|&&s| s != NO_SHARD).count()
    }

    /// True when every slot is served.
    pub fn is_complete(&self) -> bool {
        self.covered_slots() == SLOT_COUNT
    }

    /// The slot ranges served by shard `index`, merged and in order.
    pub fn ranges_of(&self, index: usize) -> Vec<(u16, u16)> {
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for (slot, &owner) in self.slots.iter().enumerate() {
            if usize::from(owner) != index || owner == NO_SHARD {
                continue;
            }
            let slot = slot as u16;
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == slot => *end = slot,
                _ => ranges.push((slot, slot)),
            }
        }
        ranges
    }

    /// A copy of the layout (slots, shards, source) with generation and epoch reset.
    pub fn clone_layout(&self) -> Topology {
        Topology {
            generation: 0,
            slots: self.slots.clone(),
            shards: self.shards.clone(),
            epoch: 0,
            source: self.source.clone(),
        }
    }

    /// The first slot each shard serves, with its shard index, in slot order. Shards that
    /// serve no slot are left out.
    pub fn first_slots(&self) -> Vec<(u16, usize)> {
        let mut seen = vec![false; self.shards.len()];
        let mut firsts = Vec::with_capacity(self.shards.len());
        for (slot, &owner) in self.slots.iter().enumerate() {
            let owner = usize::from(owner);
            if owner < seen.len() && !seen[owner] {
                seen[owner] = true;
                firsts.push((slot as u16, owner));
            }
        }
        firsts
    }

    /// True when both snapshots route every slot to the same primaries and list the same nodes.
    pub fn same_layout(&self, other: &Topology) -> bool {
        self.slots == other.slots && self.shards == other.shards
    }

    /// Every endpoint this snapshot knows, primaries first.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let primaries = self.shards.iter().map(|s| s.primary.endpoint.clone());
        let replicas = self
            .shards
            .iter()
            .flat_map(|s| s.replicas.iter().map(|r| r.endpoint.clone()));
        primaries.chain(replicas).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_name_does_not_change_which_address_it_is() {
        let plain = Endpoint::new("10.0.0.7", 6379);
        let resolved = Endpoint::new("10.0.0.7", 6379).resolved_from("redis-headless.ns.svc");
        assert_eq!(
            plain, resolved,
            "the same node address, however it is verified"
        );
        assert_eq!(plain.tls_name(), "10.0.0.7");
        assert_eq!(resolved.tls_name(), "redis-headless.ns.svc");
        let mut set = std::collections::HashSet::new();
        set.insert(plain);
        assert!(set.contains(&resolved));
    }

    fn node(id: &str, port: u16) -> Node {
        Node {
            id: id.into(),
            endpoint: Endpoint::new("127.0.0.1", port),
        }
    }

    fn shard(id: &str, port: u16) -> Shard {
        Shard {
            primary: node(id, port),
            replicas: vec![],
        }
    }

    #[test]
    fn ranges_map_slots_to_shards() {
        let topo = Topology::from_ranges(
            vec![shard("a", 7000), shard("b", 7001)],
            &[(0, 0, 8191), (1, 8192, 16383)],
        );
        assert!(topo.is_complete());
        assert_eq!(topo.primary_for(0).unwrap().endpoint.port, 7000);
        assert_eq!(topo.primary_for(8191).unwrap().endpoint.port, 7000);
        assert_eq!(topo.primary_for(8192).unwrap().endpoint.port, 7001);
        assert_eq!(topo.ranges_of(1), vec![(8192, 16383)]);
    }

    #[test]
    fn order_of_description_does_not_matter() {
        let a = Topology::from_ranges(
            vec![shard("a", 7000), shard("b", 7001)],
            &[(0, 0, 8191), (1, 8192, 16383)],
        );
        let b = Topology::from_ranges(
            vec![shard("b", 7001), shard("a", 7000)],
            &[(1, 0, 8191), (0, 8192, 16383)],
        );
        assert!(a.same_layout(&b));
        assert_eq!(b.primary_for(0).unwrap().endpoint.port, 7000);
    }

    #[test]
    fn partial_maps_and_bad_ranges_are_visible() {
        let topo = Topology::from_ranges(
            vec![shard("a", 7000)],
            &[(0, 0, 99), (5, 100, 200), (0, 300, 200), (0, 16000, 20000)],
        );
        assert_eq!(topo.covered_slots(), 100);
        assert!(!topo.is_complete());
        assert!(topo.primary_for(150).is_none());
        assert!(Topology::empty().primary_for(0).is_none());
    }

    #[test]
    fn endpoints_parse_and_print() {
        let e = Endpoint::parse("127.0.0.1:7000").unwrap();
        assert_eq!(e.to_string(), "127.0.0.1:7000");
        let v6 = Endpoint::parse("::1:7000").unwrap();
        assert_eq!(&*v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:7000");
        assert_eq!(Endpoint::parse("[::1]:7000").unwrap(), v6);
        assert!(Endpoint::parse("nope").is_none());
        assert!(Endpoint::parse(":7000").is_none());
    }
}
