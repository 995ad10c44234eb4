//! One backend behind slotgate: an [`Upstream`].
//!
//! ```text
//! listener ──bound to──► Upstream (shared by every thread)
//!                          shape: Cluster | Sentinel | Standalone   how its topology is found
//!                          topology: ArcSwap        snapshot: shards, slot -> shard
//!                          commands: ArcSwap        command table learned from its nodes
//!                          ready, refresh, answers  readiness, "refresh soon", last round
//!                          scripts                  bodies for NOSCRIPT recovery
//!                          connector, settings      credentials, TLS, timeouts, seeds
//!                        refresher::Refresher     keeps topology and readiness fresh
//!                        WorkerUpstream (one per worker thread)
//!                          pool, snapshot caches, shard -> connection cache
//!                          resolve(target, intent, use) -> one connection   (the only place)
//! ```
//!
//! Everything that belongs to one backend lives here, and nothing process-wide does
//! (clients, slow log, metrics registry, drain: [`crate::state`]). A session is handed the
//! `WorkerUpstream` of its listener's upstream when it starts and never looks for another.
//! Every shape ends in the same [`Topology`]: a backend without slots (a Sentinel group, a
//! primary with replicas) is one shard owning every slot, so the data path does not care.

pub mod observed;
pub mod read_probe;
pub mod refresher;
pub mod sentinel;
mod worker;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use crate::clock::unix_ms;
use crate::commands::CommandTable;
use crate::config::{BackendConfig, Config, Mode};
use crate::connector::{Credentials, NodeConnector};
use crate::endpoint::{Endpoint, HostPort};
use crate::reads::ReadSettings;
use crate::reads::health::ReadHealth;
use crate::resp::encode;
use crate::scripts::ScriptCache;
use crate::tls::LiveConnector;
use crate::topology::Topology;

pub use worker::{ReadResolved, Target, Use, WorkerUpstream};

/// How an upstream's topology is found. Each shape has its discovery
/// ([`crate::topology::discovery`]); everything after discovery is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A Redis Cluster: `CLUSTER SHARDS` (or `CLUSTER SLOTS`) from its nodes.
    Cluster,
    /// A primary with replicas managed by Redis Sentinel: the Sentinels say where the
    /// primary is, `ROLE` on the node confirms it. One shard owning every slot.
    Sentinel,
    /// A primary with replicas and no Sentinel: every seed is asked `ROLE`; the one node
    /// that says `master` is the primary. One shard owning every slot.
    Standalone,
}

impl Shape {
    pub fn of(mode: Mode) -> Shape {
        match mode {
            Mode::Cluster => Shape::Cluster,
            Mode::Sentinel => Shape::Sentinel,
            Mode::Standalone => Shape::Standalone,
        }
    }

    /// True for the shapes without slots: one shard owns every slot, so keys never cross
    /// slots and the session uses the one-shard semantics ([`crate::router::route_one_shard`]).
    pub fn is_one_shard(self) -> bool {
        !matches!(self, Shape::Cluster)
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::Cluster => "cluster",
            Shape::Sentinel => "sentinel",
            Shape::Standalone => "standalone",
        }
    }
}

/// Why a backend without slots has no primary to send commands to: no node, or more than
/// one, says `ROLE master`. Set by the refresher; read only when a command finds no node.
#[derive(Debug)]
pub struct NoPrimary {
    /// The nodes that claim to be the primary (two or more: split brain; none: no primary).
    pub claimants: Vec<Endpoint>,
    /// The error line commands get while this lasts (after `retry-deadline`).
    pub reply: Bytes,
}

impl NoPrimary {
    pub fn new(claimants: Vec<Endpoint>, asked: &[Endpoint]) -> Self {
        let list = |nodes: &[Endpoint]| {
            nodes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let message = if claimants.len() > 1 {
            format!(
                "MASTERDOWN slotgate: split brain: {} all answer ROLE master; commands are \
                 refused until all but one step down (REPLICAOF)",
                list(&claimants)
            )
        } else {
            format!(
                "MASTERDOWN slotgate: no primary: no reachable node answers ROLE master \
                 (asked {}); commands are refused until one does",
                if asked.is_empty() {
                    "no node".to_owned()
                } else {
                    list(asked)
                }
            )
        };
        let mut out = BytesMut::new();
        encode::error(&mut out, &message);
        Self {
            claimants,
            reply: out.freeze(),
        }
    }

    pub fn is_split_brain(&self) -> bool {
        self.claimants.len() > 1
    }
}

/// What the refresher reads from the config for one upstream, replaced on reload.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    /// Where discovery starts: IPs, or DNS names re-resolved forever.
    pub seeds: Vec<HostPort>,
    /// The DNS server to ask, if not the system's.
    pub dns_server: Option<HostPort>,
    pub refresh_interval: Duration,
    pub refresh_min_interval: Duration,
    /// Sentinel shape: the Sentinels to ask (IPs, or DNS names re-resolved forever).
    pub sentinels: Vec<HostPort>,
    /// Sentinel shape: the primary's name at the Sentinels (`master-name`).
    pub master_name: Option<String>,
    /// Sentinel shape: how to authenticate to the Sentinels (`sentinel-username`,
    /// `sentinel-password`), separate from the data nodes' credentials.
    pub sentinel_auth: Option<Credentials>,
    /// Reads from replicas: policy, lag limits, probe interval, read-your-writes.
    pub reads: ReadSettings,
}

/// One backend; see the module docs.
pub struct Upstream {
    /// Its name in logs and metrics (`default` for the backend of the flat config keys).
    pub name: String,
    /// Whether `/readyz` waits for it (`required`); reloadable.
    required: AtomicBool,
    /// Fires when a reload removes the backend: its refresher ends.
    pub stop: tokio_util::sync::CancellationToken,
    pub shape: Shape,
    pub topology: ArcSwap<Topology>,
    pub commands: ArcSwap<CommandTable>,
    /// Wakes the refresher early (after a `MOVED`, a connection failure, ...).
    refresh: Notify,
    /// A complete slot map is loaded and every primary answered the last discovery round.
    pub ready: AtomicBool,
    /// When the last discovery round finished, in milliseconds since the Unix epoch (0: never).
    pub last_refresh_unix_ms: AtomicU64,
    /// Scripts loaded through slotgate (`SCRIPT LOAD`), by SHA1, so an `EVALSHA` that meets
    /// a node without its script (after a failover) can load it there and run.
    pub scripts: ScriptCache,
    /// How connections to its nodes are opened; every new connection takes the one in
    /// force. Shared with the workers' pools.
    pub connector: Arc<ArcSwap<NodeConnector>>,
    /// The TLS connector toward its nodes (`backend-tls`), rebuilt when that changes.
    tls: LiveConnector,
    settings: ArcSwap<UpstreamSettings>,
    /// Which nodes answered the last discovery round ([`Upstream::record_discovery`]).
    discovery: ArcSwapOption<DiscoveryAnswers>,
    /// What the refresher saw of the nodes last round, for the admin page.
    pub observed: ArcSwap<observed::Observed>,
    /// The last topology events, for the admin page.
    pub events: observed::EventLog,
    /// `MOVED` replies met by sessions since start (the refresher reports storms).
    moved: AtomicU64,
    /// Shapes without slots: set while no single primary is known (split brain, or none).
    no_primary: ArcSwapOption<NoPrimary>,
    /// Shapes without slots: the nodes that answered `ROLE master` in the last round (for
    /// `slotgate_primary_claims`, `/topology`).
    primary_claims: ArcSwap<Vec<Endpoint>>,
    /// Sentinel shape: what the Sentinels say, the failover hold, counters.
    pub sentinel: sentinel::SentinelShared,
    /// Which replicas may serve reads, from the last probe ([`crate::reads::probe`]), with
    /// the read settings in force.
    pub reads: ArcSwap<ReadHealth>,
    read_generation: AtomicU64,
    /// Wakes every worker when a new [`ReadHealth`] is published.
    reads_changed: Notify,
    /// A listener bound here reads from replicas by its own `read-from`: probe them even
    /// while this backend's own policy is `primary`.
    replica_probe_wanted: AtomicBool,
}

/// The nodes that answered one discovery round, for `/topology`'s `health`.
#[derive(Debug)]
pub struct DiscoveryAnswers {
    pub answered: HashSet<Endpoint>,
    pub at_unix_ms: u64,
}

impl Upstream {
    /// The upstream the flat config keys describe (`seeds`, `backend-*`), as `default`.
    pub fn from_config(config: &Config) -> Self {
        Self::named(crate::config::DEFAULT_SECTION, true, config)
    }

    /// The upstream of one configured backend.
    pub fn from_backend(backend: &BackendConfig) -> Self {
        Self::named(&backend.name, backend.required, &backend.config)
    }

    fn named(name: &str, required: bool, config: &Config) -> Self {
        let tls = LiveConnector::new(config.backend_tls.as_ref());
        let connector = node_connector(config, &tls);
        Self {
            name: name.to_owned(),
            required: AtomicBool::new(required),
            stop: tokio_util::sync::CancellationToken::new(),
            shape: Shape::of(config.mode),
            topology: ArcSwap::from_pointee(Topology::empty()),
            commands: ArcSwap::from_pointee(CommandTable::builtin()),
            refresh: Notify::new(),
            ready: AtomicBool::new(false),
            last_refresh_unix_ms: AtomicU64::new(0),
            scripts: ScriptCache::default(),
            connector: Arc::new(ArcSwap::from_pointee(connector)),
            tls,
            settings: ArcSwap::from_pointee(settings(config)),
            discovery: ArcSwapOption::empty(),
            observed: ArcSwap::from_pointee(observed::Observed::default()),
            events: observed::EventLog::default(),
            moved: AtomicU64::new(0),
            no_primary: ArcSwapOption::empty(),
            primary_claims: ArcSwap::from_pointee(Vec::new()),
            sentinel: sentinel::SentinelShared::default(),
            reads: ArcSwap::from_pointee(ReadHealth::empty(config.reads)),
            read_generation: AtomicU64::new(0),
            reads_changed: Notify::new(),
            replica_probe_wanted: AtomicBool::new(false),
        }
    }

    /// Whether `/readyz` waits for this backend.
    pub fn required(&self) -> bool {
        self.required.load(Ordering::Relaxed)
    }

    pub fn set_required(&self, required: bool) {
        self.required.store(required, Ordering::Relaxed);
    }

    /// Follows a reload from `running` to `next` (validated, restart-only keys unchanged).
    pub fn reconfigure(&self, running: &Config, next: &Config) {
        if running.backend_tls != next.backend_tls {
            self.tls.rebuild(next.backend_tls.as_ref());
        }
        self.connector
            .store(Arc::new(node_connector(next, &self.tls)));
        self.settings.store(Arc::new(settings(next)));
        if running.reads != next.reads {
            // Sessions read the policy from the snapshot: publish the new settings now,
            // with what the last probe found (judged again at the next round).
            let current = self.reads.load();
            self.publish_read_health(next.reads, current.nodes.clone());
        }
    }

    /// The read settings in force.
    pub fn read_settings(&self) -> ReadSettings {
        self.settings.load().reads
    }

    /// Swaps in what a probe round found, under `settings`.
    pub fn publish_read_health(
        &self,
        settings: ReadSettings,
        nodes: rustc_hash::FxHashMap<Endpoint, crate::reads::health::NodeHealth>,
    ) {
        crate::upstream::read_probe::log_changes(&self.reads.load(), &nodes);
        let generation = self.read_generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.reads.store(Arc::new(ReadHealth {
            generation,
            settings,
            nodes,
        }));
        self.reads_changed.notify_waiters();
    }

    /// A listener bound here sends reads to replicas ([`Self::probes_replicas`]).
    pub fn want_replica_probe(&self) {
        self.replica_probe_wanted.store(true, Ordering::Relaxed);
    }

    /// True when replicas must be probed: this backend's policy, or a listener's, reads
    /// from them.
    pub fn probes_replicas(&self) -> bool {
        self.read_settings().read_from.uses_replicas()
            || self.replica_probe_wanted.load(Ordering::Relaxed)
    }

    /// Resolves at the next [`Self::publish_read_health`].
    pub async fn read_health_changed(&self) {
        self.reads_changed.notified().await;
    }

    /// The settings in force (seeds, refresh intervals).
    pub fn settings(&self) -> Arc<UpstreamSettings> {
        self.settings.load_full()
    }

    /// Asks the refresher for a new topology soon (it enforces its own floor).
    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// A session met a `MOVED`: counts it (for the MOVED-storm event) and asks for a
    /// refresh. The slot map is behind, so every such reply asks.
    pub fn note_moved(&self) {
        self.moved.fetch_add(1, Ordering::Relaxed);
        self.request_refresh();
    }

    /// `MOVED` replies counted by [`Self::note_moved`] since start.
    pub fn moved_total(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    /// Resolves when [`Self::request_refresh`] was called.
    pub async fn refresh_requested(&self) {
        self.refresh.notified().await;
    }

    /// A complete map is loaded and every primary answered the last round.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.topology.load().is_complete()
    }

    /// Records which nodes answered a discovery round (the refresher calls this once per
    /// round), so `/topology` can report each node's health.
    pub fn record_discovery(&self, answered: impl IntoIterator<Item = Endpoint>) {
        self.discovery.store(Some(Arc::new(DiscoveryAnswers {
            answered: answered.into_iter().collect(),
            at_unix_ms: unix_ms(),
        })));
    }

    /// Records the outcome of a round of a shape without slots: `None` when exactly one
    /// primary is known, else why not.
    pub fn set_no_primary(&self, fault: Option<NoPrimary>) {
        self.no_primary.store(fault.map(Arc::new));
    }

    /// Why no primary is known, if that is so (shapes without slots only).
    pub fn no_primary(&self) -> Option<Arc<NoPrimary>> {
        self.no_primary.load_full()
    }

    /// The nodes that answered `ROLE master` in the last round (shapes without slots).
    pub fn set_primary_claims(&self, claims: Vec<Endpoint>) {
        self.primary_claims.store(Arc::new(claims));
    }

    pub fn primary_claims(&self) -> Arc<Vec<Endpoint>> {
        self.primary_claims.load_full()
    }

    /// The error a command gets when no node serves its target: why there is no primary
    /// (shapes without slots), else the cluster's "slot not served".
    pub fn unserved_reply(&self) -> Bytes {
        match &*self.no_primary.load() {
            Some(fault) => fault.reply.clone(),
            None => Bytes::from_static(b"-CLUSTERDOWN Hash slot not served\r\n"),
        }
    }

    /// The last [`Upstream::record_discovery`], if any.
    pub fn discovery(&self) -> Option<Arc<DiscoveryAnswers>> {
        self.discovery.load_full()
    }
}

fn settings(config: &Config) -> UpstreamSettings {
    UpstreamSettings {
        seeds: config.seeds.clone(),
        dns_server: config.dns_server.clone(),
        refresh_interval: config.topology_refresh_interval,
        refresh_min_interval: config.topology_refresh_min_interval,
        sentinels: config.sentinels.clone(),
        master_name: config.master_name.clone(),
        sentinel_auth: config
            .sentinel_password
            .as_ref()
            .map(|password| Credentials {
                user: config.sentinel_username.clone(),
                password: password.clone(),
            }),
        reads: config.reads,
    }
}

/// How to open a connection to a node with `config`'s backend settings.
fn node_connector(config: &Config, tls: &LiveConnector) -> NodeConnector {
    NodeConnector {
        connect_timeout: config.backend_connect_timeout,
        reply_timeout: config.backend_reply_timeout,
        auth: config
            .backend_password
            .as_ref()
            .map(|password| Credentials {
                user: config.backend_user.clone(),
                password: password.clone(),
            }),
        tls: tls.connector(),
        max_reply_depth: config.max_reply_depth,
        // Values stored through other clients may exceed our request limit; never refuse a
        // reply a default Redis could send.
        max_bulk_len: config.proto_max_bulk_len.max(512 * 1024 * 1024),
        readonly: false,
    }
}
