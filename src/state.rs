//! What is process-wide, shared by every worker thread, the refreshers and the admin
//! listener: the live config, the upstreams (each backend's own state:
//! [`crate::upstream`]), readiness and drain signals, users, the client registry, the slow
//! log and counters.
//!
//! Readers on the hot path never lock: the config lives behind [`ArcSwap`], and every
//! counter is a relaxed atomic written by one worker only ([`WorkerStats`]), summed when someone asks (`INFO`,
//! `/metrics`). The config is swapped whole by a reload ([`crate::reload`]); read it with
//! [`ProxyState::config`] each time rather than keeping a copy, so new values apply.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::clients::ClientRegistry;
use crate::clock::unix_ms;
use crate::config::Config;
use crate::metrics::{SharedMetrics, WorkerStats};
use crate::slowlog::SlowLog;
use crate::upstream::Upstream;

/// Everything process-wide that the workers, the refreshers and the admin listener share.
pub struct ProxyState {
    /// The config in force; replaced whole by a reload. Read through [`ProxyState::config`].
    config: ArcSwap<Config>,
    /// The TLS acceptor of the listener in force; rebuilt by [`Self::set_config`].
    pub tls: crate::tls::LiveAcceptor,
    /// Every backend, in config order; listeners are bound to one each. Today the flat
    /// config keys describe one, bound to the one listener.
    pub upstreams: Vec<Arc<Upstream>>,
    /// One entry per worker thread, in thread order.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The node id slotgate reports in its cluster emulation; derived from the announce
    /// address so every replica of one deployment reports the same id.
    pub node_id: String,
    pub started: tokio::time::Instant,
    /// When the process started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// True once the client listeners are open (false: still starting).
    pub serving: AtomicBool,
    /// Fired once, on the first SIGTERM/SIGINT. Listeners stop accepting; every session
    /// answers what it has already received, then closes (see `docs/operations.md`).
    pub draining: CancellationToken,
    /// Open client connections over all workers, checked against `maxclients`.
    pub clients: AtomicUsize,
    /// Who may connect and what each user may do; replaced on reload.
    pub users: ArcSwap<crate::acl::Users>,
    /// Bumped by [`ProxyState::set_users`]: sessions compare it once per request and
    /// re-read their user only when it moved.
    users_epoch: AtomicU64,
    /// Source of client ids, unique over all workers (`CLIENT ID`).
    pub next_client_id: AtomicU64,
    /// Every open client connection, for `CLIENT LIST` and `CLIENT KILL`.
    pub client_list: Arc<ClientRegistry>,
    /// `SLOWLOG`: commands slower than `slowlog-log-slower-than`.
    pub slowlog: SlowLog,
    /// Process-wide counters (topology rounds, DNS, reloads).
    pub metrics: Arc<SharedMetrics>,
}

/// Whether the proxy should receive traffic, as `/readyz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The listeners are not open yet (first slot map still loading).
    Starting,
    /// A stop signal arrived: no new clients, please.
    Draining,
    /// The slot map is incomplete or some primary did not answer the last round.
    Degraded,
    Ready,
}

impl Readiness {
    pub fn describe(self) -> &'static str {
        match self {
            Readiness::Starting => "starting: the first slot map is loading",
            Readiness::Draining => "draining: shutting down",
            Readiness::Degraded => {
                "not ready: the slot map is incomplete or a primary did not answer the last discovery round"
            }
            Readiness::Ready => "ready",
        }
    }
}

impl ProxyState {
    pub fn new(config: Config) -> Self {
        let workers = (0..config.threads).map(|_| Arc::default()).collect();
        let node_id = node_id_for(&config.announce.to_string());
        let slowlog = SlowLog::new(config.slowlog_log_slower_than, config.slowlog_max_len);
        let client_list = Arc::new(ClientRegistry::new(config.threads));
        let users = crate::acl::Users::from_config(&config.users, config.requirepass)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "invalid users; nobody can log in until this is fixed");
                crate::acl::Users::locked()
            });
        Self {
            tls: crate::tls::LiveAcceptor::new(config.tls.as_ref()),
            upstreams: vec![Arc::new(Upstream::from_config(&config))],
            config: ArcSwap::from_pointee(config),
            workers,
            node_id,
            started: tokio::time::Instant::now(),
            started_unix_ms: unix_ms(),
            serving: AtomicBool::new(false),
            draining: CancellationToken::new(),
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            users: ArcSwap::from_pointee(users),
            users_epoch: AtomicU64::new(0),
            client_list,
            slowlog,
            metrics: Arc::default(),
        }
    }

    /// The upstream the flat config keys describe: today the only one, which `/topology`,
    /// `/metrics` and the listener use.
    pub fn default_upstream(&self) -> &Arc<Upstream> {
        &self.upstreams[0]
    }

    /// The config in force. Cheap (no lock, no reference-count traffic in the common
    /// case), but do not hold the guard across an `.await`: read it where it is used.
    #[inline]
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }

    /// The config in force, as an `Arc` to keep.
    pub fn config_arc(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Replaces the users (a reload); sessions see the change on their next request.
    pub fn set_users(&self, users: crate::acl::Users) {
        self.users.store(Arc::new(users));
        self.users_epoch.fetch_add(1, Ordering::Release);
    }

    /// How many times the users were replaced since start.
    pub fn users_epoch(&self) -> u64 {
        self.users_epoch.load(Ordering::Acquire)
    }

    /// Replaces the config (a reload). Callers must have validated it and kept the keys
    /// that need a restart unchanged.
    pub fn set_config(&self, config: Config) {
        let running = self.config.load();
        if running.tls != config.tls {
            self.tls.rebuild(config.tls.as_ref());
        }
        for upstream in &self.upstreams {
            upstream.reconfigure(&running, &config);
        }
        self.config.store(Arc::new(config));
    }

    /// True once a stop signal arrived.
    #[inline]
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// What `/readyz` answers.
    pub fn readiness(&self) -> Readiness {
        if self.is_draining() {
            Readiness::Draining
        } else if !self.serving.load(Ordering::Relaxed) {
            Readiness::Starting
        } else if self.upstreams.iter().all(|u| u.is_ready()) {
            Readiness::Ready
        } else {
            Readiness::Degraded
        }
    }

    /// Sums one counter over every worker.
    pub fn total(&self, counter: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| counter(w).load(Ordering::Relaxed))
            .sum()
    }
}

/// A stable 40-hex-digit id for `announce`, shaped like a Redis node id.
fn node_id_for(announce: &str) -> String {
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
