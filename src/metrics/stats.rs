//! The counters of one worker thread ([`WorkerStats`]): connections, commands, redirects,
//! retries and errors, plus its [`WorkerMetrics`]. Only that thread writes them; `INFO`
//! and `/metrics` sum them over the workers.

use std::sync::atomic::{AtomicU64, Ordering};

use super::WorkerMetrics;

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
