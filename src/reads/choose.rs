//! Which node of a shard serves one read: the policy applied to the eligible nodes.
//!
//! [`Candidates`] is one worker's digest of the topology and the read-health snapshot: per
//! shard, the primary and the replicas that may serve reads now, the node with the lowest
//! round trip, and the primary's last probed offset (for read-your-writes). It is rebuilt
//! when either snapshot changes, so a read costs an index, a rotation and a comparison.
//! A replica is a candidate only while it is both in the topology as a replica of that
//! shard and judged readable by the last probe: a node promoted to primary leaves the
//! replica list with the next topology, whatever the probe said before.

use std::cell::Cell;
use std::time::Instant;

use super::ReadFrom;
use super::health::ReadHealth;
use crate::endpoint::Endpoint;
use crate::topology::Topology;

/// What a read asks of the node choice.
#[derive(Clone, Copy, Debug)]
pub struct ReadRequest {
    pub policy: ReadFrom,
    /// Read-your-writes: the client's last write to this slot was acknowledged at this
    /// instant; a replica qualifies only if the probe saw it reach the primary's offset
    /// read after then. `None`: no constraint.
    pub written_at: Option<Instant>,
    /// A SCAN continues on the node named by its cursor's tag ([`node_tag`]).
    pub tag: Option<u8>,
}

/// The node chosen for a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    Primary,
    Replica(&'a Endpoint),
    /// `read-from = replica` and no replica of the shard is eligible.
    NoReplica,
}

/// One eligible replica.
#[derive(Debug)]
struct Eligible {
    endpoint: Endpoint,
    offset: Option<u64>,
    tag: u8,
}

/// One shard's candidates.
#[derive(Debug, Default)]
struct ShardCandidates {
    replicas: Vec<Eligible>,
    /// The primary answered the last probe (or no probe has run yet).
    primary_up: bool,
    /// When the probe asked the primary, and the offset it answered.
    primary_sample: Option<(Instant, u64)>,
    /// `None`: the primary is the nearest (or nothing was measured); else a replica index.
    nearest: Option<usize>,
    primary_tag: u8,
}

/// One worker's candidates per shard; see the module docs.
#[derive(Debug, Default)]
pub struct Candidates {
    topology_generation: u64,
    health_generation: u64,
    shards: Vec<ShardCandidates>,
    /// Rotates reads over the eligible nodes.
    next: Cell<usize>,
}

impl Candidates {
    /// True when built from these snapshots.
    pub fn is_for(&self, topology: &Topology, health: &ReadHealth) -> bool {
        self.topology_generation == topology.generation
            && self.health_generation == health.generation
            && !self.shards.is_empty()
    }

    /// Builds the digest of `topology` and `health`.
    pub fn build(topology: &Topology, health: &ReadHealth, seed: usize) -> Candidates {
        let shards = topology
            .shards()
            .iter()
            .map(|shard| {
                let tags = shard_tags(shard);
                let primary = health.node(&shard.primary.endpoint);
                let mut best = primary.and_then(|p| p.round_trip);
                let mut nearest = None;
                let mut replicas = Vec::new();
                for (node, &tag) in shard.replicas.iter().zip(&tags[1..]) {
                    let Some(seen) = health.node(&node.endpoint) else {
                        continue;
                    };
                    if !seen.readable {
                        continue;
                    }
                    if let Some(rtt) = seen.round_trip
                        && best.is_none_or(|b| rtt < b)
                    {
                        best = Some(rtt);
                        nearest = Some(replicas.len());
                    }
                    replicas.push(Eligible {
                        endpoint: node.endpoint.clone(),
                        offset: seen.offset,
                        tag,
                    });
                }
                ShardCandidates {
                    replicas,
                    primary_up: primary.is_none_or(|p| p.readable),
                    primary_sample: primary.and_then(|p| Some((p.asked_at, p.offset?))),
                    nearest,
                    primary_tag: tags[0],
                }
            })
            .collect();
        Candidates {
            topology_generation: topology.generation,
            health_generation: health.generation,
            shards,
            next: Cell::new(seed),
        }
    }

    /// Drops `endpoint` from every shard's eligible replicas until the next rebuild.
    pub fn exclude(&mut self, endpoint: &Endpoint) {
        for shard in &mut self.shards {
            if let Some(index) = shard.replicas.iter().position(|r| &r.endpoint == endpoint) {
                shard.replicas.remove(index);
                shard.nearest = match shard.nearest {
                    Some(n) if n == index => None,
                    Some(n) if n > index => Some(n - 1),
                    other => other,
                };
            }
        }
    }

    /// The node that serves a read of shard `shard`.
    pub fn choose(&self, shard: usize, read: ReadRequest) -> Choice<'_> {
        let Some(candidates) = self.shards.get(shard) else {
            return Choice::Primary;
        };
        if let Some(tag) = read.tag {
            // A SCAN goes on where it started, if that node still may serve it.
            if tag == candidates.primary_tag || read.policy == ReadFrom::Primary {
                return Choice::Primary;
            }
            if let Some(r) = candidates.replicas.iter().find(|r| r.tag == tag) {
                return Choice::Replica(&r.endpoint);
            }
        }
        let fresh = |r: &Eligible| match read.written_at {
            None => true,
            Some(written) => match (candidates.primary_sample, r.offset) {
                (Some((asked, primary)), Some(offset)) => asked >= written && offset >= primary,
                _ => false,
            },
        };
        let replica = || {
            self.rotate(&candidates.replicas, fresh)
                .map(Choice::Replica)
        };
        match read.policy {
            ReadFrom::Primary => Choice::Primary,
            ReadFrom::PrimaryPreferred if candidates.primary_up => Choice::Primary,
            ReadFrom::PrimaryPreferred | ReadFrom::ReplicaPreferred => {
                replica().unwrap_or(Choice::Primary)
            }
            ReadFrom::Replica => match replica() {
                Some(choice) => choice,
                // A fresh-enough replica may appear at the next probe; the primary has the
                // client's write now, and that is what the client asked to read.
                None if read.written_at.is_some() && !candidates.replicas.is_empty() => {
                    Choice::Primary
                }
                None => Choice::NoReplica,
            },
            ReadFrom::Nearest => match candidates.nearest {
                Some(index) if fresh(&candidates.replicas[index]) => {
                    Choice::Replica(&candidates.replicas[index].endpoint)
                }
                _ => Choice::Primary,
            },
            ReadFrom::Any => {
                let count = candidates.replicas.len() + 1;
                let pick = self.bump() % count;
                match candidates.replicas.get(pick) {
                    Some(r) if fresh(r) => Choice::Replica(&r.endpoint),
                    _ => Choice::Primary,
                }
            }
        }
    }

    /// True when the node tagged `tag` may serve reads of shard `shard` under `policy`
    /// (under `primary`: only the primary may).
    pub fn has_tag(&self, shard: usize, tag: u8, policy: ReadFrom) -> bool {
        self.shards.get(shard).is_some_and(|c| {
            c.primary_tag == tag
                || (policy != ReadFrom::Primary && c.replicas.iter().any(|r| r.tag == tag))
        })
    }

    /// The tag of the node `choice` names in shard `shard`, for a SCAN cursor.
    pub fn tag_of(&self, shard: usize, choice: &Choice<'_>) -> u8 {
        let Some(candidates) = self.shards.get(shard) else {
            return 0;
        };
        match choice {
            Choice::Replica(endpoint) => candidates
                .replicas
                .iter()
                .find(|r| &r.endpoint == *endpoint)
                .map_or(0, |r| r.tag),
            _ => candidates.primary_tag,
        }
    }

    /// True when a replica a client wrote to may serve it: the shard's replicas are all
    /// known to be at or past the primary's offset read after `written_at`.
    pub fn caught_up(&self, shard: usize, written_at: Instant) -> bool {
        let Some(candidates) = self.shards.get(shard) else {
            return false;
        };
        let Some((asked, primary)) = candidates.primary_sample else {
            return false;
        };
        asked >= written_at
            && candidates
                .replicas
                .iter()
                .all(|r| r.offset.is_some_and(|o| o >= primary))
    }

    fn bump(&self) -> usize {
        let next = self.next.get().wrapping_add(1);
        self.next.set(next);
        next
    }

    /// The next replica in rotation that passes `fresh`.
    fn rotate<'a>(
        &self,
        replicas: &'a [Eligible],
        fresh: impl Fn(&Eligible) -> bool,
    ) -> Option<&'a Endpoint> {
        if replicas.is_empty() {
            return None;
        }
        let start = self.bump();
        (0..replicas.len())
            .map(|i| &replicas[(start + i) % replicas.len()])
            .find(|r| fresh(r))
            .map(|r| &r.endpoint)
    }
}

/// The SCAN-cursor tags of a shard's nodes, primary first then its replicas in topology
/// order: each its [`node_tag`], moved to the next free value when an earlier node of the
/// shard has it, so no two nodes of a shard share one (that would continue a scan on the
/// wrong node). Every worker computes the same tags from the same topology.
fn shard_tags(shard: &crate::topology::Shard) -> Vec<u8> {
    let mut tags: Vec<u8> = Vec::with_capacity(1 + shard.replicas.len());
    for node in std::iter::once(&shard.primary).chain(&shard.replicas) {
        let mut tag = node_tag(&node.id);
        // 15 values: a shard of more nodes repeats tags beyond that, and its scans may
        // restart a shard (repeats, never misses) rather than fail.
        for _ in 0..15 {
            if !tags.contains(&tag) {
                break;
            }
            tag = tag % 15 + 1;
        }
        tags.push(tag);
    }
    tags
}

/// A node's 4-bit tag in SCAN cursors: 1 to 15 from its node id (0 names no node, as in
/// every cursor made before reads from replicas existed).
pub fn node_tag(id: &str) -> u8 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash % 15) as u8 + 1
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustc_hash::FxHashMap;

    use super::*;
    use crate::reads::ReadSettings;
    use crate::reads::health::{NodeHealth, Role};
    use crate::topology::{Node, Shard};

    fn node(id: &str, port: u16) -> Node {
        Node {
            id: id.into(),
            endpoint: Endpoint::new("127.0.0.1", port),
        }
    }

    fn topology() -> Topology {
        let mut topology = Topology::from_ranges(
            vec![Shard {
                primary: node("p", 1),
                replicas: vec![node("r2", 2), node("r3", 3)],
            }],
            &[(0, 0, 16383)],
        );
        topology.generation = 1;
        topology
    }

    fn seen(role: Role, readable: bool, offset: u64, rtt_ms: u64, asked_at: Instant) -> NodeHealth {
        NodeHealth {
            role,
            readable,
            why_not: (!readable).then(|| "test".to_owned()),
            lag_bytes: None,
            lag_seconds: None,
            offset: Some(offset),
            asked_at,
            round_trip: Some(Duration::from_millis(rtt_ms)),
        }
    }

    fn health(nodes: Vec<(u16, NodeHealth)>) -> ReadHealth {
        let mut map = FxHashMap::default();
        for (port, h) in nodes {
            map.insert(Endpoint::new("127.0.0.1", port), h);
        }
        ReadHealth {
            generation: 1,
            settings: ReadSettings::defaults(),
            nodes: map,
        }
    }

    fn read(policy: ReadFrom) -> ReadRequest {
        ReadRequest {
            policy,
            written_at: None,
            tag: None,
        }
    }

    fn port(choice: Choice<'_>) -> u16 {
        match choice {
            Choice::Primary => 1,
            Choice::Replica(e) => e.port,
            Choice::NoReplica => 0,
        }
    }

    #[test]
    fn each_policy_picks_its_nodes() {
        let now = Instant::now();
        let h = health(vec![
            (1, seen(Role::Primary, true, 100, 5, now)),
            (2, seen(Role::Replica, true, 100, 1, now)),
            (3, seen(Role::Replica, false, 100, 1, now)),
        ]);
        let c = Candidates::build(&topology(), &h, 0);
        assert!(c.is_for(&topology(), &h));
        let many = |policy| {
            (0..6)
                .map(|_| port(c.choose(0, read(policy))))
                .collect::<Vec<_>>()
        };
        assert_eq!(many(ReadFrom::Primary), [1; 6]);
        assert_eq!(many(ReadFrom::PrimaryPreferred), [1; 6]);
        // Node 3 is not readable: never chosen.
        assert_eq!(many(ReadFrom::Replica), [2; 6]);
        assert_eq!(many(ReadFrom::ReplicaPreferred), [2; 6]);
        assert_eq!(many(ReadFrom::Nearest), [2; 6]);
        let any = many(ReadFrom::Any);
        assert!(
            any.contains(&1) && any.contains(&2) && !any.contains(&3),
            "{any:?}"
        );
    }

    #[test]
    fn without_eligible_replicas_only_replica_refuses() {
        let now = Instant::now();
        let h = health(vec![
            (1, seen(Role::Primary, false, 100, 5, now)),
            (2, seen(Role::Replica, false, 100, 1, now)),
        ]);
        let c = Candidates::build(&topology(), &h, 0);
        assert_eq!(c.choose(0, read(ReadFrom::Replica)), Choice::NoReplica);
        assert_eq!(port(c.choose(0, read(ReadFrom::ReplicaPreferred))), 1);
        assert_eq!(port(c.choose(0, read(ReadFrom::PrimaryPreferred))), 1);
        // Before any probe: the primary, and no replica is trusted.
        let none = Candidates::build(&topology(), &health(vec![]), 0);
        assert_eq!(none.choose(0, read(ReadFrom::Replica)), Choice::NoReplica);
    }

    #[test]
    fn primary_preferred_reads_replicas_while_the_primary_is_down() {
        let now = Instant::now();
        let h = health(vec![
            (1, seen(Role::Primary, false, 100, 5, now)),
            (2, seen(Role::Replica, true, 100, 1, now)),
        ]);
        let c = Candidates::build(&topology(), &h, 0);
        assert_eq!(port(c.choose(0, read(ReadFrom::PrimaryPreferred))), 2);
    }

    #[test]
    fn a_client_reads_its_write_from_a_replica_only_once_it_caught_up() {
        let before = Instant::now();
        let written = before + Duration::from_millis(10);
        let after = written + Duration::from_millis(10);
        let behind = health(vec![
            (1, seen(Role::Primary, true, 200, 5, after)),
            (2, seen(Role::Replica, true, 150, 1, after)),
        ]);
        let mine = ReadRequest {
            written_at: Some(written),
            ..read(ReadFrom::Replica)
        };
        let c = Candidates::build(&topology(), &behind, 0);
        assert_eq!(port(c.choose(0, mine)), 1, "replica behind: primary");
        assert!(!c.caught_up(0, written));
        // The probe asked the primary before the write: its offset proves nothing.
        let early = health(vec![
            (1, seen(Role::Primary, true, 100, 5, before)),
            (2, seen(Role::Replica, true, 150, 1, after)),
        ]);
        let c = Candidates::build(&topology(), &early, 0);
        assert_eq!(
            port(c.choose(0, mine)),
            1,
            "sampled before the write: primary"
        );
        let caught_up = health(vec![
            (1, seen(Role::Primary, true, 200, 5, after)),
            (2, seen(Role::Replica, true, 200, 1, after)),
        ]);
        let c = Candidates::build(&topology(), &caught_up, 0);
        assert_eq!(port(c.choose(0, mine)), 2);
        assert!(c.caught_up(0, written));
    }

    #[test]
    fn a_scan_stays_on_its_node() {
        let now = Instant::now();
        let h = health(vec![
            (1, seen(Role::Primary, true, 100, 5, now)),
            (2, seen(Role::Replica, true, 100, 1, now)),
            (3, seen(Role::Replica, true, 100, 1, now)),
        ]);
        let c = Candidates::build(&topology(), &h, 0);
        let first = c.choose(0, read(ReadFrom::Replica));
        let tag = c.tag_of(0, &first);
        let expected = port(first);
        for _ in 0..5 {
            let next = c.choose(
                0,
                ReadRequest {
                    tag: Some(tag),
                    ..read(ReadFrom::Replica)
                },
            );
            assert_eq!(port(next), expected);
        }
        assert_ne!(
            node_tag("r2"),
            node_tag("r3"),
            "the test's nodes need distinct tags"
        );
        assert!((1..=15).contains(&node_tag("anything")));
    }
}
