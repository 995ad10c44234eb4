//! Keeps the shared slot map fresh.
//!
//! Runs on the main runtime. It wakes on a timer (`topology-refresh-interval`) or when a
//! worker asks ([`ProxyState::request_refresh`], after a `MOVED` or a connection failure),
//! never more often than `topology-refresh-min-interval`. Each round asks the known nodes
//! and then the seeds for their map, keeps the first complete one (or the most complete, if
//! no node has a full map and it beats the one in force) and swaps it in when it differs.
//! Once a node answers, the command table is learned from its `COMMAND` reply.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::discovery;
use super::{Endpoint, Topology};
use crate::commands::CommandTable;
use crate::control::{self, ControlTimeouts};
use crate::state::ProxyState;

/// The refresher's view of where to look.
pub struct Refresher {
    state: Arc<ProxyState>,
    seeds: Vec<Endpoint>,
    limits: ControlTimeouts,
    commands_learned: bool,
}

impl Refresher {
    pub fn new(state: Arc<ProxyState>) -> Self {
        let config = &state.config;
        let seeds = config
            .seeds
            .iter()
            .map(|s| Endpoint::new(&s.host, s.port))
            .collect();
        let limits = ControlTimeouts {
            connect: config.backend_connect_timeout,
            reply: config.backend_reply_timeout,
        };
        Self {
            state,
            seeds,
            limits,
            commands_learned: false,
        }
    }

    /// Refreshes until `shutdown` fires.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let interval = self.state.config.topology_refresh_interval;
        let floor = self.state.config.topology_refresh_min_interval;
        let mut last = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sleep(interval) => {}
                _ = self.state.refresh.notified() => {}
            }
            sleep_until(last + floor).await;
            last = Instant::now();
            self.refresh_once().await;
        }
    }

    /// One discovery round. Returns true when a new map was swapped in.
    pub async fn refresh_once(&mut self) -> bool {
        let current = self.state.topology.load_full();
        let mut best: Option<Topology> = None;
        for endpoint in self.candidates(&current) {
            match discovery::fetch(&endpoint, self.limits).await {
                Ok(topo) if topo.is_complete() => {
                    best = Some(topo);
                    break;
                }
                Ok(topo) => {
                    debug!(node = %endpoint, covered = topo.covered_slots(), "partial slot map");
                    if best
                        .as_ref()
                        .is_none_or(|b| topo.covered_slots() > b.covered_slots())
                    {
                        best = Some(topo);
                    }
                }
                Err(e) => debug!(node = %endpoint, error = %e, "discovery failed"),
            }
        }
        let Some(mut topo) = best else {
            warn!(
                seeds = %self.seeds.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                "no node answered CLUSTER SHARDS/SLOTS; keeping the current slot map"
            );
            return false;
        };
        if !self.commands_learned {
            if let Some(source) = topo.source.clone() {
                self.learn_commands(&source).await;
            }
        }
        if topo.same_layout(&current) {
            return false;
        }
        if !topo.is_complete() && topo.covered_slots() <= current.covered_slots() {
            warn!(
                covered = topo.covered_slots(),
                "only partial slot maps were offered; keeping the current one"
            );
            return false;
        }
        topo.generation = current.generation + 1;
        log_change(&current, &topo);
        self.state.topology.store(Arc::new(topo));
        true
    }

    /// Known primaries, then known replicas, then the seeds; each once.
    fn candidates(&self, current: &Topology) -> Vec<Endpoint> {
        let mut list = current.endpoints();
        for seed in &self.seeds {
            if !list.contains(seed) {
                list.push(seed.clone());
            }
        }
        list
    }

    async fn learn_commands(&mut self, endpoint: &Endpoint) {
        match control::request(endpoint, &[b"COMMAND"], self.limits).await {
            Ok(reply) => match CommandTable::from_command_reply(&reply) {
                Ok(table) => {
                    info!(node = %endpoint, commands = table.len(), "learned the command table");
                    self.state.commands.store(Arc::new(table));
                    self.commands_learned = true;
                }
                Err(e) => {
                    warn!(node = %endpoint, error = %e, "unusable COMMAND reply; keeping the built-in table")
                }
            },
            Err(e) => debug!(node = %endpoint, error = %e, "COMMAND failed; will retry"),
        }
    }
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
        shards = new.shards().len(),
        covered = new.covered_slots(),
        source = %new.source.as_ref().map(ToString::to_string).unwrap_or_default(),
        before = %describe(old),
        after = %describe(new),
        "slot map changed"
    );
}

/// Keeps retrying the first discovery until a map is loaded or `limit` passes, so the
/// listeners open with a usable map in the common case.
pub async fn initial_load(refresher: &mut Refresher, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !refresher.refresh_once().await && Instant::now() < deadline {
        if refresher.state.topology.load().is_complete() {
            return;
        }
        sleep(Duration::from_millis(200)).await;
    }
}
