//! `SLOWLOG`: the most recent commands slower than `slowlog-log-slower-than`.
//!
//! Sessions measure each command end to end (request read to reply ready) and call
//! [`SlowLog::observe`] (or [`SlowLog::observe_frame`]) with that duration; the threshold
//! check is one relaxed atomic load, and only a slow command takes the lock and copies its
//! arguments. Entries follow Redis's shape and limits (at most 32 arguments of at most 128
//! bytes each, the rest summarized), so client libraries parse `SLOWLOG GET` as from Redis.
//! Arguments that are secrets (`AUTH`, `HELLO ... AUTH`, `MIGRATE ... AUTH`, `ACL SETUSER`,
//! `CONFIG SET *pass*`) are stored as `(redacted)`, never in clear.
//!
//! Unlike Redis, whose slow log measures execution inside the server only, slotgate's
//! duration includes the network round trip to the node and any redirect or retry: it is
//! what the client waited.
//!
//! Shared by all workers; the mutex is held for a push or a copy, never across an `.await`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::resp::ArgView;

/// Redis's `SLOWLOG_ENTRY_MAX_ARGC`.
pub const MAX_ARGS: usize = 32;
/// Redis's `SLOWLOG_ENTRY_MAX_STRING`.
pub const MAX_ARG_LEN: usize = 128;
const REDACTED: &[u8] = b"(redacted)";

/// One slow command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowEntry {
    /// Unique, increasing id (reset only by a restart, as in Redis).
    pub id: u64,
    /// When it was recorded, in seconds since the Unix epoch.
    pub unix_secs: u64,
    /// End-to-end duration in microseconds.
    pub duration_us: u64,
    /// The arguments, truncated and redacted (see the module docs).
    pub args: Vec<Bytes>,
    /// `ip:port` of the client.
    pub client_addr: String,
    /// The client's name, or empty.
    pub client_name: Bytes,
}

/// The slow log; see the module docs.
#[derive(Debug)]
pub struct SlowLog {
    entries: Mutex<VecDeque<SlowEntry>>,
    next_id: AtomicU64,
    /// Microseconds; negative disables the log.
    threshold_us: AtomicI64,
    max_len: AtomicUsize,
}

impl SlowLog {
    /// `threshold_us` is `slowlog-log-slower-than` (negative: off; 0: every command),
    /// `max_len` is `slowlog-max-len`.
    pub fn new(threshold_us: i64, max_len: usize) -> Self {
        Self {
            entries: Mutex::default(),
            next_id: AtomicU64::new(0),
            threshold_us: AtomicI64::new(threshold_us),
            max_len: AtomicUsize::new(max_len),
        }
    }

    /// Applies reloaded settings; a shorter length drops the oldest entries now.
    pub fn configure(&self, threshold_us: i64, max_len: usize) {
        self.threshold_us.store(threshold_us, Ordering::Relaxed);
        self.max_len.store(max_len, Ordering::Relaxed);
        let mut entries = self.lock();
        while entries.len() > max_len {
            entries.pop_back();
        }
    }

    /// True when a command that took `duration` belongs in the log.
    #[inline]
    pub fn is_slow(&self, duration: Duration) -> bool {
        let threshold = self.threshold_us.load(Ordering::Relaxed);
        threshold >= 0 && duration.as_micros() >= threshold as u128
    }

    /// Records the command `args` if `duration` reaches the threshold. Call once per
    /// command when its reply is ready. Cheap when the command is fast.
    #[inline]
    pub fn observe(
        &self,
        duration: Duration,
        args: &ArgView<'_>,
        client_addr: SocketAddr,
        client_name: Option<&[u8]>,
    ) {
        if self.is_slow(duration) {
            self.record(duration, args.iter(), client_addr, client_name);
        }
    }

    /// [`SlowLog::observe`] for a request frame kept as bytes (a RESP array of bulk
    /// strings, as sessions forward it), when its argument ranges are gone. A frame that
    /// does not parse is recorded as its first 128 bytes.
    #[inline]
    pub fn observe_frame(
        &self,
        duration: Duration,
        frame: &[u8],
        client_addr: SocketAddr,
        client_name: Option<&[u8]>,
    ) {
        if !self.is_slow(duration) {
            return;
        }
        match parse_multibulk(frame) {
            Some(args) => self.record(duration, args, client_addr, client_name),
            None => self.record(
                duration,
                std::iter::once(&frame[..frame.len().min(MAX_ARG_LEN)]),
                client_addr,
                client_name,
            ),
        }
    }

    /// Adds an entry unconditionally (the slow path of [`SlowLog::observe`]).
    pub fn record<'a>(
        &self,
        duration: Duration,
        args: impl IntoIterator<Item = &'a [u8]>,
        client_addr: SocketAddr,
        client_name: Option<&[u8]>,
    ) {
        let max_len = self.max_len.load(Ordering::Relaxed);
        if max_len == 0 {
            return;
        }
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: crate::clock::unix_ms() / 1000,
            duration_us: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            args: capture_args(args),
            client_addr: client_addr.to_string(),
            client_name: Bytes::copy_from_slice(client_name.unwrap_or_default()),
        };
        let mut entries = self.lock();
        entries.push_front(entry);
        while entries.len() > max_len {
            entries.pop_back();
        }
    }

    /// `SLOWLOG GET [count]`: the newest `count` entries (all of them when `None`; Redis's
    /// default of 10 is the caller's business), newest first.
    pub fn get(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let entries = self.lock();
        let count = count.unwrap_or(entries.len());
        entries.iter().take(count).cloned().collect()
    }

    /// `SLOWLOG LEN`.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `SLOWLOG RESET`.
    pub fn reset(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<SlowEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Copies at most [`MAX_ARGS`] arguments of at most [`MAX_ARG_LEN`] bytes, Redis style,
/// with secrets redacted.
fn capture_args<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Vec<Bytes> {
    let args: Vec<&[u8]> = args.into_iter().collect();
    let total = args.len();
    let kept = if total > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        total
    };
    let mut out: Vec<Bytes> = Vec::with_capacity(kept + 1);
    let mut redact = Redactor::default();
    for (i, &arg) in args.iter().enumerate().take(kept) {
        if redact.is_secret(i, arg) {
            out.push(Bytes::from_static(REDACTED));
        } else if arg.len() > MAX_ARG_LEN {
            let mut text = arg[..MAX_ARG_LEN].to_vec();
            text.extend_from_slice(
                format!("... ({} more bytes)", arg.len() - MAX_ARG_LEN).as_bytes(),
            );
            out.push(Bytes::from(text));
        } else {
            out.push(Bytes::copy_from_slice(arg));
        }
    }
    if total > kept {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            total - kept
        )));
    }
    out
}

/// Decides, argument by argument, which ones carry a password.
#[derive(Default)]
struct Redactor {
    command: Vec<u8>,
    /// Arguments still to redact after a keyword (`AUTH user pass`).
    pending: usize,
    /// Everything from here on is secret.
    rest: bool,
}

impl Redactor {
    fn is_secret(&mut self, index: usize, arg: &[u8]) -> bool {
        if index == 0 {
            self.command = arg.to_ascii_lowercase();
            return false;
        }
        if self.rest {
            return true;
        }
        if self.pending > 0 {
            self.pending -= 1;
            return true;
        }
        let lower = arg.to_ascii_lowercase();
        match (self.command.as_slice(), lower.as_slice()) {
            (b"auth", _) => {
                self.rest = true;
                true
            }
            (b"hello", b"auth") => {
                self.pending = 2;
                false
            }
            (b"migrate", b"auth") => {
                self.pending = 1;
                false
            }
            (b"migrate", b"auth2") => {
                self.pending = 2;
                false
            }
            // ACL SETUSER name rules...: rules may hold passwords (`>secret`, `#hash`).
            (b"acl", b"setuser") if index == 1 => {
                self.command = b"acl setuser".to_vec();
                false
            }
            // The user name is kept; every rule after it is secret.
            (b"acl setuser", _) => index > 2,
            (b"config", _)
                if index >= 2 && (lower.contains_str(b"pass") || lower.contains_str(b"auth")) =>
            {
                self.pending = 1;
                false
            }
            _ => false,
        }
    }
}

/// `contains` for byte strings.
trait ContainsBytes {
    fn contains_str(&self, needle: &[u8]) -> bool;
}

impl ContainsBytes for Vec<u8> {
    fn contains_str(&self, needle: &[u8]) -> bool {
        self.windows(needle.len()).any(|w| w == needle)
    }
}

/// The bulk strings of a RESP array of bulk strings; `None` for anything else.
fn parse_multibulk(frame: &[u8]) -> Option<Vec<&[u8]>> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf.get(at..)?.windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    fn number(text: &[u8]) -> Option<usize> {
        std::str::from_utf8(text).ok()?.parse().ok()
    }
    let (header, mut at) = line(frame, 0)?;
    let count = number(header.strip_prefix(b"*")?)?;
    let mut args = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let (header, start) = line(frame, at)?;
        let len = number(header.strip_prefix(b"$")?)?;
        let end = start.checked_add(len)?;
        args.push(frame.get(start..end)?);
        at = end + 2;
    }
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:5555".parse().unwrap()
    }

    fn record(log: &SlowLog, args: &[&[u8]]) {
        log.record(
            Duration::from_millis(20),
            args.iter().copied(),
            addr(),
            Some(b"app"),
        );
    }

    #[test]
    fn threshold_and_length() {
        let log = SlowLog::new(10_000, 2);
        assert!(!log.is_slow(Duration::from_micros(9_999)));
        assert!(log.is_slow(Duration::from_micros(10_000)));
        record(&log, &[b"GET", b"a"]);
        record(&log, &[b"GET", b"b"]);
        record(&log, &[b"GET", b"c"]);
        assert_eq!(log.len(), 2);
        let entries = log.get(None);
        assert_eq!(entries[0].args[1], Bytes::from_static(b"c"));
        assert_eq!(entries[0].id, 2);
        assert_eq!(entries[1].id, 1);
        assert_eq!(entries[0].client_addr, "127.0.0.1:5555");
        assert_eq!(entries[0].client_name, Bytes::from_static(b"app"));
        assert_eq!(entries[0].duration_us, 20_000);
        assert_eq!(log.get(Some(1)).len(), 1);
        log.configure(-1, 1);
        assert_eq!(log.len(), 1);
        assert!(!log.is_slow(Duration::from_secs(100)));
        log.reset();
        assert!(log.is_empty());
        log.configure(0, 0);
        assert!(log.is_slow(Duration::ZERO));
        record(&log, &[b"GET", b"x"]);
        assert!(log.is_empty(), "max-len 0 keeps nothing");
    }

    #[test]
    fn long_arguments_are_cut_like_redis() {
        let log = SlowLog::new(0, 10);
        let big = vec![b'x'; 200];
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for _ in 0..40 {
            args.push(&big);
        }
        record(&log, &args);
        let entry = &log.get(None)[0];
        assert_eq!(entry.args.len(), MAX_ARGS);
        assert_eq!(
            entry.args[31],
            Bytes::from_static(b"... (10 more arguments)")
        );
        assert!(entry.args[1].ends_with(b"... (72 more bytes)"));
        assert_eq!(entry.args[1].len(), 128 + "... (72 more bytes)".len());
    }

    #[test]
    fn secrets_are_redacted() {
        let log = SlowLog::new(0, 10);
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);
        let cases: &[Case] = &[
            (&[b"AUTH", b"hunter2"], &[b"AUTH", REDACTED]),
            (
                &[b"auth", b"user", b"hunter2"],
                &[b"auth", REDACTED, REDACTED],
            ),
            (
                &[b"HELLO", b"3", b"AUTH", b"u", b"hunter2", b"SETNAME", b"n"],
                &[
                    b"HELLO", b"3", b"AUTH", REDACTED, REDACTED, b"SETNAME", b"n",
                ],
            ),
            (
                &[
                    b"MIGRATE", b"h", b"1", b"k", b"0", b"5", b"AUTH2", b"u", b"hunter2",
                ],
                &[
                    b"MIGRATE", b"h", b"1", b"k", b"0", b"5", b"AUTH2", REDACTED, REDACTED,
                ],
            ),
            (
                &[b"ACL", b"SETUSER", b"bob", b">hunter2", b"on"],
                &[b"ACL", b"SETUSER", b"bob", REDACTED, REDACTED],
            ),
            (
                &[b"CONFIG", b"SET", b"masterauth", b"hunter2"],
                &[b"CONFIG", b"SET", b"masterauth", REDACTED],
            ),
            (&[b"SET", b"auth", b"v"], &[b"SET", b"auth", b"v"]),
        ];
        for (input, want) in cases {
            log.reset();
            record(&log, input);
            let got = &log.get(None)[0].args;
            let want: Vec<Bytes> = want.iter().map(|a| Bytes::copy_from_slice(a)).collect();
            assert_eq!(got, &want, "{input:?}");
        }
    }

    #[test]
    fn frames_are_parsed() {
        let log = SlowLog::new(0, 10);
        log.observe_frame(
            Duration::from_millis(1),
            b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
            addr(),
            None,
        );
        let entry = &log.get(None)[0];
        assert_eq!(
            entry.args,
            vec![Bytes::from_static(b"GET"), Bytes::from_static(b"key")]
        );
        assert_eq!(entry.client_name, Bytes::new());
        assert!(parse_multibulk(b"*2\r\n$3\r\nGET\r\n").is_none());
        assert!(parse_multibulk(b"PING\r\n").is_none());
        log.observe_frame(Duration::from_millis(1), b"garbage", addr(), None);
        assert_eq!(log.get(None)[0].args, vec![Bytes::from_static(b"garbage")]);
    }
}
