//! What the last probe found of each node: role, offset, lag, round trip, and whether a
//! replica may serve reads. One immutable snapshot per probe round ([`ReadHealth`]),
//! swapped into [`crate::upstream::Upstream`] like the topology.
//!
//! The rules that make a replica eligible live here ([`judge`]), apart from the probe's
//! I/O, so they are tested on their own.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::{MaxLag, ReadSettings};
use crate::endpoint::Endpoint;

/// A node's role as its own `INFO replication` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        }
    }
}

/// One node as the last probe round found it.
#[derive(Clone, Debug)]
pub struct NodeHealth {
    /// The role the topology gives it (what slotgate routes by).
    pub role: Role,
    /// A replica may serve reads now (primaries: they answered the probe).
    pub readable: bool,
    /// Why not, when it may not: shown in `/topology` and the log.
    pub why_not: Option<String>,
    /// Replication bytes behind its primary (replicas; `None` when not known).
    pub lag_bytes: Option<u64>,
    /// Seconds since it last acknowledged its primary, as the primary reports it.
    pub lag_seconds: Option<u64>,
    /// Its replication offset: `master_repl_offset` of a primary, `slave_repl_offset` of a
    /// replica.
    pub offset: Option<u64>,
    /// When the probe's request to this node was sent (read-your-writes compares it with
    /// the time a client's write was acknowledged).
    pub asked_at: Instant,
    /// How long the probe's reply took.
    pub round_trip: Option<Duration>,
}

/// One probe round's findings; see the module docs.
#[derive(Debug)]
pub struct ReadHealth {
    /// Bumped on every swap, so workers can tell cheaply that their choices are stale.
    pub generation: u64,
    /// The read settings in force when this snapshot was made.
    pub settings: ReadSettings,
    pub nodes: FxHashMap<Endpoint, NodeHealth>,
}

impl ReadHealth {
    /// Before any probe: no replica is known to be eligible.
    pub fn empty(settings: ReadSettings) -> Self {
        Self {
            generation: 0,
            settings,
            nodes: FxHashMap::default(),
        }
    }

    pub fn node(&self, endpoint: &Endpoint) -> Option<&NodeHealth> {
        self.nodes.get(endpoint)
    }
}

/// What the primary's `INFO replication` says of one of its replicas (`slaveN:` lines).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedReplica {
    pub ip: String,
    pub port: u16,
    /// `online` once the initial sync is done.
    pub state: String,
    pub offset: u64,
    /// Seconds since its last `REPLCONF ACK`.
    pub lag: u64,
}

/// A node's `INFO replication` (and `loading` from `INFO persistence`), the fields slotgate
/// uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replication {
    /// `role:master` (true) or `role:slave`.
    pub is_primary: bool,
    pub master_repl_offset: Option<u64>,
    /// Replicas only.
    pub slave_repl_offset: Option<u64>,
    pub link_up: bool,
    pub sync_in_progress: bool,
    pub loading: bool,
    /// Primaries only: the `slaveN:` lines.
    pub replicas: Vec<ListedReplica>,
}

impl Replication {
    /// Reads `INFO replication` text (with `INFO persistence` appended, for `loading`).
    /// Unknown and malformed lines are skipped: a field that is missing stays unknown.
    pub fn parse(text: &str) -> Replication {
        let mut info = Replication::default();
        for line in text.lines() {
            let Some((field, value)) = line.trim_end().split_once(':') else {
                continue;
            };
            match field {
                "role" => info.is_primary = value == "master",
                "master_repl_offset" => info.master_repl_offset = value.parse().ok(),
                "slave_repl_offset" => info.slave_repl_offset = value.parse().ok(),
                "master_link_status" => info.link_up = value == "up",
                "master_sync_in_progress" => info.sync_in_progress = value != "0",
                "loading" => info.loading = value != "0",
                _ if field.starts_with("slave")
                    && field[5..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    if let Some(replica) = parse_listed(value) {
                        info.replicas.push(replica);
                    }
                }
                _ => {}
            }
        }
        info
    }

    /// The `slaveN` entry for the replica at `endpoint`, matched by port and by host (an
    /// IP as the primary sees it; a hostname endpoint matches on port alone when only one
    /// listed replica has that port).
    pub fn listed(&self, endpoint: &Endpoint) -> Option<&ListedReplica> {
        let by_port: Vec<&ListedReplica> = self
            .replicas
            .iter()
            .filter(|r| r.port == endpoint.port)
            .collect();
        by_port
            .iter()
            .find(|r| r.ip == *endpoint.host)
            .copied()
            .or_else(|| match by_port.as_slice() {
                [only] if endpoint.host.parse::<std::net::IpAddr>().is_err() => Some(*only),
                _ => None,
            })
    }
}

fn parse_listed(value: &str) -> Option<ListedReplica> {
    let mut replica = ListedReplica::default();
    for part in value.split(',') {
        let (key, value) = part.split_once('=')?;
        match key {
            "ip" => replica.ip = value.to_owned(),
            "port" => replica.port = value.parse().ok()?,
            "state" => replica.state = value.to_owned(),
            "offset" => replica.offset = value.parse().ok()?,
            "lag" => replica.lag = value.parse().ok()?,
            _ => {}
        }
    }
    (replica.port != 0).then_some(replica)
}

/// The verdict on one replica: its lag, and why it may not serve reads (`None`: it may).
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<u64>,
    pub why_not: Option<String>,
}

/// Judges a replica from its own answer (`None`: it did not answer in time, with why) and
/// its primary's (`None`: the primary did not answer).
pub fn judge(
    endpoint: &Endpoint,
    own: Result<&Replication, &str>,
    primary: Option<&Replication>,
    max_lag: MaxLag,
) -> Verdict {
    let own = match own {
        Ok(own) => own,
        Err(why) => {
            return Verdict {
                lag_bytes: None,
                lag_seconds: None,
                why_not: Some(format!("did not answer the probe: {why}")),
            };
        }
    };
    let listed = primary.and_then(|p| p.listed(endpoint));
    let lag_bytes = match (
        primary.and_then(|p| p.master_repl_offset),
        own.slave_repl_offset,
    ) {
        // The primary was asked first, so a replica may already be past that offset.
        (Some(primary), Some(replica)) => Some(primary.saturating_sub(replica)),
        _ => None,
    };
    let lag_seconds = listed.map(|r| r.lag);
    let why_not = if own.is_primary {
        Some("answers role:master (a primary of its own)".to_owned())
    } else if own.loading {
        Some("is loading its dataset".to_owned())
    } else if !own.link_up {
        Some("master_link_status is down".to_owned())
    } else if own.sync_in_progress {
        Some("is syncing with its primary".to_owned())
    } else if listed.is_some_and(|r| r.state != "online") {
        Some(format!(
            "its primary lists it in state {}",
            listed.map_or("", |r| r.state.as_str())
        ))
    } else if let (Some(lag), Some(max)) = (lag_seconds, max_lag.time)
        && Duration::from_secs(lag) > max
    {
        Some(format!(
            "{lag}s behind its primary (replica-max-lag {max_lag})"
        ))
    } else if let (Some(lag), Some(max)) = (lag_bytes, max_lag.bytes)
        && lag > max
    {
        Some(format!(
            "{lag} bytes behind its primary (replica-max-lag {max_lag})"
        ))
    } else {
        // A primary that did not answer (hung, or unreachable from here) writes nothing
        // new that its linked replicas could lack: they stay eligible, lag unknown.
        None
    };
    Verdict {
        lag_bytes,
        lag_seconds,
        why_not,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like redis-server 7.0.15's INFO replication / persistence.
    const PRIMARY: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=7004,state=online,offset=5000,lag=0\r\n\
        slave1:ip=127.0.0.1,port=7005,state=wait_bgsave,offset=0,lag=3\r\n\
        master_failover_state:no-failover\r\nmaster_repl_offset:5100\r\n";
    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\
        master_port:7001\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:1\r\n\
        master_sync_in_progress:0\r\nslave_repl_offset:5090\r\nmaster_repl_offset:5090\r\n\
        # Persistence\r\nloading:0\r\n";

    fn at(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1", port)
    }

    #[test]
    fn parses_both_sides_of_a_replication_link() {
        let primary = Replication::parse(PRIMARY);
        assert!(primary.is_primary);
        assert_eq!(primary.master_repl_offset, Some(5100));
        assert_eq!(primary.replicas.len(), 2);
        assert_eq!(primary.listed(&at(7005)).unwrap().state, "wait_bgsave");
        assert!(primary.listed(&at(7006)).is_none());
        let replica = Replication::parse(REPLICA);
        assert!(!replica.is_primary && replica.link_up && !replica.loading);
        assert_eq!(replica.slave_repl_offset, Some(5090));
    }

    #[test]
    fn a_healthy_replica_close_behind_may_serve_reads() {
        let primary = Replication::parse(PRIMARY);
        let replica = Replication::parse(REPLICA);
        let verdict = judge(&at(7004), Ok(&replica), Some(&primary), MaxLag::default());
        assert_eq!(verdict.why_not, None);
        assert_eq!(verdict.lag_bytes, Some(10));
        assert_eq!(verdict.lag_seconds, Some(0));
    }

    #[test]
    fn each_rule_excludes_a_replica() {
        let primary = Replication::parse(PRIMARY);
        let replica = Replication::parse(REPLICA);
        let tight = MaxLag {
            time: None,
            bytes: Some(5),
        };
        let excluded = |own: Result<&Replication, &str>, primary, lag, port| {
            judge(&at(port), own, primary, lag).why_not.unwrap()
        };
        let lag = MaxLag::default();
        assert!(excluded(Err("timed out"), Some(&primary), lag, 7004).contains("timed out"));
        assert!(excluded(Ok(&replica), Some(&primary), tight, 7004).contains("10 bytes"));
        assert!(excluded(Ok(&replica), Some(&primary), lag, 7005).contains("wait_bgsave"));
        let slow = Replication::parse(&PRIMARY.replace("lag=0", "lag=3"));
        assert!(excluded(Ok(&replica), Some(&slow), lag, 7004).contains("3s behind"));
        let down = Replication::parse(&REPLICA.replace("status:up", "status:down"));
        assert!(excluded(Ok(&down), Some(&primary), lag, 7004).contains("down"));
        let loading = Replication::parse(&REPLICA.replace("loading:0", "loading:1"));
        assert!(excluded(Ok(&loading), Some(&primary), lag, 7004).contains("loading"));
        let promoted = Replication::parse(PRIMARY);
        assert!(excluded(Ok(&promoted), Some(&primary), lag, 7004).contains("role:master"));
        let unknown = judge(&at(7004), Ok(&replica), None, lag);
        assert_eq!(
            (unknown.why_not, unknown.lag_bytes, unknown.lag_seconds),
            (None, None, None)
        );
    }
}
