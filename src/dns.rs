//! Name resolution for seeds, announced hostnames and redirect targets.
//!
//! Every lookup goes through hickory-resolver with its cache off, so a pod that moved is
//! found at its new address on the next lookup, never served from a stale cache; the
//! caller schedules re-resolution from the answer's TTL ([`Resolved::ttl`]). `--dns-server`
//! replaces `/etc/resolv.conf`. IP literals are never looked up. A resolver is bound to
//! the runtime that uses it, so each worker and the refresher build their own [`Dns`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::net::TcpStream;

use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::endpoint::HostPort;
use crate::metrics::DnsMetrics;

/// How long a lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a name could not be turned into addresses.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DnsError {
    #[error("no DNS resolver available: {0}")]
    NoResolver(String),
    #[error("looking up {name} failed: {reason}")]
    Lookup { name: String, reason: String },
    #[error("{0} has no A or AAAA records")]
    Empty(String),
}

/// The addresses a name resolved to, and how long the answer may be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub addresses: Vec<IpAddr>,
    pub ttl: Duration,
}

/// A resolver for one runtime.
pub struct Dns {
    resolver: Result<Resolver<TokioRuntimeProvider>, String>,
    metrics: Option<Arc<DnsMetrics>>,
}

impl Dns {
    /// Uses `server` when given, else the system configuration; counts lookups in
    /// `metrics`.
    pub fn with_metrics(server: Option<&HostPort>, metrics: Arc<DnsMetrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::new(server)
        }
    }

    /// Uses `server` when given, else the system configuration.
    pub fn new(server: Option<&HostPort>) -> Self {
        let mut options = ResolverOpts::default();
        // Never answer from a cache: pods move, and the TTL schedule is ours to keep.
        options.cache_size = 0;
        options.timeout = LOOKUP_TIMEOUT;
        options.attempts = 1;
        let builder = match server.and_then(HostPort::socket_addr) {
            Some(addr) => Ok(Resolver::builder_with_config(
                single_server(addr),
                TokioRuntimeProvider::default(),
            )),
            None => Resolver::builder_tokio().map_err(|e| e.to_string()),
        };
        let resolver = builder.and_then(|mut builder| {
            let system = builder.options_mut().clone();
            options.ndots = system.ndots;
            *builder.options_mut() = options;
            builder.build().map_err(|e| e.to_string())
        });
        Self {
            resolver,
            metrics: None,
        }
    }

    /// Resolves `host` to its addresses; an IP literal resolves to itself with no TTL limit.
    pub async fn resolve(&self, host: &str) -> Result<Resolved, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Resolved {
                addresses: vec![ip],
                ttl: Duration::MAX,
            });
        }
        let result = self.lookup(host).await;
        if let Some(metrics) = &self.metrics {
            metrics.record(result.is_ok());
        }
        result
    }

    async fn lookup(&self, host: &str) -> Result<Resolved, DnsError> {
        let resolver = self
            .resolver
            .as_ref()
            .map_err(|e| DnsError::NoResolver(e.clone()))?;
        let lookup = resolver
            .lookup_ip(host)
            .await
            .map_err(|e| DnsError::Lookup {
                name: host.to_owned(),
                reason: e.to_string(),
            })?;
        let addresses: Vec<IpAddr> = lookup.iter().collect();
        if addresses.is_empty() {
            return Err(DnsError::Empty(host.to_owned()));
        }
        let ttl = lookup
            .valid_until()
            .saturating_duration_since(std::time::Instant::now());
        Ok(Resolved { addresses, ttl })
    }

    /// Connects to `endpoint`, resolving its host first and trying each address in turn.
    pub async fn connect(&self, endpoint: &Endpoint) -> Result<TcpStream, String> {
        let resolved = self
            .resolve(&endpoint.host)
            .await
            .map_err(|e| e.to_string())?;
        let mut last_error = String::new();
        for ip in resolved.addresses {
            match TcpStream::connect(SocketAddr::new(ip, endpoint.port)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_error = format!("{ip}: {e}"),
            }
        }
        Err(last_error)
    }
}

/// A configuration that asks `addr` only, over UDP then TCP.
fn single_server(addr: SocketAddr) -> ResolverConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
    ResolverConfig::from_parts(None, vec![], vec![server])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_are_not_looked_up() {
        // A resolver pointing at a port nobody serves: any real lookup would fail.
        let dns = Dns::new(Some(&HostPort::new("127.0.0.1", 1)));
        let resolved = dns.resolve("127.0.0.7").await.unwrap();
        assert_eq!(
            resolved.addresses,
            vec!["127.0.0.7".parse::<IpAddr>().unwrap()]
        );
        let v6 = dns.resolve("::1").await.unwrap();
        assert_eq!(v6.addresses.len(), 1);
    }

    #[tokio::test]
    async fn unreachable_server_is_a_lookup_error_not_a_hang() {
        let dns = Dns::new(Some(&HostPort::new("127.0.0.1", 1)));
        let result =
            tokio::time::timeout(Duration::from_secs(10), dns.resolve("redis.test.local")).await;
        assert!(matches!(result, Ok(Err(_))), "{result:?}");
    }
}
