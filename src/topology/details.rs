//! What a discovery round learns about each node beyond the slot map, for the admin page
//! (`/api/topology`): announced IP and hostname, role, health and replication offset from
//! `CLUSTER SHARDS`, and the slots a node is migrating or importing from the `myself` line
//! of its `CLUSTER NODES` (which `CLUSTER SHARDS` does not report).
//!
//! Nothing here decides routing: the data path uses only the [`super::Topology`]. Parsing is
//! lenient (a field missing or malformed is left out), since a page must not make discovery
//! fail.

use std::collections::HashMap;

use redis_protocol::resp2::types::OwnedFrame;

use crate::endpoint::Endpoint;

/// One node as a `CLUSTER SHARDS` entry describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDetail {
    pub id: String,
    /// The address slotgate dials (same choice as the slot map's).
    pub endpoint: Endpoint,
    pub ip: Option<String>,
    pub hostname: Option<String>,
    /// `master` or `replica`, as the node reports it.
    pub role: String,
    /// `online`, `failed` or `loading`, as the cluster reports it.
    pub health: String,
    pub replication_offset: Option<i64>,
}

/// A slot in the middle of a reshard, from the point of view of the node reporting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub slot: u16,
    /// True: `[slot->-peer]`, this node is migrating the slot to `peer`. False:
    /// `[slot-<-peer]`, it is importing it from `peer`.
    pub migrating: bool,
    pub peer_id: String,
}

fn text(frame: &OwnedFrame) -> Option<&str> {
    match frame {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn int(frame: &OwnedFrame) -> Option<i64> {
    match frame {
        OwnedFrame::Integer(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// Every node of a `CLUSTER SHARDS` reply; `dial` picks the address slotgate would dial
/// from `(endpoint, hostname, ip, port)` (the slot map's rule), `None` to skip the node.
pub fn parse_node_details(
    reply: &OwnedFrame,
    dial: impl Fn(
        Option<&str>,
        Option<&str>,
        Option<&str>,
        &HashMap<&str, &OwnedFrame>,
    ) -> Option<Endpoint>,
) -> Vec<NodeDetail> {
    let OwnedFrame::Array(entries) = reply else {
        return Vec::new();
    };
    let mut details = Vec::new();
    for entry in entries {
        let OwnedFrame::Array(fields) = entry else {
            continue;
        };
        let nodes = fields
            .chunks(2)
            .find_map(|pair| match (text(&pair[0]), pair.get(1)) {
                (Some("nodes"), Some(OwnedFrame::Array(n))) => Some(n),
                _ => None,
            });
        for node in nodes.into_iter().flatten() {
            let OwnedFrame::Array(attrs) = node else {
                continue;
            };
            let attr: HashMap<&str, &OwnedFrame> = attrs
                .chunks(2)
                .filter_map(|p| Some((text(&p[0])?, p.get(1)?)))
                .collect();
            let get = |k: &str| attr.get(k).and_then(|f| text(f)).filter(|v| !v.is_empty());
            let (Some(id), Some(endpoint)) = (
                get("id"),
                dial(get("endpoint"), get("hostname"), get("ip"), &attr),
            ) else {
                continue;
            };
            details.push(NodeDetail {
                id: id.to_owned(),
                endpoint,
                ip: get("ip").filter(|v| *v != "?").map(str::to_owned),
                hostname: get("hostname").map(str::to_owned),
                role: get("role").unwrap_or("unknown").to_owned(),
                health: get("health").unwrap_or("unknown").to_owned(),
                replication_offset: attr.get("replication-offset").and_then(|f| int(f)),
            });
        }
    }
    details
}

/// The migrating and importing slots on the `myself` line of a `CLUSTER NODES` reply
/// (a node lists its own open migrations only there).
pub fn parse_own_migrations(cluster_nodes: &str) -> Vec<Migration> {
    let Some(line) = cluster_nodes.lines().find(|line| {
        line.split(' ')
            .nth(2)
            .is_some_and(|flags| flags.split(',').any(|f| f == "myself"))
    }) else {
        return Vec::new();
    };
    line.split(' ')
        .skip(8)
        .filter_map(|field| {
            let inner = field.strip_prefix('[')?.strip_suffix(']')?;
            let (slot, migrating, peer) = if let Some((slot, peer)) = inner.split_once("->-") {
                (slot, true, peer)
            } else {
                let (slot, peer) = inner.split_once("-<-")?;
                (slot, false, peer)
            };
            Some(Migration {
                slot: slot.parse().ok()?,
                migrating,
                peer_id: peer.to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_come_from_the_myself_line_only() {
        let nodes = "\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-bbb] [7000-<-ccc]
bbb 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922 [5461-<-aaa]
";
        assert_eq!(
            parse_own_migrations(nodes),
            vec![
                Migration {
                    slot: 5461,
                    migrating: true,
                    peer_id: "bbb".into()
                },
                Migration {
                    slot: 7000,
                    migrating: false,
                    peer_id: "ccc".into()
                },
            ]
        );
        assert!(parse_own_migrations("bbb 1:1@2 master - 0 0 2 connected 1-2\n").is_empty());
        assert!(parse_own_migrations("").is_empty());
    }
}
