//! A Redis Sentinel group for sentinel-mode tests: [`SentinelGroup`].
//!
//! One primary and N replicas (plain [`RedisNode`]s on 127.0.0.1, the replicas
//! `REPLICAOF` the primary) watched by M real Sentinels (`redis-server sentinel.conf
//! --sentinel`) with `down-after-milliseconds 1000` and a short `failover-timeout`, so a
//! failover takes a few seconds. [`SentinelGroup::start`] returns once every replica is in
//! sync and every Sentinel knows every replica and every other Sentinel (they learn each
//! other through hello messages, which a failover's leader election needs).
//!
//! Data flow: the test drives the group (SENTINEL FAILOVER, SIGKILL, SIGSTOP) and watches
//! what the Sentinels say ([`SentinelGroup::agreed_primary`]); slotgate is pointed at
//! [`SentinelGroup::sentinel_list`]. Every child is killed by its own PID on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use super::named::spawn_with_hosts;
use super::node::{info_field, spawn_redis_server};
use super::{RedisNode, free_port, log_tail, send_signal, temp_dir, wait_for};

/// The monitored primary's name.
pub const MASTER_NAME: &str = "mymaster";
/// How long the group may take to form (replicas in sync, Sentinels aware of each other):
/// hello messages go out every 2 s, so a loaded box needs a generous bound.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// One Sentinel process.
pub struct SentinelProc {
    pub addr: SocketAddr,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    pid: u32,
    _tmp: tempfile::TempDir,
}

impl SentinelProc {
    /// Starts a Sentinel monitoring `primary` under `name` with quorum `quorum`; `extra`
    /// lines are appended to its config (e.g. `sentinel resolve-hostnames yes`).
    pub fn start(primary: &str, name: &str, quorum: usize, extra: &[&str]) -> SentinelProc {
        SentinelProc::start_on(
            Ipv4Addr::LOCALHOST,
            free_port(),
            primary,
            name,
            quorum,
            extra,
        )
    }

    /// [`SentinelProc::start`] on loopback alias `ip` and `port` (a rescheduled pod: the
    /// same port on a new address; the caller made sure `ip:port` is free).
    pub fn start_on(
        ip: Ipv4Addr,
        port: u16,
        primary: &str,
        name: &str,
        quorum: usize,
        extra: &[&str],
    ) -> SentinelProc {
        SentinelProc::launch(ip, port, primary, name, quorum, extra, None)
    }

    /// [`SentinelProc::start_on`] in its own mount namespace seeing `hosts` as
    /// `/etc/hosts` (see [`super::named`]), resolving and announcing hostnames.
    pub fn start_with_hosts(
        hosts: &Path,
        port: u16,
        primary: &str,
        name: &str,
        quorum: usize,
    ) -> SentinelProc {
        SentinelProc::launch(
            Ipv4Addr::LOCALHOST,
            port,
            primary,
            name,
            quorum,
            &[
                "sentinel resolve-hostnames yes",
                "sentinel announce-hostnames yes",
            ],
            Some(hosts),
        )
    }

    fn launch(
        ip: Ipv4Addr,
        port: u16,
        primary: &str,
        name: &str,
        quorum: usize,
        extra: &[&str],
        hosts: Option<&Path>,
    ) -> SentinelProc {
        let tmp = temp_dir("slotgate-sentinel-");
        let dir = tmp.path().to_path_buf();
        let (host, primary_port) = primary.rsplit_once(':').expect("host:port");
        let mut conf = format!(
            "port {port}\nbind {ip}\ndir {}\n\
             sentinel monitor {name} {host} {primary_port} {quorum}\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 4000\n\
             sentinel parallel-syncs {name} 2\n",
            dir.display()
        );
        if ip != Ipv4Addr::LOCALHOST {
            // Hellos would otherwise carry the source address of the link to the primary
            // (127.0.0.1), and Sentinels sharing a port would look like one.
            conf.push_str(&format!("sentinel announce-ip {ip}\n"));
        }
        for line in extra {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = dir.join("sentinel.conf");
        std::fs::write(&conf_path, conf).expect("write sentinel.conf");
        let conf_arg = conf_path.to_str().expect("utf-8 path");
        let child = match hosts {
            Some(hosts) => spawn_with_hosts(&dir, hosts, &[conf_arg, "--sentinel"]),
            None => spawn_redis_server(&dir, &[(conf_arg, "--sentinel".into())]),
        };
        let pid = child.id();
        let sentinel = SentinelProc {
            addr: SocketAddr::from((ip, port)),
            port,
            dir,
            child: Some(child),
            pid,
            _tmp: tmp,
        };
        wait_for(
            "a Sentinel to answer",
            Duration::from_secs(10),
            Duration::from_millis(20),
            |last| match sentinel.try_query::<String>(&["INFO", "server"]) {
                Ok(info) if info_field(&info, "process_id") == Some(pid.to_string()) => Some(()),
                Ok(_) => {
                    *last = "another process answers".into();
                    None
                }
                Err(e) => {
                    *last = e;
                    None
                }
            },
        );
        sentinel
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log(&self) -> String {
        log_tail(&self.dir.join("redis.log"), 40)
    }

    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let client =
            redis::Client::open(format!("redis://{}/", self.addr)).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(QUERY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(QUERY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
            .map_err(|e| format!("sentinel {}: {e}", self.port))
    }

    /// `SENTINEL get-master-addr-by-name`, as `host:port`.
    pub fn master_addr(&self, name: &str) -> Option<String> {
        let reply: Option<(String, String)> = self
            .try_query(&["SENTINEL", "get-master-addr-by-name", name])
            .ok()?;
        reply.map(|(host, port)| format!("{host}:{port}"))
    }

    /// Kills it (SIGKILL): a pod gone for good.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it with SIGSTOP (a hung Sentinel).
    pub fn pause(&self) {
        send_signal(self.pid, "STOP");
    }

    pub fn resume(&self) {
        send_signal(self.pid, "CONT");
    }
}

impl Drop for SentinelProc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(self.pid, "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A primary, its replicas and the Sentinels watching them; see the module docs.
pub struct SentinelGroup {
    /// Every data node; which one is the primary changes with failovers.
    pub nodes: Vec<RedisNode>,
    pub sentinels: Vec<SentinelProc>,
}

impl SentinelGroup {
    /// `replicas` replicas of one primary, watched by `sentinels` Sentinels (quorum: a
    /// majority of them).
    pub fn start(replicas: usize, sentinels: usize) -> SentinelGroup {
        let nodes: Vec<RedisNode> = (0..=replicas).map(|_| RedisNode::standalone()).collect();
        let primary = format!("127.0.0.1:{}", nodes[0].port);
        for replica in &nodes[1..] {
            replica.query::<String>(&["REPLICAOF", "127.0.0.1", &nodes[0].port.to_string()]);
        }
        wait_for(
            "every replica to sync",
            FORM_TIMEOUT,
            Duration::from_millis(50),
            |last| {
                let info: String = nodes[0].try_query(&["INFO", "replication"]).ok()?;
                *last = info.clone();
                let online = info.matches("state=online").count();
                (online == replicas).then_some(())
            },
        );
        let quorum = sentinels / 2 + 1;
        let sentinels: Vec<SentinelProc> = (0..sentinels)
            .map(|_| SentinelProc::start(&primary, MASTER_NAME, quorum, &[]))
            .collect();
        let group = SentinelGroup { nodes, sentinels };
        group.wait_formed(replicas);
        group
    }

    /// Waits until every Sentinel lists `replicas` replicas and every other Sentinel.
    pub fn wait_formed(&self, replicas: usize) {
        let others = self.sentinels.len().saturating_sub(1);
        wait_for(
            "every Sentinel to know every replica and every other Sentinel",
            FORM_TIMEOUT,
            Duration::from_millis(100),
            |last| {
                for s in &self.sentinels {
                    let known: Vec<redis::Value> =
                        s.try_query(&["SENTINEL", "sentinels", MASTER_NAME]).ok()?;
                    let reps: Vec<redis::Value> =
                        s.try_query(&["SENTINEL", "replicas", MASTER_NAME]).ok()?;
                    *last = format!(
                        "sentinel {}: {} sentinels, {} replicas",
                        s.port,
                        known.len(),
                        reps.len()
                    );
                    if known.len() < others || reps.len() < replicas {
                        return None;
                    }
                }
                Some(())
            },
        );
    }

    /// `host:port,host:port,...` of every Sentinel, for `--sentinels`.
    pub fn sentinel_list(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| s.addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The primary every reachable Sentinel names, if they all agree.
    pub fn agreed_primary(&self) -> Option<String> {
        let answers: Vec<Option<String>> = self
            .sentinels
            .iter()
            .map(|s| s.master_addr(MASTER_NAME))
            .collect();
        let first = answers.first()?.clone()?;
        answers
            .iter()
            .all(|a| a.as_ref() == Some(&first))
            .then_some(first)
    }

    /// The data node at `host:port`.
    pub fn node(&self, addr: &str) -> &RedisNode {
        self.nodes
            .iter()
            .find(|n| format!("127.0.0.1:{}", n.port) == addr)
            .unwrap_or_else(|| panic!("no data node at {addr}"))
    }

    pub fn node_mut(&mut self, addr: &str) -> &mut RedisNode {
        self.nodes
            .iter_mut()
            .find(|n| format!("127.0.0.1:{}", n.port) == addr)
            .unwrap_or_else(|| panic!("no data node at {addr}"))
    }

    /// Waits until every Sentinel names a primary other than `old`; returns it.
    pub fn wait_new_primary(&self, old: &str, timeout: Duration) -> String {
        wait_for(
            "the Sentinels to agree on a new primary",
            timeout,
            Duration::from_millis(10),
            |last| {
                let agreed = self.agreed_primary();
                *last = format!("{agreed:?}");
                agreed.filter(|p| p != old)
            },
        )
    }
}

/// `INCR` calls a node has served since it started (`INFO commandstats`).
pub fn incr_calls(node: &RedisNode) -> u64 {
    let info: String = node.query(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_incr:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
