//! Shared fixtures for slotgate's integration tests.
//!
//! Every integration test file does `mod common;` and gets real processes to talk to:
//!
//! - [`RedisNode`]: one `redis-server` child on 127.0.0.1, on a free port, in its own temp dir.
//! - [`RedisCluster`]: N primaries with R replicas each, created with
//!   `redis-cli --cluster create` and waited on until every node agrees on the slot map.
//! - [`Slotgate`]: the slotgate binary under test, in front of some seeds, logging to a file.
//! - [`RespConn`]: a raw blocking RESP client that returns reply bytes exactly as sent on the
//!   wire, with `redis-protocol` (our test oracle) finding the reply boundaries.
//! - [`replication::ReplicaSet`]: a primary with replicas (`replicaof`) on their own
//!   loopback addresses, for the standalone mode (`tests/mode_standalone.rs`).
//! - [`reads`]: `INFO commandstats` deltas per node, `/topology` read flags, a SIGSTOP guard
//!   and the scenarios shared by the read-from-replicas tests (`tests/read_replicas*.rs`).
//! - [`free_port`]: a port (and its cluster bus port, +10000) no other test process holds.
//! - [`tls`]: an in-process test CA, a TLS-only AUTH-protected Redis Cluster, slotgate with a
//!   TLS listener, `redis-cli --tls` and a rustls client, for `tests/security_tls.rs`.
//!
//! Data flow: test -> fixture spawns processes (stdout/stderr to log files in a temp dir)
//! -> the test talks to them over loopback -> `Drop` kills every child by its own PID and
//! reaps it, then removes the temp dir. Set `SLOTGATE_KEEP_TEST_DIRS=1` to keep the dirs
//! (logs, `nodes.conf`) for a post-mortem; when a test panics, the fixtures print the tail of
//! their logs to stderr, which the test runner shows next to the failure.
//!
//! Nothing here uses fixed ports, `pkill`, or addresses outside 127.0.0.0/8, so any number
//! of test processes (nextest runs one per test) can share a machine.

// Each test binary compiles this module and uses only part of it; without this every
// binary would warn about the helpers it does not call.
#![allow(dead_code, unused_imports)]
// The fixtures are plain blocking code on the test thread, never inside an async runtime,
// so the house ban on `std::time::Instant` / `std::sync::Mutex` (which protects async code
// from blocking and from unpausable time) does not apply here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod cluster;
mod node;
mod ports;
mod proxy;
mod resp;

pub mod commands;
pub mod dns;
pub mod extra;
pub mod failures;
pub mod load;
pub mod named;
pub mod ops;
pub mod pods;
pub mod reads;
pub mod replication;
pub mod security;
pub mod sentinel;
pub mod tls;
pub mod topology;

pub use cluster::{NodeLine, RedisCluster, SLOTS, cluster_nodes};
pub use node::{RedisNode, process_state};
pub use ports::free_port;
pub use proxy::{Slotgate, slotgate_bin};
pub use resp::{RespConn, encode_command, frame_len, read_frame};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to get the Redis binaries, printed whenever one is missing: a missing server must
/// fail the run, never skip a test silently.
const INSTALL_HINT: &str = "install them with `sudo apt-get install -y redis-server redis-tools` \
     (Debian/Ubuntu), or run `scripts/test.sh`, which installs everything the tests need";

/// Path of `redis-server`: `$REDIS_SERVER` if set, else the first match on `PATH`, else the
/// usual Debian locations. Panics with install instructions when there is none.
pub fn redis_server_path() -> PathBuf {
    find_binary("redis-server", "REDIS_SERVER")
}

/// Path of `redis-cli` (package `redis-tools` on Debian), found like [`redis_server_path`].
pub fn redis_cli_path() -> PathBuf {
    find_binary("redis-cli", "REDIS_CLI")
}

fn find_binary(name: &str, env_override: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "${env_override} points to {}, which is not a file",
            path.display()
        );
        return path;
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let fallbacks = [PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")];
    std::env::split_paths(&path_var)
        .chain(fallbacks)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "`{name}` was not found on PATH ({}). The integration tests need real Redis \
                 servers: {INSTALL_HINT}. (Or point ${env_override} at the binary.)",
                path_var.to_string_lossy()
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True when the user asked to keep test temp dirs (`SLOTGATE_KEEP_TEST_DIRS=1`).
fn keep_dirs() -> bool {
    std::env::var_os("SLOTGATE_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A fresh temp dir named after its purpose; kept on disk if [`keep_dirs`] says so.
fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .disable_cleanup(keep_dirs())
        .tempdir()
        .expect("create a temp dir for test processes");
    if keep_dirs() {
        eprintln!("[fixture] keeping {}", dir.path().display());
    }
    dir
}

/// The last `lines` lines of a log file, or a note saying why there are none.
fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Polls `probe` every `every` until it returns `Some`, or panics after `timeout` with
/// `what` and the last failure description `probe` gave through `last`.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut(&mut String) -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Some(value) = probe(&mut last) {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last observation: {last}");
        }
        std::thread::sleep(every);
    }
}

/// Sends `signal` (a name like `STOP`) to `pid` with the `kill` command. Only ever called with
/// the PID of a child this fixture spawned; using the command keeps us free of `libc`.
fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run `kill`");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// The hash slot of `key` as Redis Cluster computes it: CRC16/XMODEM of the key (or of the
/// first non-empty `{hash tag}`), mod 16384. Lets tests pick keys for a slot or a node.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for_test(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, Duration::from_millis(50), |_| {
        condition().then_some(())
    });
}
