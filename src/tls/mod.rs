//! TLS on both hops: what the config asks for, and the rustls objects built from it.
//!
//! ```text
//!  config (PEM files read at load) ─► ListenerTls ─► acceptor() ─► TlsAcceptor ─┐
//!                                                                               ├─ ProxyState,
//!                                   ─► BackendTls ─► Connector::new() ─────────┘  swapped on reload
//!  client ─TLS─► listener (server.rs: handshake, then a session over transport::Stream)
//!  backend conn / control request ─► Connector::connect(tcp, host) ─TLS─► node
//! ```
//!
//! rustls with the ring provider: TLS 1.2 and 1.3 only, no renegotiation, no legacy ciphers.
//! The settings hold file contents rather than paths, so a reload that reads new bytes
//! (a rotated Kubernetes Secret) compares unequal and builds new objects; connections
//! already established keep the session they negotiated.

mod live;
mod pem;

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub use live::{LiveAcceptor, LiveConnector};
pub use pem::PemFile;

/// Whether TLS clients must present a certificate (`tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    No,
    /// A certificate is verified if the client sends one; clients without one get in.
    Optional,
    /// Only clients with a certificate signed by `tls-ca-cert-file` get in.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "no" => Ok(Self::No),
            "optional" => Ok(Self::Optional),
            "yes" => Ok(Self::Required),
            _ => Err(format!("{text:?} is not yes, no or optional")),
        }
    }
}

/// The TLS protocol versions offered (`tls-protocols`); at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

impl TlsVersions {
    pub const BOTH: TlsVersions = TlsVersions {
        tls12: true,
        tls13: true,
    };

    /// Parses Redis's syntax: a space-separated list of `TLSv1.2` and `TLSv1.3`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut versions = TlsVersions {
            tls12: false,
            tls13: false,
        };
        for word in text.split([' ', ',']).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "tlsv1.2" => versions.tls12 = true,
                "tlsv1.3" => versions.tls13 = true,
                "tlsv1" | "tlsv1.1" | "sslv3" => {
                    return Err(format!(
                        "{word} is obsolete and not offered: use TLSv1.2 and/or TLSv1.3"
                    ));
                }
                _ => return Err(format!("{word:?} is not TLSv1.2 or TLSv1.3")),
            }
        }
        if !(versions.tls12 || versions.tls13) {
            return Err("names no version: use \"TLSv1.2 TLSv1.3\", \"TLSv1.3\" ...".into());
        }
        Ok(versions)
    }

    fn rustls(self) -> Vec<&'static SupportedProtocolVersion> {
        let mut out = Vec::with_capacity(2);
        if self.tls13 {
            out.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            out.push(&rustls::version::TLS12);
        }
        out
    }
}

/// The client-facing TLS listener (`tls-port` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerTls {
    /// Port of the TLS listener, on the IP of `listen`; never 0.
    pub port: u16,
    pub cert: PemFile,
    pub key: PemFile,
    /// CA bundle that client certificates must chain to; set whenever `client_auth` is
    /// not [`ClientAuth::No`].
    pub ca: Option<PemFile>,
    pub client_auth: ClientAuth,
    pub versions: TlsVersions,
}

/// TLS toward the nodes (`backend-tls` and friends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTls {
    /// CA bundle the nodes' certificates must chain to; `None`: the system's roots.
    pub ca: Option<PemFile>,
    /// Client certificate and key presented to the nodes (both or neither).
    pub client_cert: Option<(PemFile, PemFile)>,
    /// Name to verify every node's certificate against (and to send as SNI) instead of
    /// the host each node announces.
    pub server_name: Option<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the acceptor for the TLS listener; the error names the file or the mismatch.
pub fn acceptor(settings: &ListenerTls) -> Result<TlsAcceptor, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&settings.versions.rustls())
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match (settings.client_auth, &settings.ca) {
        (ClientAuth::No, _) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.trust_anchors()?),
                provider,
            );
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{}: {e}", ca.path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        (_, None) => return Err("verifying client certificates needs a CA bundle".into()),
    };
    let certs = settings.cert.certificates()?;
    let key = settings.key.private_key()?;
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {} do not make a usable certificate and key: {e}",
            settings.cert.path.display(),
            settings.key.path.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Opens TLS sessions to the nodes.
pub struct Connector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub fn new(settings: &BackendTls) -> Result<Self, String> {
        let provider = provider();
        let roots = match &settings.ca {
            Some(ca) => ca.trust_anchors()?,
            None => system_roots()?,
        };
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("CA bundle: {e}"))?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&TlsVersions::BOTH.rustls())
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_webpki_verifier(verifier);
        let config = match &settings.client_cert {
            Some((cert, key)) => builder
                .with_client_auth_cert(cert.certificates()?, key.private_key()?)
                .map_err(|e| {
                    format!(
                        "{} and {} do not make a usable certificate and key: {e}",
                        cert.path.display(),
                        key.path.display()
                    )
                })?,
            None => builder.with_no_client_auth(),
        };
        let server_name = match &settings.server_name {
            Some(name) => Some(
                ServerName::try_from(name.clone())
                    .map_err(|e| format!("{name:?} is not a DNS name or IP address: {e}"))?,
            ),
            None => None,
        };
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the TLS handshake over `tcp` with the node announced as `host` (a hostname or
    /// an IP, verified against the certificate's DNS or IP SANs).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        host: &str,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.to_owned()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{host:?} cannot be verified as a TLS name ({e}); set backend-tls-server-name"),
                )
            })?,
        };
        self.connector.connect(name, tcp).await
    }
}

/// The operating system's trust store, for nodes with publicly trusted certificates.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(format!(
            "no system CA certificates ({why}): set backend-tls-ca-cert-file"
        ));
    }
    Ok(roots)
}
