//! Backends without slots (standalone, and the check behind Sentinel's answer): which node
//! is the primary, from what each node says of itself in `ROLE`.
//!
//! [`RoleDiscovery`] asks one node `ROLE` (one round trip; its reply carries the
//! replication offset too, so `INFO replication` adds nothing). [`choose`] turns one
//! round's answers into a [`Choice`]: the one node answering `master` is the primary of a
//! single shard owning all 16384 slots, and the nodes answering `slave` with a connected
//! link are its replicas. Roles come only from `ROLE`, never from the order of the seeds;
//! two nodes answering `master` is a split brain, and none is no primary: both are
//! reported, never guessed around.

use std::sync::Arc;

use redis_protocol::resp2::types::OwnedFrame;

use super::discovery::{Discovery, DiscoveryError, NodeView};
use super::{Node, Shard, Topology};
use crate::connector::NodeConnector;
use crate::control;
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::slot::SLOT_COUNT;

/// What a node says it is (`ROLE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// `master`, with its replication offset.
    Primary { offset: i64 },
    /// `slave`: a replica of `primary`, whose link is up when `connected`.
    Replica {
        primary: Endpoint,
        connected: bool,
        offset: i64,
    },
    /// Anything else (`sentinel`): not a data node.
    Other(String),
}

/// Asks a node its `ROLE`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoleDiscovery;

impl Discovery for RoleDiscovery {
    async fn ask(
        &self,
        dns: &Dns,
        endpoint: &Endpoint,
        connector: &NodeConnector,
    ) -> Result<NodeView, DiscoveryError> {
        let reply = control::request(dns, endpoint, &[b"ROLE"], connector).await?;
        let role = parse_role(&reply).ok_or_else(|| DiscoveryError::Malformed {
            endpoint: endpoint.clone(),
            command: "ROLE",
            reason: "not a ROLE reply",
        })?;
        Ok(NodeView {
            topology: Topology::empty(),
            current_epoch: 0,
            state_ok: true,
            details: Vec::new(),
            migrations: Vec::new(),
            role: Some(role),
        })
    }
}

/// Parses a `ROLE` reply: `[master, offset, replicas]` or
/// `[slave, host, port, state, offset]` or `[sentinel, names]`.
pub fn parse_role(reply: &OwnedFrame) -> Option<NodeRole> {
    let OwnedFrame::Array(fields) = reply else {
        return None;
    };
    let text = |i: usize| match fields.get(i)? {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => std::str::from_utf8(b).ok(),
        _ => None,
    };
    let int = |i: usize| match fields.get(i)? {
        OwnedFrame::Integer(n) => Some(*n),
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => {
            std::str::from_utf8(b).ok()?.parse().ok()
        }
        _ => None,
    };
    match text(0)? {
        "master" => Some(NodeRole::Primary { offset: int(1)? }),
        "slave" => {
            let port = u16::try_from(int(2)?).ok()?;
            Some(NodeRole::Replica {
                primary: Endpoint::new(text(1)?, port),
                connected: text(3)? == "connected",
                offset: int(4).unwrap_or(-1),
            })
        }
        other => Some(NodeRole::Other(other.to_owned())),
    }
}

/// What one round of `ROLE` answers adds up to.
#[derive(Debug)]
pub enum Choice {
    /// Exactly one primary: the single-shard map to serve.
    Primary(Topology),
    /// Two or more nodes answer `master` (in address order).
    SplitBrain(Vec<Endpoint>),
    /// No node that answered is a primary.
    NoPrimary,
}

/// Chooses from `views` (each node's answer this round); see the module docs.
pub fn choose(views: &[(Endpoint, NodeView)]) -> Choice {
    let mut primaries: Vec<&Endpoint> = views
        .iter()
        .filter(|(_, v)| matches!(v.role, Some(NodeRole::Primary { .. })))
        .map(|(e, _)| e)
        .collect();
    primaries.sort();
    primaries.dedup();
    match primaries.as_slice() {
        [] => Choice::NoPrimary,
        [primary] => {
            let mut replicas: Vec<Node> = views
                .iter()
                .filter(|(e, v)| {
                    e != *primary
                        && matches!(
                            v.role,
                            Some(NodeRole::Replica {
                                connected: true,
                                ..
                            })
                        )
                })
                .map(|(e, _)| node(e))
                .collect();
            replicas.dedup();
            let shard = Shard {
                primary: node(primary),
                replicas,
            };
            let last = (SLOT_COUNT - 1) as u16;
            let mut topology = Topology::from_ranges(vec![shard], &[(0, 0, last)]);
            topology.source = Some((*primary).clone());
            Choice::Primary(topology)
        }
        many => Choice::SplitBrain(many.iter().map(|e| (*e).clone()).collect()),
    }
}

/// A node of a backend without node ids: its address stands for its id (stable for as long
/// as the node keeps its address, which is all a map of one shard needs).
fn node(endpoint: &Endpoint) -> Node {
    Node {
        id: Arc::from(endpoint.to_string()),
        endpoint: endpoint.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> OwnedFrame {
        OwnedFrame::BulkString(s.as_bytes().to_vec())
    }

    fn view(role: NodeRole) -> NodeView {
        NodeView {
            topology: Topology::empty(),
            current_epoch: 0,
            state_ok: true,
            details: Vec::new(),
            migrations: Vec::new(),
            role: Some(role),
        }
    }

    #[test]
    fn role_replies_parse() {
        let master = OwnedFrame::Array(vec![
            bulk("master"),
            OwnedFrame::Integer(3129659),
            OwnedFrame::Array(vec![OwnedFrame::Array(vec![
                bulk("127.0.0.1"),
                bulk("9001"),
                bulk("3129242"),
            ])]),
        ]);
        assert_eq!(
            parse_role(&master),
            Some(NodeRole::Primary { offset: 3129659 })
        );
        let replica = OwnedFrame::Array(vec![
            bulk("slave"),
            bulk("127.0.0.1"),
            OwnedFrame::Integer(9000),
            bulk("connected"),
            OwnedFrame::Integer(3167038),
        ]);
        assert_eq!(
            parse_role(&replica),
            Some(NodeRole::Replica {
                primary: Endpoint::new("127.0.0.1", 9000),
                connected: true,
                offset: 3167038
            })
        );
        assert_eq!(parse_role(&OwnedFrame::Integer(1)), None);
        let short = OwnedFrame::Array(vec![bulk("slave"), bulk("h")]);
        assert_eq!(parse_role(&short), None);
    }

    #[test]
    fn the_one_master_is_the_primary_whatever_the_order() {
        let a = Endpoint::new("127.0.0.1", 7000);
        let b = Endpoint::new("127.0.0.1", 7001);
        let c = Endpoint::new("127.0.0.1", 7002);
        let replica = |connected| NodeRole::Replica {
            primary: b.clone(),
            connected,
            offset: 5,
        };
        let views = vec![
            (a.clone(), view(replica(true))),
            (b.clone(), view(NodeRole::Primary { offset: 5 })),
            (c.clone(), view(replica(false))),
        ];
        let Choice::Primary(topology) = choose(&views) else {
            panic!("one primary expected");
        };
        assert!(topology.is_complete());
        let shard = &topology.shards()[0];
        assert_eq!(shard.primary.endpoint, b);
        // A replica whose link is down is not serving anything yet.
        assert_eq!(
            shard
                .replicas
                .iter()
                .map(|r| &r.endpoint)
                .collect::<Vec<_>>(),
            vec![&a]
        );
    }

    #[test]
    fn two_masters_or_none_are_reported() {
        let a = Endpoint::new("127.0.0.1", 7001);
        let b = Endpoint::new("127.0.0.1", 7000);
        let views = vec![
            (a.clone(), view(NodeRole::Primary { offset: 1 })),
            (b.clone(), view(NodeRole::Primary { offset: 2 })),
        ];
        match choose(&views) {
            Choice::SplitBrain(nodes) => assert_eq!(nodes, vec![b, a]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(choose(&[]), Choice::NoPrimary));
    }
}
