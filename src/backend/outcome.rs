//! What became of a forwarded request, as a session needs to know it.
//!
//! A reply is either passed to the client untouched or, for the cluster's redirection and
//! "not now" errors, turned into an instruction: follow `MOVED`/`ASK`, or retry later.
//! Failures say whether the command may have run, since only a command known not to have
//! executed may be sent again.

use bytes::Bytes;

use crate::endpoint::Endpoint;
use crate::metrics::BackendError;
use crate::resp::walk::ReplyKind;

/// Why a backend could not deliver a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Could not connect (refused, unreachable, timed out).
    Connect { node: Endpoint, reason: String },
    /// No reply within `backend-reply-timeout`.
    ReplyTimeout { node: Endpoint },
    /// The connection closed or failed.
    ConnectionLost { node: Endpoint, reason: String },
    /// The node sent bytes that are not RESP.
    Protocol { node: Endpoint, reason: String },
}

impl Failure {
    /// The metrics kind of this failure (`slotgate_backend_errors_total{kind}`).
    pub fn metric_kind(&self) -> BackendError {
        match self {
            Failure::Connect { .. } => BackendError::Connect,
            Failure::ReplyTimeout { .. } => BackendError::Timeout,
            Failure::ConnectionLost { .. } => BackendError::Closed,
            Failure::Protocol { .. } => BackendError::Protocol,
        }
    }

    pub fn node(&self) -> &Endpoint {
        match self {
            Failure::Connect { node, .. }
            | Failure::ReplyTimeout { node }
            | Failure::ConnectionLost { node, .. }
            | Failure::Protocol { node, .. } => node,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Failure::Connect { node, reason } => format!("cannot connect to node {node}: {reason}"),
            Failure::ReplyTimeout { node } => format!("node {node} did not reply in time"),
            Failure::ConnectionLost { node, reason } => {
                format!("connection to node {node} lost: {reason}")
            }
            Failure::Protocol { node, reason } => {
                format!("node {node} sent an invalid reply: {reason}")
            }
        }
    }
}

/// The fate of one request.
#[derive(Debug)]
pub enum Outcome {
    /// The node's reply, to be forwarded as is.
    Reply(Bytes),
    /// The slot lives elsewhere for good: follow, and refresh the map.
    Moved { slot: u16, to: Endpoint },
    /// The slot is being migrated and this key is already on `to`: ask there, once.
    Ask { slot: u16, to: Endpoint },
    /// `TRYAGAIN`, `CLUSTERDOWN`: refused before running, so a retry is safe. Carries the
    /// error to forward if retries run out.
    NotNow(Bytes),
    /// `READONLY` (a primary demoted to replica), `MASTERDOWN` (a replica lost its
    /// primary), `LOADING` (a restarted node): the node refused before running, and it is
    /// not a working primary now. Safe to retry, once the topology is re-read: a
    /// switchover or failover is under way. In every shape: Redis checks these before
    /// executing anything, cluster or not.
    NotPrimary(Bytes),
    /// `NOSCRIPT`: the node does not have the script (its cache was lost in a failover or
    /// restart). The script did not run; carries the error to forward if slotgate cannot
    /// supply the script.
    NoScript(Bytes),
    /// The request was never written: safe to retry.
    NotSent(Failure),
    /// The request was written but no reply came: it may or may not have run.
    Unknown(Failure),
}

/// Turns a reply from `node` into an [`Outcome`].
pub fn classify_reply(reply: Bytes, kind: ReplyKind, node: &Endpoint) -> Outcome {
    if kind != ReplyKind::Error {
        return Outcome::Reply(reply);
    }
    let line = reply.get(1..).unwrap_or_default();
    if let Some(rest) = line.strip_prefix(b"MOVED ") {
        if let Some((slot, to)) = parse_redirect(rest, node) {
            return Outcome::Moved { slot, to };
        }
    } else if let Some(rest) = line.strip_prefix(b"ASK ") {
        if let Some((slot, to)) = parse_redirect(rest, node) {
            return Outcome::Ask { slot, to };
        }
    } else if has_code(line, &[b"TRYAGAIN", b"CLUSTERDOWN"]) {
        return Outcome::NotNow(reply);
    } else if has_code(line, &[b"READONLY", b"MASTERDOWN", b"LOADING"]) {
        return Outcome::NotPrimary(reply);
    } else if line.starts_with(b"NOSCRIPT ") {
        return Outcome::NoScript(reply);
    }
    Outcome::Reply(reply)
}

/// True when the error `line` starts with one of `codes` as a whole word.
fn has_code(line: &[u8], codes: &[&[u8]]) -> bool {
    codes.iter().any(|code| {
        line.starts_with(code)
            && line
                .get(code.len())
                .is_some_and(|&b| b == b' ' || b == b'\r')
    })
}

/// Parses `<slot> <host>:<port>\r\n`. An empty host (Redis's unknown endpoint) means the
/// node that sent the redirect.
fn parse_redirect(rest: &[u8], node: &Endpoint) -> Option<(u16, Endpoint)> {
    let text = std::str::from_utf8(rest).ok()?.trim_end();
    let (slot, addr) = text.split_once(' ')?;
    let slot: u16 = slot.parse().ok()?;
    if usize::from(slot) >= crate::slot::SLOT_COUNT {
        return None;
    }
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = if host.is_empty() || host == "?" {
        &*node.host
    } else {
        host
    };
    Some((slot, Endpoint::new(host, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Endpoint {
        Endpoint::new("127.0.0.1", 7000)
    }

    fn classify(s: &'static [u8]) -> Outcome {
        classify_reply(Bytes::from_static(s), ReplyKind::Error, &node())
    }

    #[test]
    fn redirects_are_recognised() {
        match classify(b"-MOVED 3999 127.0.0.1:7002\r\n") {
            Outcome::Moved { slot, to } => {
                assert_eq!(slot, 3999);
                assert_eq!(to, Endpoint::new("127.0.0.1", 7002));
            }
            other => panic!("{other:?}"),
        }
        match classify(b"-ASK 1 redis-1.headless:6379\r\n") {
            Outcome::Ask { slot, to } => {
                assert_eq!(slot, 1);
                assert_eq!(&*to.host, "redis-1.headless");
            }
            other => panic!("{other:?}"),
        }
        match classify(b"-MOVED 5 :7005\r\n") {
            Outcome::Moved { to, .. } => assert_eq!(to, Endpoint::new("127.0.0.1", 7005)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retryable_errors_and_plain_errors() {
        assert!(matches!(
            classify(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Outcome::NotNow(_)
        ));
        assert!(matches!(
            classify(b"-CLUSTERDOWN The cluster is down\r\n"),
            Outcome::NotNow(_)
        ));
        assert!(matches!(
            classify(b"-LOADING Redis is loading the dataset in memory\r\n"),
            Outcome::NotPrimary(_)
        ));
        assert!(matches!(
            classify(b"-READONLY You can't write against a read only replica.\r\n"),
            Outcome::NotPrimary(_)
        ));
        assert!(matches!(
            classify(b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"),
            Outcome::NotPrimary(_)
        ));
        assert!(matches!(classify(b"-READONLYX\r\n"), Outcome::Reply(_)));
        assert!(matches!(
            classify(b"-ERR wrong number of arguments\r\n"),
            Outcome::Reply(_)
        ));
        assert!(matches!(classify(b"-LOADINGX odd\r\n"), Outcome::Reply(_)));
        assert!(matches!(classify(b"-MOVED garbage\r\n"), Outcome::Reply(_)));
        assert!(matches!(
            classify(b"-MOVED 99999 h:1\r\n"),
            Outcome::Reply(_)
        ));
        let ok = classify_reply(Bytes::from_static(b"+OK\r\n"), ReplyKind::Simple, &node());
        assert!(matches!(ok, Outcome::Reply(_)));
    }
}
