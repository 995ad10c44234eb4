//! What a Redis Sentinel says about one monitored primary, and how several Sentinels'
//! answers become one.
//!
//! [`ask`] sends one Sentinel three commands in one round trip (the Sentinel client
//! protocol, <https://redis.io/docs/latest/develop/reference/sentinel-clients/>):
//!
//! ```text
//! SENTINEL get-master-addr-by-name <name>   -> [host, port] or nil      (the primary)
//! SENTINEL replicas <name>                  -> [{ip, port, flags, ...}]  (its replicas)
//! SENTINEL sentinels <name>                 -> [{ip, port, flags, ...}]  (the other Sentinels)
//! ```
//!
//! and parses the answer into a [`SentinelReport`]. [`vote`] picks the primary most
//! Sentinels name. The caller (the Sentinel round of the refresher) still confirms the
//! winner with `ROLE` before it takes writes: a Sentinel's word alone is never trusted.

use std::collections::HashMap;

use redis_protocol::resp2::types::OwnedFrame;

use crate::connector::NodeConnector;
use crate::control::{self, ControlError};
use crate::dns::Dns;
use crate::endpoint::Endpoint;

/// One replica as a Sentinel lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaEntry {
    pub endpoint: Endpoint,
    /// Sentinel's flags (`slave`, `s_down`, `o_down`, `disconnected`, ...).
    pub flags: String,
    /// `master-link-status` (`ok` or `err`).
    pub link: String,
    /// `slave-repl-offset`.
    pub offset: i64,
}

impl ReplicaEntry {
    /// Up as far as this Sentinel knows: not subjectively or objectively down, connected.
    pub fn is_healthy(&self) -> bool {
        !self
            .flags
            .split(',')
            .any(|f| matches!(f, "s_down" | "o_down" | "disconnected"))
    }
}

/// One Sentinel's answer about one primary name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SentinelReport {
    /// Where it says the primary is (`None`: it does not monitor that name).
    pub primary: Option<Endpoint>,
    pub replicas: Vec<ReplicaEntry>,
    /// The other Sentinels monitoring the same primary.
    pub sentinels: Vec<Endpoint>,
}

/// Why a Sentinel's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{endpoint} sent a malformed {command} reply")]
    Malformed {
        endpoint: Endpoint,
        command: &'static str,
    },
}

/// Asks the Sentinel at `endpoint` about `name`, over a control connection opened by
/// `connector` (whose credentials are the Sentinels' own).
pub async fn ask(
    dns: &Dns,
    endpoint: &Endpoint,
    name: &str,
    connector: &NodeConnector,
) -> Result<SentinelReport, SentinelError> {
    let name = name.as_bytes();
    let commands: [&[&[u8]]; 3] = [
        &[b"SENTINEL", b"get-master-addr-by-name", name],
        &[b"SENTINEL", b"replicas", name],
        &[b"SENTINEL", b"sentinels", name],
    ];
    let mut replies = control::request_many(dns, endpoint, &commands, connector)
        .await?
        .into_iter();
    let malformed = |command| SentinelError::Malformed {
        endpoint: endpoint.clone(),
        command,
    };
    let primary = match replies.next() {
        Some(reply) => parse_master_addr(&reply?).ok_or_else(|| malformed("get-master-addr"))?,
        None => return Err(malformed("get-master-addr")),
    };
    // A Sentinel that does not know the name answers nil above and an error here.
    let replicas = match replies.next() {
        Some(Ok(reply)) => parse_replicas(&reply).ok_or_else(|| malformed("replicas"))?,
        _ => Vec::new(),
    };
    let sentinels = match replies.next() {
        Some(Ok(reply)) => parse_sentinels(&reply).ok_or_else(|| malformed("sentinels"))?,
        _ => Vec::new(),
    };
    Ok(SentinelReport {
        primary,
        replicas,
        sentinels,
    })
}

fn text(frame: &OwnedFrame) -> Option<&str> {
    match frame {
        OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// `[host, port]`, or nil: `Some(None)`. Anything else: `None` (malformed).
pub fn parse_master_addr(reply: &OwnedFrame) -> Option<Option<Endpoint>> {
    match reply {
        OwnedFrame::Null => Some(None),
        OwnedFrame::Array(fields) if fields.len() == 2 => {
            let host = text(&fields[0])?;
            let port = text(&fields[1])?.parse().ok()?;
            Some(Some(Endpoint::new(host, port)))
        }
        _ => None,
    }
}

/// The flat `[key, value, ...]` maps of `SENTINEL replicas` / `SENTINEL sentinels`.
fn entries(reply: &OwnedFrame) -> Option<Vec<HashMap<&str, &str>>> {
    let OwnedFrame::Array(items) = reply else {
        return None;
    };
    items
        .iter()
        .map(|item| {
            let OwnedFrame::Array(fields) = item else {
                return None;
            };
            Some(
                fields
                    .chunks(2)
                    .filter_map(|pair| Some((text(&pair[0])?, text(pair.get(1)?)?)))
                    .collect(),
            )
        })
        .collect()
}

fn endpoint_of(entry: &HashMap<&str, &str>) -> Option<Endpoint> {
    let port = entry.get("port")?.parse().ok()?;
    Some(Endpoint::new(entry.get("ip")?, port))
}

/// Parses `SENTINEL replicas`; entries without an address are skipped.
pub fn parse_replicas(reply: &OwnedFrame) -> Option<Vec<ReplicaEntry>> {
    Some(
        entries(reply)?
            .iter()
            .filter_map(|entry| {
                Some(ReplicaEntry {
                    endpoint: endpoint_of(entry)?,
                    flags: entry.get("flags").copied().unwrap_or_default().to_owned(),
                    link: entry
                        .get("master-link-status")
                        .copied()
                        .unwrap_or_default()
                        .to_owned(),
                    offset: entry
                        .get("slave-repl-offset")
                        .and_then(|o| o.parse().ok())
                        .unwrap_or(-1),
                })
            })
            .collect(),
    )
}

/// Parses `SENTINEL sentinels`: the other Sentinels' addresses.
pub fn parse_sentinels(reply: &OwnedFrame) -> Option<Vec<Endpoint>> {
    Some(entries(reply)?.iter().filter_map(endpoint_of).collect())
}

/// The primary named by the most Sentinels among `answers`. A tie is broken in favour of
/// `current` when it is among the tied; otherwise a tie decides nothing (`None`), so one
/// Sentinel can never outvote an equal number of others.
pub fn vote<'a>(
    answers: impl IntoIterator<Item = &'a Endpoint>,
    current: Option<&Endpoint>,
) -> Option<Endpoint> {
    let mut counts: Vec<(&Endpoint, usize)> = Vec::new();
    for answer in answers {
        match counts.iter_mut().find(|(e, _)| *e == answer) {
            Some((_, n)) => *n += 1,
            None => counts.push((answer, 1)),
        }
    }
    let top = counts.iter().map(|&(_, n)| n).max()?;
    let tied: Vec<&Endpoint> = counts
        .iter()
        .filter(|&&(_, n)| n == top)
        .map(|&(e, _)| e)
        .collect();
    match tied.as_slice() {
        [one] => Some((*one).clone()),
        many => current.filter(|c| many.contains(c)).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> OwnedFrame {
        OwnedFrame::BulkString(s.as_bytes().to_vec())
    }

    fn map(pairs: &[(&str, &str)]) -> OwnedFrame {
        OwnedFrame::Array(pairs.iter().flat_map(|(k, v)| [b(k), b(v)]).collect())
    }

    fn e(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1", port)
    }

    #[test]
    fn master_addr_and_nil() {
        let reply = OwnedFrame::Array(vec![b("10.0.0.5"), b("6379")]);
        assert_eq!(
            parse_master_addr(&reply),
            Some(Some(Endpoint::new("10.0.0.5", 6379)))
        );
        assert_eq!(parse_master_addr(&OwnedFrame::Null), Some(None));
        assert_eq!(parse_master_addr(&OwnedFrame::Integer(1)), None);
        let bad_port = OwnedFrame::Array(vec![b("h"), b("70000")]);
        assert_eq!(parse_master_addr(&bad_port), None);
    }

    #[test]
    fn replicas_keep_state_and_offset_and_down_ones_are_unhealthy() {
        let reply = OwnedFrame::Array(vec![
            map(&[
                ("ip", "127.0.0.2"),
                ("port", "6380"),
                ("flags", "slave"),
                ("master-link-status", "ok"),
                ("slave-repl-offset", "1234"),
            ]),
            map(&[
                ("ip", "127.0.0.3"),
                ("port", "6381"),
                ("flags", "s_down,slave,disconnected"),
            ]),
            map(&[("flags", "slave")]),
        ]);
        let replicas = parse_replicas(&reply).unwrap();
        assert_eq!(replicas.len(), 2, "an entry without an address is skipped");
        assert_eq!(replicas[0].offset, 1234);
        assert!(replicas[0].is_healthy());
        assert!(!replicas[1].is_healthy());
        assert_eq!(replicas[1].offset, -1);
        assert!(parse_replicas(&OwnedFrame::Integer(3)).is_none());
    }

    #[test]
    fn sentinels_list() {
        let reply = OwnedFrame::Array(vec![map(&[("ip", "sentinel-1.svc"), ("port", "26379")])]);
        assert_eq!(
            parse_sentinels(&reply).unwrap(),
            vec![Endpoint::new("sentinel-1.svc", 26379)]
        );
    }

    #[test]
    fn majority_wins_and_ties_keep_the_current_or_decide_nothing() {
        assert_eq!(vote([&e(1), &e(1), &e(2)], None), Some(e(1)));
        assert_eq!(vote([&e(2), &e(1), &e(1)], Some(&e(2))), Some(e(1)));
        assert_eq!(vote([&e(1), &e(2)], Some(&e(2))), Some(e(2)));
        assert_eq!(vote([&e(1), &e(2)], Some(&e(3))), None);
        assert_eq!(vote([&e(1), &e(2)], None), None);
        assert_eq!(vote([&e(4)], None), Some(e(4)));
        assert_eq!(vote(std::iter::empty::<&Endpoint>(), None), None);
    }
}
