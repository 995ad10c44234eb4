//! `host:port` endpoints: seeds, the announced address, the DNS server.
//!
//! Text comes from the config file or a flag (`"10.0.0.5:6379"`, `"[::1]:6379"`,
//! `"redis-headless.ns.svc:6379"`) and leaves as a [`HostPort`] whose host is an IP or a DNS
//! name, checked for shape but never resolved here: resolution belongs to the topology code,
//! which must re-resolve names forever (after a full StatefulSet restart only DNS knows the
//! new IPs). IP hosts are stored in canonical form without brackets, so equal endpoints
//! compare equal; [`Display`](std::fmt::Display) adds the brackets back for IPv6.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// A host (IP address or DNS name) and a TCP port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// An IP address in canonical form (IPv6 without brackets) or a DNS name as written.
    pub host: String,
    pub port: u16,
}

/// Why a text is not `host:port`. Displays only the reason (e.g. "missing port"): callers
/// say which key and entry it was about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    #[error("empty")]
    Empty,
    #[error("missing port")]
    MissingPort,
    #[error("missing host")]
    MissingHost,
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    #[error("an IPv6 address needs brackets, e.g. [::1]:6379")]
    Ipv6NeedsBrackets,
    #[error("write host:port without a URL scheme")]
    UrlScheme,
    #[error("unclosed '['")]
    UnclosedBracket,
    #[error("expected ':port' after ']'")]
    TextAfterBracket,
    #[error("{0:?} is not an IPv6 address")]
    BadIpv6(String),
    #[error("{0:?} is not an IPv4 address")]
    BadIpv4(String),
    #[error("{name:?} is not a valid host name ({why})")]
    BadHostName { name: String, why: &'static str },
}

/// Longest DNS name in text form, without the trailing dot (RFC 1035).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// The host as an IP address, or `None` when it is a DNS name.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The endpoint as a socket address, when the host is an IP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip().to_string(), addr.port())
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only an IPv6 host contains ':'; it needs brackets to keep the port readable.
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(HostPortError::Empty);
        }
        if let Some(rest) = text.strip_prefix('[') {
            return parse_bracketed(rest);
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(HostPortError::MissingPort);
        };
        if host.contains(':') {
            return Err(diagnose_colons(text, host));
        }
        if host.is_empty() {
            return Err(HostPortError::MissingHost);
        }
        let port = parse_port(port)?;
        Ok(Self::new(check_host(host)?, port))
    }
}

/// Explains a host that still holds a ':' after the port was split off.
fn diagnose_colons(text: &str, host: &str) -> HostPortError {
    if text.contains("://") {
        return HostPortError::UrlScheme;
    }
    // "::1:6379" is ambiguous and "fd00::1" alone has no port: both want brackets.
    if text.parse::<Ipv6Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return HostPortError::Ipv6NeedsBrackets;
    }
    HostPortError::BadHostName {
        name: host.to_owned(),
        why: "contains ':'; an IPv6 address needs brackets, e.g. [::1]:6379",
    }
}

/// The part after `[`: an IPv6 address, `]`, `:port`.
fn parse_bracketed(rest: &str) -> Result<HostPort, HostPortError> {
    let (ip, after) = rest.split_once(']').ok_or(HostPortError::UnclosedBracket)?;
    let ip: Ipv6Addr = ip
        .parse()
        .map_err(|_| HostPortError::BadIpv6(ip.to_owned()))?;
    let port = match after.strip_prefix(':') {
        Some(port) => parse_port(port)?,
        None if after.is_empty() => return Err(HostPortError::MissingPort),
        None => return Err(HostPortError::TextAfterBracket),
    };
    Ok(HostPort::new(ip.to_string(), port))
}

/// Digits only (`u16::from_str` would take "+1"), and never 0: nothing listens there.
fn parse_port(text: &str) -> Result<u16, HostPortError> {
    if text.is_empty() {
        return Err(HostPortError::MissingPort);
    }
    let bad = || HostPortError::BadPort(text.to_owned());
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

/// Returns the host in stored form: a canonical IPv4 address or the DNS name as written.
fn check_host(host: &str) -> Result<String, HostPortError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    // No top-level domain is all digits, so "10.0.0.256" or "1.2.3" is a mistyped IP.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(HostPortError::BadIpv4(host.to_owned()));
    }
    check_dns_name(host)?;
    Ok(host.to_owned())
}

/// Letters, digits, '-' and '_' (used by SRV-style Kubernetes names) in dot-separated
/// labels of 1 to 63 characters; one trailing dot (a rooted name) is allowed.
fn check_dns_name(name: &str) -> Result<(), HostPortError> {
    let bad = |why| HostPortError::BadHostName {
        name: name.to_owned(),
        why,
    };
    let unrooted = name.strip_suffix('.').unwrap_or(name);
    if unrooted.len() > MAX_NAME_LEN {
        return Err(bad("longer than 253 characters"));
    }
    for label in unrooted.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-', '_' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(text: &str) -> Result<HostPort, HostPortError> {
        text.parse()
    }

    #[test]
    fn ipv4_and_names() {
        assert_eq!(hp("10.0.0.5:6379"), Ok(HostPort::new("10.0.0.5", 6379)));
        assert_eq!(
            hp("redis-headless.ns.svc:6379"),
            Ok(HostPort::new("redis-headless.ns.svc", 6379))
        );
        assert_eq!(
            hp("redis-0.redis-headless.default.svc.cluster.local.:7000"),
            Ok(HostPort::new(
                "redis-0.redis-headless.default.svc.cluster.local.",
                7000
            ))
        );
        assert_eq!(hp("localhost:1"), Ok(HostPort::new("localhost", 1)));
        assert_eq!(
            hp("_redis._tcp.svc:65535"),
            Ok(HostPort::new("_redis._tcp.svc", 65535))
        );
    }

    #[test]
    fn ipv6_needs_brackets_and_is_canonical() {
        assert_eq!(hp("[::1]:6379"), Ok(HostPort::new("::1", 6379)));
        assert_eq!(hp("[0:0:0:0:0:0:0:1]:6379"), Ok(HostPort::new("::1", 6379)));
        assert_eq!(
            hp("[fd00::10]:53").unwrap().ip(),
            Some("fd00::10".parse().unwrap())
        );
        assert_eq!(hp("::1:6379"), Err(HostPortError::Ipv6NeedsBrackets));
        assert_eq!(hp("fd00::1"), Err(HostPortError::Ipv6NeedsBrackets));
        assert_eq!(hp("[::1"), Err(HostPortError::UnclosedBracket));
        assert_eq!(hp("[::1]"), Err(HostPortError::MissingPort));
        assert_eq!(hp("[::1]6379"), Err(HostPortError::TextAfterBracket));
        assert_eq!(hp("[nope]:1"), Err(HostPortError::BadIpv6("nope".into())));
        assert_eq!(
            hp("[1.2.3.4]:1"),
            Err(HostPortError::BadIpv6("1.2.3.4".into()))
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "10.0.0.5:6379",
            "[::1]:6379",
            "[fd00::1:2]:7000",
            "redis-headless.ns.svc:6379",
        ] {
            let parsed = hp(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(hp(&parsed.to_string()), Ok(parsed));
        }
        let from_addr = HostPort::from("[::]:6380".parse::<SocketAddr>().unwrap());
        assert_eq!(from_addr.to_string(), "[::]:6380");
    }

    #[test]
    fn missing_or_bad_parts() {
        assert_eq!(hp(""), Err(HostPortError::Empty));
        assert_eq!(hp("foo"), Err(HostPortError::MissingPort));
        assert_eq!(hp("foo:"), Err(HostPortError::MissingPort));
        assert_eq!(hp(":6379"), Err(HostPortError::MissingHost));
        assert_eq!(hp("foo:0"), Err(HostPortError::BadPort("0".into())));
        assert_eq!(hp("foo:65536"), Err(HostPortError::BadPort("65536".into())));
        assert_eq!(hp("foo:+1"), Err(HostPortError::BadPort("+1".into())));
        assert_eq!(hp("foo:http"), Err(HostPortError::BadPort("http".into())));
        assert_eq!(hp("foo: 1"), Err(HostPortError::BadPort(" 1".into())));
        assert_eq!(
            hp("10.0.0.256:1"),
            Err(HostPortError::BadIpv4("10.0.0.256".into()))
        );
        assert_eq!(hp("1.2.3:1"), Err(HostPortError::BadIpv4("1.2.3".into())));
    }

    #[test]
    fn bad_host_names() {
        for text in [
            "a..b:1", ".a:1", "-a.b:1", "a-.b:1", "a b:1", "a/b:1", "a:b:1",
        ] {
            assert!(
                matches!(hp(text), Err(HostPortError::BadHostName { .. })),
                "{text} -> {:?}",
                hp(text)
            );
        }
        assert_eq!(hp("redis://x:1"), Err(HostPortError::UrlScheme));
        let long_label = format!("{}.svc:1", "a".repeat(64));
        assert!(matches!(
            hp(&long_label),
            Err(HostPortError::BadHostName { .. })
        ));
        let long_name = format!("{}:1", vec!["a".repeat(63); 5].join("."));
        assert!(matches!(
            hp(&long_name),
            Err(HostPortError::BadHostName { .. })
        ));
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(HostPortError::MissingPort.to_string(), "missing port");
        assert_eq!(
            hp("a b:1").unwrap_err().to_string(),
            "\"a b\" is not a valid host name (only letters, digits, '-', '_' and '.' are allowed)"
        );
    }
}
