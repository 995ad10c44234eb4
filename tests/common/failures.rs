//! Fixtures for the failure scenarios of `tests/topology_failures.rs`: [`FailEnv`] (a 3x1
//! [`RedisCluster`] on 127.0.0.1 with slotgate seeded with every node), observable
//! conditions to wait on instead of sleeping ([`wait_blocked`], [`wait_subscribed`],
//! [`FailEnv::wait_map_current`]) and a primary restarted on the far side of a partition
//! ([`PartitionedNode`]).
//!
//! Data flow: the test -> [`FailEnv::start`] (cluster formed, slotgate serving) -> the test
//! drives clients through slotgate ([`Client`] of `super::load`, with explicit timeouts) and
//! breaks the cluster with `CLUSTER FAILOVER`, SIGKILL, SIGSTOP, `CLUSTER SETSLOT` or
//! `DEBUG RELOAD` -> it waits on what the nodes report (`CLIENT LIST`, `CLUSTER NODES`,
//! `INFO`) and audits keys on the cluster itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::load::{Client, Reply, info_proxy_field};
use super::node::{base_server_args, spawn_redis_server, wait_serving_pid};
use super::{RedisCluster, RedisNode, Slotgate, free_port, key_slot, wait_for};

/// Polling period of the waits below: cheap queries on a 2-core box.
const POLL: Duration = Duration::from_millis(20);

/// A 3-primary, 1-replica-each cluster and slotgate in front of it.
pub struct FailEnv {
    /// Declared first: slotgate stops before the cluster.
    pub proxy: Slotgate,
    pub cluster: RedisCluster,
}

impl FailEnv {
    /// Starts the cluster and slotgate (`--log-level debug` plus `extra_args`) and waits
    /// until slotgate answers for every shard.
    pub fn start(extra_args: &[&str]) -> FailEnv {
        let cluster = RedisCluster::start(3, 1);
        let mut args = vec!["--log-level", "debug"];
        args.extend_from_slice(extra_args);
        let proxy = Slotgate::start(&cluster.seeds(), &args);
        let env = FailEnv { proxy, cluster };
        for primary in env.cluster.primaries() {
            let key = env.key_on(primary, "warmup");
            wait_for(
                &format!("slotgate to serve the shard of port {}", primary.port),
                Duration::from_secs(20),
                Duration::from_millis(100),
                |last| match env.call(&["SET", &key, "1"]) {
                    Ok(Reply::Status(s)) if s == "OK" => Some(()),
                    other => {
                        *last = format!("{other:?}");
                        None
                    }
                },
            );
        }
        env
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }

    /// One command through slotgate on a fresh connection (15 s read timeout).
    pub fn call(&self, args: &[&str]) -> Result<Reply, String> {
        Client::connect(self.addr(), Duration::from_secs(15))?.call(args)
    }

    /// A client of slotgate whose reads give up after `timeout`.
    pub fn client(&self, timeout: Duration) -> Client {
        Client::connect(self.addr(), timeout).expect("connect to slotgate")
    }

    /// `{prefix<n>}`, the first such hash tag whose slot `node` owns now.
    pub fn key_on(&self, node: &RedisNode, prefix: &str) -> String {
        let owned = self.cluster.primaries();
        assert!(
            owned.iter().any(|p| p.port == node.port),
            "port {} is no primary",
            node.port
        );
        (0u64..)
            .map(|i| format!("{{{prefix}{i}}}"))
            .find(|k| self.cluster.node_for_slot(key_slot(k.as_bytes())).port == node.port)
            .expect("some tag hashes to every primary")
    }

    /// The primary serving `key` now, and its first replica.
    pub fn shard_of(&self, key: &str) -> (&RedisNode, &RedisNode) {
        let primary = self.cluster.node_for_slot(key_slot(key.as_bytes()));
        let replica = self.cluster.replicas_of(primary)[0];
        (primary, replica)
    }

    /// SIGKILLs the node on `port` and waits until the cluster has failed it over and is
    /// ok again (node timeout 2 s: a few seconds; 30 s allowed for a loaded box).
    /// Returns how long the cluster took.
    pub fn kill_and_wait_failover(&mut self, port: u16) -> Duration {
        let index = self.cluster.node_index(port);
        let t0 = Instant::now();
        self.cluster.nodes[index].stop();
        self.cluster.wait_ok(Duration::from_secs(30));
        t0.elapsed()
    }

    /// Restarts the stopped node on `port` from its `nodes.conf` (no data: the fixture
    /// does not persist) and waits until it has rejoined as a replica with its link up.
    pub fn restart_as_replica(&mut self, port: u16) {
        let index = self.cluster.node_index(port);
        self.cluster.nodes[index].restart();
        let node = &self.cluster.nodes[index];
        wait_for(
            &format!("port {port} to rejoin as a replica"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            |last| {
                let info: String = node.try_query(&["INFO", "replication"]).ok()?;
                *last = info.replace("\r\n", " ");
                (info_field(&info, "role").as_deref() == Some("slave")
                    && info_field(&info, "master_link_status").as_deref() == Some("up"))
                .then_some(())
            },
        );
        self.cluster.wait_ok(Duration::from_secs(30));
    }

    /// Waits (20 s: a refresh round is at most 5 s away) until slotgate's map in force
    /// carries the newest `cluster_current_epoch` any live node reports, i.e. slotgate
    /// has taken in the last failover. Returns that epoch.
    pub fn wait_map_current(&self) -> u64 {
        wait_for(
            "slotgate's slot map to reach the cluster's current epoch",
            Duration::from_secs(20),
            POLL,
            |last| {
                let newest = self
                    .cluster
                    .live_nodes()
                    .filter_map(|n| n.try_query::<String>(&["CLUSTER", "INFO"]).ok())
                    .filter_map(|info| info_field(&info, "cluster_current_epoch"))
                    .filter_map(|e| e.parse::<u64>().ok())
                    .max()?;
                let ours = info_proxy_field(self.addr(), "slot_map_epoch")
                    .ok()
                    .flatten()
                    .and_then(|e| e.parse::<u64>().ok());
                *last = format!("cluster epoch {newest}, slotgate's {ours:?}");
                (ours == Some(newest)).then_some(newest)
            },
        )
    }

    /// `GET key` as an integer, from the primary that serves it (not through slotgate).
    pub fn get_int(&self, key: &str) -> Result<Option<i64>, String> {
        let node = self.cluster.node_for_slot(key_slot(key.as_bytes()));
        let value: Option<String> = node.try_query(&["GET", key])?;
        value
            .map(|v| v.parse().map_err(|e| format!("GET {key} = {v:?}: {e}")))
            .transpose()
    }

    /// slotgate's WARN/ERROR lines and lines containing `needles`, the last 40.
    pub fn log_excerpt(&self, needles: &[&str]) -> String {
        super::load::log_excerpt(&self.proxy.log(), needles, 40)
    }
}

/// `CLIENT LIST` of `node`, one map of `field=value` per client.
pub fn client_list(node: &RedisNode) -> Result<Vec<HashMap<String, String>>, String> {
    let text: String = node.try_query(&["CLIENT", "LIST"])?;
    Ok(text
        .lines()
        .map(|line| {
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect())
}

/// Waits until `node` has `count` clients blocked (`flags` has `b`) in `command`
/// (lower case, as `CLIENT LIST` prints it): the command reached the node and waits.
pub fn wait_blocked(node: &RedisNode, command: &str, count: usize) {
    wait_for(
        &format!(
            "{count} client(s) blocked in {command} on port {}",
            node.port
        ),
        Duration::from_secs(20),
        POLL,
        |last| {
            let clients = client_list(node).map_err(|e| *last = e).ok()?;
            let blocked = clients
                .iter()
                .filter(|c| {
                    c.get("cmd").is_some_and(|c| c == command)
                        && c.get("flags").is_some_and(|f| f.contains('b'))
                })
                .count();
            *last = format!("{blocked} blocked");
            (blocked >= count).then_some(())
        },
    )
}

/// The live node among `nodes` where some client has `sub` channel and `psub` pattern
/// subscriptions (slotgate's global subscription connection), waiting up to 20 s.
pub fn wait_subscribed<'a>(
    nodes: impl Iterator<Item = &'a RedisNode> + Clone,
    sub: u32,
    psub: u32,
) -> &'a RedisNode {
    wait_for(
        &format!("a subscription connection with sub={sub} psub={psub}"),
        Duration::from_secs(20),
        POLL,
        |last| {
            nodes.clone().filter(|n| n.is_live()).find(|node| {
                let Ok(clients) = client_list(node) else {
                    return false;
                };
                clients.iter().any(|c| {
                    let field = |k: &str| c.get(k).and_then(|v| v.parse::<u32>().ok());
                    *last = format!("port {}: {c:?}", node.port);
                    field("sub") == Some(sub) && field("psub") == Some(psub)
                })
            })
        },
    )
}

/// `calls` of `cmdstat_<command>` in an `INFO commandstats` reply (0 when never called).
pub fn commandstat_calls(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A field of an `INFO` reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    super::node::info_field(info, name)
}

/// A cluster node restarted from its own `nodes.conf` on the far side of a partition: its
/// bus listens on a port the other nodes do not know and its `nodes.conf` points it at
/// closed bus ports, so no cluster message passes either way. It keeps the slot map it
/// had when it went down (its own slots, its old epochs) and answers clients, which is
/// what a primary that was cut off, failed over and came back looks like to slotgate.
///
/// Loopback has no firewall a test may touch; changing the bus ports is the partition.
/// Killed (SIGKILL) on drop.
pub struct PartitionedNode {
    pub port: u16,
    child: Option<Child>,
    addr: SocketAddr,
}

impl PartitionedNode {
    /// Starts redis-server in `dir` (a stopped node's dir, with its `nodes.conf`) on `port`
    /// with `cluster-node-timeout` `node_timeout`. Rewrites the bus port of every other
    /// node in `nodes.conf` to a closed one first; the original is kept as
    /// `nodes.conf.before-partition` for [`PartitionedNode::heal`].
    pub fn start(dir: &Path, port: u16, node_timeout: Duration) -> PartitionedNode {
        let conf = dir.join("nodes.conf");
        let original = std::fs::read_to_string(&conf).expect("read nodes.conf");
        std::fs::write(dir.join("nodes.conf.before-partition"), &original)
            .expect("save nodes.conf");
        // A reserved port nothing listens on: connections to it are refused at once.
        let closed_bus = free_port();
        let rewritten: Vec<String> = original
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                if fields.len() < 3 || fields[2].contains("myself") {
                    return line.to_string();
                }
                let Some((addr, rest)) = fields[1].split_once('@') else {
                    return line.to_string();
                };
                let tail = rest.find(',').map_or("", |i| &rest[i..]);
                let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
                fields[1] = format!("{addr}@{closed_bus}{tail}");
                fields.join(" ")
            })
            .collect();
        std::fs::write(&conf, rewritten.join("\n") + "\n").expect("write nodes.conf");
        let own_bus = free_port();
        let mut args = vec![("--port", port.to_string())];
        args.extend(base_server_args(dir, true));
        args.retain(|(k, _)| *k != "--cluster-node-timeout");
        args.push((
            "--cluster-node-timeout",
            node_timeout.as_millis().to_string(),
        ));
        args.push(("--cluster-port", own_bus.to_string()));
        let mut child = spawn_redis_server(dir, &args);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let node = PartitionedNode {
            port,
            child: None,
            addr,
        };
        let ready = wait_serving_pid(
            &mut child,
            port,
            &dir.join("redis.log"),
            Duration::from_secs(10),
            || node.try_query(&["INFO", "server"]),
        );
        if let Err(e) = ready {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the partitioned node on port {port} did not start: {e}");
        }
        PartitionedNode {
            child: Some(child),
            ..node
        }
    }

    /// One command on a fresh connection (3 s timeouts).
    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let client =
            redis::Client::open(format!("redis://{}/", self.addr)).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
            .map_err(|e| format!("port {}: {e}", self.port))
    }

    /// `calls` of `cmdstat_<command>` on this node.
    pub fn commandstat_calls(&self, command: &str) -> Result<u64, String> {
        let info: String = self.try_query(&["INFO", "commandstats"])?;
        Ok(commandstat_calls(&info, command))
    }

    /// Kills the partitioned process and puts the saved `nodes.conf` back (with the real
    /// bus ports), so the node can be restarted normally and rejoin.
    pub fn heal(mut self, dir: &Path) {
        self.kill();
        let saved = dir.join("nodes.conf.before-partition");
        std::fs::rename(&saved, dir.join("nodes.conf")).expect("restore nodes.conf");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PartitionedNode {
    fn drop(&mut self) {
        self.kill();
    }
}
