//! Steady write load with an exact ledger, for topology-change scenarios: [`Load`].
//!
//! One thread per key, each with its own client connection to slotgate, sends `INCR key`
//! one at a time (optionally followed by `GET key`, to catch a read older than the write
//! just acknowledged), pausing `pace` between commands. Each thread owns its key, so the
//! ledger is exact: every acknowledged INCR, and every error with its text, the command's
//! send and completion instants and the wall-clock time (to line it up with slotgate's log).
//! A connection that fails or times out after the command was written counts as an error
//! whose outcome is unknown (the client cannot tell whether the INCR ran), and is reopened.
//!
//! Afterwards [`LoadReport::audit`] compares each key's value, read from the cluster
//! directly, with the ledger: `acks <= value <= acks + maybe_executed`. Less is a lost
//! acknowledged write; more is a write applied although the client was told it was not (or
//! applied twice).
//!
//! [`record_figure`] prints a measured figure and appends it as a JSON line to
//! `target/topology-figures.jsonl` for the project notes.
//!
//! The client here is a minimal blocking RESP2 reader (integers, bulk, status, error,
//! arrays), independent of slotgate's code, with explicit timeouts.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The bulk payload as text, if this is a non-null bulk string.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Status(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A blocking RESP2 connection with connect/read/write timeouts; I/O problems are `Err`.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            pos: 0,
        })
    }

    /// Sends one command and reads one reply. `Err` only for I/O problems (the connection
    /// is then unusable); an error reply is `Ok(Reply::Error)`.
    pub fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut out = format!("*{}\r\n", args.len());
        for arg in args {
            let _ = write!(out, "${}\r\n{arg}\r\n", arg.len());
        }
        self.stream
            .write_all(out.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> Result<Reply, String> {
        loop {
            let mut pos = self.pos;
            if let Some(reply) = parse(&self.buf, &mut pos)? {
                self.pos = pos;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                }
                return Ok(reply);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("connection closed by slotgate".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!("client read timeout ({e})"));
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// Parses one reply at `*pos`; `Ok(None)` if incomplete.
fn parse(buf: &[u8], pos: &mut usize) -> Result<Option<Reply>, String> {
    let Some(line_end) = find_crlf(buf, *pos) else {
        return Ok(None);
    };
    let Some(&kind) = buf.get(*pos) else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[*pos + 1..line_end]).into_owned();
    let after = line_end + 2;
    let int = || {
        line.parse::<i64>()
            .map_err(|_| format!("bad RESP length/integer {line:?}"))
    };
    match kind {
        b'+' => {
            *pos = after;
            Ok(Some(Reply::Status(line)))
        }
        b'-' => {
            *pos = after;
            Ok(Some(Reply::Error(line)))
        }
        b':' => {
            *pos = after;
            Ok(Some(Reply::Int(int()?)))
        }
        b'$' => {
            let len = int()?;
            if len < 0 {
                *pos = after;
                return Ok(Some(Reply::Bulk(None)));
            }
            let end = after + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            *pos = end + 2;
            Ok(Some(Reply::Bulk(Some(buf[after..end].to_vec()))))
        }
        b'*' => {
            let len = int()?;
            if len < 0 {
                *pos = after;
                return Ok(Some(Reply::Array(None)));
            }
            let mut p = after;
            let mut items = Vec::with_capacity(len as usize);
            for _ in 0..len {
                match parse(buf, &mut p)? {
                    Some(item) => items.push(item),
                    None => return Ok(None),
                }
            }
            *pos = p;
            Ok(Some(Reply::Array(Some(items))))
        }
        other => Err(format!(
            "unexpected RESP type byte {:?} in {:?}",
            other as char,
            String::from_utf8_lossy(&buf[*pos..buf.len().min(*pos + 80)])
        )),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

/// Sends one command on a fresh connection to `addr` (5 s timeout).
pub fn call_once(addr: SocketAddr, args: &[&str]) -> Result<Reply, String> {
    Client::connect(addr, Duration::from_secs(5))?.call(args)
}

/// `INFO proxy` through slotgate as `(field, value)` pairs.
pub fn info_proxy(addr: SocketAddr) -> Result<Vec<(String, String)>, String> {
    match call_once(addr, &["INFO", "proxy"])? {
        Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b)
            .lines()
            .filter_map(|l| {
                let (k, v) = l.trim_end().split_once(':')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect()),
        other => Err(format!("INFO proxy answered {other:?}")),
    }
}

/// One field of `INFO proxy`.
pub fn info_proxy_field(addr: SocketAddr, field: &str) -> Result<Option<String>, String> {
    Ok(info_proxy(addr)?
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v))
}

/// How the load behaves.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Pause after each command (keeps the 2-core box usable and the rate steady).
    pub pace: Duration,
    /// After each acknowledged INCR returning n, `GET` the key and flag any value below n.
    pub check_reads: bool,
    /// Client-side read timeout: longer than slotgate's retry deadline, so a held command is
    /// not mistaken for a lost one.
    pub op_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            pace: Duration::from_millis(2),
            check_reads: false,
            op_timeout: Duration::from_secs(15),
        }
    }
}

/// A command that completed successfully.
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub sent: Instant,
    pub done: Instant,
}

/// A command the client saw fail.
#[derive(Clone, Debug)]
pub struct OpError {
    pub key: String,
    pub command: &'static str,
    pub sent: Instant,
    pub done: Instant,
    pub wall: SystemTime,
    pub text: String,
    /// The connection failed (closed, reset, timed out) after the command was written.
    pub io: bool,
}

impl OpError {
    /// The command may have run: an I/O failure after writing it, or an error reply saying
    /// the outcome is unknown or that the node timed out.
    pub fn maybe_executed(&self) -> bool {
        let t = self.text.to_ascii_lowercase();
        self.io
            || self.says_unknown()
            || t.contains("timeout")
            || t.contains("timed out")
            || t.contains("in time")
    }

    /// Says the outcome is unknown, slotgate's answer for a command whose connection died
    /// after it was written ("outcome unknown", "may have been executed").
    pub fn says_unknown(&self) -> bool {
        let t = self.text.to_ascii_lowercase();
        t.contains("unknown")
            || t.contains("may have been executed")
            || t.contains("may have executed")
    }

    pub fn latency(&self) -> Duration {
        self.done - self.sent
    }

    /// One line: offset from `t0`, wall clock (UTC), latency, key, command, text.
    pub fn describe(&self, t0: Instant) -> String {
        format!(
            "+{:.3}s [{} UTC] {:>5}ms {} {} {}: {}",
            self.done.saturating_duration_since(t0).as_secs_f64(),
            wall_clock(self.wall),
            self.latency().as_millis(),
            self.command,
            self.key,
            if self.io { "io" } else { "reply" },
            self.text
        )
    }
}

/// The ledger of one key.
#[derive(Clone, Debug, Default)]
pub struct KeyLog {
    pub key: String,
    /// Acknowledged INCRs.
    pub acks: u64,
    /// Completed INCRs (send and completion instants).
    pub oks: Vec<Op>,
    pub errors: Vec<OpError>,
    /// Reads that returned less than an INCR acknowledged before them.
    pub stale_reads: Vec<String>,
    pub reads: u64,
    /// Last value an INCR returned.
    pub last_value: i64,
}

impl KeyLog {
    /// INCR errors after which the INCR may have run.
    pub fn maybe_executed(&self) -> u64 {
        self.errors
            .iter()
            .filter(|e| e.command == "INCR" && e.maybe_executed())
            .count() as u64
    }
}

/// A running load; stop it with [`Load::stop`].
pub struct Load {
    pub t0: Instant,
    logs: Vec<Arc<Mutex<KeyLog>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts one thread per key against `addr`.
    pub fn start(addr: SocketAddr, keys: &[String], options: LoadOptions) -> Load {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut logs = Vec::new();
        let mut handles = Vec::new();
        for key in keys {
            let log = Arc::new(Mutex::new(KeyLog {
                key: key.clone(),
                ..KeyLog::default()
            }));
            logs.push(log.clone());
            let stop = stop.clone();
            let key = key.clone();
            let options = options.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("load-{key}"))
                    .spawn(move || run_key(addr, &key, &options, &log, &stop))
                    .expect("spawn a load thread"),
            );
        }
        Load {
            t0,
            logs,
            stop,
            handles,
        }
    }

    /// A copy of every key's ledger so far.
    pub fn snapshot(&self) -> Vec<KeyLog> {
        self.logs
            .iter()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Waits until every key has an acknowledged INCR *sent* at or after `since`; returns the
    /// latest of those first completions, or `None` after `timeout`.
    pub fn wait_all_acked_since(&self, since: Instant, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let firsts: Vec<Option<Instant>> = self
                .snapshot()
                .iter()
                .map(|k| k.oks.iter().find(|op| op.sent >= since).map(|op| op.done))
                .collect();
            if firsts.iter().all(Option::is_some) {
                return firsts.into_iter().flatten().max();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops every thread (each finishes its command in flight) and returns the ledgers.
    pub fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        for handle in std::mem::take(&mut self.handles) {
            handle.join().expect("a load thread panicked");
        }
        LoadReport {
            t0: self.t0,
            keys: self
                .logs
                .iter()
                .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).clone())
                .collect(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // Threads still running (the test panicked) stop at their next command.
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn run_key(
    addr: SocketAddr,
    key: &str,
    options: &LoadOptions,
    log: &Mutex<KeyLog>,
    stop: &AtomicBool,
) {
    let record_error = |command: &'static str, sent: Instant, text: String, io: bool| {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        log.errors.push(OpError {
            key: key.to_string(),
            command,
            sent,
            done: Instant::now(),
            wall: SystemTime::now(),
            text,
            io,
        });
    };
    let mut conn: Option<Client> = None;
    while !stop.load(Ordering::SeqCst) {
        let client = match conn.as_mut() {
            Some(c) => c,
            None => match Client::connect(addr, options.op_timeout) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    // Nothing was written: not an unknown outcome.
                    record_error("CONNECT", Instant::now(), e, false);
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match client.call(&["INCR", key]) {
            Ok(Reply::Int(n)) => {
                let done = Instant::now();
                {
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    log.acks += 1;
                    log.oks.push(Op { sent, done });
                    log.last_value = n;
                }
                if options.check_reads {
                    let read_sent = Instant::now();
                    match client.call(&["GET", key]) {
                        Ok(reply) => {
                            let value = reply.text().and_then(|t| t.parse::<i64>().ok());
                            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                            log.reads += 1;
                            match (value, &reply) {
                                (Some(v), _) if v >= n => {}
                                (_, Reply::Error(e)) => {
                                    drop(log);
                                    record_error("GET", read_sent, e.clone(), false);
                                }
                                _ => log.stale_reads.push(format!(
                                    "GET {key} after INCR returned {n} answered {reply:?} \
                                     (+{:.3}s, {} UTC)",
                                    read_sent.duration_since(sent).as_secs_f64(),
                                    wall_clock(SystemTime::now())
                                )),
                            }
                        }
                        Err(e) => {
                            record_error("GET", read_sent, e, true);
                            conn = None;
                        }
                    }
                }
            }
            Ok(Reply::Error(e)) => record_error("INCR", sent, e, false),
            Ok(other) => record_error("INCR", sent, format!("unexpected reply {other:?}"), false),
            Err(e) => {
                record_error("INCR", sent, e, true);
                conn = None;
            }
        }
        std::thread::sleep(options.pace);
    }
}

/// The ledgers of a finished load.
pub struct LoadReport {
    pub t0: Instant,
    pub keys: Vec<KeyLog>,
}

/// The audit of one key.
#[derive(Clone, Debug)]
pub struct KeyAudit {
    pub key: String,
    pub acks: u64,
    pub maybe: u64,
    pub value: i64,
}

impl KeyAudit {
    /// Acknowledged increments missing from the value.
    pub fn lost(&self) -> u64 {
        (self.acks as i64 - self.value).max(0) as u64
    }

    /// Increments in the value beyond acks + maybe-executed.
    pub fn extra(&self) -> u64 {
        (self.value - (self.acks + self.maybe) as i64).max(0) as u64
    }
}

/// Result of [`LoadReport::audit`].
#[derive(Clone, Debug)]
pub struct Audit {
    pub keys: Vec<KeyAudit>,
}

impl Audit {
    pub fn lost(&self) -> u64 {
        self.keys.iter().map(KeyAudit::lost).sum()
    }

    pub fn extra(&self) -> u64 {
        self.keys.iter().map(KeyAudit::extra).sum()
    }

    /// Keys that had at least one maybe-executed error, with their counts.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.maybe > 0)
            .map(|k| {
                format!(
                    "{}: {} unknown-outcome error(s), {} of them applied",
                    k.key,
                    k.maybe,
                    (k.value - k.acks as i64).max(0)
                )
            })
            .collect()
    }

    /// Panics with a readable table if any write was lost or applied beyond the ledger.
    pub fn assert_clean(&self, context: &str) {
        if self.lost() == 0 && self.extra() == 0 {
            return;
        }
        let table: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                format!(
                    "  {}: value {} acks {} maybe-executed {} -> lost {} extra {}",
                    k.key,
                    k.value,
                    k.acks,
                    k.maybe,
                    k.lost(),
                    k.extra()
                )
            })
            .collect();
        panic!(
            "{context}: audit failed: {} acknowledged write(s) lost, {} write(s) applied \
             beyond acks + unknown outcomes:\n{}",
            self.lost(),
            self.extra(),
            table.join("\n")
        );
    }
}

impl LoadReport {
    /// Every error, in completion order.
    pub fn errors(&self) -> Vec<&OpError> {
        let mut all: Vec<&OpError> = self.keys.iter().flat_map(|k| &k.errors).collect();
        all.sort_by_key(|e| e.done);
        all
    }

    pub fn acks(&self) -> u64 {
        self.keys.iter().map(|k| k.acks).sum()
    }

    pub fn stale_reads(&self) -> Vec<&String> {
        self.keys.iter().flat_map(|k| &k.stale_reads).collect()
    }

    /// The first `max` errors, one per line, plus a count of the rest.
    pub fn error_lines(&self, max: usize) -> String {
        let errors = self.errors();
        let mut out: Vec<String> = errors
            .iter()
            .take(max)
            .map(|e| format!("  {}", e.describe(self.t0)))
            .collect();
        if errors.len() > max {
            out.push(format!("  ... and {} more", errors.len() - max));
        }
        out.join("\n")
    }

    /// Reads every key with `read` (from the cluster directly) and compares with the ledger.
    pub fn audit(&self, mut read: impl FnMut(&str) -> Result<Option<i64>, String>) -> Audit {
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let value = read(&k.key)
                    .unwrap_or_else(|e| panic!("audit: reading {} from the cluster: {e}", k.key))
                    .unwrap_or(0);
                KeyAudit {
                    key: k.key.clone(),
                    acks: k.acks,
                    maybe: k.maybe_executed(),
                    value,
                }
            })
            .collect();
        Audit { keys }
    }
}

/// `HH:MM:SS.mmm` of a wall-clock time, UTC (slotgate logs in UTC).
pub fn wall_clock(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_millis()
    )
}

/// Where the figures go: `$CARGO_TARGET_DIR` or `<crate>/target`, file
/// `topology-figures.jsonl`.
pub fn figures_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("topology-figures.jsonl")
}

/// Prints a measured figure and appends it to [`figures_path`] as one JSON object:
/// `{"run":..,"scenario":..,"figure":..,"value":..,"unit":..,"unix_ms":..}`; `run` is the
/// same for every figure of one test process.
pub fn record_figure(scenario: &str, figure: &str, value: f64, unit: &str) {
    println!("FIGURE {scenario}: {figure} = {value} {unit}");
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let value = if value.is_finite() {
        format!("{value}")
    } else {
        "null".into()
    };
    // Groups the figures of one test process: `<pid>-<ms of its first figure>`.
    static RUN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| format!("{}-{unix_ms}", std::process::id()));
    let line = format!(
        "{{\"run\":{},\"scenario\":{},\"figure\":{},\"value\":{value},\"unit\":{},\"unix_ms\":{unix_ms}}}\n",
        json_str(run),
        json_str(scenario),
        json_str(figure),
        json_str(unit)
    );
    let path = figures_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let written = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot append to {}: {e}", path.display());
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lines of slotgate's log at WARN or ERROR level, or mentioning any of `needles`;
/// the last `max` of them, for failure messages.
pub fn log_excerpt(log: &str, needles: &[&str], max: usize) -> String {
    let plain = strip_ansi(log);
    let lines: Vec<&str> = plain
        .lines()
        .filter(|l| {
            l.contains("WARN") || l.contains("ERROR") || needles.iter().any(|n| l.contains(n))
        })
        .collect();
    let from = lines.len().saturating_sub(max);
    let mut out = String::new();
    if from > 0 {
        let _ = writeln!(out, "  ({from} earlier matching lines omitted)");
    }
    for line in &lines[from..] {
        let _ = writeln!(out, "  {line}");
    }
    if lines.is_empty() {
        out.push_str("  (no WARN/ERROR lines)\n");
    }
    out
}

/// `text` without ANSI colour sequences (slotgate's human log format colours its fields).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
