//! Helpers for the operability tests (`tests/ops_*.rs`): a slotgate with its admin
//! listener, a real HTTP client (ureq) for the admin endpoints, Prometheus text parsing
//! and signals.
//!
//! [`OpsProxy`] spawns the binary under test like [`super::Slotgate`] does, but always with
//! `--admin-listen` on a second free port and without forcing `--seeds`, so a test can take
//! the seeds from a config file and reload them. Its log goes to `slotgate.log` in its own
//! temp dir; on drop the process gets SIGTERM, then SIGKILL after a grace period.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::proxy::{slotgate_bin, terminate};
use super::{free_port, log_tail, send_signal, temp_dir};

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const TERM_GRACE: Duration = Duration::from_secs(3);

/// A slotgate process with an admin listener; see the module docs.
pub struct OpsProxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    child: Option<Child>,
    pid: u32,
    log_path: PathBuf,
    /// Declared last: the process is gone before its dir is removed.
    tmp: tempfile::TempDir,
}

impl OpsProxy {
    /// Starts slotgate with `--listen` and `--admin-listen` on free ports plus `args`, and
    /// waits until the client port answers PING (the listeners open after the first slot
    /// map loads, or after 5 s without one).
    pub fn start(args: &[&str]) -> OpsProxy {
        let tmp = temp_dir("slotgate-ops-");
        Self::start_in(tmp, args)
    }

    /// [`OpsProxy::start`] with `--config <dir>/slotgate.toml` holding `toml`; rewrite it
    /// with [`OpsProxy::write_config`] before a reload.
    pub fn start_with_config(toml: &str, args: &[&str]) -> OpsProxy {
        let tmp = temp_dir("slotgate-ops-");
        let path = tmp.path().join("slotgate.toml");
        std::fs::write(&path, toml).expect("write slotgate.toml");
        let path_text = path.display().to_string();
        let mut all: Vec<&str> = vec!["--config", &path_text];
        all.extend_from_slice(args);
        Self::start_in(tmp, &all)
    }

    fn start_in(tmp: tempfile::TempDir, args: &[&str]) -> OpsProxy {
        let log_path = tmp.path().join("slotgate.log");
        let port = free_port();
        let admin_port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open slotgate.log");
        let log2 = log.try_clone().expect("clone the log handle");
        let child = Command::new(slotgate_bin())
            .args(["--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", slotgate_bin().display()));
        let mut proxy = OpsProxy {
            addr,
            admin,
            pid: child.id(),
            child: Some(child),
            log_path,
            tmp,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = proxy.try_wait() {
                panic!(
                    "slotgate {args:?} exited early with {status}; log:\n{}",
                    proxy.log()
                );
            }
            if ping(addr) {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "slotgate {args:?} answered no PING within {READY_TIMEOUT:?}; log:\n{}",
                log_tail(&proxy.log_path, 40)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Overwrites the config file given to [`OpsProxy::start_with_config`].
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.tmp.path().join("slotgate.toml"), toml).expect("rewrite slotgate.toml");
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Sends `signal` ("TERM", "HUP", "INT") to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid, signal);
    }

    /// `Some(status)` once the process has exited (and is reaped).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `GET http://<admin><path>`.
    pub fn get(&self, path: &str) -> HttpReply {
        http_get(self.admin, path)
    }

    /// `POST http://<admin><path>` with an empty body.
    pub fn post(&self, path: &str) -> HttpReply {
        http_post(self.admin, path)
    }

    /// The `/metrics` exposition.
    pub fn metrics(&self) -> String {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "/metrics: {reply:?}");
        reply.body
    }

    /// Waits until `/readyz` answers `status`, returning the body.
    pub fn wait_readyz(&self, status: u16, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match try_http(self.admin, "GET", "/readyz") {
                Ok(reply) if reply.status == status => return reply.body,
                Ok(reply) => format!("{} {}", reply.status, reply.body.trim()),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "/readyz did not answer {status} within {timeout:?}; last: {last}; log tail:\n{}",
                log_tail(&self.log_path, 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OpsProxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[fixture] slotgate :{} (pid {}) log tail:\n{}",
                self.addr.port(),
                self.pid,
                log_tail(&self.log_path, 60)
            );
        }
        if let Some(child) = self.child.take() {
            terminate(child, TERM_GRACE);
        }
    }
}

/// True if a fresh connection to `addr` answers PING with `+PONG`.
pub fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// One HTTP response, body read whole.
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: String,
    pub allow: String,
    pub body: String,
}

impl HttpReply {
    /// The body parsed as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// An HTTP request through ureq, `Err` describing a transport failure.
pub fn try_http(admin: SocketAddr, method: &str, path: &str) -> Result<HttpReply, String> {
    let url = format!("http://{admin}{path}");
    let agent = agent();
    let response = match method {
        "GET" => agent.get(&url).call(),
        "HEAD" => agent.head(&url).call(),
        "POST" => agent.post(&url).send_empty(),
        "PUT" => agent.put(&url).send_empty(),
        other => panic!("unsupported method {other}"),
    };
    let mut response = response.map_err(|e| format!("{method} {url}: {e}"))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header("content-type");
    let allow = header("allow");
    let status = response.status().as_u16();
    let body = if method == "HEAD" {
        String::new()
    } else {
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the body: {e}"))?
    };
    Ok(HttpReply {
        status,
        content_type,
        allow,
        body,
    })
}

pub fn http_get(admin: SocketAddr, path: &str) -> HttpReply {
    try_http(admin, "GET", path).unwrap_or_else(|e| panic!("{e}"))
}

pub fn http_post(admin: SocketAddr, path: &str) -> HttpReply {
    try_http(admin, "POST", path).unwrap_or_else(|e| panic!("{e}"))
}

/// The value of the sample named exactly `series` (`name` or `name{labels}` as written in
/// the exposition), if present.
pub fn metric(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// The sum of every sample of metric `name` whose labels include all of `labels`.
pub fn metric_sum(exposition: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Polls `probe` every 50 ms until it returns true; panics with `what` after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !probe() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` ("TERM", "HUP", ...) to `pid`, a process this test spawned.
pub fn signal_pid(pid: u32, signal: &str) {
    send_signal(pid, signal);
}
