//! Network addresses: [`Endpoint`], a node's address as the nodes announce it (what
//! connections are opened to and keyed by), and [`HostPort`], an address as the config
//! gives it (a seed, a listener, a DNS server).
//!
//! Both belong to the network layer: DNS, transports, node connectors and control
//! requests speak in them, and nothing here knows about slots or the config.

mod hostport;

use std::fmt;
use std::sync::Arc;

pub use hostport::{HostPort, HostPortError};

/// A node's network address as the cluster announces it: an IP or a hostname, and a port.
/// Two endpoints are the same node address when host and port match; `tls_name` is only
/// how to verify it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: Arc<str>,
    pub port: u16,
    /// The name a TLS certificate must carry when it is not `host`: the seed name (a
    /// headless Service, say) this address was resolved from. Certificates name Services,
    /// rarely pod IPs.
    pub tls_name: Option<Arc<str>>,
}

impl Endpoint {
    pub fn new(host: &str, port: u16) -> Self {
        // Brackets belong to the textual form only, never to the host itself.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Self {
            host: host.into(),
            port,
            tls_name: None,
        }
    }

    /// This address, verified over TLS as `name` (the name it was resolved from).
    pub fn resolved_from(mut self, name: &str) -> Self {
        self.tls_name = Some(name.into());
        self
    }

    /// The name a backend's TLS certificate is verified against.
    pub fn tls_name(&self) -> &str {
        self.tls_name.as_deref().unwrap_or(&self.host)
    }

    fn key(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Endpoint {}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Endpoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Endpoint {
    /// Parses the `host:port` form found in `MOVED`/`ASK` replies (IPv6 hosts may be bare).
    pub fn parse(text: &str) -> Option<Self> {
        let (host, port) = text.rsplit_once(':')?;
        let port = port.parse().ok()?;
        if host.is_empty() {
            return None;
        }
        Some(Self::new(host, port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
