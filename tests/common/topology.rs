//! The setting of every topology scenario: [`TopologyEnv`] = a dnsmasq ([`DnsServer`]), a
//! pod-style cluster ([`PodCluster`]) and slotgate seeded *only* with the headless name.
//!
//! Data flow: the test -> [`PodCluster`] (nodes on 127.0.0.11.., one port) -> the headless
//! name [`HEADLESS`] gets one A record per running pod in the [`DnsServer`] (and, in
//! hostname mode, `node-i.test.local` one each) -> slotgate starts with
//! `--seeds redis-headless.test.local:<port> --dns-server 127.0.0.1:<dns port>
//! --log-level debug` and the test's extra flags -> [`TopologyEnv::start`] returns once every
//! load key answers `GET` through slotgate. Keys are picked two per shard from the slot map
//! at start, named after the scenario.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::dns::DnsServer;
use super::load::{Audit, LoadReport, Reply, call_once, log_excerpt, record_figure};
use super::pods::{Pod, PodCluster, PodOptions};
use super::{Slotgate, key_slot};

/// The headless Service name every scenario seeds slotgate with.
pub const HEADLESS: &str = "redis-headless.test.local";
/// Load keys per shard.
const KEYS_PER_SHARD: usize = 2;
/// slotgate must serve every shard within this long of starting.
const SERVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Topology scenarios measure sub-second timings on a 2-core box: within one test binary
/// they run one at a time. Take this lock first in every scenario.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// DNS + cluster + slotgate, dropped in reverse order (slotgate first).
pub struct TopologyEnv {
    pub name: &'static str,
    pub proxy: Slotgate,
    pub cluster: PodCluster,
    pub dns: DnsServer,
    /// Load keys, [`KEYS_PER_SHARD`] per shard, ordered by shard.
    pub keys: Vec<String>,
}

impl TopologyEnv {
    /// Starts everything (see the module docs). `extra_args` go to slotgate.
    pub fn start(name: &'static str, options: PodOptions, extra_args: &[&str]) -> TopologyEnv {
        let dns = DnsServer::start();
        let cluster = PodCluster::start(options);
        dns.set(HEADLESS, &cluster.ips());
        for pod in &cluster.nodes {
            if let Some(host) = pod.hostname() {
                dns.set(host, &[pod.ip()]);
            }
        }
        let seeds = format!("{HEADLESS}:{}", cluster.port);
        let dns_arg = dns.server_arg();
        let mut args = vec!["--dns-server", dns_arg.as_str(), "--log-level", "debug"];
        args.extend_from_slice(extra_args);
        let proxy = Slotgate::start(&seeds, &args);
        let keys = keys_per_shard(&cluster, name, KEYS_PER_SHARD);
        let env = TopologyEnv {
            name,
            proxy,
            cluster,
            dns,
            keys,
        };
        if let Err(e) = env.wait_serving(SERVE_TIMEOUT) {
            panic!(
                "[{name}] slotgate seeded with {seeds} (DNS {dns_arg}) does not serve every \
                 shard within {SERVE_TIMEOUT:?}: {e}\nslotgate WARN/ERROR lines:\n{}",
                env.log_excerpt(&[]),
            );
        }
        env
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }

    /// Points the headless name at the pods running now.
    pub fn sync_dns(&self) {
        self.dns.set(HEADLESS, &self.cluster.ips());
    }

    /// Waits until `GET` of every load key succeeds through slotgate.
    pub fn wait_serving(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let failing: Vec<String> = self
                .keys
                .iter()
                .filter_map(|key| match call_once(self.addr(), &["GET", key]) {
                    Ok(Reply::Bulk(_)) => None,
                    Ok(other) => Some(format!("GET {key}: {other:?}")),
                    Err(e) => Some(format!("GET {key}: {e}")),
                })
                .collect();
            if failing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failing.join("; "));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The load keys whose slot `pod` owns now.
    pub fn keys_of(&self, pod: &Pod) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| self.cluster.owner_of(key_slot(k.as_bytes())).index == pod.index)
            .cloned()
            .collect()
    }

    /// Waits for the cluster to be ok, then audits `report` against the cluster itself.
    pub fn audit(&self, report: &LoadReport) -> Audit {
        self.cluster.wait_ok(Duration::from_secs(30));
        report.audit(|key| self.cluster.get_int(key))
    }

    /// slotgate's WARN/ERROR lines (and lines with `needles`), the last 40.
    pub fn log_excerpt(&self, needles: &[&str]) -> String {
        log_excerpt(&self.proxy.log(), needles, 40)
    }
}

/// `per_shard` keys named `<name>:<n>` for every shard, by the slot map at start.
fn keys_per_shard(cluster: &PodCluster, name: &str, per_shard: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for primary in cluster.primaries() {
        let me = primary.myself().expect("CLUSTER NODES of a primary");
        let mut found = 0;
        for n in 0.. {
            if found == per_shard {
                break;
            }
            let key = format!("{name}:{n}");
            if me.owns(key_slot(key.as_bytes())) {
                keys.push(key);
                found += 1;
            }
        }
    }
    keys
}

/// Milliseconds, rounded, for the figures the scenarios record.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round()
}

/// Signed milliseconds from `from` to `to`.
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        ms(to - from)
    } else {
        -ms(from - to)
    }
}

/// Audits the load against the cluster, records the write figures and asserts that no
/// write was lost or applied twice: shared by every scenario.
pub fn audit_and_record(env: &TopologyEnv, scenario: &str, report: &LoadReport) {
    let audit = env.audit(report);
    record_figure(
        scenario,
        "acknowledged_writes",
        report.acks() as f64,
        "writes",
    );
    record_figure(scenario, "writes_lost", audit.lost() as f64, "writes");
    record_figure(
        scenario,
        "writes_applied_beyond_acks_and_unknowns",
        audit.extra() as f64,
        "writes",
    );
    let unknown = audit.unknown_keys();
    record_figure(
        scenario,
        "keys_with_unknown_outcome_errors",
        unknown.len() as f64,
        "keys",
    );
    for line in &unknown {
        println!("  unknown outcome: {line}");
    }
    audit.assert_clean(scenario);
}
