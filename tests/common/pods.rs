//! A Redis Cluster laid out like a Kubernetes StatefulSet: [`PodCluster`] of [`Pod`]s.
//!
//! Like pods, every node has its own IP and all share one port: node `i` binds only
//! `127.0.0.(11+i):PORT` (bus `PORT+10000`), announces that address
//! (`cluster-announce-ip`) and opens its outgoing bus and replication connections from it
//! (`bind-source-addr`, Redis 7), so the cluster's view of the node is that alias and nothing
//! else. The port comes from [`free_port`] (which reserves it machine-wide, below 32768 with
//! its bus port) and is also probed on every alias this fixture may use.
//!
//! Persistence is on (`appendonly yes`, `appendfsync everysec`) the way a StatefulSet with
//! volumes has it, so a node that restarts keeps its data and its `nodes.conf` (node id,
//! epochs, slots). [`PodCluster::stop_all`] shuts every node down gracefully with SIGTERM,
//! as the kubelet does (primaries first, so replicas hold every acknowledged write), and
//! [`PodCluster::start_all_at`] brings each back on a *new* alias (`127.0.0.21+i`) with its
//! old `nodes.conf`; the nodes then still believe each other at the old addresses until
//! [`PodCluster::meet_all`] re-introduces them with `CLUSTER MEET`, which makes Redis update
//! the known node ids with their new addresses.
//!
//! With [`PodOptions::hostnames`] node `i` also announces `node-i.<zone>`
//! (`cluster-announce-hostname`) and `cluster-preferred-endpoint-type hostname`, so
//! `CLUSTER SHARDS`/`SLOTS` and `MOVED` carry names, which only a DNS server knows
//! (see [`super::dns::DnsServer`]).
//!
//! As in [`super::RedisCluster`], questions about the current topology are asked of the live
//! nodes, never answered from what was set up. Every process is killed by its own PID on
//! drop; `SLOTGATE_KEEP_TEST_DIRS=1` keeps the dirs (logs, `nodes.conf`, AOF).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{
    free_port, key_slot, log_tail, process_state, redis_cli_path, redis_server_path, send_signal,
    temp_dir, wait_for,
};

/// Last octet of node 0's first address; node `i` gets `FIRST_ALIAS + i`.
pub const FIRST_ALIAS: u8 = 11;
/// Last octet of node 0's address after [`PodCluster::start_all_at`]`(MOVED_ALIAS)`.
pub const MOVED_ALIAS: u8 = 21;
/// Aliases 11..=19 and 21..=29 never overlap.
const MAX_PODS: usize = 9;
const BUS_OFFSET: u16 = 10000;
const START_TIMEOUT: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// A node shutting down gracefully waits up to `shutdown-timeout` (2 s) for its replicas.
const TERM_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(20);

/// 127.0.0.`octet`.
pub fn alias(octet: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, octet)
}

/// Shape of a [`PodCluster`].
#[derive(Clone, Debug)]
pub struct PodOptions {
    /// At least 3 (the cluster is created with `redis-cli --cluster create`).
    pub primaries: usize,
    pub replicas_per_primary: usize,
    /// `cluster-node-timeout`.
    pub node_timeout: Duration,
    /// `Some(zone)`: node `i` announces hostname `node-i.<zone>` and prefers hostname
    /// endpoints. The names must resolve (a [`super::dns::DnsServer`]) for clients only;
    /// the nodes talk to each other by IP.
    pub hostnames: Option<String>,
}

impl Default for PodOptions {
    fn default() -> Self {
        PodOptions {
            primaries: 3,
            replicas_per_primary: 1,
            node_timeout: Duration::from_millis(2000),
            hostnames: None,
        }
    }
}

/// One `redis-server` on its own loopback alias. Killed (SIGKILL) and reaped on drop.
pub struct Pod {
    /// Ordinal, as in `redis-<index>`: fixed for the life of the fixture.
    pub index: usize,
    pub port: u16,
    /// Working dir: `redis.log` (appended across restarts), `nodes.conf`, AOF.
    pub dir: PathBuf,
    ip: Ipv4Addr,
    hostname: Option<String>,
    node_timeout: Duration,
    child: Option<Child>,
    pid: u32,
    paused: AtomicBool,
}

impl Pod {
    /// The address the node binds and announces now.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.ip, self.port))
    }

    /// `ip:port`, as Redis prints it in `CLUSTER NODES` and `MOVED`.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// The announced hostname, in hostname mode.
    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// True while the process runs and is not paused.
    pub fn is_live(&self) -> bool {
        self.is_running() && !self.paused.load(Ordering::SeqCst)
    }

    /// True while the process exists (paused or not).
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !matches!(process_state(self.pid), None | Some('Z' | 'X'))
    }

    /// Starts redis-server bound to `ip` (see the module docs for its configuration).
    fn spawn(&mut self, ip: Ipv4Addr) {
        assert!(
            self.child.is_none(),
            "pod {} is already running",
            self.index
        );
        self.ip = ip;
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |k: &str, v: &str| {
            args.push(k.into());
            args.push(v.into());
        };
        let ip_s = ip.to_string();
        push("--port", &self.port.to_string());
        push("--bind", &ip_s);
        push("--bind-source-addr", &ip_s);
        push("--cluster-announce-ip", &ip_s);
        push("--protected-mode", "no");
        push("--dir", self.dir.to_str().expect("utf-8 temp dir"));
        push("--daemonize", "no");
        push("--save", "");
        push("--appendonly", "yes");
        push("--appendfsync", "everysec");
        push("--shutdown-timeout", "2");
        push("--enable-debug-command", "yes");
        push("--repl-diskless-sync-delay", "0");
        push("--cluster-enabled", "yes");
        push("--cluster-config-file", "nodes.conf");
        push(
            "--cluster-node-timeout",
            &self.node_timeout.as_millis().to_string(),
        );
        if let Some(host) = &self.hostname {
            push("--cluster-announce-hostname", host);
            push("--cluster-preferred-endpoint-type", "hostname");
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open redis.log");
        let log2 = log.try_clone().expect("clone redis.log handle");
        let child = Command::new(redis_server_path())
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", redis_server_path().display()));
        self.pid = child.id();
        self.child = Some(child);
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Waits until the node answers `INFO server` with our child's PID.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("waiting on a stopped pod");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redis-server of pod {} on {} exited early ({status}); log tail:\n{}",
                    self.index,
                    self.endpoint(),
                    log_tail(&self.log_path(), 20)
                );
            }
            let last = match self.try_query::<String>(&["INFO", "server"]) {
                Ok(info) => match info_field(&info, "process_id") {
                    Some(pid) if pid == self.pid.to_string() => return,
                    other => format!("process_id {other:?}, ours {}", self.pid),
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "pod {} on {} not ready within {READY_TIMEOUT:?} (last: {last}); log:\n{}",
                    self.index,
                    self.endpoint(),
                    log_tail(&self.log_path(), 20)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL (a crash) and reap. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Sends SIGTERM (a graceful shutdown: AOF flushed, replicas caught up) without waiting.
    fn send_term(&self) {
        if self.child.is_some() {
            send_signal(self.pid, "TERM");
        }
    }

    /// Waits for the process to exit after [`Pod::send_term`]; SIGKILL after `timeout`.
    /// Returns false if it had to be killed.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(POLL);
        }
        self.kill();
        false
    }

    /// SIGSTOP: sockets stay open, nothing is answered. Returns once the kernel says stopped.
    pub fn pause(&self) {
        assert!(self.child.is_some(), "pause() on a stopped pod");
        send_signal(self.pid, "STOP");
        self.paused.store(true, Ordering::SeqCst);
        wait_for("SIGSTOP to take effect", READY_TIMEOUT, POLL, |last| {
            *last = format!("state {:?}", process_state(self.pid));
            (process_state(self.pid) == Some('T')).then_some(())
        });
    }

    /// SIGCONT. Returns once the kernel no longer reports the process stopped.
    pub fn resume(&self) {
        assert!(self.child.is_some(), "resume() on a stopped pod");
        send_signal(self.pid, "CONT");
        wait_for("SIGCONT to take effect", READY_TIMEOUT, POLL, |last| {
            *last = format!("state {:?}", process_state(self.pid));
            (process_state(self.pid) != Some('T')).then_some(())
        });
        self.paused.store(false, Ordering::SeqCst);
    }

    fn try_conn(&self) -> Result<redis::Connection, String> {
        let client = redis::Client::open(format!("redis://{}/", self.endpoint()))
            .map_err(|e| e.to_string())?;
        let conn = client
            .get_connection_with_timeout(QUERY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(QUERY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(QUERY_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    /// One command on a fresh connection; a connection failure or error reply is `Err`.
    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        if !self.is_live() {
            return Err(format!(
                "pod {} ({}) is not live",
                self.index,
                self.endpoint()
            ));
        }
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        let mut conn = self.try_conn()?;
        cmd.query(&mut conn)
            .map_err(|e| format!("{}: {e}", self.endpoint()))
    }

    /// Like [`Pod::try_query`], panicking on failure.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_query(args)
            .unwrap_or_else(|e| panic!("{args:?} on pod {}: {e}", self.index))
    }

    /// `CLUSTER MYID`.
    pub fn node_id(&self) -> String {
        self.query(&["CLUSTER", "MYID"])
    }

    /// `cluster_state` from `CLUSTER INFO`.
    pub fn cluster_state(&self) -> Result<String, String> {
        let info: String = self.try_query(&["CLUSTER", "INFO"])?;
        info_field(&info, "cluster_state").ok_or_else(|| "no cluster_state".into())
    }

    /// This node's `CLUSTER NODES`, parsed.
    pub fn cluster_nodes(&self) -> Result<Vec<PodNodeLine>, String> {
        let text: String = self.try_query(&["CLUSTER", "NODES"])?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_node_line(l).ok_or_else(|| format!("bad CLUSTER NODES line: {l}")))
            .collect()
    }

    /// This node's own line of `CLUSTER NODES`.
    pub fn myself(&self) -> Result<PodNodeLine, String> {
        self.cluster_nodes()?
            .into_iter()
            .find(|l| l.has_flag("myself"))
            .ok_or_else(|| "no myself line".into())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "[fixture] pod {} redis-server {} (pid {}) log tail:\n{}",
                self.index,
                self.endpoint(),
                self.pid,
                log_tail(&self.log_path(), 8)
            );
        }
        // A stopped (SIGSTOP) process dies of SIGKILL too.
        self.kill();
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNodeLine {
    pub id: String,
    /// `ip:port` as announced.
    pub endpoint: String,
    pub hostname: Option<String>,
    pub flags: Vec<String>,
    pub master: Option<String>,
    pub config_epoch: u64,
    /// Owned slot ranges, inclusive; migration markers left out.
    pub slots: Vec<(u16, u16)>,
}

impl PodNodeLine {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn is_primary(&self) -> bool {
        self.has_flag("master")
    }

    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
    }
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slots>...`
fn parse_node_line(line: &str) -> Option<PodNodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let (addr, hostname) = match fields[1].split_once(',') {
        Some((a, h)) => (a, (!h.is_empty()).then(|| h.to_string())),
        None => (fields[1], None),
    };
    let endpoint = addr.split('@').next()?.to_string();
    let slots = fields[8..]
        .iter()
        .filter(|s| !s.starts_with('['))
        .map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect::<Option<Vec<(u16, u16)>>>()?;
    Some(PodNodeLine {
        id: fields[0].to_string(),
        endpoint,
        hostname,
        flags: fields[2].split(',').map(str::to_string).collect(),
        master: (fields[3] != "-").then(|| fields[3].to_string()),
        config_epoch: fields[6].parse().ok()?,
        slots,
    })
}

/// A Redis Cluster of [`Pod`]s on loopback aliases, one shared port.
pub struct PodCluster {
    /// The port every node listens on (bus: +10000).
    pub port: u16,
    /// Pods by ordinal. Declared before `tmp`: processes die before their dirs go.
    pub nodes: Vec<Pod>,
    pub options: PodOptions,
    tmp: tempfile::TempDir,
}

impl PodCluster {
    /// Starts the nodes on 127.0.0.11.., creates the cluster with `redis-cli --cluster
    /// create` and waits until every node is ok and agrees on the full slot map.
    pub fn start(options: PodOptions) -> PodCluster {
        assert!(
            options.primaries >= 3,
            "redis-cli --cluster create needs 3 primaries"
        );
        let total = options.primaries * (1 + options.replicas_per_primary);
        assert!(total <= MAX_PODS, "at most {MAX_PODS} pods");
        let tmp = temp_dir("slotgate-pods-");
        let port = pick_port(total);
        let nodes: Vec<Pod> = (0..total)
            .map(|index| {
                let dir = tmp.path().join(format!("redis-{index}"));
                std::fs::create_dir_all(&dir).expect("create a pod dir");
                Pod {
                    index,
                    port,
                    dir,
                    ip: alias(FIRST_ALIAS + index as u8),
                    hostname: options
                        .hostnames
                        .as_ref()
                        .map(|zone| format!("node-{index}.{zone}")),
                    node_timeout: options.node_timeout,
                    child: None,
                    pid: 0,
                    paused: AtomicBool::new(false),
                }
            })
            .collect();
        let mut cluster = PodCluster {
            port,
            nodes,
            options,
            tmp,
        };
        cluster.start_all_at(FIRST_ALIAS);
        cluster.create();
        cluster.wait_formed();
        cluster
    }

    fn create(&self) {
        let out = Command::new(redis_cli_path())
            .arg("--cluster")
            .arg("create")
            .args(self.nodes.iter().map(Pod::endpoint))
            .args([
                "--cluster-replicas",
                &self.options.replicas_per_primary.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::write(self.tmp.path().join("cluster-create.log"), &text);
        assert!(
            out.status.success() && !text.contains("[ERR]"),
            "redis-cli --cluster create failed ({}):\n{text}",
            out.status
        );
    }

    /// Every node ok, knows every other node, no handshake/fail flags, one topology, and
    /// every replica's link up.
    fn wait_formed(&self) {
        let total = self.nodes.len();
        wait_for("the pod cluster to form", START_TIMEOUT, POLL * 5, |last| {
            if let Err(e) = self.check_ok() {
                *last = e;
                return None;
            }
            for pod in &self.nodes {
                let lines = pod.cluster_nodes().ok()?;
                if lines.len() != total {
                    *last = format!("pod {} knows {} nodes", pod.index, lines.len());
                    return None;
                }
                let me = lines.iter().find(|l| l.has_flag("myself"))?;
                if !me.is_primary() {
                    let repl = pod.try_query::<String>(&["INFO", "replication"]).ok()?;
                    let link = info_field(&repl, "master_link_status");
                    if link.as_deref() != Some("up") {
                        *last = format!("replica pod {} link {link:?}", pod.index);
                        return None;
                    }
                }
            }
            Some(())
        });
    }

    /// Starts every stopped pod on `127.0.0.(first_alias + index)`, with its existing dir
    /// (`nodes.conf`, AOF), and waits until each answers. They are *not* re-met.
    pub fn start_all_at(&mut self, first_alias: u8) {
        assert!(
            first_alias == FIRST_ALIAS || first_alias == MOVED_ALIAS,
            "aliases are probed for {FIRST_ALIAS}.. and {MOVED_ALIAS}.. only"
        );
        for pod in &mut self.nodes {
            if pod.child.is_none() {
                pod.spawn(alias(first_alias + pod.index as u8));
            }
        }
        for pod in &mut self.nodes {
            pod.wait_ready();
        }
    }

    /// Shuts every node down gracefully with SIGTERM, as a StatefulSet scale-down or
    /// rollout does: all primaries at once first (each waits for its replicas to catch up
    /// and flushes its AOF), then the replicas. Returns once every process has exited.
    pub fn stop_all(&mut self) {
        let primary_ids: Vec<usize> = self
            .nodes
            .iter()
            .filter(|p| p.is_live())
            .filter(|p| p.myself().map(|m| m.is_primary()).unwrap_or(false))
            .map(|p| p.index)
            .collect();
        for group in [true, false] {
            let members: Vec<usize> = (0..self.nodes.len())
                .filter(|i| primary_ids.contains(i) == group)
                .collect();
            for &i in &members {
                self.nodes[i].send_term();
            }
            for &i in &members {
                let graceful = self.nodes[i].wait_exit(TERM_TIMEOUT);
                if !graceful {
                    eprintln!(
                        "[fixture] pod {i} did not exit within {TERM_TIMEOUT:?} of SIGTERM; killed"
                    );
                }
            }
        }
    }

    /// Introduces every running node to every other one at its current address with
    /// `CLUSTER MEET`: after a restart on new addresses, each node then updates the known
    /// node ids with their new addresses.
    pub fn meet_all(&self) {
        let live: Vec<&Pod> = self.nodes.iter().filter(|p| p.is_live()).collect();
        for a in &live {
            for b in &live {
                if a.index != b.index {
                    a.query::<()>(&[
                        "CLUSTER",
                        "MEET",
                        &b.ip.to_string(),
                        &b.port.to_string(),
                        &(b.port + BUS_OFFSET).to_string(),
                    ]);
                }
            }
        }
    }

    /// IPs of the pods whose process exists (what a headless Service would list; a paused
    /// pod is still listed, as Kubernetes cannot tell).
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.nodes
            .iter()
            .filter(|p| p.is_running())
            .map(|p| p.ip)
            .collect()
    }

    /// Live pods (running, not paused).
    pub fn live(&self) -> impl Iterator<Item = &Pod> {
        self.nodes.iter().filter(|p| p.is_live())
    }

    /// The pod currently at `endpoint` (`ip:port`).
    pub fn pod_at(&self, endpoint: &str) -> Option<&Pod> {
        self.nodes
            .iter()
            .find(|p| p.child.is_some() && p.endpoint() == endpoint)
    }

    /// Live pods that call themselves primary and own slots, by lowest slot.
    pub fn primaries(&self) -> Vec<&Pod> {
        let mut found: Vec<(u16, &Pod)> = self
            .live()
            .filter_map(|pod| {
                let me = pod.myself().ok()?;
                let lowest = me.slots.iter().map(|&(a, _)| a).min()?;
                me.is_primary().then_some((lowest, pod))
            })
            .collect();
        found.sort_by_key(|&(lowest, _)| lowest);
        found.into_iter().map(|(_, pod)| pod).collect()
    }

    /// Live pods replicating `primary`.
    pub fn replicas_of(&self, primary: &Pod) -> Vec<&Pod> {
        let id = primary.node_id();
        self.live()
            .filter(|pod| {
                pod.myself()
                    .is_ok_and(|me| me.master.as_deref() == Some(id.as_str()))
            })
            .collect()
    }

    /// The pod owning `slot` by the majority of the live nodes' views.
    pub fn owner_of(&self, slot: u16) -> &Pod {
        let mut votes: HashMap<String, usize> = HashMap::new();
        for pod in self.live() {
            if let Ok(lines) = pod.cluster_nodes()
                && let Some(owner) = lines.iter().find(|l| l.owns(slot))
            {
                *votes.entry(owner.endpoint.clone()).or_default() += 1;
            }
        }
        let endpoint = votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(endpoint, _)| endpoint)
            .unwrap_or_else(|| panic!("no live node knows an owner for slot {slot}"));
        self.pod_at(&endpoint)
            .unwrap_or_else(|| panic!("slot {slot} owner {endpoint} is not one of our pods"))
    }

    /// One probe of "the cluster is ok": every live node says `cluster_state:ok`, all agree
    /// on the owner (by address) of every slot, all 16384 slots are covered, and every owner
    /// is a live pod at its current address and not flagged `fail`/`fail?` by anyone.
    pub fn check_ok(&self) -> Result<(), String> {
        let live: Vec<&Pod> = self.live().collect();
        if live.is_empty() {
            return Err("no live pod".into());
        }
        let live_endpoints: Vec<String> = live.iter().map(|p| p.endpoint()).collect();
        let mut first: Option<Vec<(u16, u16, String)>> = None;
        for pod in &live {
            let state = pod.cluster_state()?;
            if state != "ok" {
                return Err(format!("pod {} cluster_state {state}", pod.index));
            }
            let lines = pod.cluster_nodes()?;
            let mut map: Vec<(u16, u16, String)> = Vec::new();
            for line in &lines {
                if line.slots.is_empty() {
                    continue;
                }
                if !live_endpoints.contains(&line.endpoint) {
                    return Err(format!(
                        "pod {} maps slots to {} (not a live pod address)",
                        pod.index, line.endpoint
                    ));
                }
                if line.has_flag("fail") || line.has_flag("fail?") {
                    return Err(format!(
                        "pod {} sees slot owner {} as {:?}",
                        pod.index, line.endpoint, line.flags
                    ));
                }
                map.extend(
                    line.slots
                        .iter()
                        .map(|&(a, b)| (a, b, line.endpoint.clone())),
                );
            }
            map.sort();
            let covered: usize = map.iter().map(|(a, b, _)| usize::from(b - a) + 1).sum();
            if covered != 16384 {
                return Err(format!("pod {} covers {covered} slots", pod.index));
            }
            match &first {
                None => first = Some(map),
                Some(f) if *f != map => {
                    return Err(format!("pod {} disagrees on the slot map", pod.index));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Polls [`PodCluster::check_ok`] every 20 ms; returns the instant it first held.
    pub fn wait_ok(&self, timeout: Duration) -> Instant {
        wait_for(
            "the pod cluster to be ok",
            timeout,
            POLL,
            |last| match self.check_ok() {
                Ok(()) => Some(Instant::now()),
                Err(e) => {
                    *last = e;
                    None
                }
            },
        )
    }

    /// Waits until every primary has its replica online (`INFO replication`: `state=online`)
    /// and every live node sees that replica as the primary's (`CLUSTER NODES`): what a
    /// manual failover needs. Started earlier, `CLUSTER FAILOVER` can time out (Redis gives
    /// it 5 s and does not retry it).
    pub fn wait_replicas_ready(&self, timeout: Duration) {
        wait_for(
            "every replica to be online and known",
            timeout,
            POLL,
            |_| {
                self.primaries()
                    .iter()
                    .all(|primary| {
                        let id = primary.node_id();
                        let online = primary
                            .try_query::<String>(&["INFO", "replication"])
                            .is_ok_and(|info| info.contains("state=online"));
                        let replicas: Vec<String> = self
                            .replicas_of(primary)
                            .iter()
                            .map(|r| r.node_id())
                            .collect();
                        online
                            && !replicas.is_empty()
                            && self.live().all(|pod| {
                                pod.cluster_nodes().is_ok_and(|lines| {
                                    replicas.iter().all(|r| {
                                        lines.iter().any(|l| {
                                            &l.id == r && l.master.as_deref() == Some(id.as_str())
                                        })
                                    })
                                })
                            })
                    })
                    .then_some(())
            },
        );
    }

    /// Planned failover: `CLUSTER FAILOVER` on `replica`; waits until it is a primary with
    /// slots and the cluster is ok. Returns the instant the cluster was ok again.
    pub fn failover(&self, replica: &Pod) -> Instant {
        replica.query::<()>(&["CLUSTER", "FAILOVER"]);
        wait_for(
            &format!("pod {} to become primary", replica.index),
            Duration::from_secs(30),
            POLL,
            |_| {
                let me = replica.myself().ok()?;
                (me.is_primary() && !me.slots.is_empty()).then_some(())
            },
        );
        self.wait_ok(Duration::from_secs(30))
    }

    /// `GET key` on the primary that owns its slot, as an integer (`None` if missing).
    pub fn get_int(&self, key: &str) -> Result<Option<i64>, String> {
        let owner = self.owner_of(key_slot(key.as_bytes()));
        let value: Option<String> = owner.try_query(&["GET", key])?;
        value
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|e| format!("{key} = {v:?} on {}: {e}", owner.endpoint()))
            })
            .transpose()
    }

    /// The cluster's temp dir (pod dirs, `cluster-create.log`).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }
}

/// A port from [`free_port`] whose port and bus port can be bound on every alias a cluster
/// of `pods` nodes may use (127.0.0.11.. and 127.0.0.21..).
fn pick_port(pods: usize) -> u16 {
    for _ in 0..100 {
        let port = free_port();
        let all_free = (0..pods as u8)
            .flat_map(|i| [alias(FIRST_ALIAS + i), alias(MOVED_ALIAS + i)])
            .all(|ip| {
                TcpListener::bind((ip, port)).is_ok()
                    && TcpListener::bind((ip, port + BUS_OFFSET)).is_ok()
            });
        if all_free {
            return port;
        }
    }
    panic!("no port free on all loopback aliases after 100 tries");
}

/// The value of `name:` in an `INFO`-style reply.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.trim_end().split_once(':')?;
        (k == name).then(|| v.to_string())
    })
}
