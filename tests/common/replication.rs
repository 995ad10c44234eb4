//! One primary with replicas and no Sentinel, like a "redis-master" Deployment plus a
//! "redis-replica" Deployment: [`ReplicaSet`] of [`ReplNode`]s.
//!
//! Like pods, node `i` has its own loopback address, `127.0.0.(41+i)`, and all share one
//! port (from [`free_port`], probed on every alias). Node 0 starts as the primary and the
//! others with `--replicaof` it; [`ReplicaSet::start`] returns once every replica reports
//! `master_link_status:up`. Roles change only through Redis itself (`REPLICAOF`,
//! `FAILOVER`), and questions about them are asked of the live nodes (`ROLE`), never
//! answered from how the set was started. Every process is killed by its own PID on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use super::node::{base_server_args, spawn_redis_server};
use super::{free_port, log_tail, temp_dir, wait_for};

/// Last octet of node 0's address; node `i` gets `FIRST_ALIAS + i` (the pod fixture uses
/// 11..=29).
pub const FIRST_ALIAS: u8 = 41;
const MAX_NODES: usize = 8;
const START_ATTEMPTS: usize = 6;
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// A replica's first full sync on a loaded machine; a liveness bound only.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// One redis-server of a [`ReplicaSet`].
pub struct ReplNode {
    pub ip: Ipv4Addr,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Option<Child>,
    pid: u32,
}

/// A primary and its replicas on their own loopback addresses; see the module docs.
pub struct ReplicaSet {
    pub port: u16,
    pub nodes: Vec<ReplNode>,
    /// Declared last: the processes die before their dirs are removed.
    _tmp: Option<tempfile::TempDir>,
}

impl ReplicaSet {
    /// Node 0 as primary and `replicas` replicas of it, all synced.
    pub fn start(replicas: usize) -> ReplicaSet {
        let count = replicas + 1;
        assert!(count <= MAX_NODES);
        let tmp = temp_dir("slotgate-repl-");
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let ips: Vec<Ipv4Addr> = (0..count)
                .map(|i| Ipv4Addr::new(127, 0, 0, FIRST_ALIAS + i as u8))
                .collect();
            if let Some(ip) = ips
                .iter()
                .find(|ip| TcpListener::bind((**ip, port)).is_err())
            {
                failures.push(format!("{ip}:{port} is taken"));
                continue;
            }
            let mut set = ReplicaSet {
                port,
                nodes: Vec::new(),
                _tmp: None,
            };
            let mut ok = true;
            for (i, ip) in ips.iter().enumerate() {
                let dir = tmp.path().join(format!("node-{i}-{port}"));
                std::fs::create_dir_all(&dir).expect("create the node dir");
                let primary = (i > 0).then(|| SocketAddr::from((ips[0], port)));
                let node = ReplNode::spawn(*ip, port, &dir, primary);
                match node.wait_ready() {
                    Ok(()) => set.nodes.push(node),
                    Err(why) => {
                        failures.push(format!("{ip}:{port}: {why}"));
                        set.nodes.push(node);
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                set._tmp = Some(tmp);
                for i in 1..count {
                    set.wait_link_up(i);
                }
                return set;
            }
        }
        panic!(
            "the replica set did not start after {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// `host:port` of the nodes in `order`, comma separated: a `--seeds` value.
    pub fn seeds(&self, order: &[usize]) -> String {
        order
            .iter()
            .map(|&i| self.nodes[i].addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What node `i` says it is: `master` or `slave` (first field of `ROLE`).
    pub fn role(&self, i: usize) -> String {
        let reply: Vec<redis::Value> = self.nodes[i].query(&["ROLE"]);
        match reply.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("ROLE of node {i}: {other:?}"),
        }
    }

    /// Waits until replica `i` has a live link to its primary.
    pub fn wait_link_up(&self, i: usize) {
        let node = &self.nodes[i];
        wait_for(
            &format!("replica {} to sync", node.addr),
            SYNC_TIMEOUT,
            Duration::from_millis(50),
            |last| {
                let info: String = node.try_query(&["INFO", "replication"]).ok()?;
                *last = info.clone();
                info.contains("master_link_status:up").then_some(())
            },
        );
    }

    /// Makes node `i` a replica of node `of` and waits until its link is up.
    pub fn make_replica(&self, i: usize, of: usize) {
        let primary = &self.nodes[of];
        let _: String =
            self.nodes[i].query(&["REPLICAOF", &primary.ip.to_string(), &self.port.to_string()]);
        self.wait_link_up(i);
    }
}

impl ReplNode {
    fn spawn(ip: Ipv4Addr, port: u16, dir: &Path, primary: Option<SocketAddr>) -> ReplNode {
        let mut args = vec![("--port", port.to_string())];
        args.extend(
            base_server_args(dir, false)
                .into_iter()
                .filter(|(k, _)| *k != "--bind"),
        );
        args.push(("--bind", ip.to_string()));
        // The primary lists (and FAILOVER TO finds) each replica under its own alias.
        args.push(("--replica-announce-ip", ip.to_string()));
        if let Some(primary) = primary {
            args.push((
                "--replicaof",
                format!("{} {}", primary.ip(), primary.port()),
            ));
        }
        let child = spawn_redis_server(dir, &args);
        ReplNode {
            ip,
            addr: SocketAddr::from((ip, port)),
            dir: dir.to_path_buf(),
            pid: child.id(),
            child: Some(child),
        }
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(info) = self.try_query::<String>(&["INFO", "server"])
                && info.contains(&format!("process_id:{}\r", self.pid))
            {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "not serving after {READY_TIMEOUT:?}; log:\n{}",
                    log_tail(&self.dir.join("redis.log"), 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// SIGKILLs the node (a crashed pod) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr)).expect("client");
        let conn = client
            .get_connection_with_timeout(QUERY_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr));
        conn.set_read_timeout(Some(QUERY_TIMEOUT)).expect("timeout");
        conn
    }

    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let client =
            redis::Client::open(format!("redis://{}/", self.addr)).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(QUERY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(QUERY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn).map_err(|e| e.to_string())
    }

    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_query(args)
            .unwrap_or_else(|e| panic!("{} {args:?}: {e}", self.addr))
    }
}

impl Drop for ReplNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
