//! One `redis-server` child process: [`RedisNode`].
//!
//! The node is configured entirely on the command line (no config file), listens on
//! 127.0.0.1 only, keeps its files in its own dir, and writes stdout/stderr to `redis.log`
//! there. Readiness means it answered `INFO server` with *its own* `process_id`, so a
//! foreign server that grabbed the port in the meantime is never mistaken for ours.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{
    free_port, log_tail, redis_cli_path, redis_server_path, send_signal, temp_dir, wait_for,
};

/// How long a fresh redis-server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bind races with other processes are retried this many times with fresh ports.
const SPAWN_ATTEMPTS: usize = 8;
/// Control-plane queries from the fixture give up after this long (a paused node never answers).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How often pause/resume look at `/proc/<pid>/stat`.
const POLL_STATE: Duration = Duration::from_millis(2);

/// A `redis-server` child on 127.0.0.1. Killed (SIGKILL) and reaped on drop.
pub struct RedisNode {
    pub addr: SocketAddr,
    pub port: u16,
    /// The server's working dir (`--dir`): `redis.log`, `nodes.conf`.
    pub dir: PathBuf,
    /// `None` once stopped.
    child: Option<Child>,
    pid: u32,
    cluster: bool,
    /// Set by [`RedisNode::pause`]: a stopped process answers nothing, so cluster-wide
    /// queries skip it instead of hanging on it.
    paused: AtomicBool,
    /// Standalone nodes own their temp dir; cluster nodes live in the cluster's.
    _tmp: Option<tempfile::TempDir>,
}

impl RedisNode {
    /// One plain (non-cluster) redis-server on a free port, in its own temp dir.
    pub fn standalone() -> RedisNode {
        let tmp = temp_dir("slotgate-redis-");
        let base = tmp.path().to_path_buf();
        let mut node = RedisNode::spawn_fresh(&base, false);
        node._tmp = Some(tmp);
        node
    }

    /// A cluster-enabled node (not yet part of any cluster) in a subdir of `parent`.
    pub(super) fn cluster_node(parent: &Path) -> RedisNode {
        RedisNode::spawn_fresh(parent, true)
    }

    /// Picks a free port and starts a server on it; on an early exit (typically a bind race
    /// with another process) tries again with another port.
    fn spawn_fresh(parent: &Path, cluster: bool) -> RedisNode {
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let port = free_port();
            let dir = if cluster {
                parent.join(format!("node-{port}"))
            } else {
                parent.to_path_buf()
            };
            std::fs::create_dir_all(&dir).expect("create the node dir");
            let child = spawn_server(port, &dir, cluster);
            let pid = child.id();
            let mut node = RedisNode {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                port,
                dir,
                child: Some(child),
                pid,
                cluster,
                paused: AtomicBool::new(false),
                _tmp: None,
            };
            match node.wait_ready() {
                Ok(()) => return node,
                Err(why) => {
                    node.stop();
                    if cluster {
                        // A half-written nodes.conf must not leak into the next attempt.
                        let _ = std::fs::remove_dir_all(&node.dir);
                    } else {
                        let _ = std::fs::remove_file(node.log_path());
                    }
                    failures.push(format!("port {port}: {why}"));
                }
            }
        }
        panic!(
            "redis-server did not start after {SPAWN_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Waits until the server answers `INFO server` with our child's PID.
    fn wait_ready(&mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("waiting on a stopped node");
        let result = wait_serving_pid(
            &mut child,
            self.port,
            &self.log_path(),
            READY_TIMEOUT,
            || self.try_query(&["INFO", "server"]),
        );
        self.child = Some(child);
        result
    }

    /// The child's PID (still the last one after [`RedisNode::stop`]).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the server's stdout/stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// Kills the server with SIGKILL (a crash, not a shutdown) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // kill() is SIGKILL to this exact child; it fails only if the child is already
            // reaped, which wait() below covers.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Starts the server again on the same port and dir: a cluster node comes back with its
    /// `nodes.conf`, i.e. its old node id (a crash-and-restart). Stops it first if running.
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn_server(self.port, &self.dir, self.cluster);
        self.pid = child.id();
        self.child = Some(child);
        if let Err(why) = self.wait_ready() {
            self.stop();
            panic!(
                "restarting redis-server on port {} failed: {why}",
                self.port
            );
        }
    }

    /// Freezes the server with SIGSTOP: its sockets stay open but nothing is answered, like a
    /// node that hangs or is cut off by the network. Cluster helpers skip a paused node.
    ///
    /// Returns once the kernel reports the process stopped (signals are asynchronous).
    pub fn pause(&self) {
        assert!(self.child.is_some(), "pause() on a stopped node");
        send_signal(self.pid, "STOP");
        self.paused.store(true, Ordering::SeqCst);
        wait_for(
            "SIGSTOP to take effect",
            READY_TIMEOUT,
            POLL_STATE,
            |last| {
                *last = format!("state {:?}", process_state(self.pid));
                (process_state(self.pid) == Some('T')).then_some(())
            },
        );
    }

    /// Undoes [`RedisNode::pause`] with SIGCONT.
    ///
    /// Returns once the kernel no longer reports the process stopped.
    pub fn resume(&self) {
        assert!(self.child.is_some(), "resume() on a stopped node");
        send_signal(self.pid, "CONT");
        wait_for(
            "SIGCONT to take effect",
            READY_TIMEOUT,
            POLL_STATE,
            |last| {
                *last = format!("state {:?}", process_state(self.pid));
                (process_state(self.pid) != Some('T')).then_some(())
            },
        );
        self.paused.store(false, Ordering::SeqCst);
    }

    /// True while the process runs and is not paused, i.e. when it can answer.
    pub fn is_live(&self) -> bool {
        self.child.is_some() && !self.paused.load(Ordering::SeqCst) && !is_zombie(self.pid)
    }

    /// Runs `redis-cli -h 127.0.0.1 -p <port> <args...>` and returns its stdout, trimmed.
    /// redis-cli prints errors to stdout too (e.g. `ERR unknown command ...`, `MOVED 42 ...`),
    /// so a test can assert on them. Panics only if redis-cli itself fails (e.g. no server).
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new(redis_cli_path())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "redis-cli -p {} {args:?} failed ({}): {}{}",
            self.port,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new synchronous redis-rs connection (RESP2) with 3 s timeouts, for typed queries.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn()
            .unwrap_or_else(|e| panic!("connect to redis-server on port {}: {e}", self.port))
    }

    fn try_conn(&self) -> Result<redis::Connection, String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
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

    /// Runs one command on a fresh connection; a connection failure or an error reply is
    /// `Err` with a readable message.
    pub fn try_query<T: redis::FromRedisValue>(&self, args: &[&str]) -> Result<T, String> {
        let mut cmd = redis::Cmd::new();
        for arg in args {
            cmd.arg(*arg);
        }
        self.try_query_cmd(&cmd)
    }

    /// Like [`RedisNode::try_query`], for a prepared (possibly binary) command.
    pub fn try_query_cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut conn = self.try_conn()?;
        cmd.query(&mut conn)
            .map_err(|e| format!("port {}: {e}", self.port))
    }

    /// Like [`RedisNode::try_query`], panicking on failure.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_query(args)
            .unwrap_or_else(|e| panic!("{args:?} on redis-server port {}: {e}", self.port))
    }

    /// `CLUSTER MYID`.
    pub fn node_id(&self) -> String {
        self.query(&["CLUSTER", "MYID"])
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "[fixture] redis-server :{} (pid {}) log tail:\n{}",
                self.port,
                self.pid,
                log_tail(&self.log_path(), 15)
            );
        }
        self.stop();
    }
}

/// Spawns redis-server with the whole config on the command line, output to `dir/redis.log`.
fn spawn_server(port: u16, dir: &Path, cluster: bool) -> Child {
    let mut args = vec![("--port", port.to_string())];
    args.extend(base_server_args(dir, cluster));
    spawn_redis_server(dir, &args)
}

/// What every test redis-server gets besides its port(s): 127.0.0.1 only, files in `dir`, no
/// persistence, `DEBUG` enabled and, for a cluster node, `nodes.conf` and a short node
/// timeout.
pub(super) fn base_server_args(dir: &Path, cluster: bool) -> Vec<(&'static str, String)> {
    let mut args = vec![
        ("--bind", "127.0.0.1".to_string()),
        ("--dir", dir.to_str().expect("utf-8 temp dir").to_string()),
        ("--appendonly", "no".into()),
        ("--save", String::new()),
        ("--daemonize", "no".into()),
        // Tests use DEBUG SLEEP / DEBUG SET-ACTIVE-EXPIRE to provoke slow or odd nodes.
        ("--enable-debug-command", "yes".into()),
        // Replicas sync at once instead of waiting the default 5 s for more replicas to join.
        ("--repl-diskless-sync-delay", "0".into()),
    ];
    if cluster {
        args.extend([
            ("--cluster-enabled", "yes".into()),
            ("--cluster-config-file", "nodes.conf".into()),
            // Short, so failover tests finish in seconds.
            ("--cluster-node-timeout", "2000".into()),
        ]);
    }
    args
}

/// Spawns `redis-server <args>` in `dir`, stdout and stderr appended to `dir/redis.log`.
pub(super) fn spawn_redis_server(dir: &Path, args: &[(&str, String)]) -> Child {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))
        .expect("open redis.log");
    let log2 = log.try_clone().expect("clone redis.log handle");
    Command::new(redis_server_path())
        .args(args.iter().flat_map(|(k, v)| [*k, v.as_str()]))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", redis_server_path().display()))
}

/// Waits until the server `child` on `port` answers `INFO server` (asked through
/// `info_server`, however the caller reaches it) with its own `process_id`, so a foreign
/// server that grabbed the port is never mistaken for ours. `Err` with the log tail when
/// the child exits or stays silent for `timeout`; the caller then retries on another port.
pub(super) fn wait_serving_pid(
    child: &mut Child,
    port: u16,
    log_path: &Path,
    timeout: Duration,
    mut info_server: impl FnMut() -> Result<String, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let ours = child.id().to_string();
    let mut last;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server exited early ({status}); log tail:\n{}",
                log_tail(log_path, 20)
            ));
        }
        match info_server() {
            Ok(info) => match info_field(&info, "process_id") {
                Some(pid) if pid == ours => return Ok(()),
                Some(pid) => {
                    return Err(format!(
                        "port {port} is served by another redis-server (pid {pid}, ours {ours})"
                    ));
                }
                None => last = format!("INFO server without process_id: {info:?}"),
            },
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no answer within {timeout:?} (last: {last}); log tail:\n{}",
                log_tail(log_path, 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of `name:` in an `INFO`-style reply.
pub(super) fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.trim_end().split_once(':')?;
        (k == name).then(|| v.to_string())
    })
}

/// True if `pid` has exited, reaped or not.
fn is_zombie(pid: u32) -> bool {
    matches!(process_state(pid), None | Some('Z' | 'X'))
}

/// The state letter in `/proc/<pid>/stat` (`R`, `S`, `T` stopped, `Z` zombie ...), `None` if
/// there is no such process.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may contain spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}
