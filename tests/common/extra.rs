//! Helpers the core integration tests (`tests/core_*.rs`) share, on top of the fixtures.
//!
//! - [`slot_owners`]: the whole slot map, asked once of a live node, so tests can tell
//!   which primary a key lives on without one `CLUSTER NODES` per key.
//! - [`tag_for_slot`]: a hash tag whose keys all land in a chosen slot.
//! - [`redis_cli_stdin`]: `redis-cli` fed from a byte buffer (bulk loads, as an operator does).
//! - [`info_field`]: one `field:value` from an `INFO`-style text.
//! - [`SlotgateOnPort`]: slotgate on a port the test chose before starting it, for flags that
//!   must name slotgate's own port (`--announce 127.0.0.1:<its port>`), which
//!   [`super::Slotgate::start`] cannot do since it picks the port itself.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cluster::{RedisCluster, slot_owners_by};
use super::proxy::slotgate_bin;
use super::{RespConn, free_port, key_slot, log_tail, redis_cli_path, temp_dir};

/// Owner port of every slot (index = slot), as the first live node's `CLUSTER NODES` says.
/// Panics if a slot has no owner.
pub fn slot_owners(cluster: &RedisCluster) -> Vec<u16> {
    slot_owners_by(cluster.live_nodes().next().expect("a live node"))
}

/// A hash tag (without braces) whose keys `{tag}...` all hash to `slot`.
pub fn tag_for_slot(slot: u16) -> String {
    (0u64..)
        .map(|i| format!("t{i}"))
        .find(|tag| key_slot(tag.as_bytes()) == slot)
        .expect("every slot has a tag")
}

/// Runs `redis-cli -h 127.0.0.1 -p <port> <args...>` with `input` on its stdin and returns
/// its output (stdout holds the replies, errors included).
pub fn redis_cli_stdin(port: u16, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(redis_cli_path())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn redis-cli");
    let mut stdin = child.stdin.take().expect("redis-cli stdin");
    let input = input.to_vec();
    // Write from another thread: redis-cli answers while it reads, and a large input
    // would otherwise fill both pipes and deadlock.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for redis-cli");
    writer.join().expect("stdin writer");
    out
}

/// The value of `name:` in an `INFO`-style text.
pub fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.trim_end().split_once(':')?;
        (k == name).then(|| v.to_string())
    })
}

/// `args` as one RESP array of bulk strings, as clients send commands.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    super::resp::encode_command(args)
}

/// Raw reply bytes as text, for assertions and failure messages.
pub fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// The payload of a bulk string reply (`$n\r\n...\r\n`), panicking on anything else.
pub fn bulk_payload(reply: &[u8]) -> Vec<u8> {
    assert!(
        reply.starts_with(b"$") && reply.ends_with(b"\r\n"),
        "expected a bulk string, got {:?}",
        text(reply)
    );
    let header_end = reply
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("bulk header");
    let len: usize = std::str::from_utf8(&reply[1..header_end])
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("expected a non-null bulk string, got {:?}", text(reply)));
    let payload = reply[header_end + 2..reply.len() - 2].to_vec();
    assert_eq!(
        payload.len(),
        len,
        "bulk length mismatch in {:?}",
        text(reply)
    );
    payload
}

/// One field of slotgate's `INFO <section>`, read through a fresh connection.
pub fn slotgate_info(addr: SocketAddr, section: &str, field: &str) -> String {
    let mut conn = RespConn::connect(addr);
    let reply = conn.cmd_str(&["INFO", section]);
    let body = text(&reply);
    info_field(&body, field)
        .unwrap_or_else(|| panic!("no `{field}` in slotgate's INFO {section}:\n{body}"))
}

/// A slotgate process listening on a port chosen before it starts. SIGKILLed on drop.
pub struct SlotgateOnPort {
    pub addr: SocketAddr,
    pub port: u16,
    child: Child,
    log_path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SlotgateOnPort {
    /// Starts slotgate on 127.0.0.1:<free port> with the arguments `args(port)` returns
    /// (after `--listen` and `--seeds`); waits until it answers PING. Retries with another
    /// port when the process exits early (a bind race).
    pub fn start(seeds: &str, args: impl Fn(u16) -> Vec<String>) -> SlotgateOnPort {
        let tmp = temp_dir("slotgate-proxy-");
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
            let extra = args(port);
            let mut child = Command::new(slotgate_bin())
                .args(["--listen", &addr.to_string(), "--seeds", seeds])
                .args(&extra)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
                )
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn slotgate: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    failures.push(format!("port {port}: exited early with {status}"));
                    break;
                }
                if ping(addr) {
                    return SlotgateOnPort {
                        addr,
                        port,
                        child,
                        log_path,
                        _tmp: tmp,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "slotgate on port {port} {extra:?} answered no PING within 10 s; log:\n{}",
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
}

impl Drop for SlotgateOnPort {
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

/// True if a fresh connection to `addr` answers PING with `+PONG`.
fn ping(addr: SocketAddr) -> bool {
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
