//! One client-facing listener at run time: a [`Listener`].
//!
//! ```text
//!  [[listeners]] entry ──► Listener (shared by every worker thread)
//!                            config: ArcSwap    its view: limits, users, TLS, backend keys
//!                            users, tls         who may log in, its certificate
//!                            upstream           the backend its clients are served by
//!                            stop               fires on removal (reload) or drain
//!                            counters           clients, accepted, rejected (metrics)
//!                          each worker: own SO_REUSEPORT sockets + accept loop (server.rs)
//! ```
//!
//! Sessions read their limits, users and announce address here instead of in the
//! process-wide [`crate::state::ProxyState`], so two listeners never see each other's
//! settings; the cost on the request path is the same one `ArcSwap` load as before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::acl::Users;
use crate::config::{Config, ListenerConfig};
use crate::tls::LiveAcceptor;
use crate::upstream::Upstream;

/// One listener; see the module docs.
pub struct Listener {
    /// Its name from the config (`default` for the flat keys): a metric label.
    pub name: String,
    /// The backend its clients are served by.
    pub upstream: Arc<Upstream>,
    /// Its view of the config; replaced by a reload.
    config: ArcSwap<Config>,
    /// Who may connect through it; replaced on reload.
    pub users: ArcSwap<Users>,
    /// Bumped by [`Listener::set_users`]; sessions re-read their user when it moved.
    users_epoch: AtomicU64,
    /// Its TLS acceptor (`tls-port`), rebuilt when its certificates change.
    pub tls: LiveAcceptor,
    /// The node id its cluster emulation reports, derived from its announce address.
    pub node_id: String,
    /// Fires when the listener is removed by a reload, or the process drains (a child of
    /// `ProxyState::draining`): accepting stops and its sessions drain.
    pub stop: CancellationToken,
    /// Its open client connections, checked against its `maxclients`.
    pub clients: AtomicUsize,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

impl Listener {
    /// A listener for `section`, served by `upstream`; `draining` is the process's token.
    pub fn new(
        section: &ListenerConfig,
        upstream: Arc<Upstream>,
        draining: &CancellationToken,
    ) -> Listener {
        let config = &section.config;
        if config.reads.read_from.uses_replicas() {
            upstream.want_replica_probe();
        }
        let users = Users::from_config(&config.users, config.requirepass).unwrap_or_else(|e| {
            tracing::error!(listener = %section.name, error = %e, "invalid users; nobody can log in until this is fixed");
            Users::locked()
        });
        Listener {
            name: section.name.clone(),
            upstream,
            node_id: node_id_for(&config.announce.to_string()),
            tls: LiveAcceptor::new(config.tls.as_ref()),
            config: ArcSwap::new(config.clone()),
            users: ArcSwap::from_pointee(users),
            users_epoch: AtomicU64::new(0),
            stop: draining.child_token(),
            clients: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    /// Its config in force, as an `Arc` to keep.
    pub fn config_arc(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Its config in force. Do not hold the guard across an `.await`.
    #[inline]
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }

    /// Replaces its config (a reload; restart-only keys already kept as running).
    pub fn set_config(&self, config: Arc<Config>) {
        if config.reads.read_from.uses_replicas() {
            self.upstream.want_replica_probe();
        }
        if self.config.load().tls != config.tls {
            self.tls.rebuild(config.tls.as_ref());
        }
        self.config.store(config);
    }

    /// Replaces its users; sessions see the change on their next request.
    pub fn set_users(&self, users: Users) {
        self.users.store(Arc::new(users));
        self.users_epoch.fetch_add(1, Ordering::Release);
    }

    /// How many times the users were replaced since start.
    pub fn users_epoch(&self) -> u64 {
        self.users_epoch.load(Ordering::Acquire)
    }

    /// True once removed (or draining).
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

/// One worker's listening sockets for one listener: the plain port and, with `tls-port`,
/// the TLS one. Bound on the main thread (so a reload hears about a port in use), accepted
/// on by the worker they are sent to.
pub struct Sockets {
    pub listener: Arc<Listener>,
    pub plain: std::net::TcpListener,
    pub tls: Option<std::net::TcpListener>,
}

/// Where new [`Sockets`] go: one channel per worker thread, set once the workers run.
#[derive(Default)]
pub struct Inboxes {
    senders: std::sync::OnceLock<Vec<tokio::sync::mpsc::UnboundedSender<Sockets>>>,
}

impl Inboxes {
    /// Called once by `server::run` when the workers have started.
    pub fn set(&self, senders: Vec<tokio::sync::mpsc::UnboundedSender<Sockets>>) {
        let _ = self.senders.set(senders);
    }

    /// Binds `listener`'s sockets once per worker, for [`Inboxes::send`]. Before the
    /// workers run this binds nothing: they bind every listener in force when they start.
    pub fn bind(&self, listener: &Arc<Listener>) -> Result<Vec<Sockets>, BindError> {
        match self.senders.get() {
            Some(senders) => bind_all(listener, senders.len()),
            None => Ok(Vec::new()),
        }
    }

    /// Hands each worker its own sockets from [`Inboxes::bind`].
    pub fn send(&self, sockets: Vec<Sockets>) {
        let Some(senders) = self.senders.get() else {
            return;
        };
        for (sender, sockets) in senders.iter().zip(sockets) {
            // A worker that has ended (draining) needs no new listener.
            let _ = sender.send(sockets);
        }
    }
}

/// A port that could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// `listener`'s sockets for each of `workers` threads.
pub fn bind_all(listener: &Arc<Listener>, workers: usize) -> Result<Vec<Sockets>, BindError> {
    let config = listener.config();
    let tls = config
        .tls
        .as_ref()
        .map(|tls| SocketAddr::new(config.listen.ip(), tls.port));
    (0..workers)
        .map(|_| {
            Ok(Sockets {
                listener: listener.clone(),
                plain: bind(config.listen)?,
                tls: tls.map(bind).transpose()?,
            })
        })
        .collect()
}

/// A listening socket with `SO_REUSEPORT`, so every worker can have its own.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, BindError> {
    let fail = |source| BindError { addr, source };
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    #[cfg(unix)]
    socket.set_reuse_port(true).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1024).map_err(fail)?;
    Ok(socket.into())
}

/// A stable 40-hex-digit id for `announce`, shaped like a Redis node id.
pub fn node_id_for(announce: &str) -> String {
    // FNV-1a, widened: deterministic across runs and processes, unlike std's hasher.
    let mut id = String::with_capacity(40);
    let mut h: u64 = 0xcbf29ce484222325;
    for round in 0u8..3 {
        for &b in announce.as_bytes().iter().chain(&[round]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
        id.push_str(&format!("{h:016x}"));
    }
    id.truncate(40);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_look_like_redis_ids_and_are_stable() {
        let a = node_id_for("127.0.0.1:6380");
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, node_id_for("127.0.0.1:6380"));
        assert_ne!(a, node_id_for("127.0.0.1:6381"));
    }
}
