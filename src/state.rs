//! State shared by every worker thread, the refresher and the admin listener: the topology
//! snapshot, the command table, the live config, readiness and drain signals, client
//! registry, slow log and counters.
//!
//! Readers on the hot path never lock: snapshots and the config live behind [`ArcSwap`]
//! (workers keep an [`arc_swap::Cache`] of the snapshots), and every counter is a relaxed
//! atomic written by one worker only ([`WorkerStats`]), summed when someone asks (`INFO`,
//! `/metrics`). The config is swapped whole by a reload ([`crate::reload`]); read it with
//! [`ProxyState::config`] each time rather than keeping a copy, so new values apply.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clients::ClientRegistry;
use crate::commands::CommandTable;
use crate::config::Config;
use crate::metrics::{SharedMetrics, WorkerMetrics};
use crate::slowlog::SlowLog;
use crate::topology::{Endpoint, Topology};

/// Everything the workers, the refresher and the admin listener share.
pub struct ProxyState {
    /// The config in force; replaced whole by a reload. Read through [`ProxyState::config`].
    config: ArcSwap<Config>,
    pub topology: ArcSwap<Topology>,
    /// The TLS acceptor and backend connector in force; rebuilt by [`Self::set_config`].
    pub tls: crate::tls::LiveTls,
    pub commands: ArcSwap<CommandTable>,
    /// Wakes the topology refresher early (after a `MOVED`, a connection failure, ...).
    pub refresh: Notify,
    /// One entry per worker thread, in thread order.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The node id slotgate reports in its cluster emulation; derived from the announce
    /// address so every replica of one deployment reports the same id.
    pub node_id: String,
    pub started: tokio::time::Instant,
    /// When the process started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// A complete slot map is loaded and every primary answered the last discovery round.
    pub ready: AtomicBool,
    /// True once the client listeners are open (false: still starting).
    pub serving: AtomicBool,
    /// Fired once, on the first SIGTERM/SIGINT. Listeners stop accepting; every session
    /// answers what it has already received, then closes (see `docs/operations.md`).
    pub draining: CancellationToken,
    /// When the last discovery round finished, in milliseconds since the Unix epoch (0: never).
    pub last_refresh_unix_ms: AtomicU64,
    /// Open client connections over all workers, checked against `maxclients`.
    pub clients: AtomicUsize,
    /// Scripts loaded through slotgate (`SCRIPT LOAD`), by SHA1, so an `EVALSHA` that meets
    /// a node without its script (after a failover) can load it there and run.
    pub scripts: crate::scripts::ScriptCache,
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
    pub metrics: SharedMetrics,
    /// Which nodes answered the last discovery round ([`ProxyState::record_discovery`]).
    discovery: ArcSwapOption<DiscoveryAnswers>,
}

/// The nodes that answered one discovery round, for `/topology`'s `health`.
#[derive(Debug)]
pub struct DiscoveryAnswers {
    pub answered: HashSet<Endpoint>,
    pub at_unix_ms: u64,
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
        let users = crate::acl::Users::from_config(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "invalid users; nobody can log in until this is fixed");
            crate::acl::Users::locked()
        });
        let tls = crate::tls::LiveTls::from_config(&config);
        Self {
            tls,
            config: ArcSwap::from_pointee(config),
            topology: ArcSwap::from_pointee(Topology::empty()),
            commands: ArcSwap::from_pointee(CommandTable::builtin()),
            refresh: Notify::new(),
            workers,
            node_id,
            started: tokio::time::Instant::now(),
            started_unix_ms: unix_ms(),
            ready: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            draining: CancellationToken::new(),
            last_refresh_unix_ms: AtomicU64::new(0),
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            scripts: crate::scripts::ScriptCache::default(),
            users: ArcSwap::from_pointee(users),
            users_epoch: AtomicU64::new(0),
            client_list,
            slowlog,
            metrics: SharedMetrics::default(),
            discovery: ArcSwapOption::empty(),
        }
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
        self.tls.update(Some(&self.config.load()), &config);
        self.config.store(Arc::new(config));
    }

    /// Asks the refresher for a new slot map soon (it enforces its own floor).
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
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
        } else if self.ready.load(Ordering::Relaxed) && self.topology.load().is_complete() {
            Readiness::Ready
        } else {
            Readiness::Degraded
        }
    }

    /// Records which nodes answered a discovery round (the refresher calls this once per
    /// round), so `/topology` can report each node's health.
    pub fn record_discovery(&self, answered: impl IntoIterator<Item = Endpoint>) {
        self.discovery.store(Some(Arc::new(DiscoveryAnswers {
            answered: answered.into_iter().collect(),
            at_unix_ms: unix_ms(),
        })));
    }

    /// The last [`ProxyState::record_discovery`], if any.
    pub fn discovery(&self) -> Option<Arc<DiscoveryAnswers>> {
        self.discovery.load_full()
    }

    /// Sums one counter over every worker.
    pub fn total(&self, counter: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| counter(w).load(Ordering::Relaxed))
            .sum()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Counters of one worker thread. Only that thread writes them.
#[derive(Default, Debug)]
pub struct WorkerStats {
    pub connections_accepted: AtomicU64,
    pub connections_current: AtomicU64,
    pub connections_rejected: AtomicU64,
    /// TLS clients whose handshake failed or timed out (bad certificate, wrong version, plain
    /// text on the TLS port ...).
    pub tls_handshake_failures: AtomicU64,
    /// Clients disconnected for holding more unread replies than `client-output-buffer-limit`.
    pub output_limit_disconnects: AtomicU64,
    pub commands: AtomicU64,
    pub commands_local: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub redirects_moved: AtomicU64,
    pub redirects_ask: AtomicU64,
    pub retries: AtomicU64,
    pub backend_errors: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Per-command, per-family and per-node metrics (see [`crate::metrics`]).
    pub metrics: WorkerMetrics,
}

impl WorkerStats {
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        // Single writer: a load and a store avoid the locked read-modify-write.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    pub fn drop_one(counter: &AtomicU64) {
        counter.store(
            counter.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
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
