//! Fixtures for the security tests (`tests/security_*.rs`).
//!
//! - [`SecureSlotgate`]: slotgate started with a TOML config file written into its temp dir
//!   (users, passwords, switches) plus extra flags. Ready means the port answers `PING` with
//!   `+PONG` or `-NOAUTH`: with `requirepass` set, a PING before AUTH is refused, so the
//!   plain [`super::Slotgate`] fixture, which waits for `+PONG`, cannot start it.
//! - [`secret_file`]: a file holding a secret, as a mounted Kubernetes Secret would.
//! - [`sha256_hex`]: the `#<hash>` form of a password, computed by `sha256sum` (so the
//!   tests do not trust slotgate's own hashing).
//! - [`require_password_on_nodes`]: turns on `requirepass` on every node of a running
//!   cluster, for backend-credential tests.
//!
//! Data flow: the test writes config -> the binary reads it -> the test talks RESP to the
//! port ([`super::RespConn`]) -> on drop the process is killed by its own PID and the temp
//! dir (config, secrets, log) removed.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::RedisCluster;
use super::proxy::slotgate_bin;
use super::{free_port, log_tail, temp_dir};

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A slotgate process started from a config file; SIGKILLed on drop.
pub struct SecureSlotgate {
    pub addr: SocketAddr,
    pub port: u16,
    child: Child,
    log_path: PathBuf,
    tmp: tempfile::TempDir,
}

impl SecureSlotgate {
    /// Writes `toml` to `slotgate.toml` in a fresh temp dir and starts slotgate with
    /// `--listen 127.0.0.1:<free port> --seeds <seeds> --config <file>` and `extra_args`.
    /// `files` are written next to it first (name, content), so the config can name them
    /// as `{dir}/name`: every `{dir}` in `toml` and `extra_args` becomes the temp dir.
    pub fn start(
        seeds: &str,
        toml: &str,
        files: &[(&str, &str)],
        extra_args: &[&str],
    ) -> SecureSlotgate {
        let tmp = temp_dir("slotgate-secure-");
        let dir = tmp.path().display().to_string();
        for (name, content) in files {
            std::fs::write(tmp.path().join(name), content).expect("write a fixture file");
        }
        let config_path = tmp.path().join("slotgate.toml");
        std::fs::write(&config_path, toml.replace("{dir}", &dir)).expect("write slotgate.toml");
        let extra: Vec<String> = extra_args
            .iter()
            .map(|a| a.replace("{dir}", &dir))
            .collect();
        let log_path = tmp.path().join("slotgate.log");
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("open slotgate.log");
            let log2 = log.try_clone().expect("clone log handle");
            let mut child = Command::new(slotgate_bin())
                .args(["--listen", &addr.to_string(), "--seeds", seeds])
                .arg("--config")
                .arg(&config_path)
                .args(&extra)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
                )
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn slotgate: {e}"));
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = log_tail(&log_path, 40);
                    if !log.contains("Address already in use") && !log.contains("AddrInUse") {
                        panic!("slotgate {extra:?} exited with {status}; log:\n{log}");
                    }
                    failures.push(format!("port {port}: exited early with {status}"));
                    break;
                }
                if answers_ping(addr) {
                    return SecureSlotgate {
                        addr,
                        port,
                        child,
                        log_path,
                        tmp,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "slotgate on port {port} answered no PING within {READY_TIMEOUT:?}; \
                         log:\n{}",
                        log_tail(&log_path, 40)
                    );
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!(
            "slotgate did not start: {failures:?}\nlog:\n{}",
            log_tail(&log_path, 40)
        );
    }

    /// Everything slotgate has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The temp dir holding the config, the secret files and the log.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SecureSlotgate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[fixture] slotgate :{} log tail:\n{}",
                self.port,
                log_tail(&self.log_path, 60)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True if a fresh connection to `addr` answers PING with `+PONG` or `-NOAUTH ...`.
fn answers_ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH")
}

/// Runs the slotgate binary with `args` (no `--listen`), expecting it to refuse its
/// configuration: returns (exit code, stdout + stderr).
pub fn run_expecting_failure(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(slotgate_bin())
        .args(args)
        .env_remove("SLOTGATE_REQUIREPASS")
        .env_remove("SLOTGATE_USERS")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run slotgate: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// Writes `content` to `dir/name` and returns the path.
pub fn secret_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write a secret file");
    path
}

/// SHA-256 of `password` in lowercase hex, from the system's `sha256sum`.
pub fn sha256_hex(password: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let hex = text.split_whitespace().next().unwrap().to_owned();
    assert_eq!(hex.len(), 64, "sha256sum printed {text:?}");
    hex
}

/// `CONFIG SET requirepass <password>` on every live node: from then on the nodes answer
/// NOAUTH to connections that do not authenticate (the cluster bus is unaffected). Call it
/// after the cluster has formed; the fixture's own helpers cannot talk to the nodes anymore.
pub fn require_password_on_nodes(cluster: &RedisCluster, password: &str) {
    for node in cluster.live_nodes() {
        let reply = node.cmd(&["CONFIG", "SET", "requirepass", password]);
        assert_eq!(
            reply.trim(),
            "OK",
            "CONFIG SET requirepass on {}",
            node.port
        );
    }
}
