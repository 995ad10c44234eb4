//! Hostile and malformed client input, through real sockets, against slotgate in front of a
//! real 3-primary Redis Cluster (issue 8, items 6 and 7).
//!
//! Every case must end in a clean error and/or a clean close of that connection only: the
//! process never panics (its log never says "panicked") and stays up, and a well-behaved
//! client connected throughout keeps getting correct answers, checked after each case and,
//! by a background [`Observer`], continuously (its worst latency per case is printed, and
//! bounded, so a case that stalls the event loop fails). Cases that could make a proxy
//! buffer or allocate without bound measure slotgate's RSS and peak RSS (`VmRSS`, `VmHWM`
//! in `/proc/<pid>/status`).
//!
//! - [`malformed_requests_get_clean_errors_and_never_disturb_other_clients`]: 64 MiB lines
//!   with no CRLF (predixy buffers them whole), the 12 bytes `*999999999\r\n` (aster aborts
//!   allocating 40 GB), huge, negative and non-canonical lengths, declared-but-unsent
//!   payloads, unterminated arrays, nested arrays in requests, binary keys with `\0` and
//!   `\r\n`, error-reply injection, random garbage, a slowloris trickle. One worker thread,
//!   so a case that blocks the event loop blocks the observer too.
//! - [`pipelined_cross_slot_mset_is_split_and_every_reply_arrives`]: thousands of pipelined
//!   cross-slot MSET + MGET (redis-cluster-proxy hangs, then segfaults).
//! - [`maxclients_refuses_the_51st_client_cleanly`], [`idle_timeout_closes_idle_clients_even_mid_request`],
//!   [`a_client_pipelining_sets_without_reading_gets_backpressure`] (the only primary
//!   hung, so that only the in-flight limit holds), [`a_client_pipelining_set_get_without_reading_gets_backpressure`]
//!   (the client's socket full): the writer stalls and `CLIENT LIST` `tot-mem` stays
//!   within the bound `max-inflight-per-client` sets,
//!   [`oversized_requests_are_cut_by_the_limits_before_they_are_buffered`]: the request limits
//!   (`maxclients`, `timeout`, `max-inflight-per-client`, `proto-max-bulk-len`,
//!   `client-query-buffer-limit`, `max-request-args`) under abuse.
//! - [`fuzz_seeds_and_regressions_replay_clean`]: every input in `fuzz/seeds/` and
//!   `fuzz/regressions/` (where `scripts/fuzz.sh` puts each crash it finds) through the same
//!   checks the fuzz targets run (`fuzz/harness/*.rs`), without a fuzzing toolchain.

// Plain blocking test code (threads, no async runtime): the house ban on `Instant` and
// `Mutex`, which protects async code, does not apply.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

#[path = "../fuzz/harness/scan_request.rs"]
mod scan_request_harness;
#[path = "../fuzz/harness/walk_reply.rs"]
mod walk_reply_harness;

use std::collections::BTreeMap;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::extra::{bulk_payload, encode, info_field, text};
use common::{RedisCluster, RespConn, Slotgate, frame_len, key_slot};

const KB: u64 = 1024;
const MB: usize = 1024 * 1024;

/// Worst latency the observer may see in any case: a liveness bound, not a latency target
/// (the machine's two cores are shared with other builds and tests). It catches a stall;
/// a case that holds other clients up for its whole duration is caught by counting the
/// other client's answers while the case still runs (the slowloris below) and by
/// [`Observer::assert_alive`].
const OBSERVER_MAX_LATENCY: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Process memory
// ---------------------------------------------------------------------------------------

/// `VmRSS` and `VmHWM` (peak RSS) of `pid`, in KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Memory before and after a case, printed and bounded.
struct MemoryProbe {
    pid: u32,
    case: String,
    rss: u64,
    hwm: u64,
}

impl MemoryProbe {
    fn start(pid: u32, case: &str) -> MemoryProbe {
        let (rss, hwm) = memory_kb(pid);
        MemoryProbe {
            pid,
            case: case.to_string(),
            rss,
            hwm,
        }
    }

    /// Prints the figures and asserts that neither RSS nor the peak grew by `max_mib`.
    fn assert_growth_below(&self, max_mib: u64) {
        let (rss, hwm) = memory_kb(self.pid);
        eprintln!(
            "[memory] {}: RSS {} -> {} KiB ({:+} KiB), peak {} -> {} KiB ({:+} KiB)",
            self.case,
            self.rss,
            rss,
            rss as i64 - self.rss as i64,
            self.hwm,
            hwm,
            hwm as i64 - self.hwm as i64
        );
        assert!(
            hwm.saturating_sub(self.hwm) < max_mib * KB
                && rss.saturating_sub(self.rss) < max_mib * KB,
            "{}: slotgate's memory grew by more than {max_mib} MiB (RSS {} -> {rss} KiB, peak \
             {} -> {hwm} KiB): the input was buffered or allocated instead of being cut",
            self.case,
            self.rss,
            self.hwm
        );
    }
}

/// Waits until slotgate holds at least `bytes` of unread client input (`buffered_bytes` of
/// `INFO clients`, asked over `conn`): it has read what the holders sent, so a memory
/// reading after this sees what that input costs.
fn wait_buffered_at_least(conn: &mut RespConn, bytes: usize) {
    common::wait_for_test(
        &format!("slotgate to buffer {bytes} bytes of client input"),
        Duration::from_secs(30),
        || {
            let clients = text(&conn.cmd_str(&["INFO", "clients"]));
            info_field(&clients, "buffered_bytes")
                .and_then(|b| b.parse::<usize>().ok())
                .is_some_and(|b| b >= bytes)
        },
    );
}

// ---------------------------------------------------------------------------------------
// The well-behaved clients
// ---------------------------------------------------------------------------------------

/// A well-behaved client in its own thread: SET then GET of its own keys (on every shard)
/// every 10 ms, checking each answer and recording the worst latency per case.
struct Observer {
    stop: Arc<AtomicBool>,
    case: Arc<Mutex<String>>,
    worst: Arc<Mutex<BTreeMap<String, Duration>>>,
    ops: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Observer {
    fn start(addr: SocketAddr, name: &str) -> Observer {
        let stop = Arc::new(AtomicBool::new(false));
        let case = Arc::new(Mutex::new("start".to_string()));
        let worst: Arc<Mutex<BTreeMap<String, Duration>>> = Arc::default();
        let ops = Arc::new(AtomicUsize::new(0));
        let mut conn = RespConn::connect(addr);
        conn.set_read_timeout(Duration::from_secs(15));
        let name = name.to_string();
        let thread = {
            let (stop, case, worst, ops) = (stop.clone(), case.clone(), worst.clone(), ops.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let key = format!("observer:{name}:{}", i % 64);
                    let value = format!("{name}-{i}");
                    let started = Instant::now();
                    let now_case = case.lock().unwrap().clone();
                    let mut pipeline = encode(&[b"SET", key.as_bytes(), value.as_bytes()]);
                    pipeline.extend(encode(&[b"GET", key.as_bytes()]));
                    conn.stream()
                        .try_clone()
                        .and_then(|mut s: TcpStream| s.write_all(&pipeline))
                        .map_err(|e| format!("observer write during {now_case}: {e}"))?;
                    let set = conn
                        .try_read_reply()
                        .map_err(|e| format!("observer SET during {now_case}: {e}"))?;
                    let get = conn
                        .try_read_reply()
                        .map_err(|e| format!("observer GET during {now_case}: {e}"))?;
                    let want = format!("${}\r\n{value}\r\n", value.len());
                    if set != b"+OK\r\n" || text(&get) != want {
                        return Err(format!(
                            "observer during {now_case}: SET {key} answered {:?}, GET {:?} (want {want:?})",
                            text(&set),
                            text(&get)
                        ));
                    }
                    let took = started.elapsed();
                    let mut worst = worst.lock().unwrap();
                    let entry = worst.entry(now_case).or_default();
                    *entry = (*entry).max(took);
                    drop(worst);
                    ops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(())
            })
        };
        Observer {
            stop,
            case,
            worst,
            ops,
            thread: Some(thread),
        }
    }

    /// Names the case now running, so latencies are charged to it.
    fn case(&self, name: &str) {
        *self.case.lock().unwrap() = name.to_string();
    }

    /// Asserts the observer is still running and has made progress since `since` ops.
    fn assert_alive(&mut self, case: &str) {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            let result = self.thread.take().unwrap().join();
            panic!("the observer client stopped during {case}: {result:?}");
        }
        let before = self.ops.load(Ordering::Relaxed);
        common::wait_for_test(
            &format!("the observer client to make progress after {case}"),
            Duration::from_secs(5),
            || self.ops.load(Ordering::Relaxed) > before,
        );
    }

    /// Stops the thread, prints the worst latency per case and bounds it.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.thread.take().unwrap().join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the observer client failed: {e}"),
            Err(_) => panic!("the observer thread panicked"),
        }
        let worst = self.worst.lock().unwrap();
        eprintln!(
            "[observer] {} ops; worst SET+GET latency per case:",
            self.ops.load(Ordering::Relaxed)
        );
        for (case, took) in worst.iter() {
            eprintln!("[observer]   {took:>10.1?}  {case}");
        }
        let slow: Vec<String> = worst
            .iter()
            .filter(|(_, took)| **took > OBSERVER_MAX_LATENCY)
            .map(|(case, took)| format!("{case}: {took:?}"))
            .collect();
        assert!(
            slow.is_empty(),
            "another client was held up (over {OBSERVER_MAX_LATENCY:?}) by: {slow:?}"
        );
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// After a case: slotgate is alive, never panicked, and `good` (connected before the case)
/// gets correct answers.
fn assert_healthy(sg: &mut Slotgate, good: &mut RespConn, case: &str) {
    assert!(
        sg.try_wait().is_none(),
        "slotgate exited during {case}; log tail:\n{}",
        log_tail(&sg.log(), 40)
    );
    let log = sg.log();
    assert!(
        !log.contains("panicked"),
        "slotgate panicked during {case}:\n{}",
        log_tail(&log, 60)
    );
    let value = format!("after {case}");
    assert_eq!(
        text(&good.cmd(&[b"SET", b"good-client", value.as_bytes()])),
        "+OK\r\n",
        "the well-behaved client's SET after {case}"
    );
    assert_eq!(
        bulk_payload(&good.cmd(&[b"GET", b"good-client"])),
        value.as_bytes(),
        "the well-behaved client's GET after {case}"
    );
}

/// The checks after each case of the battery.
fn case(name: &str, sg: &mut Slotgate, good: &mut RespConn, observer: &mut Observer) {
    assert_healthy(sg, good, name);
    observer.assert_alive(name);
    observer.case(&format!("after {name}"));
}

fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// The hostile client
// ---------------------------------------------------------------------------------------

/// What a hostile connection got back.
struct Outcome {
    /// Every byte slotgate sent.
    reply: Vec<u8>,
    /// Slotgate closed (EOF or reset) before we stopped listening.
    closed: bool,
    /// How much of the input slotgate let us write before it closed.
    written: usize,
    stream: TcpStream,
}

impl Outcome {
    fn text(&self) -> String {
        text(&self.reply)
    }

    /// The connection was closed after exactly `line` (the error reply), or, for inputs so
    /// large that slotgate closes with unread bytes (a TCP reset may overtake the reply),
    /// after at most that line.
    fn assert_error_then_close(&self, case: &str, line: &str, reset_may_eat_reply: bool) {
        assert!(
            self.closed,
            "{case}: slotgate kept the connection open after {:?}",
            self.text()
        );
        let ok = self.text() == line || (reset_may_eat_reply && self.reply.is_empty());
        assert!(
            ok,
            "{case}: want {line:?} then close, got {:?}",
            self.text()
        );
    }

    /// The connection is still open, `reply` came back, and a PING now gets PONG.
    fn assert_open_with(mut self, case: &str, reply: &str) {
        assert!(
            !self.closed,
            "{case}: slotgate closed the connection after {:?}",
            self.text()
        );
        assert_eq!(self.text(), reply, "{case}: replies");
        self.stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut conn_buf = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while frame_len(&conn_buf).ok().flatten().is_none() && Instant::now() < deadline {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => conn_buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
        assert_eq!(text(&conn_buf), "+PONG\r\n", "{case}: PING after the input");
    }

    /// Every reply is one error line (Redis's `-ERR ...`, `\r\n` never inside one).
    fn assert_only_error_lines(&self, case: &str) {
        assert!(
            self.reply.is_empty() || self.reply.ends_with(b"\r\n"),
            "{case}: a partial reply {:?}",
            self.text()
        );
        for line in self.reply.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            assert!(
                line.starts_with(b"-")
                    && line.ends_with(b"\r")
                    && !line[..line.len() - 1].contains(&b'\r'),
                "{case}: a reply line that is not one clean error line: {:?}",
                text(line)
            );
        }
    }
}

/// Sends `input` on a fresh connection (from another thread, so a server that stops reading
/// cannot deadlock us), optionally half-closes, and collects what comes back until slotgate
/// closes or has been quiet for `quiet` after the last byte was written.
fn hostile(addr: SocketAddr, input: Vec<u8>, half_close: bool, quiet: Duration) -> Outcome {
    let mut stream = TcpStream::connect(addr).expect("connect to slotgate");
    stream.set_nodelay(true).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.set_read_timeout(Some(quiet)).unwrap();
    let writer = {
        let mut out = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut written = 0;
            for chunk in input.chunks(256 * 1024) {
                if out.write_all(chunk).is_err() {
                    return written;
                }
                written += chunk.len();
            }
            if half_close {
                let _ = out.shutdown(Shutdown::Write);
            }
            written
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reply = Vec::new();
    let mut closed = false;
    loop {
        let mut chunk = [0u8; 64 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if writer.is_finished() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                // A reset: the server closed with our bytes unread.
                closed = true;
                break;
            }
        }
        if Instant::now() > deadline {
            let _ = stream.shutdown(Shutdown::Both);
            panic!(
                "slotgate neither answered nor closed within 30 s (got {:?})",
                text(&reply)
            );
        }
    }
    if !closed && !writer.is_finished() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    let written = writer.join().expect("writer thread");
    Outcome {
        reply,
        closed,
        written,
        stream,
    }
}

const QUIET: Duration = Duration::from_millis(400);

/// A deterministic xorshift64* generator, so a failing garbage input can be reproduced.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn connected_clients(good: &mut RespConn) -> u64 {
    let info = text(&good.cmd_str(&["INFO", "clients"]));
    info_field(&info, "connected_clients")
        .unwrap_or_else(|| panic!("no connected_clients in {info}"))
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The battery
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_requests_get_clean_errors_and_never_disturb_other_clients() {
    let cluster = RedisCluster::start(3, 0);
    // One worker thread: the hostile clients share the event loop with the observer, so
    // anything that blocks it shows as observer latency.
    let mut sg = Slotgate::start(&cluster.seeds(), &["--threads", "1"]);
    let addr = sg.addr;
    let pid = sg.pid();
    let mut good = RespConn::connect(addr);
    good.set_read_timeout(Duration::from_secs(15));
    let mut observer = Observer::start(addr, "battery");
    // Warm up every backend connection so the memory baseline is the steady state.
    for i in 0..300 {
        let key = format!("warm:{i}");
        assert_eq!(text(&good.cmd_str(&["SET", &key, "x"])), "+OK\r\n");
    }

    // --- 64 MiB lines with no CRLF: cut at the 64 KiB line limit, never buffered whole.
    let line_cases: [(&str, &[u8], u8, &str); 3] = [
        (
            "64 MiB inline line, no CRLF",
            b"GET ",
            b'a',
            "-ERR Protocol error: too big inline request\r\n",
        ),
        (
            "64 MiB multibulk count line, no CRLF",
            b"*",
            b'9',
            "-ERR Protocol error: too big mbulk count string\r\n",
        ),
        (
            "64 MiB bulk length line, no CRLF",
            b"*1\r\n$",
            b'9',
            "-ERR Protocol error: too big bulk count string\r\n",
        ),
    ];
    for (name, prefix, fill, want) in line_cases {
        observer.case(name);
        let memory = MemoryProbe::start(pid, name);
        let mut input = prefix.to_vec();
        input.resize(64 * MB, fill);
        let started = Instant::now();
        let out = hostile(addr, input, false, QUIET);
        eprintln!(
            "[case] {name}: slotgate closed after {:?}; the client got {} of 64 MiB into the socket",
            started.elapsed(),
            out.written
        );
        out.assert_error_then_close(name, want, true);
        assert!(
            out.written < 32 * MB,
            "{name}: slotgate kept reading ({} bytes) instead of closing",
            out.written
        );
        memory.assert_growth_below(16);
        case(name, &mut sg, &mut good, &mut observer);
    }

    // --- aster's crash input, and counts too large for max-request-args (1048576).
    for (name, input) in [
        ("aster *999999999 (12 bytes)", &b"*999999999\r\n"[..]),
        ("count 2^31", b"*2147483648\r\n"),
        ("count 9999999999999999999", b"*9999999999999999999\r\n"),
        ("count -9223372036854775809", b"*-9223372036854775809\r\n"),
        ("count 1048577", b"*1048577\r\n"),
        ("count not a number", b"*12abc\r\n"),
        ("count with a plus sign", b"*+1\r\n$4\r\nPING\r\n"),
        ("count with a leading zero", b"*01\r\n$4\r\nPING\r\n"),
    ] {
        observer.case(name);
        let memory = MemoryProbe::start(pid, name);
        let out = hostile(addr, input.to_vec(), false, QUIET);
        out.assert_error_then_close(
            name,
            "-ERR Protocol error: invalid multibulk length\r\n",
            false,
        );
        memory.assert_growth_below(8);
        case(name, &mut sg, &mut good, &mut observer);
    }

    // --- Bulk lengths: negative, huge, over proto-max-bulk-len (512mb), non-canonical.
    for (name, input) in [
        ("bulk $-2", &b"*1\r\n$-2\r\n"[..]),
        ("bulk $-1 in a request", b"*1\r\n$-1\r\n"),
        (
            "bulk $9999999999999999999",
            b"*1\r\n$9999999999999999999\r\n",
        ),
        (
            "bulk $-9223372036854775808",
            b"*1\r\n$-9223372036854775808\r\n",
        ),
        ("bulk over 512mb", b"*2\r\n$3\r\nGET\r\n$536870913\r\n"),
        ("bulk 2^32", b"*2\r\n$3\r\nGET\r\n$4294967296\r\n"),
        ("bulk with a leading zero", b"*1\r\n$04\r\nPING\r\n"),
        ("bulk length empty", b"*1\r\n$\r\n"),
    ] {
        observer.case(name);
        let out = hostile(addr, input.to_vec(), false, QUIET);
        out.assert_error_then_close(name, "-ERR Protocol error: invalid bulk length\r\n", false);
        case(name, &mut sg, &mut good, &mut observer);
    }

    // --- Counts Redis ignores (an empty or null multibulk): no reply, connection kept.
    let name = "*0, *-1 and *-5 are ignored as in Redis";
    observer.case(name);
    hostile(addr, b"*0\r\n*-1\r\n*-5\r\n".to_vec(), false, QUIET).assert_open_with(name, "");
    case(name, &mut sg, &mut good, &mut observer);

    // --- A bare `$-2` or RESP3 aggregate header is an inline command, unknown to Redis.
    let name = "bare $-2, %1, >1, ~1 lines are unknown inline commands";
    observer.case(name);
    let out = hostile(addr, b"$-2\r\n%1\r\n>1\r\n~1\r\n".to_vec(), false, QUIET);
    let got = out.text();
    assert_eq!(
        got.matches("-ERR unknown command '").count(),
        4,
        "{name}: {got:?}"
    );
    out.assert_only_error_lines(name);
    let rest = got.clone();
    out.assert_open_with(name, &rest);
    case(name, &mut sg, &mut good, &mut observer);

    // --- Declared lengths at the limits, payload never sent: nothing may be reserved for
    // them (20 clients each announcing a 512 MiB argument, 20 announcing 1048576 of them).
    let name = "declared 512 MiB bulks and 1M-argument counts, never sent";
    observer.case(name);
    let memory = MemoryProbe::start(pid, name);
    let mut holders = Vec::new();
    let mut sent = 0;
    for i in 0..40 {
        let mut conn = RespConn::connect(addr);
        let request: &[u8] = if i % 2 == 0 {
            b"*2\r\n$3\r\nGET\r\n$536870912\r\nabc"
        } else {
            b"*1048576\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        };
        conn.send_raw(request);
        sent += request.len();
        holders.push(conn);
    }
    wait_buffered_at_least(&mut good, sent);
    memory.assert_growth_below(16);
    for conn in &mut holders {
        conn.set_read_timeout(Duration::from_millis(50));
        assert!(
            conn.try_read_reply().is_err(),
            "{name}: a reply to an incomplete request"
        );
    }
    drop(holders);
    case(name, &mut sg, &mut good, &mut observer);

    // --- Unterminated arrays: slotgate waits (as Redis does); completing them works.
    let name = "unterminated array, completed later";
    observer.case(name);
    let mut conn = RespConn::connect(addr);
    conn.send_raw(b"*3\r\n$3\r\nSET\r\n$11\r\nunterm");
    conn.set_read_timeout(Duration::from_millis(300));
    assert!(
        conn.try_read_reply().is_err(),
        "{name}: a reply to half a request"
    );
    assert_healthy(&mut sg, &mut good, name);
    conn.send_raw(b"inate\r\n$5\r\nvalue\r\n");
    conn.set_read_timeout(Duration::from_secs(5));
    assert_eq!(text(&conn.read_reply()), "+OK\r\n", "{name}");
    assert_eq!(
        bulk_payload(&good.cmd_str(&["GET", "unterminate"])),
        b"value"
    );
    drop(conn);
    case(name, &mut sg, &mut good, &mut observer);

    let name = "100 unterminated arrays, then the clients leave";
    observer.case(name);
    let before = connected_clients(&mut good);
    let mut partial = Vec::new();
    for i in 0..100 {
        let bytes: &[u8] = match i % 4 {
            0 => b"*3\r\n",
            1 => b"*3\r\n$3\r\nSET\r\n$1\r",
            2 => b"*2\r\n$3\r\nGET\r\n$100\r\nabc",
            _ => b"*2\r\n$3\r\nGET\r\n",
        };
        let mut conn = RespConn::connect(addr);
        conn.send_raw(bytes);
        if i % 3 == 0 {
            conn.stream().shutdown(Shutdown::Write).unwrap();
        }
        partial.push(conn);
    }
    assert_healthy(&mut sg, &mut good, name);
    drop(partial);
    common::wait_for_test(
        "slotgate to forget the clients that left mid-request",
        Duration::from_secs(5),
        || connected_clients(&mut good) == before,
    );
    case(name, &mut sg, &mut good, &mut observer);

    // A deliberate difference from Redis, which ignores these two bytes (docs/security.md;
    // checked against a real server in
    // malformed_input_is_answered_as_redis_does_except_the_documented_differences).
    let name = "bulk payload not followed by CRLF";
    observer.case(name);
    hostile(addr, b"*1\r\n$4\r\nPINGxx".to_vec(), false, QUIET).assert_error_then_close(
        name,
        "-ERR Protocol error: expected CRLF after a line or bulk argument\r\n",
        false,
    );
    case(name, &mut sg, &mut good, &mut observer);

    // --- Nesting: a request is an array of bulk strings; an array inside one is refused at
    // once, however deep the client meant to go.
    for (name, input, byte) in [
        ("100k nested *1 arrays", b"*1\r\n".repeat(100_000), '*'),
        (
            "array inside a request",
            b"*2\r\n*1\r\n$4\r\nPING\r\n$1\r\nx\r\n".to_vec(),
            '*',
        ),
        (
            "map inside a request",
            b"*1\r\n%1\r\n$1\r\na\r\n$1\r\nb\r\n".to_vec(),
            '%',
        ),
        (
            "integer inside a request",
            b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
            ':',
        ),
    ] {
        observer.case(name);
        let big = input.len() > 64 * 1024;
        let out = hostile(addr, input, false, QUIET);
        out.assert_error_then_close(
            name,
            &format!("-ERR Protocol error: expected '$', got '{byte}'\r\n"),
            big,
        );
        case(name, &mut sg, &mut good, &mut observer);
    }

    // --- Binary keys and values: \0, \r\n and RESP look-alikes round-trip exactly, land on
    // the node owning their slot, and never break framing.
    let name = "binary keys with \\0 and \\r\\n";
    observer.case(name);
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut keys: Vec<Vec<u8>> = vec![
        b"bin\0key".to_vec(),
        b"bin\r\nkey\r\n".to_vec(),
        b"*1\r\n$4\r\nPING\r\n".to_vec(),
        b"\r\n+OK\r\n-ERR x\r\n$-1\r\n".to_vec(),
        b"\0".to_vec(),
        b"".to_vec(),
        all_bytes.clone(),
        vec![0xff; 64 * 1024],
        b"{\0\r\n}a".to_vec(),
        b"{\0\r\n}b".to_vec(),
    ];
    keys.push(all_bytes.iter().rev().copied().collect());
    for (i, key) in keys.iter().enumerate() {
        let mut value = all_bytes.clone();
        value.extend_from_slice(format!("\r\n$-1\r\n*{i}\r\n").as_bytes());
        assert_eq!(
            text(&good.cmd(&[b"SET", key, &value])),
            "+OK\r\n",
            "{name}: SET key #{i}"
        );
        assert_eq!(
            bulk_payload(&good.cmd(&[b"GET", key])),
            value,
            "{name}: GET key #{i}"
        );
        // The bytes reached the node that owns the key's slot, unchanged.
        let node = cluster.node_for_slot(key_slot(key));
        let mut direct = RespConn::connect(node.addr);
        assert_eq!(
            bulk_payload(&direct.cmd(&[b"GET", key])),
            value,
            "{name}: key #{i} on its node :{}",
            node.port
        );
    }
    // The two `{\0\r\n}` keys share a slot: a multi-key command on them works.
    assert_eq!(
        text(&good.cmd(&[b"MSET", &keys[8], b"x", &keys[9], b"y"])),
        "+OK\r\n",
        "{name}: MSET on a binary hash tag"
    );
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(keys.iter().map(Vec::as_slice));
    let reply = good.cmd(&mget);
    assert!(
        reply.starts_with(format!("*{}\r\n", keys.len()).as_bytes()),
        "{name}: MGET of every binary key: {:?}",
        text(&reply[..reply.len().min(200)])
    );
    case(name, &mut sg, &mut good, &mut observer);

    // --- Error replies quote what the client sent: they must not let it inject replies.
    let name = "error messages cannot inject reply frames";
    observer.case(name);
    let mut conn = RespConn::connect(addr);
    let reply = conn.cmd(&[b"NO\r\n+OK\r\n:1\r\n", b"x\r\n$-1\r\n"]);
    assert!(
        reply.starts_with(b"-ERR unknown command")
            && reply.iter().filter(|&&b| b == b'\n').count() == 1,
        "{name}: {:?}",
        text(&reply)
    );
    conn.send_raw(b"\"x\\r\\n+OK\" \"\\r\\n:1\"\r\n");
    let reply = conn.read_reply();
    assert!(
        reply.starts_with(b"-ERR unknown command")
            && reply.iter().filter(|&&b| b == b'\n').count() == 1,
        "{name} (inline, escaped): {:?}",
        text(&reply)
    );
    assert_eq!(
        text(&conn.cmd_str(&["PING"])),
        "+PONG\r\n",
        "{name}: PING after"
    );
    drop(conn);
    case(name, &mut sg, &mut good, &mut observer);

    // --- Random garbage: only error lines come back, and the connection closes once we do.
    let mut rng = Rng(0x5107_6a7e_c0ff_ee11);
    let mut garbage: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..24 {
        let len = 1 + (rng.next() % 16384) as usize;
        let mut blob = rng.bytes(len);
        match i % 4 {
            1 => blob[0] = b'*',
            2 => {
                let mut framed = b"*3\r\n$".to_vec();
                framed.append(&mut blob);
                blob = framed;
            }
            3 => blob.retain(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\r' || b == b'\n'),
            _ => {}
        }
        garbage.push((format!("random garbage #{i} ({} bytes)", blob.len()), blob));
    }
    garbage.push((
        "every byte value".into(),
        (0..=255u8).cycle().take(4096).collect(),
    ));
    garbage.push(("NUL bytes only".into(), vec![0u8; 100_000]));
    garbage.push(("CR and LF only".into(), b"\r\n\n\r\r\n".repeat(10_000)));
    for (name, blob) in garbage {
        observer.case(&name);
        let out = hostile(addr, blob.clone(), true, Duration::from_secs(5));
        assert!(
            out.closed,
            "{name}: slotgate kept the connection open after we closed ours; got {:?}",
            out.text()
        );
        out.assert_only_error_lines(&name);
        case(&name, &mut sg, &mut good, &mut observer);
    }

    // --- Slowloris: 10 clients send one byte every 50 ms (about 4 s each); the others see
    // no difference and each trickled command runs once complete.
    let name = "slowloris: 10 clients, one byte per 50 ms";
    observer.case(name);
    let started = Instant::now();
    let tricklers: Vec<JoinHandle<Vec<u8>>> = (0..10)
        .map(|i| {
            let key = format!("slowloris:{i}");
            let request = encode(&[
                b"SET",
                key.as_bytes(),
                format!("trickled-value-{i}").as_bytes(),
            ]);
            std::thread::spawn(move || {
                let mut conn = RespConn::connect(addr);
                let mut padded = b"PING\r\n".to_vec();
                padded.extend_from_slice(&request);
                for byte in padded {
                    conn.send_raw(&[byte]);
                    std::thread::sleep(Duration::from_millis(50));
                }
                let mut out = conn.read_reply();
                out.extend(conn.read_reply());
                out
            })
        })
        .collect();
    // Meanwhile the well-behaved client keeps working, every 100 ms (pacing, not
    // synchronisation), and is answered while the tricklers are still sending: each of
    // them sends for at least 46 x 50 ms, so an event loop held by them would answer
    // nothing before they finish.
    let mut worst = Duration::ZERO;
    let mut answered_while_trickling = 0;
    while !tricklers.iter().all(|t| t.is_finished()) {
        let t0 = Instant::now();
        assert_eq!(text(&good.cmd_str(&["PING"])), "+PONG\r\n");
        worst = worst.max(t0.elapsed());
        if !tricklers.iter().all(|t| t.is_finished()) {
            answered_while_trickling += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        answered_while_trickling >= 2,
        "{name}: the good client was answered {answered_while_trickling} times while the \
         tricklers were sending"
    );
    for (i, t) in tricklers.into_iter().enumerate() {
        assert_eq!(
            text(&t.join().expect("trickler")),
            "+PONG\r\n+OK\r\n",
            "{name}: client {i}"
        );
        let value = format!("trickled-value-{i}");
        assert_eq!(
            bulk_payload(&good.cmd_str(&["GET", &format!("slowloris:{i}")])),
            value.as_bytes()
        );
    }
    eprintln!(
        "[case] {name}: took {:?}; worst PING latency of the good client meanwhile {worst:?}",
        started.elapsed()
    );
    assert!(
        worst < OBSERVER_MAX_LATENCY,
        "{name}: the good client waited {worst:?}"
    );
    case(name, &mut sg, &mut good, &mut observer);

    observer.finish();
    assert_healthy(&mut sg, &mut good, "the whole battery");
}

// ---------------------------------------------------------------------------------------
// Pipelined cross-slot multi-key commands
// ---------------------------------------------------------------------------------------

#[test]
fn pipelined_cross_slot_mset_is_split_and_every_reply_arrives() {
    let cluster = RedisCluster::start(3, 0);
    let mut sg = Slotgate::start(&cluster.seeds(), &[]);
    let mut good = RespConn::connect(sg.addr);
    let observer = Observer::start(sg.addr, "mset");
    observer.case("pipelined cross-slot MSET");
    let memory = MemoryProbe::start(sg.pid(), "5000 pipelined cross-slot MSET + MGET");

    // 5,000 MSETs of 20 keys on ~20 slots each, each followed by an MGET of the same keys:
    // 10,000 commands written at once, split into ~100,000 per-slot sub-commands.
    const COMMANDS: usize = 5_000;
    const KEYS: usize = 20;
    let key = |i: usize, j: usize| format!("mset:{i}:{j}");
    let value = |i: usize, j: usize| format!("v{i}.{j}");
    let mut pipeline = Vec::new();
    for i in 0..COMMANDS {
        let pairs: Vec<String> = (0..KEYS).flat_map(|j| [key(i, j), value(i, j)]).collect();
        let mut mset: Vec<&[u8]> = vec![b"MSET"];
        mset.extend(pairs.iter().map(|s| s.as_bytes()));
        pipeline.extend(encode(&mset));
        let keys: Vec<String> = (0..KEYS).map(|j| key(i, j)).collect();
        let mut mget: Vec<&[u8]> = vec![b"MGET"];
        mget.extend(keys.iter().map(|s| s.as_bytes()));
        pipeline.extend(encode(&mget));
    }
    let slots: std::collections::HashSet<u16> =
        (0..KEYS).map(|j| key_slot(key(0, j).as_bytes())).collect();
    assert!(slots.len() > 10, "the keys of one MSET span many slots");

    let mut conn = RespConn::connect(sg.addr);
    conn.set_read_timeout(Duration::from_secs(30));
    let mut writer = conn.stream().try_clone().unwrap();
    let bytes = pipeline.len();
    let started = Instant::now();
    let write = std::thread::spawn(move || writer.write_all(&pipeline));
    for i in 0..COMMANDS {
        let mset = conn
            .try_read_reply()
            .unwrap_or_else(|e| panic!("reply to MSET #{i}: {e}"));
        assert_eq!(text(&mset), "+OK\r\n", "MSET #{i}");
        let mget = conn
            .try_read_reply()
            .unwrap_or_else(|e| panic!("reply to MGET #{i}: {e}"));
        let mut want = format!("*{KEYS}\r\n");
        for j in 0..KEYS {
            let v = value(i, j);
            want.push_str(&format!("${}\r\n{v}\r\n", v.len()));
        }
        assert_eq!(text(&mget), want, "MGET #{i} (after its MSET)");
    }
    write.join().unwrap().expect("write the pipeline");
    eprintln!(
        "[case] {COMMANDS} cross-slot MSET + {COMMANDS} MGET ({bytes} bytes) answered in {:?}",
        started.elapsed()
    );
    conn.set_read_timeout(Duration::from_millis(300));
    assert!(
        conn.try_read_reply().is_err(),
        "a reply beyond the expected ones"
    );
    let sum: u64 = cluster.dbsize_by_node().iter().map(|&(_, n)| n).sum();
    // Every MSET key, plus up to 64 of the observer's.
    let want = (COMMANDS * KEYS) as u64;
    assert!(
        (want..=want + 64).contains(&sum),
        "{sum} keys in the cluster, want {want} (+64)"
    );
    memory.assert_growth_below(64);
    assert_healthy(&mut sg, &mut good, "pipelined cross-slot MSET");
    observer.finish();
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

#[test]
fn maxclients_refuses_the_51st_client_cleanly() {
    let cluster = RedisCluster::start(3, 0);
    let mut sg = Slotgate::start(&cluster.seeds(), &["--maxclients", "50"]);
    let mut good = RespConn::connect(sg.addr);
    // The fixture's readiness PING may still be counted for a moment.
    common::wait_for_test(
        "only the good client connected",
        Duration::from_secs(5),
        || connected_clients(&mut good) == 1,
    );
    let mut clients: Vec<RespConn> = (1..50)
        .map(|i| {
            let mut conn = RespConn::connect(sg.addr);
            assert_eq!(
                text(&conn.cmd_str(&["PING"])),
                "+PONG\r\n",
                "client #{}",
                i + 1
            );
            conn
        })
        .collect();
    assert_eq!(connected_clients(&mut good), 50);

    // The 51st, and a burst of 200 more, each get the error and a close.
    let started = Instant::now();
    for i in 0..200 {
        let mut conn = RespConn::connect(sg.addr);
        assert_eq!(
            text(&conn.read_to_close()),
            "-ERR max number of clients reached\r\n",
            "client #{}",
            51 + i
        );
    }
    eprintln!(
        "[case] 200 refused connections took {:?}",
        started.elapsed()
    );
    // A refused client that sends a command at once is still refused (and never served).
    let out = hostile(sg.addr, encode(&[b"SET", b"refused", b"x"]), false, QUIET);
    assert!(
        out.closed,
        "a refused client that spoke first: {:?}",
        out.text()
    );
    assert!(
        out.reply.is_empty() || out.text() == "-ERR max number of clients reached\r\n",
        "{:?}",
        out.text()
    );
    assert_healthy(&mut sg, &mut good, "200 refused clients");
    assert_eq!(text(&good.cmd_str(&["EXISTS", "refused"])), ":0\r\n");
    // The admitted ones never noticed.
    for (i, conn) in clients.iter_mut().enumerate() {
        assert_eq!(
            text(&conn.cmd_str(&["PING"])),
            "+PONG\r\n",
            "client #{}",
            i + 2
        );
    }
    // One leaves: its place is free again.
    clients.pop();
    common::wait_for_test("a freed place", Duration::from_secs(5), || {
        connected_clients(&mut good) == 49
    });
    let mut again = RespConn::connect(sg.addr);
    assert_eq!(text(&again.cmd_str(&["PING"])), "+PONG\r\n");
    let info = text(&good.cmd_str(&["INFO", "stats"]));
    eprintln!(
        "[case] rejected_connections:{:?}",
        info_field(&info, "rejected_connections")
    );
    assert_healthy(&mut sg, &mut good, "maxclients");
}

/// When the server closed a connection and what it sent first; `None`: still open.
type Closed = Option<(Duration, Vec<u8>)>;

/// How long until the server closes `conn`, or `None` if it stays open for `limit`.
fn time_to_close(conn: &mut RespConn, limit: Duration) -> Closed {
    let started = Instant::now();
    conn.set_read_timeout(Duration::from_millis(100));
    let mut got = Vec::new();
    let mut stream = conn.stream().try_clone().unwrap();
    while started.elapsed() < limit {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return Some((started.elapsed(), got)),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Some((started.elapsed(), got));
            }
            Err(_) => {}
        }
    }
    None
}

#[test]
fn idle_timeout_closes_idle_clients_even_mid_request() {
    let cluster = RedisCluster::start(3, 0);
    let mut sg = Slotgate::start(&cluster.seeds(), &["--timeout", "1"]);
    // The observer sends a command every ~10 ms: never idle, never closed.
    let observer = Observer::start(sg.addr, "timeout");
    observer.case("idle timeout 1 s");

    // Opened together, watched concurrently.
    let cases: Vec<(&str, &[u8])> = vec![
        ("silent client", b""),
        ("partial multibulk header", b"*2\r\n"),
        ("partial request (command, no key)", b"*2\r\n$3\r\nGET\r\n"),
        (
            "partial bulk payload",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc",
        ),
        ("partial inline line", b"GET some"),
    ];
    let watchers: Vec<(&str, JoinHandle<Closed>)> = cases
        .into_iter()
        .map(|(name, bytes)| {
            let addr = sg.addr;
            let bytes = bytes.to_vec();
            (
                name,
                std::thread::spawn(move || {
                    let mut conn = RespConn::connect(addr);
                    conn.send_raw(&bytes);
                    time_to_close(&mut conn, Duration::from_secs(6))
                }),
            )
        })
        .collect();

    // A client that keeps trickling bytes is not idle (Redis counts every read as
    // interaction): one byte per 50 ms for 3 s, then its command runs.
    let addr = sg.addr;
    let trickler = std::thread::spawn(move || {
        let mut conn = RespConn::connect(addr);
        let mut request = encode(&[b"SET", b"timeout:trickle", b"0123456789012345678901234"]);
        request.extend(encode(&[b"GET", b"timeout:trickle"]));
        for byte in request {
            conn.send_raw(&[byte]);
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = conn.read_reply();
        out.extend(conn.read_reply());
        out
    });
    // A client blocked in a command is not idle either (BLPOP for 3 s).
    let blocked = std::thread::spawn(move || {
        let mut conn = RespConn::connect(addr);
        conn.cmd_str(&["BLPOP", "timeout:nothing", "3"])
    });

    let mut failures = Vec::new();
    for (name, watcher) in watchers {
        match watcher.join().unwrap() {
            Some((after, got)) => {
                eprintln!(
                    "[case] --timeout 1, {name}: closed after {after:?}, reply {:?}",
                    text(&got)
                );
                if after < Duration::from_millis(900) || after > Duration::from_secs(4) {
                    failures.push(format!("{name}: closed after {after:?}, want 1 to 4 s"));
                }
            }
            None => {
                eprintln!("[case] --timeout 1, {name}: still open after 6 s");
                failures.push(format!("{name}: still open after 6 s with --timeout 1"));
            }
        }
    }
    let trickled = trickler.join().expect("trickler");
    assert_eq!(
        text(&trickled),
        "+OK\r\n$25\r\n0123456789012345678901234\r\n",
        "a trickling client (not idle) was cut"
    );
    assert_eq!(
        text(&blocked.join().expect("blocked client")),
        "*-1\r\n",
        "a client blocked in BLPOP 3 was cut by --timeout 1"
    );
    let mut good = RespConn::connect(sg.addr);
    assert_healthy(&mut sg, &mut good, "idle timeout");
    observer.finish();
    assert!(
        failures.is_empty(),
        "--timeout 1 must close every idle client, even one that stopped mid-request \
         (as Redis does): {failures:#?}"
    );
}

/// The shape of a pipeline written without reading a reply.
#[derive(Clone, Copy, Debug)]
enum Pipeline {
    /// SET + GET pairs with 1 KiB values: the replies are as big as the requests, so the
    /// client's socket fills and slotgate must stop writing, then stop reading.
    SetGetPairs,
    /// SETs of 1 KiB values while the only primary hangs (SIGSTOP): no reply comes, so
    /// only `max-inflight-per-client` stops slotgate from reading the whole pipeline.
    SetsOnly,
}

/// `max-inflight-per-client` in these tests.
const INFLIGHT: usize = 128;
/// The largest request of the pipeline (a SET of a 1 KiB value, key `bp:<n>` included) and
/// the largest reply (a GET's 1 KiB bulk), rounded up.
const MAX_REQUEST: usize = 1100;
const MAX_REPLY: usize = 1100;
/// slotgate reads at most 64 KiB from a client at once (`MAX_READ` in src/session/mod.rs).
const MAX_READ: usize = 64 * 1024;
/// What slotgate may hold for one client (`CLIENT LIST` `tot-mem`) under backpressure:
/// `INFLIGHT` requests and as many replies, one read's worth of unscanned bytes, and the
/// partial request left over from the read before.
const BUFFER_BOUND: usize = INFLIGHT * (MAX_REQUEST + MAX_REPLY) + MAX_READ + MAX_REQUEST;

/// The `CLIENT LIST` line of the client connected from `addr`.
fn client_line(conn: &mut RespConn, addr: SocketAddr) -> String {
    let list = text(&bulk_payload(&conn.cmd_str(&["CLIENT", "LIST"])));
    let needle = format!(" addr={addr} ");
    list.lines()
        .find(|line| line.contains(&needle))
        .unwrap_or_else(|| panic!("no CLIENT LIST line for {addr}:\n{list}"))
        .to_owned()
}

/// One numeric field (`tot-mem`, `qbuf`, ...) of a `CLIENT LIST` line.
fn client_field(line: &str, name: &str) -> usize {
    let prefix = format!("{name}=");
    line.split(' ')
        .find_map(|field| field.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name} in {line:?}"))
}

/// A client writes 200,000 commands (~210 MB) without reading; the writer must stall and
/// what slotgate holds for that client (`CLIENT LIST` `tot-mem`) must stay within
/// [`BUFFER_BOUND`], set by `max-inflight-per-client`, not grow with the pipeline; then the
/// client reads every reply, in order.
fn pipeline_without_reading(shape: Pipeline) {
    let hung = matches!(shape, Pipeline::SetsOnly);
    // One primary for the hung case: with more, the others would fail the stopped one
    // (cluster-node-timeout) and answer CLUSTERDOWN.
    let cluster = RedisCluster::start(if hung { 1 } else { 3 }, 0);
    let inflight = INFLIGHT.to_string();
    let mut sg = Slotgate::start(
        &cluster.seeds(),
        &[
            "--max-inflight-per-client",
            &inflight,
            "--threads",
            "1",
            // The hung node must not time the requests out while the test looks.
            "--backend-reply-timeout",
            "120s",
        ],
    );
    let pid = sg.pid();
    let mut good = RespConn::connect(sg.addr);
    // Other clients' commands go to the hung node too, so only the other case can check
    // that they are served meanwhile.
    let observer = (!hung).then(|| Observer::start(sg.addr, "inflight"));
    let case = format!("200k pipelined commands ({shape:?}), replies unread");
    if let Some(observer) = &observer {
        observer.case(&case);
    }
    for i in 0..300 {
        assert_eq!(
            text(&good.cmd_str(&["SET", &format!("warm:{i}"), "x"])),
            "+OK\r\n"
        );
    }
    let memory = MemoryProbe::start(pid, &case);

    const COMMANDS: usize = 200_000;
    let value = |i: usize| {
        let mut v = format!("{i}:").into_bytes();
        v.resize(1024, b'v');
        v
    };
    // Command `n` of the pipeline and the reply it must get.
    let command = move |n: usize| -> (Vec<u8>, Vec<u8>) {
        match shape {
            Pipeline::SetGetPairs => {
                let i = n / 2;
                let key = format!("bp:{i}");
                if n.is_multiple_of(2) {
                    (
                        encode(&[b"SET", key.as_bytes(), &value(i)]),
                        b"+OK\r\n".to_vec(),
                    )
                } else {
                    let mut reply = b"$1024\r\n".to_vec();
                    reply.extend(value(i));
                    reply.extend_from_slice(b"\r\n");
                    (encode(&[b"GET", key.as_bytes()]), reply)
                }
            }
            Pipeline::SetsOnly => (
                encode(&[b"SET", format!("bp:{n}").as_bytes(), &value(n)]),
                b"+OK\r\n".to_vec(),
            ),
        }
    };
    assert!(command(COMMANDS - 1).0.len() <= MAX_REQUEST);
    // The only primary (the hung case), kept: a paused node is left out of primaries().
    let only_primary = &cluster.nodes[0];
    if hung {
        only_primary.pause();
    }
    let conn = RespConn::connect(sg.addr);
    let client_addr = conn.stream().local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writer = {
        let stream = conn.stream().try_clone().unwrap();
        stream.set_write_timeout(None).unwrap();
        let written = written.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut out = BufWriter::with_capacity(64 * 1024, stream);
            for n in 0..COMMANDS {
                out.write_all(&command(n).0)?;
                written.store(n + 1, Ordering::Relaxed);
            }
            out.flush()
        })
    };
    // Until the writer is done or stuck (slotgate stopped reading), watch what slotgate
    // holds for this client. "Stuck" is no progress for 2 s: the writer only waits on its
    // socket, so that long means slotgate reads nothing; a writer that is merely slow on a
    // loaded machine keeps moving.
    let mut last = 0;
    let mut still_since = Instant::now();
    // Generous: the writer stalls within a second when slotgate applies backpressure.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut peak = 0;
    while still_since.elapsed() < Duration::from_secs(2) && !writer.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the writer neither finished nor stalled"
        );
        let now = written.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
        peak = peak.max(client_field(
            &client_line(&mut good, client_addr),
            "tot-mem",
        ));
        std::thread::sleep(Duration::from_millis(100));
    }
    let stalled = !writer.is_finished();
    let at_stall = client_line(&mut good, client_addr);
    let held = client_field(&at_stall, "tot-mem");
    peak = peak.max(held);
    eprintln!(
        "[case] {case}: the writer {} after {} of {COMMANDS} commands in {:?}; slotgate held \
         {held} bytes for it then (peak {peak}, bound {BUFFER_BOUND}): {at_stall}",
        if stalled { "stalled" } else { "finished" },
        written.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(
        peak <= BUFFER_BOUND,
        "slotgate held up to {peak} bytes for a client that does not read, over the bound \
         {BUFFER_BOUND} that max-inflight-per-client {INFLIGHT} sets"
    );
    assert!(
        stalled,
        "the writer finished all {COMMANDS} commands: slotgate read the whole pipeline \
         instead of pushing back"
    );
    if hung {
        // Nothing is answered, so exactly the in-flight limit is held: the figure counts it.
        assert!(
            held >= INFLIGHT * 1024,
            "with {INFLIGHT} SETs of 1 KiB in flight, tot-mem is only {held}: {at_stall}"
        );
        only_primary.resume();
    }
    memory.assert_growth_below(32);
    // Others are served meanwhile.
    assert_healthy(&mut sg, &mut good, &case);

    // Now it reads: every reply, in order.
    let mut conn = conn;
    conn.set_read_timeout(Duration::from_secs(30));
    for n in 0..COMMANDS {
        let reply = conn
            .try_read_reply()
            .unwrap_or_else(|e| panic!("reply to command #{n}: {e}"));
        if reply != command(n).1 {
            panic!(
                "reply #{n} out of order or wrong: {:?}",
                text(&reply[..reply.len().min(40)])
            );
        }
    }
    writer.join().unwrap().expect("writer");
    eprintln!(
        "[case] {case}: all {COMMANDS} replies read in order after {:?}",
        started.elapsed()
    );
    memory.assert_growth_below(32);
    assert_healthy(&mut sg, &mut good, "pipelined replies read");
    // Once everything is answered and written, nothing is held for the client.
    assert_eq!(
        client_field(&client_line(&mut good, client_addr), "tot-mem"),
        0,
        "tot-mem after every reply was read"
    );
    if let Some(observer) = observer {
        observer.finish();
    }
}

#[test]
fn a_client_pipelining_set_get_without_reading_gets_backpressure() {
    pipeline_without_reading(Pipeline::SetGetPairs);
}

#[test]
fn a_client_pipelining_sets_without_reading_gets_backpressure() {
    pipeline_without_reading(Pipeline::SetsOnly);
}

#[test]
fn oversized_requests_are_cut_by_the_limits_before_they_are_buffered() {
    let cluster = RedisCluster::start(3, 0);
    let mut sg = Slotgate::start(
        &cluster.seeds(),
        &[
            "--proto-max-bulk-len",
            "1mb",
            "--client-query-buffer-limit",
            "2mb",
            "--max-request-args",
            "100",
            "--threads",
            "1",
        ],
    );
    let pid = sg.pid();
    let addr = sg.addr;
    let mut good = RespConn::connect(addr);
    let observer = Observer::start(addr, "limits");

    // A 100 MiB argument, streamed: refused at its `$` header, before any payload.
    let name = "100 MiB argument over proto-max-bulk-len 1mb";
    observer.case(name);
    let memory = MemoryProbe::start(pid, name);
    let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 100 * MB).into_bytes();
    input.resize(input.len() + 100 * MB, b'x');
    let out = hostile(addr, input, false, QUIET);
    out.assert_error_then_close(name, "-ERR Protocol error: invalid bulk length\r\n", true);
    eprintln!(
        "[case] {name}: {} bytes written before the close",
        out.written
    );
    memory.assert_growth_below(8);
    assert_healthy(&mut sg, &mut good, name);

    // Arguments within the bulk limit adding up past client-query-buffer-limit: 64 MiB in
    // 1 MiB arguments. Cut at 2 MiB; the reads grow the buffer by doubling and the allocator
    // keeps what it freed, so the process grows by a few times the limit (14 MiB measured),
    // once, not by the 64 MiB sent.
    let name = "64 x 1 MiB arguments over client-query-buffer-limit 2mb";
    observer.case(name);
    let memory = MemoryProbe::start(pid, name);
    let mut input = b"*65\r\n$4\r\nMSET\r\n".to_vec();
    for _ in 0..64 {
        input.extend_from_slice(format!("${MB}\r\n").as_bytes());
        input.resize(input.len() + MB, b'y');
        input.extend_from_slice(b"\r\n");
    }
    let out = hostile(addr, input, false, QUIET);
    out.assert_error_then_close(
        name,
        "-ERR Protocol error: query buffer limit exceeded (client-query-buffer-limit)\r\n",
        true,
    );
    eprintln!(
        "[case] {name}: {} bytes written before the close",
        out.written
    );
    memory.assert_growth_below(24);
    assert_healthy(&mut sg, &mut good, name);

    // 20 clients each just under the query buffer limit: what they cost is bounded by the
    // limit per client (1.8 MiB each measured).
    let name = "20 clients each holding 1.9 MB of an incomplete request";
    observer.case(name);
    let memory = MemoryProbe::start(pid, name);
    let mut holders = Vec::new();
    let mut sent = 0;
    for _ in 0..20 {
        let mut conn = RespConn::connect(addr);
        let mut input = format!("*5\r\n$4\r\nMSET\r\n$1\r\na\r\n${MB}\r\n").into_bytes();
        input.resize(input.len() + MB, b'z');
        input.extend_from_slice(format!("\r\n$1\r\nb\r\n${MB}\r\n").as_bytes());
        input.resize(input.len() + MB - 100 * 1024, b'z');
        conn.send_raw(&input);
        sent += input.len();
        holders.push(conn);
    }
    wait_buffered_at_least(&mut good, sent);
    memory.assert_growth_below(20 * 3);
    drop(holders);
    assert_healthy(&mut sg, &mut good, name);

    // max-request-args 100: the count alone is refused, 100 arguments pass. Redis has no
    // such limit: a deliberate difference (docs/security.md).
    let name = "101 arguments over max-request-args 100";
    observer.case(name);
    hostile(addr, b"*101\r\n".to_vec(), false, QUIET).assert_error_then_close(
        name,
        "-ERR Protocol error: invalid multibulk length\r\n",
        false,
    );
    let keys: Vec<String> = (0..99).map(|i| format!("{{args}}{i}")).collect();
    let mut del: Vec<&str> = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    assert_eq!(
        text(&good.cmd_str(&del)),
        ":0\r\n",
        "DEL with 100 arguments"
    );
    assert_healthy(&mut sg, &mut good, name);

    // The 64 MiB line again, with these limits.
    let name = "64 MiB inline line with tight limits";
    observer.case(name);
    let memory = MemoryProbe::start(pid, name);
    let mut input = b"SET k ".to_vec();
    input.resize(64 * MB, b'q');
    hostile(addr, input, false, QUIET).assert_error_then_close(
        name,
        "-ERR Protocol error: too big inline request\r\n",
        true,
    );
    memory.assert_growth_below(8);
    assert_healthy(&mut sg, &mut good, name);

    let info = text(&good.cmd_str(&["INFO", "proxy"]));
    eprintln!(
        "[case] protocol_errors:{:?}",
        info_field(&info, "protocol_errors")
    );
    observer.finish();
}

// ---------------------------------------------------------------------------------------
// Fuzz regressions
// ---------------------------------------------------------------------------------------

/// Files in `dir`, except READMEs, sorted; empty if `dir` does not exist.
/// Malformed and over-limit input sent byte for byte to slotgate and to a standalone
/// redis-server configured with the same limits: where slotgate claims Redis's behaviour the
/// answers must be the same, and where it deliberately differs (docs/security.md,
/// "Differences from Redis on malformed input") Redis's own behaviour is asserted from the
/// server, so the documented difference stays true.
#[test]
fn malformed_input_is_answered_as_redis_does_except_the_documented_differences() {
    let cluster = RedisCluster::start(1, 0);
    let mut sg = Slotgate::start(
        &cluster.seeds(),
        &[
            "--proto-max-bulk-len",
            "1mb",
            "--client-query-buffer-limit",
            "2mb",
            "--max-request-args",
            "100",
            "--threads",
            "1",
        ],
    );
    let mut good = RespConn::connect(sg.addr);
    let redis = common::RedisNode::standalone();
    for (key, value) in [
        ("proto-max-bulk-len", "1mb"),
        ("client-query-buffer-limit", "2mb"),
    ] {
        assert_eq!(redis.cmd(&["CONFIG", "SET", key, value]), "OK");
    }
    let addr = sg.addr;
    let both = |input: &[u8]| {
        (
            hostile(addr, input.to_vec(), false, QUIET),
            hostile(redis.addr, input.to_vec(), false, QUIET),
        )
    };

    // --- The same answer, then the same close (or not).
    let with_fill = |prefix: &[u8], fill: u8| {
        let mut input = prefix.to_vec();
        input.resize(128 * 1024, fill);
        input
    };
    let same: [(&str, Vec<u8>); 6] = [
        ("128 KiB inline line, no CRLF", with_fill(b"GET ", b'a')),
        (
            "128 KiB multibulk count line, no CRLF",
            with_fill(b"*", b'9'),
        ),
        (
            "128 KiB bulk length line, no CRLF",
            with_fill(b"*1\r\n$", b'9'),
        ),
        (
            "a 100 MiB bulk header over proto-max-bulk-len 1mb",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$104857600\r\n".to_vec(),
        ),
        ("a non-numeric argument count", b"*abc\r\n".to_vec()),
        (
            "an integer inside a request",
            b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
        ),
    ];
    for (name, input) in same {
        let (ours, theirs) = both(&input);
        assert!(
            theirs.text().starts_with("-ERR Protocol error: "),
            "{name}: redis-server answered {:?}",
            theirs.text()
        );
        assert_eq!(
            (ours.text(), ours.closed),
            (theirs.text(), theirs.closed),
            "{name}: slotgate (left) vs redis-server (right), (reply, closed)"
        );
        assert_healthy(&mut sg, &mut good, name);
    }

    // --- Deliberate differences.
    // Redis never checks the two bytes after a bulk payload; slotgate forwards the client's
    // bytes as they are, so it requires the CRLF that a node would frame by.
    let name = "a bulk payload followed by xx instead of CRLF";
    let (ours, theirs) = both(b"*1\r\n$4\r\nPINGxx");
    assert_eq!(
        (theirs.text(), theirs.closed),
        ("+PONG\r\n".to_owned(), false),
        "{name}: redis-server"
    );
    ours.assert_error_then_close(
        name,
        "-ERR Protocol error: expected CRLF after a line or bulk argument\r\n",
        false,
    );
    assert_healthy(&mut sg, &mut good, name);

    // Redis has no limit on the argument count (it waits for the 101 arguments);
    // max-request-args is slotgate's, refused with Redis's words for a bad count (above).
    let name = "101 arguments over max-request-args 100";
    let (ours, theirs) = both(b"*101\r\n");
    assert_eq!(
        (theirs.text(), theirs.closed),
        (String::new(), false),
        "{name}: redis-server waits for the arguments"
    );
    ours.assert_error_then_close(
        name,
        "-ERR Protocol error: invalid multibulk length\r\n",
        false,
    );
    assert_healthy(&mut sg, &mut good, name);

    // client-query-buffer-limit: Redis counts its query buffer, which holds one argument of
    // 32 KiB or more at a time, so many 1 MiB arguments pass; slotgate counts the whole
    // request and says why before it closes.
    let limit_error =
        "-ERR Protocol error: query buffer limit exceeded (client-query-buffer-limit)\r\n";
    let name = "64 arguments of 1 MiB over client-query-buffer-limit 2mb";
    let mut input = b"*65\r\n$4\r\nMSET\r\n".to_vec();
    for _ in 0..64 {
        input.extend_from_slice(format!("${MB}\r\n").as_bytes());
        input.resize(input.len() + MB, b'y');
        input.extend_from_slice(b"\r\n");
    }
    let (ours, theirs) = both(&input);
    assert_eq!(
        (theirs.text(), theirs.closed),
        ("+OK\r\n".to_owned(), false),
        "{name}: redis-server runs it (no argument is over the limit)"
    );
    // Closing with most of the request unread may reset the connection before the reply is
    // read.
    ours.assert_error_then_close(name, limit_error, true);
    assert_healthy(&mut sg, &mut good, name);

    // Redis closes without a reply when its query buffer is over the limit: one argument
    // larger than it, which needs a proto-max-bulk-len above the limit. slotgate refuses
    // that configuration (client-query-buffer-limit must exceed proto-max-bulk-len), so
    // for the same bytes it is its bulk limit that answers, with Redis's text.
    let name = "one 3 MiB argument, client-query-buffer-limit 2mb";
    assert_eq!(
        redis.cmd(&["CONFIG", "SET", "proto-max-bulk-len", "512mb"]),
        "OK"
    );
    let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", 3 * MB).into_bytes();
    input.resize(input.len() + 3 * MB, b'x');
    input.extend_from_slice(b"\r\n");
    let (ours, theirs) = both(&input);
    assert_eq!(
        (theirs.text(), theirs.closed),
        (String::new(), true),
        "{name}: redis-server closes without a reply"
    );
    ours.assert_error_then_close(name, "-ERR Protocol error: invalid bulk length\r\n", true);
    assert_healthy(&mut sg, &mut good, name);
}

fn inputs_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

#[test]
fn fuzz_seeds_and_regressions_replay_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    type Harness = fn(&[u8]);
    let targets: [(&str, Harness); 2] = [
        ("scan_request", scan_request_harness::run),
        ("walk_reply", walk_reply_harness::run),
    ];
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (target, run) in targets {
        for kind in ["seeds", "regressions"] {
            for file in inputs_in(&fuzz.join(kind).join(target)) {
                let input = std::fs::read(&file).unwrap();
                replayed += 1;
                if let Err(panic) = std::panic::catch_unwind(|| run(&input)) {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{}: {why}", file.display()));
                }
            }
        }
    }
    eprintln!("[fuzz] replayed {replayed} seed and regression inputs");
    assert!(
        replayed >= 4,
        "no fuzz seeds found under {}",
        fuzz.display()
    );
    assert!(
        failures.is_empty(),
        "fuzz inputs that fail the harness checks (reproduce with `cd fuzz && \
         RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a <target> <file>`):\n{}",
        failures.join("\n")
    );
}
