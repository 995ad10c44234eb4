//! Metrics: recorded on the hot path without locks, exposed as Prometheus text on scrape.
//!
//! ```text
//!  session / backend (worker thread)      refresher, DNS, reload (any thread)
//!        │  relaxed atomic stores                │  relaxed fetch_add
//!        ▼                                       ▼
//!  WorkerStats.metrics: WorkerMetrics     ProxyState.metrics: SharedMetrics
//!  (one per worker, one writer each)             │
//!        └──────────────┬────────────────────────┘
//!                       ▼  summed over workers at scrape time
//!              admin::metrics::StateCollector  (a prometheus-client Collector)
//!                       ▼
//!              admin listener GET /metrics  (OpenMetrics text, `slotgate_` prefix)
//! ```
//!
//! Label values come from bounded enums: [`CommandId`] (a static list of core command
//! names plus `other`), [`Family`], [`CommandOutcome`], [`BackendError`]; the only open
//! label is `node`, bounded by the cluster's size (entries of nodes that left the slot map
//! are dropped once no connection holds them). `docs/operations.md` lists every metric.

pub mod command;
pub mod histogram;
mod stats;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use command::{CommandId, CommandOutcome, Family, command_id, command_id_ignore_case};
pub use histogram::{Histogram, HistogramSnapshot};
pub use stats::WorkerStats;
pub use worker::{BackendError, NodeStats, WorkerMetrics};

/// Counters written from anywhere (the refresher, DNS lookups on any thread, reloads):
/// rare events, so a plain atomic `fetch_add` is fine.
#[derive(Debug, Default)]
pub struct SharedMetrics {
    refreshes_ok: AtomicU64,
    refreshes_failed: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    /// Handed to every `Dns` instance (`Dns::new(.., state.metrics.dns.clone())`).
    pub dns: Arc<DnsMetrics>,
}

impl SharedMetrics {
    /// One discovery round ended: `ok` when some node offered a complete slot map (whether
    /// or not it differed from the one in force), false when none did.
    pub fn record_refresh(&self, ok: bool) {
        let counter = if ok {
            &self.refreshes_ok
        } else {
            &self.refreshes_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A config reload was applied (`ok`) or refused.
    pub fn record_reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refreshes(&self, ok: bool) -> u64 {
        if ok {
            self.refreshes_ok.load(Ordering::Relaxed)
        } else {
            self.refreshes_failed.load(Ordering::Relaxed)
        }
    }

    pub fn reloads(&self, ok: bool) -> u64 {
        if ok {
            self.reloads_ok.load(Ordering::Relaxed)
        } else {
            self.reloads_failed.load(Ordering::Relaxed)
        }
    }
}

/// DNS lookups by result (`slotgate_dns_lookups_total{result}`).
#[derive(Debug, Default)]
pub struct DnsMetrics {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl DnsMetrics {
    /// One name lookup finished: `ok` when it produced at least one address.
    pub fn record(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn lookups(&self, ok: bool) -> u64 {
        if ok {
            self.ok.load(Ordering::Relaxed)
        } else {
            self.failed.load(Ordering::Relaxed)
        }
    }
}
