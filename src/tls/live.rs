//! The TLS objects in force: built from the config at start, rebuilt when a reload
//! brings different certificates, keys or CA bundles.
//!
//! The accept loops and backend connections load them per new connection (lock-free
//! `ArcSwapOption`), so a rotated certificate applies to the next handshake while
//! established connections keep the session they negotiated.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio_rustls::TlsAcceptor;

use super::{BackendTls, Connector, ListenerTls, acceptor};
use crate::config::Config;

/// The acceptor of the TLS listener and the connector toward the nodes, if configured.
#[derive(Default)]
pub struct LiveTls {
    acceptor: ArcSwapOption<TlsAcceptor>,
    connector: ArcSwapOption<Connector>,
}

impl LiveTls {
    pub fn from_config(config: &Config) -> Self {
        let live = Self::default();
        live.update(None, config);
        live
    }

    /// The acceptor for the next TLS client; `None` without `tls-port`.
    pub fn acceptor(&self) -> Option<Arc<TlsAcceptor>> {
        self.acceptor.load_full()
    }

    /// The connector for the next backend connection; `None` without `backend-tls`.
    pub fn connector(&self) -> Option<Arc<Connector>> {
        self.connector.load_full()
    }

    /// Rebuilds what differs between `running` (`None` at start) and `next`. The config
    /// was validated by building the same objects, so a failure here means a file vanished
    /// between the two; it is logged and the running objects stay.
    pub fn update(&self, running: Option<&Config>, next: &Config) {
        if running.map(|r| &r.tls) != Some(&next.tls) {
            match next.tls.as_ref().map(acceptor).transpose() {
                Ok(built) => self.acceptor.store(built.map(Arc::new)),
                Err(e) => log_kept("tls", next.tls.as_ref().map(listener_files), &e),
            }
        }
        if running.map(|r| &r.backend_tls) != Some(&next.backend_tls) {
            match next.backend_tls.as_ref().map(Connector::new).transpose() {
                Ok(built) => self.connector.store(built.map(Arc::new)),
                Err(e) => log_kept(
                    "backend-tls",
                    next.backend_tls.as_ref().map(backend_files),
                    &e,
                ),
            }
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
