//! What is process-wide, shared by every worker thread, the refreshers and the admin
//! listener: the live config, the upstreams (each backend's own state:
//! [`crate::upstream`]), the listeners (each one's users, limits and TLS:
//! [`crate::listener`]), readiness and drain signals, the client registry, the slow log and
//! counters.
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
use crate::listener::Listener;
use crate::metrics::{SharedMetrics, WorkerStats};
use crate::slowlog::SlowLog;
use crate::upstream::Upstream;

/// Everything process-wide that the workers, the refreshers and the admin listener share.
pub struct ProxyState {
    /// The config in force; replaced whole by a reload. Read through [`ProxyState::config`].
    /// Its process-wide keys are the ones in force; each listener and backend has its own
    /// view ([`Listener::config`], [`Upstream::settings`]).
    config: ArcSwap<Config>,
    /// Every backend, in config order (by name); a reload adds and removes some.
    upstreams: ArcSwap<Vec<Arc<Upstream>>>,
    /// Every listener, in config order; a reload adds and removes some.
    listeners: ArcSwap<Vec<Arc<Listener>>>,
    /// One entry per worker thread, in thread order.
    pub workers: Vec<Arc<WorkerStats>>,
    pub started: tokio::time::Instant,
    /// When the process started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// True once the client listeners are open (false: still starting).
    pub serving: AtomicBool,
    /// Fired once, on the first SIGTERM/SIGINT. Listeners stop accepting; every session
    /// answers what it has already received, then closes (see `docs/operations.md`).
    pub draining: CancellationToken,
    /// Open client connections over all workers and listeners.
    pub clients: AtomicUsize,
    /// Source of client ids, unique over all workers (`CLIENT ID`).
    pub next_client_id: AtomicU64,
    /// Every open client connection, for `CLIENT LIST` and `CLIENT KILL`.
    pub client_list: Arc<ClientRegistry>,
    /// `SLOWLOG`: commands slower than `slowlog-log-slower-than`.
    pub slowlog: SlowLog,
    /// Process-wide counters (topology rounds, DNS, reloads).
    pub metrics: Arc<SharedMetrics>,
    /// The workers' channels for listeners added by a reload.
    pub inboxes: crate::listener::Inboxes,
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
        let slowlog = SlowLog::new(config.slowlog_log_slower_than, config.slowlog_max_len);
        let client_list = Arc::new(ClientRegistry::new(config.threads));
        let draining = CancellationToken::new();
        let (backends, listener_configs) = config.sections();
        let upstreams: Vec<Arc<Upstream>> = backends
            .iter()
            .map(|backend| Arc::new(Upstream::from_backend(backend)))
            .collect();
        let listeners = listener_configs
            .iter()
            .map(|section| {
                let upstream = upstreams[section.backend].clone();
                Arc::new(Listener::new(section, upstream, &draining))
            })
            .collect();
        Self {
            upstreams: ArcSwap::from_pointee(upstreams),
            listeners: ArcSwap::from_pointee(listeners),
            config: ArcSwap::from_pointee(config),
            workers,
            started: tokio::time::Instant::now(),
            started_unix_ms: unix_ms(),
            serving: AtomicBool::new(false),
            draining,
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            client_list,
            slowlog,
            metrics: Arc::default(),
            inboxes: crate::listener::Inboxes::default(),
        }
    }

    /// Every backend in force.
    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.upstreams.load_full()
    }

    /// Every listener in force.
    pub fn listeners(&self) -> Arc<Vec<Arc<Listener>>> {
        self.listeners.load_full()
    }

    /// The first backend: the only one of the flat config keys.
    pub fn default_upstream(&self) -> Arc<Upstream> {
        self.upstreams.load()[0].clone()
    }

    /// The backend called `name`, if any.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams
            .load()
            .iter()
            .find(|u| u.name == name)
            .cloned()
    }

    /// Replaces the backends and listeners (a reload: [`crate::reload`] keeps the running
    /// objects of the ones that stay).
    pub fn set_sections(&self, upstreams: Vec<Arc<Upstream>>, listeners: Vec<Arc<Listener>>) {
        self.upstreams.store(Arc::new(upstreams));
        self.listeners.store(Arc::new(listeners));
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

    /// Replaces the config (a reload). Callers must have validated it, kept the keys that
    /// need a restart unchanged and applied its sections to the listeners and upstreams.
    pub fn set_config(&self, config: Config) {
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
        } else if self.not_ready().is_empty() {
            Readiness::Ready
        } else {
            Readiness::Degraded
        }
    }

    /// The required backends that are not ready, by name (`/readyz` names them).
    pub fn not_ready(&self) -> Vec<String> {
        self.upstreams
            .load()
            .iter()
            .filter(|u| u.required() && !u.is_ready())
            .map(|u| u.name.clone())
            .collect()
    }

    /// Sums one counter over every worker.
    pub fn total(&self, counter: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| counter(w).load(Ordering::Relaxed))
            .sum()
    }
}
