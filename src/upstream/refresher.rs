//! Keeps one upstream's topology fresh: scheduling, backoff, DNS re-resolution and
//! readiness. What a round asks of the nodes is the shape's discovery
//! ([`crate::topology::discovery`]).
//!
//! Runs on the main runtime. A round starts on a timer (`topology-refresh-interval`), when
//! a worker asks ([`Upstream::request_refresh`], after a `MOVED` or a connection
//! failure) or when a DNS answer expires, never sooner than
//! `topology-refresh-min-interval` after the previous one. A round:
//!
//! 1. re-resolves the DNS seeds whose answer expired (TTL, clamped to
//!    [`DNS_MIN_TTL`]..[`DNS_MAX_TTL`]), or all of them when known nodes stopped answering;
//! 2. asks every known node and every seed address at once for its view, through the
//!    shape's [`Discovery`] (a cluster: `CLUSTER SHARDS` + `CLUSTER INFO`, one round trip
//!    each), waiting at most [`ROUND_LIMIT`] so a hung node cannot stall discovery;
//! 3. keeps only complete maps, prefers the one from the node with the newest
//!    `cluster_current_epoch`, refuses one older than the newest epoch already seen (until
//!    [`STALE_ROUNDS_BEFORE_RESET`] rounds agree on it: the cluster was recreated), and swaps
//!    it in when it differs from the map in force;
//! 4. updates readiness: a complete map is loaded and every primary answered.
//!
//! The node whose map is chosen first also provides the command table
//! ([`CommandTable::learn`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod sentinel_round;

use super::observed::{EventKind, EventLog, Observed, map_changes};
use super::{NoPrimary, Shape, Upstream};
use crate::commands::{CommandTable, LearnError};
use crate::config::HostPort;
use crate::connector::NodeConnector;
use crate::dns::Dns;
use crate::endpoint::Endpoint;
use crate::metrics::SharedMetrics;
use crate::topology::Topology;
use crate::topology::details::NodeDetail;
use crate::topology::discovery::{ClusterDiscovery, Discovery, NodeView, ShapeDiscovery};
use crate::topology::role::{self, Choice, RoleDiscovery};

/// Shortest time a DNS answer is trusted, whatever its TTL (Kubernetes answers with 5 s or
/// 30 s; a TTL of 0 must not turn into a query storm).
pub const DNS_MIN_TTL: Duration = Duration::from_secs(1);
/// Longest time a DNS answer is trusted, whatever its TTL.
pub const DNS_MAX_TTL: Duration = Duration::from_secs(30);
/// How long one discovery round waits for answers.
pub const ROUND_LIMIT: Duration = Duration::from_secs(2);
/// Rounds in a row whose newest epoch is older than one seen before, after which the
/// older epoch is accepted (the cluster was recreated from scratch).
pub const STALE_ROUNDS_BEFORE_RESET: u32 = 3;
/// `MOVED` replies between two rounds from which the admin page reports a MOVED storm
/// (a few are normal after a reshard; hundreds mean clients hammer a stale map).
pub const MOVED_STORM: u64 = 100;

/// A configured seed: an IP or a DNS name kept forever and re-resolved.
struct Seed {
    host: String,
    port: u16,
    is_name: bool,
    addresses: Vec<Endpoint>,
    next_resolve: Instant,
}

/// The refresher's own state between rounds.
pub struct Refresher {
    upstream: Arc<Upstream>,
    metrics: Arc<SharedMetrics>,
    /// What a round asks each node, for this upstream's shape.
    discovery: ShapeDiscovery,
    dns: Arc<Dns>,
    seeds: Vec<Seed>,
    /// How discovery connects to the nodes (replies bounded by [`ROUND_LIMIT`]).
    connector: NodeConnector,
    commands_learned: bool,
    newest_epoch: u64,
    stale_rounds: u32,
    /// Re-resolve every DNS seed at the next round (known nodes stopped answering).
    resolve_all: bool,
    /// [`Upstream::moved_total`] at the previous round.
    moved_seen: u64,
    /// Sentinel shape: the Sentinels known and what they said.
    sentinel: sentinel_round::SentinelRound,
}

impl Refresher {
    pub fn new(upstream: Arc<Upstream>, metrics: Arc<SharedMetrics>) -> Self {
        let settings = upstream.settings();
        let now = Instant::now();
        let seeds = settings.seeds.iter().map(|s| Seed::new(s, now)).collect();
        let connector = discovery_connector(&upstream);
        let dns = Arc::new(Dns::with_metrics(
            settings.dns_server.as_ref(),
            metrics.dns.clone(),
        ));
        let discovery = match upstream.shape {
            Shape::Cluster => ShapeDiscovery::Cluster(ClusterDiscovery),
            Shape::Sentinel => ShapeDiscovery::Sentinel(RoleDiscovery),
            Shape::Standalone => ShapeDiscovery::Standalone(RoleDiscovery),
        };
        Self {
            upstream,
            metrics,
            discovery,
            dns,
            seeds,
            connector,
            commands_learned: false,
            newest_epoch: 0,
            stale_rounds: 0,
            resolve_all: true,
            moved_seen: 0,
            sentinel: sentinel_round::SentinelRound::default(),
        }
    }

    /// Follows a reloaded config: the seed list (keeping what is known of seeds that
    /// stay) and the control-plane timeouts.
    fn sync_config(&mut self) {
        let config = self.upstream.settings();
        self.connector = discovery_connector(&self.upstream);
        if !Seed::follow(&mut self.seeds, &config.seeds, Instant::now()) {
            return;
        }
        info!(seeds = ?config.seeds.iter().map(ToString::to_string).collect::<Vec<_>>(), "seed list changed by a config reload");
    }

    /// Runs this refresher, and its upstream's replica probe (idle while no policy reads
    /// from replicas), until `shutdown` or until a reload removes the upstream.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let removed = self.upstream().stop.clone();
        let probe = super::read_probe::run(self.upstream().clone(), shutdown.clone());
        let probe_removed = removed.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = probe => {}
                () = probe_removed.cancelled() => {}
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                () = self.run(shutdown) => {}
                () = removed.cancelled() => {}
            }
        })
    }

    /// Refreshes until `shutdown` fires.
    /// The upstream this refresher keeps fresh.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut last = Instant::now();
        loop {
            // Read each time: a reload may change them.
            let (interval, floor) = {
                let settings = self.upstream.settings();
                (settings.refresh_interval, settings.refresh_min_interval)
            };
            let dns_due = self.next_dns_due();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep(interval) => {}
                _ = self.upstream.refresh_requested() => {}
                _ = sleep_until(dns_due.unwrap_or_else(|| Instant::now() + interval)), if dns_due.is_some() => {}
            }
            sleep_until(last + floor).await;
            last = Instant::now();
            self.round().await;
        }
    }

    /// One full round: DNS, discovery, decision. Returns true when a new map was swapped in.
    pub async fn round(&mut self) -> bool {
        self.sync_config();
        self.note_moved_storm();
        match self.upstream.shape {
            Shape::Cluster => self.cluster_round().await,
            Shape::Standalone => {
                self.resolve_seeds().await;
                let candidates = self.candidates(&self.upstream.topology.load().endpoints());
                self.role_round(candidates).await
            }
            // The Sentinels' majority, confirmed by ROLE (sentinel_round.rs).
            Shape::Sentinel => self.sentinel_round().await,
        }
    }

    /// A round of a shape without slots: asks every candidate `ROLE` and serves the one
    /// primary as a single shard owning every slot ([`role::choose`]). Split brain or no
    /// primary swaps in an empty map, so commands are held (`retry-deadline`) and then
    /// refused with the reason ([`Upstream::unserved_reply`]).
    async fn role_round(&mut self, candidates: Vec<Endpoint>) -> bool {
        let current = self.upstream.topology.load_full();
        let views = self.gather(candidates.clone()).await;
        self.metrics
            .record_refresh(views.iter().any(|(_, v)| v.role.is_some()));
        let claims: Vec<Endpoint> = views
            .iter()
            .filter(|(_, v)| matches!(v.role, Some(role::NodeRole::Primary { .. })))
            .map(|(e, _)| e.clone())
            .collect();
        let claims_changed = *self.upstream.primary_claims() != claims;
        self.upstream.set_primary_claims(claims);
        let next = match role::choose(&views) {
            Choice::Primary(topology) => {
                if self.upstream.no_primary().is_some() {
                    info!(primary = %topology.shards()[0].primary.endpoint, "a single primary answers ROLE master again; serving it");
                }
                self.upstream.set_no_primary(None);
                if !self.commands_learned {
                    let primary = topology.shards()[0].primary.endpoint.clone();
                    self.learn_commands(&primary).await;
                }
                topology
            }
            Choice::SplitBrain(nodes) => {
                if claims_changed || self.upstream.no_primary().is_none() {
                    warn!(
                        nodes = %nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                        "split brain: several nodes answer ROLE master; refusing commands until all but one step down"
                    );
                }
                self.upstream
                    .set_no_primary(Some(NoPrimary::new(nodes, &candidates)));
                Topology::empty()
            }
            Choice::NoPrimary => {
                if claims_changed || self.upstream.no_primary().is_none() {
                    warn!(
                        asked = candidates.len(),
                        answered = views.len(),
                        "no primary: no reachable node answers ROLE master; refusing commands until one does"
                    );
                }
                self.upstream
                    .set_no_primary(Some(NoPrimary::new(Vec::new(), &candidates)));
                // The primary may be back under a new address.
                self.resolve_all = true;
                Topology::empty()
            }
        };
        let changed = !next.same_layout(&current);
        if changed {
            let mut topology = next;
            topology.generation = current.generation + 1;
            log_change(&current, &topology);
            for (kind, message) in map_changes(&current, &topology) {
                self.upstream.events.record(kind, message);
            }
            self.upstream.topology.store(Arc::new(topology));
        }
        self.update_readiness(&views);
        self.observe(&views);
        changed
    }

    /// A cluster round: every known node and seed asked for its slot map.
    async fn cluster_round(&mut self) -> bool {
        self.resolve_seeds().await;
        let current = self.upstream.topology.load_full();
        let known: Vec<Endpoint> = current.endpoints();
        let mut views = self.gather(self.candidates(&known)).await;
        let known_answered = views.iter().any(|(e, _)| known.contains(e));
        if !known.is_empty() && !known_answered {
            // Every known address is dead: after a full restart only DNS knows the new ones.
            warn!(
                known = known.len(),
                "no known node answered; re-resolving the seeds now"
            );
            self.resolve_all = true;
            self.resolve_seeds().await;
            views = self.gather(self.candidates(&[])).await;
        }
        let changed = self.decide(&current, &views).await;
        if changed {
            // Primaries of a new map that were not asked yet: ask them now, so readiness
            // reflects them instead of waiting for the next round.
            let asked: Vec<Endpoint> = views.iter().map(|(e, _)| e.clone()).collect();
            let unasked: Vec<Endpoint> = self
                .upstream
                .topology
                .load()
                .shards()
                .iter()
                .map(|s| s.primary.endpoint.clone())
                .filter(|e| !asked.contains(e))
                .collect();
            if !unasked.is_empty() {
                views.extend(self.gather(unasked).await);
            }
        }
        let primaries_missing = self.update_readiness(&views);
        self.observe(&views);
        if primaries_missing {
            // Some primary did not answer: its pod may have a new address.
            self.resolve_all = true;
        }
        changed
    }

    fn next_dns_due(&self) -> Option<Instant> {
        self.seeds
            .iter()
            .filter(|s| s.is_name)
            .map(|s| s.next_resolve)
            .chain(self.sentinel.next_dns_due())
            .min()
    }

    async fn resolve_seeds(&mut self) {
        let now = Instant::now();
        let all = std::mem::take(&mut self.resolve_all);
        for seed in self.seeds.iter_mut().filter(|s| s.is_name) {
            if !all && seed.next_resolve > now {
                continue;
            }
            seed.resolve(&self.dns, now, &self.upstream.events).await;
        }
    }

    /// Known nodes first, then every seed address; each once.
    fn candidates(&self, known: &[Endpoint]) -> Vec<Endpoint> {
        let mut list = known.to_vec();
        for address in self.seeds.iter().flat_map(|s| s.addresses.iter()) {
            if !list.contains(address) {
                list.push(address.clone());
            }
        }
        list
    }

    /// Asks every candidate at once; returns the answers that came within [`ROUND_LIMIT`].
    async fn gather(&self, candidates: Vec<Endpoint>) -> Vec<(Endpoint, NodeView)> {
        let mut tasks = JoinSet::new();
        for endpoint in candidates {
            let dns = self.dns.clone();
            let connector = self.connector.clone();
            let discovery = self.discovery;
            tasks.spawn(async move {
                let view = discovery.ask(&dns, &endpoint, &connector).await;
                (endpoint, view)
            });
        }
        let deadline = Instant::now() + ROUND_LIMIT;
        let mut views = Vec::new();
        let mut first_failure = None;
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    None => break,
                    Some(Ok((endpoint, Ok(view)))) => views.push((endpoint, view)),
                    Some(Ok((endpoint, Err(e)))) => {
                        debug!(node = %endpoint, error = %e, "discovery failed");
                        first_failure.get_or_insert((endpoint, e));
                    }
                    Some(Err(e)) => debug!(error = %e, "discovery task failed"),
                },
                _ = sleep_until(deadline) => {
                    debug!(pending = tasks.len(), "discovery round limit reached");
                    tasks.abort_all();
                    break;
                }
            }
        }
        if views.is_empty()
            && let Some((node, error)) = first_failure
        {
            // The operator's clue when nothing works (wrong password, certificate, port).
            warn!(%node, %error, "discovery: no node answered this round");
        }
        views
    }

    /// Chooses the map to serve from this round's answers and swaps it in if it is new.
    async fn decide(&mut self, current: &Topology, views: &[(Endpoint, NodeView)]) -> bool {
        let found_complete = views.iter().any(|(_, v)| v.topology.is_complete());
        self.metrics.record_refresh(found_complete);
        let Some((source, best)) = views
            .iter()
            .filter(|(_, v)| v.topology.is_complete())
            .max_by_key(|(_, v)| (v.current_epoch, agreement(v, views)))
        else {
            let covered = views
                .iter()
                .map(|(_, v)| v.topology.covered_slots())
                .max()
                .unwrap_or(0);
            warn!(
                answered = views.len(),
                best_covered = covered,
                "no node offered a complete slot map; keeping the current one"
            );
            return false;
        };
        if !self.commands_learned {
            self.learn_commands(source).await;
        }
        if best.current_epoch < self.newest_epoch {
            self.stale_rounds += 1;
            if self.stale_rounds < STALE_ROUNDS_BEFORE_RESET {
                warn!(
                    offered = best.current_epoch,
                    newest_seen = self.newest_epoch,
                    "refusing a slot map older than one already seen; keeping the current one"
                );
                return false;
            }
            warn!(
                epoch = best.current_epoch,
                "every node reports an older epoch than seen before; accepting it (cluster recreated?)"
            );
        }
        self.stale_rounds = 0;
        self.newest_epoch = best.current_epoch;
        if best.topology.same_layout(current) {
            return false;
        }
        let mut topology = best.topology.clone_layout();
        topology.generation = current.generation + 1;
        topology.epoch = best.current_epoch;
        log_change(current, &topology);
        for (kind, message) in map_changes(current, &topology) {
            self.upstream.events.record(kind, message);
        }
        self.upstream.topology.store(Arc::new(topology));
        true
    }

    /// Ready: a complete map, and every primary in it answered this round. Returns true
    /// when some primary did not answer.
    fn update_readiness(&self, views: &[(Endpoint, NodeView)]) -> bool {
        self.upstream
            .record_discovery(views.iter().map(|(e, _)| e.clone()));
        let topology = self.upstream.topology.load();
        let answered: HashSet<&Endpoint> = views.iter().map(|(e, _)| e).collect();
        let missing = topology
            .shards()
            .iter()
            .filter(|s| !answered.contains(&s.primary.endpoint))
            .count();
        let ready = topology.is_complete() && missing == 0;
        let was = self.upstream.ready.swap(ready, Ordering::Relaxed);
        if was != ready {
            info!(ready, primaries_missing = missing, "readiness changed");
        }
        self.upstream
            .last_refresh_unix_ms
            .store(crate::clock::unix_ms(), Ordering::Relaxed);
        missing > 0
    }

    /// Records a MOVED storm event when sessions met [`MOVED_STORM`] or more `MOVED`
    /// replies since the previous round.
    fn note_moved_storm(&mut self) {
        let total = self.upstream.moved_total();
        let since = total - self.moved_seen.min(total);
        self.moved_seen = total;
        if since >= MOVED_STORM {
            self.upstream.events.record(
                EventKind::MovedStorm,
                format!("{since} MOVED replies since the previous discovery round"),
            );
        }
    }

    /// Publishes what this round saw of each node for the admin page, and records an
    /// event when a node of the map stopped or started answering.
    fn observe(&self, views: &[(Endpoint, NodeView)]) {
        let previous = self.upstream.observed.load_full();
        let now = crate::clock::unix_ms();
        let mut observed = Observed::default();
        // A node's own report first (its offset is exact), then what others say of it.
        for own in [true, false] {
            for (asked, view) in views {
                for detail in &view.details {
                    if (detail.endpoint == *asked) == own {
                        observed
                            .nodes
                            .entry(detail.endpoint.clone())
                            .or_insert_with(|| detail.clone());
                    }
                }
            }
        }
        // Shapes without slots have no CLUSTER SHARDS: each node's own ROLE answer says it.
        for (asked, view) in views {
            if let Some(detail) = view.role.as_ref().and_then(|r| role_detail(asked, r)) {
                observed.nodes.entry(asked.clone()).or_insert(detail);
            }
        }
        observed.migrations = views
            .iter()
            .flat_map(|(asked, view)| view.migrations.iter().map(|m| (asked.clone(), m.clone())))
            .collect();
        let answered: HashSet<&Endpoint> = views.iter().map(|(e, _)| e).collect();
        for endpoint in self.upstream.topology.load().endpoints() {
            let up = answered.contains(&endpoint);
            let since = match previous.health_since.get(&endpoint) {
                Some(&(was, since)) if was == up => since,
                Some(_) => {
                    let (kind, what) = if up {
                        (EventKind::NodeOnline, "answers again")
                    } else {
                        (EventKind::NodeUnreachable, "stopped answering discovery")
                    };
                    self.upstream
                        .events
                        .record(kind, format!("{endpoint} {what}"));
                    now
                }
                None => now,
            };
            observed.health_since.insert(endpoint, (up, since));
        }
        self.upstream.observed.store(Arc::new(observed));
    }

    async fn learn_commands(&mut self, endpoint: &Endpoint) {
        match CommandTable::learn(&self.dns, endpoint, &self.connector).await {
            Ok(table) => {
                info!(node = %endpoint, commands = table.len(), "learned the command table");
                self.upstream.commands.store(Arc::new(table));
                self.commands_learned = true;
            }
            Err(LearnError::Reply(e)) => {
                warn!(node = %endpoint, error = %e, "unusable COMMAND reply; keeping the built-in table")
            }
            Err(LearnError::Request(e)) => {
                debug!(node = %endpoint, error = %e, "COMMAND failed; will retry")
            }
        }
    }
}

impl Seed {
    /// Makes `seeds` follow the `configured` list (a reload may change it), keeping what
    /// is known of the entries that stay (their addresses and DNS schedule). False when
    /// the list is unchanged.
    fn follow(seeds: &mut Vec<Seed>, configured: &[HostPort], now: Instant) -> bool {
        let same = |s: &Seed, c: &HostPort| s.host == c.host && s.port == c.port;
        let unchanged = configured.len() == seeds.len()
            && configured.iter().zip(seeds.iter()).all(|(c, s)| same(s, c));
        if unchanged {
            return false;
        }
        let mut old = std::mem::take(seeds);
        *seeds = configured
            .iter()
            .map(|c| match old.iter().position(|s| same(s, c)) {
                Some(i) => old.swap_remove(i),
                None => Seed::new(c, now),
            })
            .collect();
        true
    }

    /// Looks the name up again and schedules the next lookup from the answer's TTL. On
    /// failure the last addresses stay: a DNS hiccup must not make us forget the nodes.
    /// A changed set of addresses (not the first answer) is recorded in `events`.
    async fn resolve(&mut self, dns: &Dns, now: Instant, events: &EventLog) {
        match dns.resolve(&self.host).await {
            Ok(resolved) => {
                let mut addresses: Vec<Endpoint> = resolved
                    .addresses
                    .iter()
                    .map(|ip| Endpoint::new(&ip.to_string(), self.port).resolved_from(&self.host))
                    .collect();
                // DNS servers rotate answers; only a different set is news.
                addresses.sort();
                addresses.dedup();
                if addresses != self.addresses && !self.addresses.is_empty() {
                    let list = |a: &[Endpoint]| {
                        a.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    events.record(
                        EventKind::DnsChanged,
                        format!(
                            "{} now resolves to {} (was {})",
                            self.host,
                            list(&addresses),
                            list(&self.addresses)
                        ),
                    );
                }
                if addresses != self.addresses {
                    info!(seed = %self.host, addresses = ?addresses.iter().map(ToString::to_string).collect::<Vec<_>>(), "seed resolved to new addresses");
                }
                self.addresses = addresses;
                self.next_resolve = now + resolved.ttl.clamp(DNS_MIN_TTL, DNS_MAX_TTL);
            }
            Err(e) => {
                warn!(seed = %self.host, error = %e, "cannot resolve seed; keeping its last addresses");
                self.next_resolve = now + DNS_MIN_TTL;
            }
        }
    }

    fn new(seed: &HostPort, now: Instant) -> Self {
        let is_name = seed.ip().is_none();
        Seed {
            host: seed.host.clone(),
            port: seed.port,
            is_name,
            addresses: if is_name {
                Vec::new()
            } else {
                vec![Endpoint::new(&seed.host, seed.port)]
            },
            next_resolve: now,
        }
    }
}

/// What a node's `ROLE` answer says of it, in the page's terms; `None` for a non-data node.
fn role_detail(endpoint: &Endpoint, role: &role::NodeRole) -> Option<NodeDetail> {
    let (role, health, offset) = match role {
        role::NodeRole::Primary { offset } => ("master", "online", *offset),
        role::NodeRole::Replica {
            connected, offset, ..
        } => (
            "replica",
            if *connected { "online" } else { "link-down" },
            *offset,
        ),
        role::NodeRole::Other(_) => return None,
    };
    Some(NodeDetail {
        id: String::new(),
        endpoint: endpoint.clone(),
        ip: endpoint
            .host
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|_| endpoint.host.to_string()),
        hostname: None,
        role: role.to_owned(),
        health: health.to_owned(),
        replication_offset: Some(offset),
    })
}

/// The node connector of the data path, its replies bounded by the round's limit.
fn discovery_connector(upstream: &Upstream) -> NodeConnector {
    let mut connector = NodeConnector::clone(&upstream.connector.load());
    connector.reply_timeout = connector.reply_timeout.min(ROUND_LIMIT);
    connector
}

/// How many answers share this view's layout (a tie-breaker between equal epochs).
fn agreement(view: &NodeView, views: &[(Endpoint, NodeView)]) -> usize {
    views
        .iter()
        .filter(|(_, other)| other.topology.same_layout(&view.topology))
        .count()
}

fn log_change(old: &Topology, new: &Topology) {
    let describe = |t: &Topology| {
        t.shards()
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}={:?}", s.primary.endpoint, t.ranges_of(i)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    info!(
        generation = new.generation,
        epoch = new.epoch,
        shards = new.shards().len(),
        source = %new.source.as_ref().map(ToString::to_string).unwrap_or_default(),
        before = %describe(old),
        after = %describe(new),
        "slot map changed"
    );
}

/// Keeps retrying the first discovery until a complete map is loaded or `limit` passes,
/// so the listeners open with a usable map in the common case.
pub async fn initial_load(refresher: &mut Refresher, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        refresher.round().await;
        if refresher.upstream.topology.load().is_complete() || Instant::now() >= deadline {
            return;
        }
        sleep(Duration::from_millis(200)).await;
    }
}
