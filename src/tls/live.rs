//! The TLS objects in force: built from the config at start, rebuilt when a reload
//! brings different certificates, keys or CA bundles.
//!
//! The accept loops and node connections load them per new connection (lock-free
//! `ArcSwapOption`), so a rotated certificate applies to the next handshake while
//! established connections keep the session they negotiated.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio_rustls::TlsAcceptor;

use super::{BackendTls, Connector, ListenerTls, acceptor};

/// The acceptor of a TLS listener, if it has one (`tls-port`).
#[derive(Default)]
pub struct LiveAcceptor(ArcSwapOption<TlsAcceptor>);

impl LiveAcceptor {
    pub fn new(settings: Option<&ListenerTls>) -> Self {
        let live = Self::default();
        live.rebuild(settings);
        live
    }

    /// The acceptor for the next TLS client; `None` without `tls-port`.
    pub fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.0.load_full()
    }

    /// Builds the acceptor for `next` (callers rebuild only when the settings changed).
    /// The config was validated by building the same object, so a failure here means a
    /// file vanished between the two; it is logged and the running acceptor stays.
    pub fn rebuild(&self, next: Option<&ListenerTls>) {
        match next.map(acceptor).transpose() {
            Ok(built) => self.0.store(built.map(Arc::new)),
            Err(e) => log_kept("tls", next.map(listener_files), &e),
        }
    }
}

/// The connector toward the nodes of one backend, if it speaks TLS (`backend-tls`).
#[derive(Default)]
pub struct LiveConnector(ArcSwapOption<Connector>);

impl LiveConnector {
    pub fn new(settings: Option<&BackendTls>) -> Self {
        let live = Self::default();
        live.rebuild(settings);
        live
    }

    /// The connector for the next node connection; `None` without `backend-tls`.
    pub fn connector(&self) -> Option<Arc<Connector>> {
        self.0.load_full()
    }

    /// Builds the connector for `next`; see [`LiveAcceptor::rebuild`].
    pub fn rebuild(&self, next: Option<&BackendTls>) {
        match next.map(Connector::new).transpose() {
            Ok(built) => self.0.store(built.map(Arc::new)),
            Err(e) => log_kept("backend-tls", next.map(backend_files), &e),
        }
    }
}

fn listener_files(settings: &ListenerTls) -> String {
    format!(
        "{}, {}",
        settings.cert.path.display(),
        settings.key.path.display()
    )
}

fn backend_files(settings: &BackendTls) -> String {
    settings.ca.as_ref().map_or_else(
        || "system roots".to_owned(),
        |ca| ca.path.display().to_string(),
    )
}

fn log_kept(what: &str, files: Option<String>, error: &str) {
    tracing::error!(
        settings = what,
        files = files.as_deref().unwrap_or(""),
        error,
        "cannot build the new TLS settings; the running ones stay in force"
    );
}
