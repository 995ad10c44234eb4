//! Reading the topology from one node: what a discovery round asks, per shape of backend.
//!
//! The refresher ([`crate::upstream::refresher`]) owns scheduling, DNS, the choice between
//! answers and readiness; it asks each node through a [`Discovery`], one implementation
//! per shape, each ending in the same [`NodeView`]. [`ShapeDiscovery`] is the closed set
//! the refresher holds (an enum: no trait objects).
//!
//! Cluster ([`ClusterDiscovery`]): [`fetch`] asks a node for `CLUSTER SHARDS` (Redis 7+)
//! and falls back to `CLUSTER SLOTS` on older servers; the parsers turn either reply into
//! a [`Topology`]. Endpoints follow the
//! cluster's announcement: the `endpoint` field (which honours
//! `cluster-preferred-endpoint-type`), else the hostname, else the IP; an unknown endpoint
//! (`?`, empty or NULL) means "the address you asked", as Redis documents.

use std::collections::HashMap;

use redis_protocol::resp2::types::OwnedFrame;

use super::details::{Migration, NodeDetail, parse_node_details, parse_own_migrations};
use super::role::{NodeRole, RoleDiscovery};
use super::{Node, Shard, Topology};
use crate::connector::NodeConnector;
use crate::control::{self, ControlError};
use crate::dns::Dns;
use crate::endpoint::Endpoint;

/// Why a node's answer could not become a slot map.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{endpoint} sent a malformed {command} reply: {reason}")]
    Malformed {
        endpoint: Endpoint,
        command: &'static str,
        reason: &'static str,
    },
}

/// One node's answer: its slot map and how recent its knowledge of the cluster is.
#[derive(Debug)]
pub struct NodeView {
    pub topology: Topology,
    /// `cluster_current_epoch` from `CLUSTER INFO`: the newest configuration this node knows.
    pub current_epoch: u64,
    /// `cluster_state:ok` on this node.
    pub state_ok: bool,
    /// Every node as this one describes it, for the admin page (empty before Redis 7).
    pub details: Vec<NodeDetail>,
    /// The slots this node is migrating or importing right now.
    pub migrations: Vec<Migration>,
    /// What the node says it is (`ROLE`), for the shapes without slots; `None` from a
    /// cluster node, whose map already says it.
    pub role: Option<NodeRole>,
}

/// What one discovery round asks of one node of a backend of some shape.
pub trait Discovery {
    /// `endpoint`'s view of the topology, over a control connection opened by `connector`.
    fn ask(
        &self,
        dns: &Dns,
        endpoint: &Endpoint,
        connector: &NodeConnector,
    ) -> impl Future<Output = Result<NodeView, DiscoveryError>> + Send;
}

/// Redis Cluster: `CLUSTER SHARDS` (or `CLUSTER SLOTS`) and `CLUSTER INFO`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClusterDiscovery;

impl Discovery for ClusterDiscovery {
    async fn ask(
        &self,
        dns: &Dns,
        endpoint: &Endpoint,
        connector: &NodeConnector,
    ) -> Result<NodeView, DiscoveryError> {
        fetch(dns, endpoint, connector).await
    }
}

/// The discovery of each shape, chosen once per upstream.
///
/// The shapes without slots ask each node its `ROLE` ([`RoleDiscovery`]); they differ in
/// where the nodes to ask come from (the seeds, or the Sentinels' answer), which the
/// refresher decides by shape.
#[derive(Clone, Copy, Debug)]
pub enum ShapeDiscovery {
    Cluster(ClusterDiscovery),
    /// The nodes the Sentinels name, each confirmed by `ROLE` before it takes writes.
    Sentinel(RoleDiscovery),
    /// Every seed address, each asked `ROLE`.
    Standalone(RoleDiscovery),
}

impl Discovery for ShapeDiscovery {
    async fn ask(
        &self,
        dns: &Dns,
        endpoint: &Endpoint,
        connector: &NodeConnector,
    ) -> Result<NodeView, DiscoveryError> {
        match self {
            ShapeDiscovery::Cluster(cluster) => cluster.ask(dns, endpoint, connector).await,
            ShapeDiscovery::Sentinel(role) | ShapeDiscovery::Standalone(role) => {
                role.ask(dns, endpoint, connector).await
            }
        }
    }
}

/// Asks `endpoint` for its view of the slot map, in one round trip after the handshake.
pub async fn fetch(
    dns: &Dns,
    endpoint: &Endpoint,
    connector: &NodeConnector,
) -> Result<NodeView, DiscoveryError> {
    // CLUSTER NODES rides in the same round trip: only its `myself` line is read, for the
    // migrating/importing slots that CLUSTER SHARDS does not report.
    let commands: [&[&[u8]]; 3] = [
        &[b"CLUSTER", b"SHARDS"],
        &[b"CLUSTER", b"INFO"],
        &[b"CLUSTER", b"NODES"],
    ];
    let mut replies = control::request_many(dns, endpoint, &commands, connector)
        .await?
        .into_iter();
    let (Some(shards), Some(info)) = (replies.next(), replies.next()) else {
        return Err(malformed(endpoint, "CLUSTER SHARDS", "missing reply"));
    };
    let migrations = match replies.next() {
        Some(Ok(reply)) => text(&reply).map(parse_own_migrations).unwrap_or_default(),
        _ => Vec::new(),
    };
    let (current_epoch, state_ok) = parse_info(&info?);
    let tls = connector.tls.is_some();
    let mut details = Vec::new();
    let topology = match shards {
        Ok(reply) => {
            details = parse_node_details(&reply, |announced, hostname, ip, attr| {
                let port = |key: &str| attr.get(key).and_then(|f| int(f));
                let port = if tls {
                    port("tls-port").or_else(|| port("port"))
                } else {
                    port("port")
                };
                let port = u16::try_from(port?).ok()?;
                Some(Endpoint::new(
                    choose_host(announced, hostname, ip, endpoint),
                    port,
                ))
            });
            parse_shards(&reply, endpoint, tls)?
        }
        // Servers before 7.0 do not know CLUSTER SHARDS; everything else is a real failure.
        Err(ControlError::Server { message, .. }) if is_unknown_subcommand(&message) => {
            let reply = control::request(dns, endpoint, &[b"CLUSTER", b"SLOTS"], connector).await?;
            parse_slots(&reply, endpoint)?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(NodeView {
        topology,
        current_epoch,
        state_ok,
        details,
        migrations,
        role: None,
    })
}

/// Reads `cluster_current_epoch` and `cluster_state` from a `CLUSTER INFO` reply.
fn parse_info(reply: &OwnedFrame) -> (u64, bool) {
    let text = text(reply).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
    };
    let epoch = field("cluster_current_epoch")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (epoch, field("cluster_state") == Some("ok"))
}

fn is_unknown_subcommand(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("unknown subcommand") || lower.contains("unknown command")
}

fn malformed(endpoint: &Endpoint, command: &'static str, reason: &'static str) -> DiscoveryError {
    DiscoveryError::Malformed {
        endpoint: endpoint.clone(),
        command,
        reason,
    }
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

/// Picks the host to dial from what a node announces. `?` is Redis's "unknown endpoint":
/// the node is reachable at the address that was asked, as behind a load balancer.
fn choose_host<'a>(
    endpoint: Option<&'a str>,
    hostname: Option<&'a str>,
    ip: Option<&'a str>,
    asked: &'a Endpoint,
) -> &'a str {
    if endpoint == Some("?") {
        return &asked.host;
    }
    let usable = |h: Option<&'a str>| h.filter(|h| !h.is_empty() && *h != "?");
    usable(endpoint)
        .or(usable(hostname))
        .or(usable(ip))
        .unwrap_or(&asked.host)
}

/// Parses a `CLUSTER SHARDS` reply. Nodes whose health is not `online` are left out, so a
/// shard whose primary is failing serves no slots in the resulting map. With `tls` the
/// nodes' `tls-port` is dialled (a TLS-only node reports no `port` at all), else `port`.
pub fn parse_shards(
    reply: &OwnedFrame,
    asked: &Endpoint,
    tls: bool,
) -> Result<Topology, DiscoveryError> {
    const CMD: &str = "CLUSTER SHARDS";
    let OwnedFrame::Array(entries) = reply else {
        return Err(malformed(asked, CMD, "top level is not an array"));
    };
    let mut shards = Vec::new();
    let mut ranges = Vec::new();
    for entry in entries {
        let OwnedFrame::Array(fields) = entry else {
            return Err(malformed(asked, CMD, "shard is not an array"));
        };
        let mut slots = None;
        let mut nodes = None;
        for pair in fields.chunks(2) {
            match (text(&pair[0]), pair.get(1)) {
                (Some("slots"), Some(OwnedFrame::Array(s))) => slots = Some(s),
                (Some("nodes"), Some(OwnedFrame::Array(n))) => nodes = Some(n),
                _ => {}
            }
        }
        let (Some(slots), Some(nodes)) = (slots, nodes) else {
            return Err(malformed(asked, CMD, "shard lacks slots or nodes"));
        };
        let mut primary = None;
        let mut replicas = Vec::new();
        for node in nodes {
            let OwnedFrame::Array(attrs) = node else {
                return Err(malformed(asked, CMD, "node is not an array"));
            };
            let attr: HashMap<&str, &OwnedFrame> = attrs
                .chunks(2)
                .filter_map(|p| Some((text(&p[0])?, p.get(1)?)))
                .collect();
            let get = |k: &str| attr.get(k).and_then(|f| text(f));
            if get("health") != Some("online") {
                continue;
            }
            let port_of = |key: &str| attr.get(key).and_then(|f| int(f));
            let port = if tls {
                port_of("tls-port").or_else(|| port_of("port"))
            } else {
                port_of("port")
            };
            let Some(id) = get("id") else {
                return Err(malformed(asked, CMD, "node lacks id"));
            };
            let Some(port) = port else {
                let reason = if tls || port_of("tls-port").is_none() {
                    "node lacks port"
                } else {
                    "node has only a tls-port: it serves TLS only, so set backend-tls"
                };
                return Err(malformed(asked, CMD, reason));
            };
            let Ok(port) = u16::try_from(port) else {
                return Err(malformed(asked, CMD, "node port out of range"));
            };
            let host = choose_host(get("endpoint"), get("hostname"), get("ip"), asked);
            let node = Node {
                id: id.into(),
                endpoint: Endpoint::new(host, port),
            };
            match get("role") {
                Some("master") | Some("primary") => primary = Some(node),
                _ => replicas.push(node),
            }
        }
        let Some(primary) = primary else {
            continue;
        };
        let index = shards.len();
        for pair in slots.chunks(2) {
            let (Some(start), Some(end)) = (int(&pair[0]), pair.get(1).and_then(int)) else {
                return Err(malformed(asked, CMD, "slot range is not two integers"));
            };
            let (Ok(start), Ok(end)) = (u16::try_from(start), u16::try_from(end)) else {
                return Err(malformed(asked, CMD, "slot out of range"));
            };
            ranges.push((index, start, end));
        }
        shards.push(Shard { primary, replicas });
    }
    let mut topo = Topology::from_ranges(shards, &ranges);
    topo.source = Some(asked.clone());
    Ok(topo)
}

/// Parses a `CLUSTER SLOTS` reply (Redis 3+; node ids since 4.0).
pub fn parse_slots(reply: &OwnedFrame, asked: &Endpoint) -> Result<Topology, DiscoveryError> {
    const CMD: &str = "CLUSTER SLOTS";
    let OwnedFrame::Array(entries) = reply else {
        return Err(malformed(asked, CMD, "top level is not an array"));
    };
    let mut shards: Vec<Shard> = Vec::new();
    let mut by_primary: HashMap<String, usize> = HashMap::new();
    let mut ranges = Vec::new();
    for entry in entries {
        let OwnedFrame::Array(items) = entry else {
            return Err(malformed(asked, CMD, "range is not an array"));
        };
        if items.len() < 3 {
            return Err(malformed(asked, CMD, "range has no primary"));
        }
        let (Some(start), Some(end)) = (int(&items[0]), int(&items[1])) else {
            return Err(malformed(asked, CMD, "slot range is not two integers"));
        };
        let (Ok(start), Ok(end)) = (u16::try_from(start), u16::try_from(end)) else {
            return Err(malformed(asked, CMD, "slot out of range"));
        };
        let mut nodes = Vec::new();
        for item in &items[2..] {
            nodes.push(
                slots_node(item, asked).ok_or_else(|| malformed(asked, CMD, "bad node entry"))?,
            );
        }
        let primary = nodes.remove(0);
        let index = *by_primary.entry(primary.id.to_string()).or_insert_with(|| {
            shards.push(Shard {
                primary,
                replicas: nodes,
            });
            shards.len() - 1
        });
        ranges.push((index, start, end));
    }
    let mut topo = Topology::from_ranges(shards, &ranges);
    topo.source = Some(asked.clone());
    Ok(topo)
}

/// One `[ip, port, id, metadata?]` node entry of `CLUSTER SLOTS`.
fn slots_node(item: &OwnedFrame, asked: &Endpoint) -> Option<Node> {
    let OwnedFrame::Array(fields) = item else {
        return None;
    };
    let ip = fields.first().and_then(text);
    let port = u16::try_from(int(fields.get(1)?)?).ok()?;
    let id = fields.get(2).and_then(text).unwrap_or("");
    let hostname = match fields.get(3) {
        Some(OwnedFrame::Array(meta)) => meta
            .chunks(2)
            .find(|p| text(&p[0]) == Some("hostname"))
            .and_then(|p| p.get(1).and_then(text)),
        _ => None,
    };
    // In CLUSTER SLOTS the first field already is the preferred endpoint.
    let host = choose_host(ip, hostname, None, asked);
    let id = if id.is_empty() {
        format!("{host}:{port}")
    } else {
        id.to_owned()
    };
    Some(Node {
        id: id.into(),
        endpoint: Endpoint::new(host, port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> OwnedFrame {
        OwnedFrame::BulkString(s.as_bytes().to_vec())
    }

    fn arr(items: Vec<OwnedFrame>) -> OwnedFrame {
        OwnedFrame::Array(items)
    }

    fn shard_node(id: &str, port: i64, endpoint: &str, role: &str, health: &str) -> OwnedFrame {
        arr(vec![
            b("id"),
            b(id),
            b("port"),
            OwnedFrame::Integer(port),
            b("ip"),
            b("10.9.9.9"),
            b("endpoint"),
            b(endpoint),
            b("role"),
            b(role),
            b("replication-offset"),
            OwnedFrame::Integer(1),
            b("health"),
            b(health),
        ])
    }

    fn asked() -> Endpoint {
        Endpoint::new("127.0.0.5", 7000)
    }

    /// A node as a TLS-only Redis 7 reports it: `tls-port`, no `port`.
    fn tls_only_node(id: &str, tls_port: i64) -> OwnedFrame {
        arr(vec![
            b("id"),
            b(id),
            b("tls-port"),
            OwnedFrame::Integer(tls_port),
            b("ip"),
            b("127.0.0.1"),
            b("endpoint"),
            b("127.0.0.1"),
            b("role"),
            b("master"),
            b("health"),
            b("online"),
        ])
    }

    #[test]
    fn tls_discovery_dials_the_tls_port() {
        let whole = arr(vec![OwnedFrame::Integer(0), OwnedFrame::Integer(16383)]);
        let tls_only = arr(vec![arr(vec![
            b("slots"),
            whole.clone(),
            b("nodes"),
            arr(vec![tls_only_node("t", 7443)]),
        ])]);
        let topo = parse_shards(&tls_only, &asked(), true).unwrap();
        assert_eq!(topo.primary_for(0).unwrap().endpoint.port, 7443);
        // Over plain TCP the node cannot be reached, and the error says what to set.
        let error = parse_shards(&tls_only, &asked(), false).unwrap_err();
        assert!(error.to_string().contains("set backend-tls"), "{error}");
        // A node serving both: each mode dials its own port.
        let mut both = shard_node("m", 7000, "127.0.0.1", "master", "online");
        if let OwnedFrame::Array(fields) = &mut both {
            fields.extend([b("tls-port"), OwnedFrame::Integer(7443)]);
        }
        let mixed = arr(vec![arr(vec![
            b("slots"),
            whole,
            b("nodes"),
            arr(vec![both]),
        ])]);
        let plain = parse_shards(&mixed, &asked(), false).unwrap();
        assert_eq!(plain.primary_for(0).unwrap().endpoint.port, 7000);
        let tls = parse_shards(&mixed, &asked(), true).unwrap();
        assert_eq!(tls.primary_for(0).unwrap().endpoint.port, 7443);
    }

    #[test]
    fn shards_reply_builds_complete_map() {
        let reply = arr(vec![
            arr(vec![
                b("slots"),
                arr(vec![OwnedFrame::Integer(0), OwnedFrame::Integer(8191)]),
                b("nodes"),
                arr(vec![
                    shard_node("a", 7000, "127.0.0.1", "master", "online"),
                    shard_node("a2", 7003, "127.0.0.1", "replica", "online"),
                ]),
            ]),
            arr(vec![
                b("slots"),
                arr(vec![OwnedFrame::Integer(8192), OwnedFrame::Integer(16383)]),
                b("nodes"),
                arr(vec![shard_node("b", 7001, "127.0.0.1", "master", "online")]),
            ]),
        ]);
        let topo = parse_shards(&reply, &asked(), false).unwrap();
        assert!(topo.is_complete());
        assert_eq!(&*topo.primary_for(100).unwrap().id, "a");
        assert_eq!(topo.shards()[0].replicas.len(), 1);
        assert_eq!(topo.primary_for(9000).unwrap().endpoint.port, 7001);
    }

    #[test]
    fn unknown_endpoint_reuses_asked_address_and_unhealthy_nodes_are_skipped() {
        let reply = arr(vec![arr(vec![
            b("slots"),
            arr(vec![OwnedFrame::Integer(0), OwnedFrame::Integer(16383)]),
            b("nodes"),
            arr(vec![
                shard_node("dead", 7001, "127.0.0.9", "master", "fail"),
                shard_node("a", 7000, "?", "master", "online"),
            ]),
        ])]);
        let topo = parse_shards(&reply, &asked(), false).unwrap();
        let primary = topo.primary_for(0).unwrap();
        assert_eq!(&*primary.id, "a");
        assert_eq!(&*primary.endpoint.host, "127.0.0.5");
    }

    #[test]
    fn shard_without_healthy_primary_serves_nothing() {
        let reply = arr(vec![arr(vec![
            b("slots"),
            arr(vec![OwnedFrame::Integer(0), OwnedFrame::Integer(16383)]),
            b("nodes"),
            arr(vec![shard_node(
                "a",
                7000,
                "127.0.0.1",
                "master",
                "loading",
            )]),
        ])]);
        let topo = parse_shards(&reply, &asked(), false).unwrap();
        assert_eq!(topo.covered_slots(), 0);
    }

    #[test]
    fn slots_reply_groups_ranges_by_primary() {
        let node =
            |ip: OwnedFrame, port: i64, id: &str| arr(vec![ip, OwnedFrame::Integer(port), b(id)]);
        let reply = arr(vec![
            arr(vec![
                OwnedFrame::Integer(0),
                OwnedFrame::Integer(99),
                node(b("127.0.0.1"), 7000, "a"),
                node(b("127.0.0.1"), 7003, "r"),
            ]),
            arr(vec![
                OwnedFrame::Integer(100),
                OwnedFrame::Integer(16383),
                node(OwnedFrame::Null, 7001, "b"),
            ]),
            arr(vec![
                OwnedFrame::Integer(200),
                OwnedFrame::Integer(200),
                node(b(""), 7000, "a"),
            ]),
        ]);
        let topo = parse_slots(&reply, &asked()).unwrap();
        assert_eq!(topo.shards().len(), 2);
        assert_eq!(&*topo.primary_for(200).unwrap().id, "a");
        // NULL and empty endpoints mean "the address you asked".
        assert_eq!(&*topo.primary_for(150).unwrap().endpoint.host, "127.0.0.5");
        assert_eq!(topo.shards()[0].replicas.len(), 1);
    }

    #[test]
    fn info_gives_epoch_and_state() {
        let info = b("cluster_enabled:1\r\ncluster_state:ok\r\ncluster_current_epoch:7\r\n");
        assert_eq!(parse_info(&info), (7, true));
        let failing = b("cluster_state:fail\r\ncluster_current_epoch:x\r\n");
        assert_eq!(parse_info(&failing), (0, false));
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        assert!(parse_shards(&OwnedFrame::Integer(1), &asked(), false).is_err());
        assert!(parse_shards(&arr(vec![arr(vec![b("slots")])]), &asked(), false).is_err());
        assert!(parse_slots(&arr(vec![arr(vec![OwnedFrame::Integer(0)])]), &asked()).is_err());
        assert!(
            parse_slots(
                &arr(vec![arr(vec![
                    OwnedFrame::Integer(0),
                    OwnedFrame::Integer(70000),
                    arr(vec![])
                ])]),
                &asked()
            )
            .is_err()
        );
    }
}
