//! State shared by every worker thread: the topology snapshot, the command table, the
//! validated config, refresh requests and counters.
//!
//! Readers on the hot path never lock: snapshots live behind [`ArcSwap`] and workers keep
//! an [`arc_swap::Cache`] of each, and every counter is a relaxed atomic written by one
//! worker only ([`WorkerStats`]), summed when someone asks (`INFO`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::commands::CommandTable;
use crate::config::Config;
use crate::topology::Topology;

/// Everything the workers and the refresher share.
pub struct ProxyState {
    pub config: Config,
    pub topology: ArcSwap<Topology>,
    pub commands: ArcSwap<CommandTable>,
    /// Wakes the topology refresher early (after a `MOVED`, a connection failure, ...).
    pub refresh: Notify,
    /// One entry per worker thread, in thread order.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The node id slotgate reports in its cluster emulation; derived from the announce
    /// address so every replica of one deployment reports the same id.
    pub node_id: String,
    pub started: tokio::time::Instant,
    /// A complete slot map is loaded and every primary answered the last discovery round.
    pub ready: AtomicBool,
    /// When the last discovery round finished, in milliseconds since the Unix epoch (0: never).
    pub last_refresh_unix_ms: AtomicU64,
    /// Open client connections over all workers, checked against `maxclients`.
    pub clients: AtomicUsize,
    /// Source of client ids, unique over all workers (`CLIENT ID`).
    pub next_client_id: AtomicU64,
}

impl ProxyState {
    pub fn new(config: Config) -> Self {
        let workers = (0..config.threads).map(|_| Arc::default()).collect();
        let node_id = node_id_for(&config.announce.to_string());
        Self {
            config,
            topology: ArcSwap::from_pointee(Topology::empty()),
            commands: ArcSwap::from_pointee(CommandTable::builtin()),
            refresh: Notify::new(),
            workers,
            node_id,
            started: tokio::time::Instant::now(),
            ready: AtomicBool::new(false),
            last_refresh_unix_ms: AtomicU64::new(0),
            clients: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
        }
    }

    /// Asks the refresher for a new slot map soon (it enforces its own floor).
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// Sums one counter over every worker.
    pub fn total(&self, counter: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
        self.workers
            .iter()
            .map(|w| counter(w).load(Ordering::Relaxed))
            .sum()
    }
}

/// Counters of one worker thread. Only that thread writes them.
#[derive(Default, Debug)]
pub struct WorkerStats {
    pub connections_accepted: AtomicU64,
    pub connections_current: AtomicU64,
    pub connections_rejected: AtomicU64,
    pub commands: AtomicU64,
    pub commands_local: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub redirects_moved: AtomicU64,
    pub redirects_ask: AtomicU64,
    pub retries: AtomicU64,
    pub backend_errors: AtomicU64,
    pub protocol_errors: AtomicU64,
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
