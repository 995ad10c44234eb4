//! Redis data pods known only by name, for the "Redis pods rescheduled" Sentinel test:
//! [`PodNames`] (one name table for everyone) and [`NamedNode`] (a `redis-server` that
//! can move to another loopback address under the same name).
//!
//! redis-server and Sentinel resolve names with the system resolver (getaddrinfo:
//! `/etc/hosts`, then `/etc/resolv.conf`), slotgate with its own (`--dns-server`, our
//! dnsmasq). So every Redis process here runs in its own mount namespace with a
//! test-owned hosts file bind-mounted over `/etc/hosts`
//! (`unshare -m sh -c 'mount --bind HOSTS /etc/hosts && exec redis-server ...'`; no
//! network namespace, so nothing else changes). The bind mount is private to that process
//! and vanishes with it. [`PodNames::set`] moves a name in both tables at once: the hosts
//! file is rewritten in place (truncate and write, never a rename, so the bind-mounted
//! inode is the one that changes) and dnsmasq is updated and asked until it answers.
//!
//! `unshare` (util-linux) and the right to mount (root, or CAP_SYS_ADMIN) are required;
//! [`PodNames::start`] checks both and panics with a clear message otherwise: the test
//! must fail, never skip. Every child is killed by its own PID on drop.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::dns::DnsServer;
use super::node::info_field;
use super::{log_tail, redis_server_path, send_signal, temp_dir, wait_for};

const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A graceful stop waits for the replicas (`shutdown-timeout`, 10 s by default).
const TERM_TIMEOUT: Duration = Duration::from_secs(20);

/// What to install when the namespace trick cannot work.
const UNSHARE_HINT: &str = "this test runs each redis-server and Sentinel in its own mount \
     namespace (`unshare -m`, from util-linux) with a test hosts file bind-mounted over \
     /etc/hosts; it needs `unshare` on PATH and root (or CAP_SYS_ADMIN). Install util-linux \
     (`apt-get install util-linux`, or run scripts/test.sh) and run as root";

/// The names of the data pods, in a hosts file (for Redis and Sentinel) and in dnsmasq
/// (for slotgate), always changed together.
pub struct PodNames {
    pub dns: DnsServer,
    hosts: PathBuf,
    entries: BTreeMap<String, Ipv4Addr>,
    _tmp: tempfile::TempDir,
}

impl PodNames {
    /// Starts dnsmasq and an empty hosts file, and checks that a process can see that file
    /// as its `/etc/hosts`.
    pub fn start() -> PodNames {
        let tmp = temp_dir("slotgate-names-");
        let hosts = tmp.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n# slotgate-test-hosts\n")
            .expect("write the hosts file");
        let probe = Command::new("unshare")
            .arg("-m")
            .arg("sh")
            .arg("-c")
            .arg("mount --bind \"$0\" /etc/hosts && grep -q slotgate-test-hosts /etc/hosts")
            .arg(&hosts)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `unshare`: {e}; {UNSHARE_HINT}"));
        assert!(
            probe.status.success(),
            "`unshare -m` + `mount --bind` over /etc/hosts failed ({}): {}; {UNSHARE_HINT}",
            probe.status,
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        PodNames {
            dns: DnsServer::start(),
            hosts,
            entries: BTreeMap::new(),
            _tmp: tmp,
        }
    }

    pub fn hosts_path(&self) -> &Path {
        &self.hosts
    }

    /// Makes `name` resolve to `ip` for Redis, Sentinel and slotgate. Returns once dnsmasq
    /// answers so (the hosts file is read by getaddrinfo at every lookup).
    pub fn set(&mut self, name: &str, ip: Ipv4Addr) {
        self.entries.insert(name.to_string(), ip);
        let mut text = String::from("127.0.0.1 localhost\n# slotgate-test-hosts\n");
        for (name, ip) in &self.entries {
            text.push_str(&format!("{ip} {name}\n"));
        }
        // In place: the processes see this inode through their bind mount, and a rename
        // would leave them on the old one.
        std::fs::write(&self.hosts, text).expect("rewrite the hosts file in place");
        self.dns.set(name, &[ip]);
    }

    pub fn ip_of(&self, name: &str) -> Option<Ipv4Addr> {
        self.entries.get(name).copied()
    }
}

/// Spawns `redis-server args...` in its own mount namespace, seeing `hosts` as
/// `/etc/hosts`. `unshare` without `--fork` and the shell's `exec` keep one PID, so the
/// child's PID is redis-server's (its `INFO server` `process_id`).
pub(super) fn spawn_with_hosts(dir: &Path, hosts: &Path, args: &[&str]) -> Child {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))
        .expect("open redis.log");
    let log2 = log.try_clone().expect("clone redis.log handle");
    Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg("-c")
        .arg("mount --bind \"$0\" /etc/hosts && exec \"$@\"")
        .arg(hosts)
        .arg(redis_server_path())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn redis-server under unshare: {e}; {UNSHARE_HINT}"))
}

/// A data pod: a name, a port, and whichever loopback address it runs on now. No
/// persistence (an emptyDir pod): a restarted node syncs everything from its primary.
pub struct NamedNode {
    pub name: String,
    pub port: u16,
    pub ip: Ipv4Addr,
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl NamedNode {
    /// Starts `name` on `ip:port` (the caller has pointed `name` at `ip` and made sure the
    /// port is free there), a replica of `primary` (`name:port`) when given.
    pub fn start(
        names: &PodNames,
        name: &str,
        ip: Ipv4Addr,
        port: u16,
        primary: Option<&str>,
    ) -> NamedNode {
        let tmp = temp_dir("slotgate-named-node-");
        let dir = tmp.path().to_path_buf();
        let mut conf = format!(
            "port {port}\nbind {ip}\ndir {}\nsave \"\"\nappendonly no\n\
             replica-announce-ip {name}\nprotected-mode no\n",
            dir.display()
        );
        if let Some(primary) = primary {
            let (host, primary_port) = primary.rsplit_once(':').expect("name:port");
            conf.push_str(&format!("replicaof {host} {primary_port}\n"));
        }
        let conf_path = dir.join("redis.conf");
        std::fs::write(&conf_path, conf).expect("write redis.conf");
        let child = spawn_with_hosts(
            &dir,
            names.hosts_path(),
            &[conf_path.to_str().expect("utf-8 path")],
        );
        let pid = child.id();
        let node = NamedNode {
            name: name.to_string(),
            port,
            ip,
            child: Some(child),
            pid,
            dir,
            _tmp: tmp,
        };
        wait_for(
            &format!("{name} on {ip}:{port} to answer"),
            START_TIMEOUT,
            Duration::from_millis(20),
            |last| match node.try_query::<String>(&["INFO", "server"]) {
                Ok(info) if info_field(&info, "process_id") == Some(pid.to_string()) => Some(()),
                Ok(_) => {
                    *last = "another process answers".into();
                    None
                }
                Err(e) => {
                    *last = format!("{e}; log:\n{}", node.log());
                    None
                }
            },
        );
        node
    }

    /// `name:port`, as Sentinel and slotgate name it.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.name, self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    pub fn log(&self) -> String {
        log_tail(&self.dir.join("redis.log"), 30)
    }

    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let client =
            redis::Client::open(format!("redis://{}/", self.addr())).map_err(|e| e.to_string())?;
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
            .map_err(|e| format!("{}: {e}", self.endpoint()))
    }

    /// Waits until this replica's link to its primary is up (a rollout waits for the
    /// pod to be ready before taking the next one).
    pub fn wait_synced(&self, timeout: Duration) {
        wait_for(
            &format!("{} to sync with its primary", self.name),
            timeout,
            Duration::from_millis(50),
            |last| {
                let info: String = self.try_query(&["INFO", "replication"]).ok()?;
                *last = info.clone();
                (info_field(&info, "master_link_status").as_deref() == Some("up")).then_some(())
            },
        );
    }

    /// Stops it as the kubelet does (SIGTERM) and reaps it; a primary first waits for its
    /// replicas to catch up.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(self.pid, "TERM");
            wait_for(
                &format!("{} to exit after SIGTERM", self.name),
                TERM_TIMEOUT,
                Duration::from_millis(20),
                |_| child.try_wait().ok().flatten(),
            );
        }
    }
}

impl Drop for NamedNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
