//! The refresher's round in sentinel mode: ask every Sentinel, take the majority's
//! primary, confirm it with `ROLE`, serve it as one shard owning every slot.
//!
//! ```text
//! sentinels (configured: IPs or DNS names re-resolved forever; learned: SENTINEL sentinels)
//!   -> topology::sentinel::ask on each, at once (ROUND_LIMIT)
//!   -> vote: the primary most Sentinels name (a lone dissenter is logged, never followed)
//!   -> ROLE on it and on the healthy replicas the majority lists
//!   -> it answers master: the map [primary + replicas answering ROLE slave]
//!      it does not:       an empty map (commands held, then MASTERDOWN with the reason)
//!   no Sentinel answered: keep the last primary while it still answers ROLE master
//! ```
//!
//! A node that claims `master` but is not the majority's choice (an old primary restarted
//! with its old config) gets nothing: Sentinel will turn it into a replica. Learned
//! Sentinels that have not answered for [`PRUNE_AFTER`] are forgotten; configured ones
//! never are. Each known Sentinel gets an event subscription ([`super::super::sentinel`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{info, warn};

use super::{ROUND_LIMIT, Refresher, Seed, log_change};
use crate::clock::unix_ms;
use crate::connector::NodeConnector;
use crate::endpoint::{Endpoint, HostPort};
use crate::topology::Topology;
use crate::topology::discovery::NodeView;
use crate::topology::role::{self, Choice, NodeRole};
use crate::topology::sentinel::{self, SentinelReport};
use crate::upstream::observed::map_changes;
use crate::upstream::sentinel::{
    MAX_SWITCHES, ReplicaStatus, SentinelPeer, SentinelStatus, Switch, failover_fault, subscribe,
};
use crate::upstream::{NoPrimary, Upstream};

/// How long a learned Sentinel may stay unreachable before it is forgotten.
pub const PRUNE_AFTER: Duration = Duration::from_secs(300);
/// How soon another round runs while no primary is confirmed (a failover in progress).
const RETRY_SOON: Duration = Duration::from_millis(200);

/// What the Sentinel rounds keep between rounds.
#[derive(Default)]
pub(super) struct SentinelRound {
    seeds: Vec<Seed>,
    /// Learned Sentinels and when each last answered (or was learned).
    learned: HashMap<Endpoint, Instant>,
    /// What each Sentinel said last, to log a change of mind once.
    said: HashMap<Endpoint, Option<Endpoint>>,
    subscriptions: HashMap<Endpoint, AbortHandle>,
    switches: Vec<Switch>,
    confirmed_at_ms: u64,
    /// Re-resolve every Sentinel name at the next round.
    resolve_all: bool,
}

impl Drop for SentinelRound {
    fn drop(&mut self) {
        for task in self.subscriptions.values() {
            task.abort();
        }
    }
}

impl SentinelRound {
    pub(super) fn next_dns_due(&self) -> Option<Instant> {
        self.seeds
            .iter()
            .filter(|s| s.is_name)
            .map(|s| s.next_resolve)
            .min()
    }

    /// Follows the configured list (a reload may change it), keeping what is known.
    fn sync(&mut self, configured: &[HostPort]) {
        if Seed::follow(&mut self.seeds, configured, Instant::now()) {
            self.resolve_all = true;
        }
    }

    /// Every Sentinel to ask: configured addresses first, then learned ones.
    fn peers(&self) -> Vec<(Endpoint, bool)> {
        let mut list: Vec<(Endpoint, bool)> = Vec::new();
        for address in self.seeds.iter().flat_map(|s| s.addresses.iter()) {
            if !list.iter().any(|(e, _)| e == address) {
                list.push((address.clone(), true));
            }
        }
        for address in self.learned.keys() {
            if !list.iter().any(|(e, _)| e == address) {
                list.push((address.clone(), false));
            }
        }
        list
    }
}

impl Refresher {
    /// One sentinel-mode round; see the module docs. True when a new map was swapped in.
    pub(super) async fn sentinel_round(&mut self) -> bool {
        let settings = self.upstream.settings();
        let name = settings.master_name.clone().unwrap_or_default();
        self.sentinel.sync(&settings.sentinels);
        self.resolve_sentinels().await;
        let peers = self.sentinel.peers();
        let answers = self.ask_sentinels(&peers, &name).await;
        let upstream = self.upstream.clone();
        let shared = &upstream.sentinel;
        let reached = answers.iter().filter(|(_, a)| a.is_ok()).count();
        shared
            .queries_ok
            .fetch_add(reached as u64, Ordering::Relaxed);
        shared
            .queries_failed
            .fetch_add((answers.len() - reached) as u64, Ordering::Relaxed);
        self.learn_sentinels(&answers);

        let current = self.upstream.topology.load_full();
        let serving = current.shards().first().map(|s| s.primary.endpoint.clone());
        let held_from = shared.hold();
        let reference = held_from.clone().flatten().or(serving.clone());
        let winner = sentinel::vote(
            answers
                .iter()
                .filter_map(|(_, a)| a.as_ref().ok()?.primary.as_ref()),
            reference.as_ref(),
        );
        self.log_dissent(&answers, winner.as_ref());

        let unreachable = reached == 0;
        if unreachable && !shared.unreachable.load(Ordering::Relaxed) {
            warn!(
                sentinels = peers.len(),
                primary = ?serving.as_ref().map(ToString::to_string),
                "no Sentinel answered; serving the last primary confirmed by ROLE while it still answers ROLE master"
            );
            self.sentinel.resolve_all = true;
        }
        // Who gets ROLE: the majority's primary and replicas, or (no Sentinel) the map in force.
        let (primary, replicas) = match (&winner, unreachable) {
            (Some(w), _) => (Some(w.clone()), replicas_named(&answers, w)),
            (None, true) => (
                serving.clone(),
                current.endpoints().into_iter().skip(1).collect(),
            ),
            (None, false) => {
                warn!(
                    answered = reached,
                    "the Sentinels do not agree on a primary (a tie, or none knows the name); keeping the current one"
                );
                (serving.clone(), Vec::new())
            }
        };
        let mut candidates: Vec<Endpoint> = primary.iter().cloned().collect();
        candidates.extend(
            replicas
                .iter()
                .filter(|r| Some(*r) != primary.as_ref())
                .cloned(),
        );
        let views = self.gather(candidates.clone()).await;
        self.metrics.record_refresh(!views.is_empty());
        let claims: Vec<Endpoint> = views
            .iter()
            .filter(|(_, v)| matches!(v.role, Some(NodeRole::Primary { .. })))
            .map(|(e, _)| e.clone())
            .collect();
        self.upstream.set_primary_claims(claims.clone());
        for stale in claims.iter().filter(|c| Some(*c) != primary.as_ref()) {
            warn!(node = %stale, "a node answers ROLE master but the Sentinels name another primary; sending it nothing");
        }
        // Only the chosen primary may be the master; other claimants are left out.
        let chosen: Vec<(Endpoint, NodeView)> = views
            .into_iter()
            .filter(|(e, v)| {
                Some(e) == primary.as_ref() || !matches!(v.role, Some(NodeRole::Primary { .. }))
            })
            .collect();
        let confirmed = match role::choose(&chosen) {
            Choice::Primary(topology) => Some(topology),
            _ => None,
        };
        let next = match (confirmed, &held_from) {
            // A hold lasts until a round confirms a primary other than the one it began from.
            (Some(t), Some(from)) if from.as_ref() == Some(&t.shards()[0].primary.endpoint) => None,
            (Some(t), _) => Some(t),
            (None, _) => None,
        };
        let changed = match next {
            Some(topology) => {
                shared.end_hold();
                self.upstream.set_no_primary(None);
                self.sentinel.confirmed_at_ms = unix_ms();
                if !self.commands_learned {
                    let primary = topology.shards()[0].primary.endpoint.clone();
                    self.learn_commands(&primary).await;
                }
                self.swap(&current, topology)
            }
            None => {
                let fault = if held_from.is_some() {
                    failover_fault()
                } else {
                    if let Some(p) = &primary {
                        warn!(primary = %p, "the Sentinels' primary does not answer ROLE master; holding commands");
                    }
                    NoPrimary::new(Vec::new(), &candidates)
                };
                self.upstream.set_no_primary(Some(fault));
                let changed = self.swap(&current, Topology::empty());
                // A failover is under way or a node is coming back: look again soon.
                let upstream = self.upstream.clone();
                tokio::spawn(async move {
                    sleep(RETRY_SOON).await;
                    upstream.request_refresh();
                });
                changed
            }
        };
        self.update_readiness(&chosen);
        self.observe(&chosen);
        self.manage_subscriptions(&name);
        self.publish_status(&name, &peers, &answers, &chosen, unreachable);
        changed
    }

    /// Swaps `next` in when it differs from `current`, recording a primary switch.
    fn swap(&mut self, current: &Topology, mut next: Topology) -> bool {
        if next.same_layout(current) {
            return false;
        }
        // A hold that began after this round read the map must not be undone by it.
        if !next.shards().is_empty()
            && let Some(from) = self.upstream.sentinel.hold()
            && from.as_ref() == Some(&next.shards()[0].primary.endpoint)
        {
            return false;
        }
        let before = self
            .sentinel
            .switches
            .last()
            .map(|s| s.to.clone())
            .or_else(|| {
                current
                    .shards()
                    .first()
                    .map(|s| s.primary.endpoint.to_string())
            });
        if let Some(primary) = next.shards().first() {
            let to = primary.primary.endpoint.to_string();
            if before.as_ref() != Some(&to) {
                info!(from = ?before, to = %to, "sentinel: primary switched");
                self.upstream
                    .sentinel
                    .switches
                    .fetch_add(1, Ordering::Relaxed);
                self.sentinel.switches.push(Switch {
                    from: before,
                    to,
                    at_unix_ms: unix_ms(),
                });
                let excess = self.sentinel.switches.len().saturating_sub(MAX_SWITCHES);
                self.sentinel.switches.drain(..excess);
            }
        }
        next.generation = self.upstream.topology.load().generation + 1;
        log_change(current, &next);
        for (kind, message) in map_changes(current, &next) {
            self.upstream.events.record(kind, message);
        }
        self.upstream.topology.store(Arc::new(next));
        true
    }

    async fn resolve_sentinels(&mut self) {
        let now = Instant::now();
        let all = std::mem::take(&mut self.sentinel.resolve_all);
        for seed in self.sentinel.seeds.iter_mut().filter(|s| s.is_name) {
            if all || seed.next_resolve <= now {
                seed.resolve(&self.dns, now, &self.upstream.events).await;
            }
        }
    }

    /// The Sentinels' connector: the nodes' TLS and timeouts, the Sentinels' credentials.
    fn sentinel_connector(&self) -> NodeConnector {
        sentinel_connector(&self.upstream, &self.connector)
    }

    async fn ask_sentinels(
        &self,
        peers: &[(Endpoint, bool)],
        name: &str,
    ) -> Vec<(Endpoint, Result<SentinelReport, String>)> {
        let mut tasks = JoinSet::new();
        let connector = self.sentinel_connector();
        for (endpoint, _) in peers {
            let (dns, endpoint, connector) =
                (self.dns.clone(), endpoint.clone(), connector.clone());
            let name = name.to_owned();
            tasks.spawn(async move {
                let answer = sentinel::ask(&dns, &endpoint, &name, &connector).await;
                (endpoint, answer.map_err(|e| e.to_string()))
            });
        }
        let deadline = Instant::now() + ROUND_LIMIT;
        let mut answers: Vec<(Endpoint, Result<SentinelReport, String>)> = Vec::new();
        loop {
            tokio::select! {
                next = tasks.join_next() => match next {
                    None => break,
                    Some(Ok(answer)) => answers.push(answer),
                    Some(Err(_)) => {}
                },
                _ = sleep_until(deadline) => break,
            }
        }
        // Those that did not answer in time (a hung Sentinel) count as failures.
        for (endpoint, _) in peers {
            if !answers.iter().any(|(e, _)| e == endpoint) {
                answers.push((endpoint.clone(), Err("no answer in time".into())));
            }
        }
        answers
    }

    /// Adds the Sentinels the others name, refreshes the learned ones that answered and
    /// forgets those silent for [`PRUNE_AFTER`].
    fn learn_sentinels(&mut self, answers: &[(Endpoint, Result<SentinelReport, String>)]) {
        let now = Instant::now();
        let configured: Vec<Endpoint> = self
            .sentinel
            .seeds
            .iter()
            .flat_map(|s| s.addresses.iter().cloned())
            .collect();
        for (endpoint, answer) in answers {
            let Ok(report) = answer else { continue };
            if let Some(seen) = self.sentinel.learned.get_mut(endpoint) {
                *seen = now;
            }
            for other in &report.sentinels {
                if !configured.contains(other) && !self.sentinel.learned.contains_key(other) {
                    info!(sentinel = %other, via = %endpoint, "learned a Sentinel");
                    self.sentinel.learned.insert(other.clone(), now);
                }
            }
        }
        self.sentinel.learned.retain(|endpoint, seen| {
            let keep = now.duration_since(*seen) < PRUNE_AFTER;
            if !keep {
                info!(sentinel = %endpoint, "forgetting a learned Sentinel unreachable for 5 minutes");
            }
            keep
        });
    }

    /// Logs each Sentinel whose answer differs from the majority's, once per change.
    fn log_dissent(
        &mut self,
        answers: &[(Endpoint, Result<SentinelReport, String>)],
        winner: Option<&Endpoint>,
    ) {
        for (endpoint, answer) in answers {
            let Ok(report) = answer else { continue };
            let says = report.primary.clone();
            let changed = self.sentinel.said.get(endpoint) != Some(&says);
            if says.as_ref() != winner && winner.is_some() {
                self.upstream
                    .sentinel
                    .disagreements
                    .fetch_add(1, Ordering::Relaxed);
                if changed {
                    warn!(
                        sentinel = %endpoint,
                        says = ?says.as_ref().map(ToString::to_string),
                        majority = ?winner.map(ToString::to_string),
                        "a Sentinel disagrees with the majority; ignoring its answer"
                    );
                }
            }
            self.sentinel.said.insert(endpoint.clone(), says);
        }
    }

    /// One reconnecting event subscription per known Sentinel; none for forgotten ones.
    fn manage_subscriptions(&mut self, name: &str) {
        let peers: Vec<Endpoint> = self.sentinel.peers().into_iter().map(|(e, _)| e).collect();
        self.sentinel.subscriptions.retain(|endpoint, task| {
            let keep = peers.contains(endpoint);
            if !keep {
                task.abort();
            }
            keep
        });
        for endpoint in peers {
            if self.sentinel.subscriptions.contains_key(&endpoint) {
                continue;
            }
            let upstream = self.upstream.clone();
            let data = self.connector.clone();
            let connector = move || sentinel_connector(&upstream, &data);
            let task = tokio::spawn(subscribe(
                self.upstream.clone(),
                self.dns.clone(),
                endpoint.clone(),
                name.to_owned(),
                connector,
            ));
            self.sentinel
                .subscriptions
                .insert(endpoint, task.abort_handle());
        }
    }

    fn publish_status(
        &self,
        name: &str,
        peers: &[(Endpoint, bool)],
        answers: &[(Endpoint, Result<SentinelReport, String>)],
        views: &[(Endpoint, NodeView)],
        unreachable: bool,
    ) {
        let now = unix_ms();
        let sentinels = peers
            .iter()
            .map(|(endpoint, configured)| {
                let answer = answers.iter().find(|(e, _)| e == endpoint).map(|(_, a)| a);
                let previous = self.upstream.sentinel.status().and_then(|s| {
                    s.sentinels
                        .iter()
                        .find(|p| p.address == endpoint.to_string())
                        .map(|p| p.last_answer_unix_ms)
                });
                SentinelPeer {
                    address: endpoint.to_string(),
                    configured: *configured,
                    reachable: matches!(answer, Some(Ok(_))),
                    says: match answer {
                        Some(Ok(r)) => r.primary.as_ref().map(ToString::to_string),
                        _ => None,
                    },
                    error: match answer {
                        Some(Err(e)) => Some(e.clone()),
                        _ => None,
                    },
                    last_answer_unix_ms: if matches!(answer, Some(Ok(_))) {
                        now
                    } else {
                        previous.unwrap_or(0)
                    },
                }
            })
            .collect();
        let topology = self.upstream.topology.load();
        let primary = topology
            .shards()
            .first()
            .map(|s| s.primary.endpoint.clone());
        let listed: Vec<sentinel::ReplicaEntry> = answers
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok())
            .filter(|r| r.primary == primary && primary.is_some())
            .flat_map(|r| r.replicas.iter().cloned())
            .fold(Vec::new(), |mut all, r| {
                if !all
                    .iter()
                    .any(|a: &sentinel::ReplicaEntry| a.endpoint == r.endpoint)
                {
                    all.push(r);
                }
                all
            });
        let replicas = listed
            .iter()
            .map(|r| {
                let role = views
                    .iter()
                    .find(|(e, _)| *e == r.endpoint)
                    .and_then(|(_, v)| v.role.clone());
                let (state, offset) = match role {
                    Some(NodeRole::Replica {
                        connected: true,
                        offset,
                        ..
                    }) => ("online".to_owned(), offset),
                    Some(NodeRole::Primary { offset }) => ("claims master".to_owned(), offset),
                    _ => (r.flags.clone(), r.offset),
                };
                ReplicaStatus {
                    address: r.endpoint.to_string(),
                    state,
                    offset,
                }
            })
            .collect();
        self.upstream.sentinel.set_status(SentinelStatus {
            master_name: name.to_owned(),
            sentinels,
            primary: primary.map(|p| p.to_string()),
            primary_confirmed_unix_ms: self.sentinel.confirmed_at_ms,
            replicas,
            switches: self.sentinel.switches.clone(),
            sentinels_unreachable: unreachable,
            holding: self.upstream.sentinel.hold().is_some(),
        });
    }
}

/// The healthy replicas of `primary` as the Sentinels naming it list them.
fn replicas_named(
    answers: &[(Endpoint, Result<SentinelReport, String>)],
    primary: &Endpoint,
) -> Vec<Endpoint> {
    let mut replicas = Vec::new();
    for (_, answer) in answers {
        let Ok(report) = answer else { continue };
        if report.primary.as_ref() != Some(primary) {
            continue;
        }
        for replica in report.replicas.iter().filter(|r| r.is_healthy()) {
            if !replicas.contains(&replica.endpoint) && &replica.endpoint != primary {
                replicas.push(replica.endpoint.clone());
            }
        }
    }
    replicas
}

fn sentinel_connector(upstream: &Upstream, data: &NodeConnector) -> NodeConnector {
    let mut connector = data.clone();
    connector.auth = upstream.settings().sentinel_auth.clone();
    connector
}
