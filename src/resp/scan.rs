//! Request scanner: client bytes -> one request at a time.
//!
//! ```text
//! client socket -> session read buffer -> RequestScanner::scan(buf, args)
//!                     |  Request { len }         args = payload ranges in buf[..len]
//!                     |  Inline  { len, frame }  args = ranges in frame
//!                     |  Empty   { len }         nothing to run (Redis ignores it too)
//!                     v
//!     session splits buf[..len] off its buffer -> router -> backend (bytes untouched)
//! ```
//!
//! The scanner follows Redis 7's `processMultibulkBuffer` / `processInlineBuffer`
//! (networking.c): a request starting with `*` is a multibulk array of bulk strings, anything
//! else is an inline command split with `sdssplitargs` rules. It is:
//!
//! - **zero-copy** for RESP requests: arguments are `Range<u32>` offsets into the caller's bytes,
//!   so the frame is forwarded as the client sent it. Only inline commands (telnet, `redis-cli`
//!   piping) are re-encoded, into a fresh RESP array, because a backend must not see them raw.
//! - **resumable and linear**: on `Ok(None)` it remembers where it stopped (the start of the
//!   current line or payload and how far the line terminator search got), so a 512 MiB bulk
//!   arriving in 64 KiB reads costs O(total), not O(total^2). Payload bytes are never examined:
//!   a `$<len>` header says where the payload ends.
//! - **allocation-free in steady state**: the state is plain fields; the caller's `args` vector is
//!   reused from request to request.
//! - **bounded**: argument count, bulk length, header-line length and inline-line length are
//!   capped by [`ScanLimits`]; a whole request is capped at [`MAX_REQUEST_LEN`] (4 GiB - 1) so
//!   every offset fits the `u32` ranges.
//!
//! Deliberate differences from Redis, all on malformed input:
//! - Redis skips whatever byte follows the `\r` of a `*`/`$` line and never checks the two bytes
//!   after a bulk payload. We require `\r\n` in both places and answer
//!   [`ScanError::MissingCrlf`]: we forward the original bytes, so accepting something the
//!   backend might frame differently would desynchronise the connection.
//! - Redis decides "too big ... string" from how many bytes happen to be buffered; we decide it
//!   from the position of the terminator (more than `max_inline_len` bytes after the line start),
//!   so the verdict never depends on how the bytes were split into reads.
//! - Redis searches lines with `strchr`, which stops at a NUL byte; we search the real bytes. An
//!   inline line is still cut at its first NUL before splitting, exactly as `sdssplitargs` sees it.
//! - Redis's unauthenticated limits (`*` > 10, `$` > 16384 before AUTH) are the session's business.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

/// Largest request the scanner accepts: every offset must fit the `u32` argument ranges.
pub const MAX_REQUEST_LEN: usize = u32::MAX as usize;

/// Cap applied to [`ScanLimits::max_bulk_len`]: leaves room for the `*`/`$` header lines so a
/// single-argument request at the cap still fits [`MAX_REQUEST_LEN`].
const MAX_BULK_CAP: usize = MAX_REQUEST_LEN - 64;

/// Cap applied to [`ScanLimits::max_inline_len`]: an inline line re-encodes to at most about
/// four times its length, which must stay under [`MAX_REQUEST_LEN`].
const MAX_INLINE_CAP: usize = 256 * 1024 * 1024;

/// Limits on what one client request may contain. Values above the internal caps (bulk:
/// 4 GiB - 64, inline: 256 MiB) are clamped by [`RequestScanner::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanLimits {
    /// Largest bulk argument (Redis `proto-max-bulk-len`), default 512 MiB.
    pub max_bulk_len: usize,
    /// Largest multibulk argument count, default 1024 * 1024.
    pub max_args: usize,
    /// Longest inline command line and longest `*`/`$` header line (Redis
    /// `PROTO_INLINE_MAX_SIZE`), default 64 KiB.
    pub max_inline_len: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A protocol error in a client request. Redis answers `-ERR <message>` and closes the
/// connection; the session should do the same, since the stream can't be re-synchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// `*<count>` is not a number, or is above `max_args`.
    InvalidMultibulkLength,
    /// `$<len>` is not a number, is negative, or is above `max_bulk_len`.
    InvalidBulkLength,
    /// A multibulk element did not start with `$`; carries the byte found instead.
    ExpectedDollar(u8),
    /// An inline command line longer than `max_inline_len`.
    TooBigInline,
    /// An inline command with an unterminated quote, or a closing quote followed by a non-space.
    UnbalancedQuotes,
    /// A `*<count>` line longer than `max_inline_len`.
    TooBigMbulkCount,
    /// A `$<len>` line longer than `max_inline_len`.
    TooBigBulkCount,
    /// A line's `\r` or a bulk payload not followed by `\r\n` (slotgate-specific, see module doc).
    MissingCrlf,
    /// The request would be 4 GiB or larger (slotgate-specific).
    RequestTooLarge,
}

const EXPECTED_DOLLAR_PREFIX: &[u8] = b"Protocol error: expected '$', got '";
const EXPECTED_DOLLAR_LEN: usize = EXPECTED_DOLLAR_PREFIX.len() + 2;

/// Redis's "expected '$', got 'c'" for every ASCII byte, built at compile time so
/// [`ScanError::message`] can stay `&'static str`. Like Redis's `addReplyErrorFormat`, `\r`
/// and `\n` become spaces so the error line stays one line.
static EXPECTED_DOLLAR: [[u8; EXPECTED_DOLLAR_LEN]; 128] = expected_dollar_table();

const fn expected_dollar_table() -> [[u8; EXPECTED_DOLLAR_LEN]; 128] {
    let mut table = [[0u8; EXPECTED_DOLLAR_LEN]; 128];
    let mut byte = 0;
    while byte < 128 {
        let mut i = 0;
        while i < EXPECTED_DOLLAR_PREFIX.len() {
            table[byte][i] = EXPECTED_DOLLAR_PREFIX[i];
            i += 1;
        }
        table[byte][i] = match byte as u8 {
            b'\r' | b'\n' => b' ',
            other => other,
        };
        table[byte][i + 1] = b'\'';
        byte += 1;
    }
    table
}

impl ScanError {
    /// The error text Redis sends after `-ERR ` (without the prefix and without CRLF).
    ///
    /// For [`ScanError::ExpectedDollar`] with a non-ASCII byte, which cannot sit in a `&str`,
    /// this returns the generic `"Protocol error: expected '$'"`.
    pub fn message(&self) -> &'static str {
        match self {
            Self::InvalidMultibulkLength => "Protocol error: invalid multibulk length",
            Self::InvalidBulkLength => "Protocol error: invalid bulk length",
            Self::ExpectedDollar(byte) => EXPECTED_DOLLAR
                .get(usize::from(*byte))
                .and_then(|text| std::str::from_utf8(text).ok())
                .unwrap_or("Protocol error: expected '$'"),
            Self::TooBigInline => "Protocol error: too big inline request",
            Self::UnbalancedQuotes => "Protocol error: unbalanced quotes in request",
            Self::TooBigMbulkCount => "Protocol error: too big mbulk count string",
            Self::TooBigBulkCount => "Protocol error: too big bulk count string",
            Self::MissingCrlf => "Protocol error: expected CRLF after a line or bulk argument",
            Self::RequestTooLarge => "Protocol error: request larger than 4 GiB",
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ScanError {}

/// One scanned request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scanned {
    /// A complete RESP array request occupying `buf[..len]`; `args` holds each argument's
    /// payload range as offsets into `buf[..len]`.
    Request { len: usize },
    /// An inline command line occupying `buf[..len]`; `frame` is its re-encoding as a RESP
    /// array of bulk strings; `args` ranges index into `frame`.
    Inline { len: usize, frame: Bytes },
    /// `buf[..len]` holds nothing to execute (empty inline line, `*0\r\n`, `*-1\r\n`): drop
    /// it, as Redis does. `args` is empty.
    Empty { len: usize },
}

/// Where the scanner stands inside the current request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing scanned yet: the first byte picks multibulk or inline.
    Start,
    /// Looking for the end of the `*<count>` line starting at `pos`.
    Count,
    /// Looking for the end of a `$<len>` line starting at `pos`.
    BulkHeader,
    /// Waiting for `bulk_len` payload bytes plus CRLF starting at `pos`.
    BulkBody,
    /// Looking for the `\n` that ends an inline command.
    Inline,
}

/// Resumable scanner for client requests; one per client connection.
#[derive(Debug)]
pub struct RequestScanner {
    limits: ScanLimits,
    phase: Phase,
    /// Start of the line or payload being scanned, as an offset into the request.
    pos: usize,
    /// Next byte to examine when looking for a line terminator (never behind `pos`).
    search: usize,
    /// Bulk arguments still expected in the current multibulk request.
    remaining: usize,
    /// Payload length of the bulk argument at `pos` (phase `BulkBody`).
    bulk_len: usize,
    /// `args.len()` when the last call returned incomplete: a mismatch means the caller did
    /// not hand back the same vector, and the scan restarts from the request start.
    filled: usize,
    /// `buf.len()` at the last incomplete call: a shorter buffer also forces a restart.
    seen: usize,
    /// Bytes examined by terminator searches, to prove linearity in tests.
    #[cfg(test)]
    examined: usize,
}

impl RequestScanner {
    /// A scanner enforcing `limits` (clamped to the internal caps, see [`ScanLimits`]).
    pub fn new(limits: ScanLimits) -> Self {
        let limits = ScanLimits {
            max_bulk_len: limits.max_bulk_len.min(MAX_BULK_CAP),
            max_args: limits.max_args,
            max_inline_len: limits.max_inline_len.min(MAX_INLINE_CAP),
        };
        Self {
            limits,
            phase: Phase::Start,
            pos: 0,
            search: 0,
            remaining: 0,
            bulk_len: 0,
            filled: 0,
            seen: 0,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// The limits in force, after clamping.
    pub fn limits(&self) -> ScanLimits {
        self.limits
    }

    /// Scans the request at the start of `buf`.
    ///
    /// `Ok(None)`: incomplete, state kept; call again later with the SAME bytes plus more
    /// appended (`buf` always starts at the same request start until a request is returned).
    /// Already-scanned bytes are not scanned again, so a 512 MiB bulk arriving in 64 KiB reads
    /// costs linear time. On `Ok(Some(_))` the state resets for the next request (the caller
    /// splits off `len` bytes).
    ///
    /// `args` is cleared when a request starts; while a request is incomplete it holds the
    /// ranges found so far and must be passed back unchanged. If it was changed, or `buf` is
    /// shorter than last time, the scan restarts from the request's first byte: still
    /// correct, only not incremental. On `Err` the state resets and `args` is cleared.
    pub fn scan(
        &mut self,
        buf: &[u8],
        args: &mut Vec<Range<u32>>,
    ) -> Result<Option<Scanned>, ScanError> {
        if self.phase == Phase::Start || args.len() != self.filled || buf.len() < self.seen {
            self.reset();
            args.clear();
        }
        let result = match self.phase {
            Phase::Start => match self.scan_complete(buf, args) {
                Some(len) => return Ok(Some(Scanned::Request { len })),
                None => self.step(buf, args),
            },
            _ => self.step(buf, args),
        };
        match result {
            Ok(None) => {
                self.filled = args.len();
                self.seen = buf.len();
            }
            Ok(Some(_)) => self.reset(),
            Err(_) => {
                self.reset();
                args.clear();
            }
        }
        result
    }

    /// Forgets any partial request (e.g. after the caller dropped its buffer).
    pub fn reset(&mut self) {
        self.phase = Phase::Start;
        self.pos = 0;
        self.search = 0;
        self.remaining = 0;
        self.bulk_len = 0;
        self.filled = 0;
        self.seen = 0;
    }

    /// Fast path for the common case: a whole multibulk request with canonical numbers,
    /// already in `buf`. Anything else (incomplete, `*0`, a number Redis would parse
    /// differently or refuse, a limit hit) returns `None` with `args` empty, and the exact,
    /// resumable state machine decides. At most one request's worth of bytes is re-read that
    /// way, on the first call for a request only, so scanning stays linear.
    fn scan_complete(&mut self, buf: &[u8], args: &mut Vec<Range<u32>>) -> Option<usize> {
        if buf.len() > MAX_REQUEST_LEN {
            return None;
        }
        let mut reached = 0;
        let result = self.scan_complete_inner(buf, args, &mut reached);
        #[cfg(test)]
        {
            self.examined += reached;
        }
        if result.is_none() {
            args.clear();
        }
        result
    }

    /// `reached` tracks how far the attempt read, for the linearity tests.
    fn scan_complete_inner(
        &self,
        buf: &[u8],
        args: &mut Vec<Range<u32>>,
        reached: &mut usize,
    ) -> Option<usize> {
        let max_line = self.limits.max_inline_len;
        let (count, mut pos) = canonical_number(buf, 0, b'*', max_line)?;
        *reached = pos;
        if count == 0 || count > self.limits.max_args {
            return None;
        }
        for _ in 0..count {
            let (len, start) = canonical_number(buf, pos, b'$', max_line)?;
            // The header line and the two bytes after the payload; the payload is skipped.
            *reached += start - pos + 2;
            if len > self.limits.max_bulk_len {
                return None;
            }
            let end = start.checked_add(len)?;
            if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
                return None;
            }
            // Offsets fit: everything lies inside `buf`, which is at most MAX_REQUEST_LEN.
            args.push(start as u32..end as u32);
            pos = end + 2;
        }
        Some(pos)
    }

    /// Advances through `buf` until the request is complete, more bytes are needed, or an
    /// error is found.
    fn step(
        &mut self,
        buf: &[u8],
        args: &mut Vec<Range<u32>>,
    ) -> Result<Option<Scanned>, ScanError> {
        loop {
            match self.phase {
                Phase::Start => match buf.first() {
                    None => return Ok(None),
                    Some(b'*') => self.begin(0, Phase::Count),
                    Some(_) => self.begin(0, Phase::Inline),
                },
                Phase::Count => {
                    let Some(cr) = self.find_cr(buf, ScanError::TooBigMbulkCount)? else {
                        return Ok(None);
                    };
                    let digits = buf.get(self.pos + 1..cr).unwrap_or_default();
                    let count = parse_ll(digits).ok_or(ScanError::InvalidMultibulkLength)?;
                    let next = cr + 2;
                    // Redis runs nothing for a count <= 0 and moves on to the next request.
                    let Ok(count) = usize::try_from(count) else {
                        return Ok(Some(Scanned::Empty { len: next }));
                    };
                    if count == 0 {
                        return Ok(Some(Scanned::Empty { len: next }));
                    }
                    if count > self.limits.max_args {
                        return Err(ScanError::InvalidMultibulkLength);
                    }
                    self.remaining = count;
                    // Same pre-sizing as Redis's argv (min(count, 1024)); a no-op once the
                    // reused vector has grown.
                    args.reserve(count.min(1024));
                    self.begin(next, Phase::BulkHeader);
                }
                Phase::BulkHeader => {
                    let Some(cr) = self.find_cr(buf, ScanError::TooBigBulkCount)? else {
                        return Ok(None);
                    };
                    self.bulk_header(buf, cr)?;
                }
                Phase::BulkBody => {
                    let end = self.pos + self.bulk_len;
                    let Some(tail) = buf.get(end..end + 2) else {
                        return Ok(None);
                    };
                    if tail != b"\r\n" {
                        return Err(ScanError::MissingCrlf);
                    }
                    args.push(to_u32(self.pos)?..to_u32(end)?);
                    self.remaining -= 1;
                    if self.remaining == 0 {
                        return Ok(Some(Scanned::Request { len: end + 2 }));
                    }
                    self.begin(end + 2, Phase::BulkHeader);
                }
                Phase::Inline => return self.scan_inline(buf, args),
            }
        }
    }

    /// Starts scanning a new line (or the inline command) at `pos`.
    fn begin(&mut self, pos: usize, phase: Phase) {
        self.phase = phase;
        self.pos = pos;
        self.search = pos;
    }

    /// Parses the complete `$<len>` line `buf[pos..cr]` and moves on to its payload.
    fn bulk_header(&mut self, buf: &[u8], cr: usize) -> Result<(), ScanError> {
        let line = buf.get(self.pos..cr).unwrap_or_default();
        // An empty line: Redis looks at the byte where `$` should be, which is the `\r`.
        let (&tag, digits) = line.split_first().unwrap_or((&b'\r', &[]));
        if tag != b'$' {
            return Err(ScanError::ExpectedDollar(tag));
        }
        let len = parse_ll(digits)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.limits.max_bulk_len)
            .ok_or(ScanError::InvalidBulkLength)?;
        let start = cr + 2;
        // Checked here, before buffering the payload, so a client can't make us wait for 4 GiB.
        if start
            .checked_add(len)
            .and_then(|end| end.checked_add(2))
            .is_none_or(|end| end > MAX_REQUEST_LEN)
        {
            return Err(ScanError::RequestTooLarge);
        }
        self.phase = Phase::BulkBody;
        self.pos = start;
        self.bulk_len = len;
        Ok(())
    }

    /// Finds the CRLF ending the header line that starts at `pos`, resuming the search where
    /// the last call stopped. Returns the offset of its `\r`.
    ///
    /// Redis refuses a line once more than `max_inline_len` bytes follow its start without a
    /// `\r`; the window here is fixed relative to the line start, so the same bytes give the
    /// same verdict however they were split into reads.
    fn find_cr(&mut self, buf: &[u8], too_big: ScanError) -> Result<Option<usize>, ScanError> {
        let window_end = self
            .pos
            .saturating_add(self.limits.max_inline_len)
            .saturating_add(1);
        let Some(cr) = self.search_window(buf, window_end, b'\r') else {
            return if self.search >= window_end {
                Err(too_big)
            } else {
                Ok(None)
            };
        };
        match buf.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(cr)),
            Some(_) => Err(ScanError::MissingCrlf),
        }
    }

    /// Looks for `needle` in `buf[search..min(len, window_end)]`. On a hit `search` stays on
    /// the hit (a `\r` may still wait for its `\n`); on a miss it moves to the end searched.
    fn search_window(&mut self, buf: &[u8], window_end: usize, needle: u8) -> Option<usize> {
        let end = buf.len().min(window_end);
        let from = self.search.min(end);
        let hay = buf.get(from..end).unwrap_or_default();
        let found = hay.iter().position(|&b| b == needle);
        #[cfg(test)]
        {
            self.examined += found.map_or(hay.len(), |i| i + 1);
        }
        match found {
            Some(i) => {
                self.search = from + i;
                Some(from + i)
            }
            None => {
                self.search = end;
                None
            }
        }
    }

    /// Scans an inline command: everything up to `\n` (a `\r` before it is dropped).
    fn scan_inline(
        &mut self,
        buf: &[u8],
        args: &mut Vec<Range<u32>>,
    ) -> Result<Option<Scanned>, ScanError> {
        // The `\n` may sit at most `max_inline_len` bytes after the start (see `find_cr`).
        let window_end = self.limits.max_inline_len.saturating_add(1);
        let Some(nl) = self.search_window(buf, window_end, b'\n') else {
            return if self.search >= window_end {
                Err(ScanError::TooBigInline)
            } else {
                Ok(None)
            };
        };
        let mut line = buf.get(..nl).unwrap_or_default();
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        // sdssplitargs sees a C string: the line ends at its first NUL.
        if let Some(nul) = line.iter().position(|&b| b == 0) {
            line = line.get(..nul).unwrap_or_default();
        }
        let len = nl + 1;
        Ok(Some(match encode_inline(line, args)? {
            Some(frame) => Scanned::Inline { len, frame },
            None => Scanned::Empty { len },
        }))
    }
}

impl Default for RequestScanner {
    fn default() -> Self {
        Self::new(ScanLimits::default())
    }
}

/// Converts an offset already checked against [`MAX_REQUEST_LEN`]; the error is unreachable
/// but keeps the conversion panic-free.
fn to_u32(offset: usize) -> Result<u32, ScanError> {
    u32::try_from(offset).map_err(|_| ScanError::RequestTooLarge)
}

/// Reads a `<tag><digits>\r\n` line at `pos` written the canonical way (no sign, no
/// leading zero, at most 18 digits, `\r` within `max_line` bytes of the line start).
/// Returns the number and the offset after the line; `None` for anything else, including
/// an incomplete line, so the caller falls back to the exact parser.
pub(super) fn canonical_number(
    buf: &[u8],
    pos: usize,
    tag: u8,
    max_line: usize,
) -> Option<(usize, usize)> {
    let line = buf.get(pos..)?;
    let [t, first @ b'0'..=b'9', rest @ ..] = line else {
        return None;
    };
    if *t != tag {
        return None;
    }
    // 18 more digits at most: 19 digits always fit a u64.
    let mut value = u64::from(first - b'0');
    for (i, &b) in rest.iter().enumerate().take(18) {
        if b.is_ascii_digit() && value != 0 {
            value = value * 10 + u64::from(b - b'0');
        } else if b == b'\r' && rest.get(i + 1) == Some(&b'\n') && i + 2 <= max_line {
            return Some((usize::try_from(value).ok()?, pos + i + 4));
        } else {
            return None;
        }
    }
    None
}

/// Redis's `string2ll`: optional `-`, no leading zeros (except "0" itself), no `+`, no
/// spaces, at most 20 characters, must fit an `i64`.
fn parse_ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    let (&first, rest) = digits.split_first()?;
    if !(b'1'..=b'9').contains(&first) {
        return None;
    }
    let mut value = u64::from(first - b'0');
    for &d in rest {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

/// Splits an inline line with `sdssplitargs` rules and re-encodes it as a RESP array of bulk
/// strings. Fills `args` with ranges into the returned frame; `None` when there is no argument.
fn encode_inline(line: &[u8], args: &mut Vec<Range<u32>>) -> Result<Option<Bytes>, ScanError> {
    // Arguments are decoded (quotes, escapes) into `words` first: the array header needs the
    // count. Inline commands are rare (telnet, redis-cli pipes), so two allocations are fine.
    let mut words = Vec::with_capacity(line.len());
    split_args(line, &mut words, args)?;
    if args.is_empty() {
        return Ok(None);
    }
    let mut frame = Vec::with_capacity(words.len() + args.len() * 16 + 16);
    let mut digits = itoa::Buffer::new();
    frame.push(b'*');
    frame.extend_from_slice(digits.format(args.len()).as_bytes());
    frame.extend_from_slice(b"\r\n");
    for range in args.iter_mut() {
        let word = words
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default();
        frame.push(b'$');
        frame.extend_from_slice(digits.format(word.len()).as_bytes());
        frame.extend_from_slice(b"\r\n");
        let start = frame.len();
        frame.extend_from_slice(word);
        *range = to_inline_u32(start)?..to_inline_u32(frame.len())?;
        frame.extend_from_slice(b"\r\n");
    }
    Ok(Some(Bytes::from(frame)))
}

fn to_inline_u32(offset: usize) -> Result<u32, ScanError> {
    u32::try_from(offset).map_err(|_| ScanError::TooBigInline)
}

/// C `isspace` in the "C" locale, which `sdssplitargs` uses to skip blanks and to check what
/// follows a closing quote.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A port of Redis's `sdssplitargs`: decoded arguments are appended to `words`, their ranges
/// in `words` to `ranges`. `line` holds no NUL; reading past its end yields 0, standing in for
/// the C string terminator the original code tests for.
fn split_args(
    line: &[u8],
    words: &mut Vec<u8>,
    ranges: &mut Vec<Range<u32>>,
) -> Result<(), ScanError> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut i = 0;
    loop {
        while at(i) != 0 && is_c_space(at(i)) {
            i += 1;
        }
        if at(i) == 0 {
            return Ok(());
        }
        let start = words.len();
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        while !done {
            let c = at(i);
            if in_double {
                if c == b'\\'
                    && at(i + 1) == b'x'
                    && let (Some(hi), Some(lo)) = (hex_value(at(i + 2)), hex_value(at(i + 3)))
                {
                    words.push(hi * 16 + lo);
                    i += 3;
                } else if c == b'\\' && at(i + 1) != 0 {
                    i += 1;
                    words.push(match at(i) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end of the line.
                    if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                        return Err(ScanError::UnbalancedQuotes);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(ScanError::UnbalancedQuotes);
                } else {
                    words.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(i + 1) == b'\'' {
                    i += 1;
                    words.push(b'\'');
                } else if c == b'\'' {
                    if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                        return Err(ScanError::UnbalancedQuotes);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(ScanError::UnbalancedQuotes);
                } else {
                    words.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => words.push(c),
                }
            }
            // As in the C code: step past the current byte unless it is the terminator.
            if at(i) != 0 {
                i += 1;
            }
        }
        ranges.push(to_inline_u32(start)?..to_inline_u32(words.len())?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_protocol::resp2::decode::decode as resp2_decode;
    use redis_protocol::resp2::types::OwnedFrame;

    /// xorshift64*: deterministic, dependency-free randomness for property-style loops.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Bytes biased towards the ones that matter to the protocol.
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            const SPICY: &[u8] = b"\r\n*$ \t\"'\\x0-";
            (0..len)
                .map(|_| match self.below(4) {
                    0 => SPICY[self.below(SPICY.len())],
                    _ => self.next() as u8,
                })
                .collect()
        }
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn random_args(rng: &mut Rng) -> Vec<Vec<u8>> {
        let count = 1 + rng.below(8);
        (0..count)
            .map(|_| {
                let len = match rng.below(10) {
                    0 => rng.below(3000),
                    1 => 0,
                    _ => rng.below(40),
                };
                rng.bytes(len)
            })
            .collect()
    }

    /// What one scan produced, with the argument bytes copied out for comparison.
    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Request(usize, Vec<Vec<u8>>),
        Inline(usize, Vec<Vec<u8>>, Bytes),
        Empty(usize),
        Err(ScanError),
    }

    fn describe(scanned: Scanned, buf: &[u8], args: &[Range<u32>]) -> Out {
        let copy = |frame: &[u8]| -> Vec<Vec<u8>> {
            args.iter()
                .map(|r| frame[r.start as usize..r.end as usize].to_vec())
                .collect()
        };
        match scanned {
            Scanned::Request { len } => Out::Request(len, copy(&buf[..len])),
            Scanned::Inline { len, frame } => Out::Inline(len, copy(&frame), frame),
            Scanned::Empty { len } => {
                assert!(args.is_empty());
                Out::Empty(len)
            }
        }
    }

    /// Plays a session: appends each chunk to a buffer, scans every complete request and
    /// splits it off. Returns the outcomes and the bytes left unconsumed.
    fn feed(scanner: &mut RequestScanner, data: &[u8], chunks: &[usize]) -> (Vec<Out>, usize) {
        let mut buf = Vec::new();
        let mut args = Vec::new();
        let mut outs = Vec::new();
        let mut offset = 0;
        let mut sizes = chunks.iter().cycle();
        while offset < data.len() {
            let size = (*sizes.next().unwrap()).max(1);
            let end = (offset + size).min(data.len());
            buf.extend_from_slice(&data[offset..end]);
            offset = end;
            loop {
                match scanner.scan(&buf, &mut args) {
                    Ok(None) => break,
                    Ok(Some(scanned)) => {
                        let out = describe(scanned, &buf, &args);
                        let len = match &out {
                            Out::Request(len, _) | Out::Inline(len, _, _) | Out::Empty(len) => *len,
                            Out::Err(_) => unreachable!(),
                        };
                        assert!(len > 0 && len <= buf.len());
                        buf.drain(..len);
                        outs.push(out);
                    }
                    Err(e) => {
                        outs.push(Out::Err(e));
                        return (outs, buf.len() + data.len() - offset);
                    }
                }
            }
        }
        (outs, buf.len())
    }

    fn one_shot(data: &[u8]) -> (Vec<Out>, usize) {
        feed(&mut RequestScanner::default(), data, &[data.len()])
    }

    fn scan_one(data: &[u8]) -> Result<Option<Out>, ScanError> {
        let mut args = Vec::new();
        let scanned = RequestScanner::default().scan(data, &mut args)?;
        Ok(scanned.map(|s| describe(s, data, &args)))
    }

    fn scan_with(limits: ScanLimits, data: &[u8]) -> Result<Option<Scanned>, ScanError> {
        RequestScanner::new(limits).scan(data, &mut Vec::new())
    }

    fn args_of(words: &[&[u8]]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.to_vec()).collect()
    }

    #[test]
    fn scans_a_small_set_command() {
        let data = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nextra";
        let mut args = Vec::new();
        let scanned = RequestScanner::default().scan(data, &mut args).unwrap();
        assert_eq!(scanned, Some(Scanned::Request { len: 33 }));
        assert_eq!(args, vec![8..11, 17..20, 26..31]);
        let view = crate::resp::ArgView::new(&data[..33], &args);
        assert_eq!(
            view.iter().collect::<Vec<_>>(),
            [&b"SET"[..], b"key", b"value"]
        );
    }

    #[test]
    fn matches_redis_protocol_on_generated_pipelines() {
        let mut rng = Rng(0x5eed_0001);
        let mut scanner = RequestScanner::default();
        let mut args = Vec::new();
        for _ in 0..3000 {
            let requests: Vec<_> = (0..1 + rng.below(4))
                .map(|_| random_args(&mut rng))
                .collect();
            let data: Vec<u8> = requests.iter().flat_map(|r| encode(r)).collect();
            let mut offset = 0;
            for request in &requests {
                let rest = &data[offset..];
                let (frame, their_len) = resp2_decode(rest).unwrap().unwrap();
                let OwnedFrame::Array(frames) = frame else {
                    panic!("oracle decoded {frame:?}")
                };
                let Some(Scanned::Request { len }) = scanner.scan(rest, &mut args).unwrap() else {
                    panic!("not a request")
                };
                assert_eq!(len, their_len);
                assert_eq!(args.len(), frames.len());
                for ((range, theirs), mine) in args.iter().zip(&frames).zip(request) {
                    let ours = &rest[range.start as usize..range.end as usize];
                    assert_eq!(&OwnedFrame::BulkString(ours.to_vec()), theirs);
                    assert_eq!(ours, &mine[..]);
                }
                offset += len;
            }
            assert_eq!(offset, data.len());
        }
    }

    #[test]
    fn every_prefix_is_incomplete_and_byte_feeding_resumes() {
        let mut rng = Rng(0x5eed_0002);
        for _ in 0..200 {
            let data = encode(&random_args(&mut rng));
            let expected = scan_one(&data).unwrap().unwrap();
            for end in 0..data.len() {
                assert_eq!(scan_one(&data[..end]), Ok(None), "prefix {end} of {data:?}");
            }
            // One scanner, the same request growing one byte at a time.
            let mut scanner = RequestScanner::default();
            let mut args = Vec::new();
            for end in 0..data.len() {
                assert_eq!(scanner.scan(&data[..end], &mut args), Ok(None));
            }
            let last = scanner.scan(&data, &mut args).unwrap().unwrap();
            assert_eq!(describe(last, &data, &args), expected);
        }
    }

    #[test]
    fn chunked_feeding_equals_one_shot() {
        let mut rng = Rng(0x5eed_0003);
        let inline: &[&[u8]] = &[
            b"PING\r\n",
            b"set a \"b c\"\n",
            b"\r\n",
            b"*0\r\n",
            b"*-1\r\n",
            b"get 'x\\'y'\r\n",
        ];
        for round in 0..1500 {
            let mut data = Vec::new();
            for _ in 0..1 + rng.below(6) {
                if rng.below(3) == 0 {
                    data.extend_from_slice(inline[rng.below(inline.len())]);
                } else {
                    data.extend(encode(&random_args(&mut rng)));
                }
            }
            // Some rounds end in garbage, so errors are compared too.
            if round % 4 == 0 {
                let n = rng.below(20);
                let garbage = rng.bytes(n);
                data.extend(garbage);
            }
            let expected = one_shot(&data);
            let chunks: Vec<usize> = (0..8).map(|_| 1 + rng.below(64)).collect();
            assert_eq!(
                feed(&mut RequestScanner::default(), &data, &chunks),
                expected
            );
            assert_eq!(feed(&mut RequestScanner::default(), &data, &[1]), expected);
        }
    }

    #[test]
    fn random_bytes_never_panic_and_chunking_does_not_matter() {
        let mut rng = Rng(0x5eed_0004);
        for _ in 0..3000 {
            let n = rng.below(200);
            let mut data = rng.bytes(n);
            if rng.below(2) == 0 {
                data.insert(0, b'*');
            }
            let expected = one_shot(&data);
            let chunks: Vec<usize> = (0..4).map(|_| 1 + rng.below(16)).collect();
            assert_eq!(
                feed(&mut RequestScanner::default(), &data, &chunks),
                expected
            );
        }
    }

    #[test]
    fn empty_requests_are_dropped() {
        for (data, len) in [
            (&b"*0\r\n"[..], 4),
            (b"*-1\r\n", 5),
            (b"*-42\r\n", 6),
            (b"\r\n", 2),
            (b"\n", 1),
            (b"  \t \r\n", 6),
            (b"\0PING\r\n", 7),
        ] {
            assert_eq!(scan_one(data), Ok(Some(Out::Empty(len))), "{data:?}");
        }
        // An empty request is followed by the next one as usual.
        let (outs, left) = one_shot(b"*0\r\n\r\nPING\r\n");
        assert_eq!(left, 0);
        assert_eq!(outs.len(), 3);
        assert!(matches!(&outs[2], Out::Inline(6, args, _) if args == &args_of(&[b"PING"])));
    }

    fn inline_args(data: &[u8]) -> Result<Vec<Vec<u8>>, ScanError> {
        match scan_one(data)? {
            Some(Out::Inline(len, args, frame)) => {
                assert_eq!(len, data.iter().position(|&b| b == b'\n').unwrap() + 1);
                // The re-encoding is exactly RESP and decodes to the same arguments.
                assert_eq!(&frame[..], &encode(&args)[..]);
                let (decoded, used) = resp2_decode(&frame).unwrap().unwrap();
                assert_eq!(used, frame.len());
                let bulks = args
                    .iter()
                    .map(|a| OwnedFrame::BulkString(a.clone()))
                    .collect();
                assert_eq!(decoded, OwnedFrame::Array(bulks));
                Ok(args)
            }
            other => panic!("{data:?} gave {other:?}"),
        }
    }

    #[test]
    fn inline_commands_split_like_sdssplitargs() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"PING\r\n", &[b"PING"]),
            (b"PING\n", &[b"PING"]),
            (b"  SET\t a   b  \r\n", &[b"SET", b"a", b"b"]),
            (b"SET \"a b\" c\r\n", &[b"SET", b"a b", b"c"]),
            (b"GET \"\"\n", &[b"GET", b""]),
            (b"GET ''\n", &[b"GET", b""]),
            (b"\"\\x41\\x4a\\x4\\xzz\"\n", &[b"AJx4xzz"]),
            (
                b"\"a\\nb\\r\\t\\b\\a\\\\\\\"q\\z\"\n",
                &[b"a\nb\r\t\x08\x07\\\"qz"],
            ),
            (b"'it\\'s' x\n", &[b"it's", b"x"]),
            (b"'a\\nb\\\\c'\n", &[b"a\\nb\\\\c"]),
            (b"foo\"bar baz\"\n", &[b"foobar baz"]),
            (b"a\\nb\n", &[b"a\\nb"]),
            (b"GET a\rb\r\n", &[b"GET", b"a", b"b"]),
            (b"GET a\0b c\n", &[b"GET", b"a"]),
            (b"\x0bGET a\x0bb\n", &[b"GET", b"a\x0bb"]),
            (b"\"a\"\x0bb\n", &[b"a", b"b"]),
            (b"\"a\"\r\n", &[b"a"]),
            (b"x\r\r\n", &[b"x"]),
        ];
        for (data, expected) in cases {
            assert_eq!(inline_args(data), Ok(args_of(expected)), "{data:?}");
        }
    }

    #[test]
    fn inline_unbalanced_quotes_are_refused() {
        for data in [
            &b"\"abc\n"[..],
            b"'abc\n",
            b"\"abc\"def\n",
            b"'a'b\n",
            b"\"abc\\\"\n",
            b"SET a \"b\\\n",
            b"\"a\0\"\n",
            b"'ab\\\\'\n",
        ] {
            assert_eq!(scan_one(data), Err(ScanError::UnbalancedQuotes), "{data:?}");
        }
        assert_eq!(
            ScanError::UnbalancedQuotes.message(),
            "Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn inline_line_length_is_capped() {
        let limits = ScanLimits {
            max_inline_len: 16,
            ..ScanLimits::default()
        };
        let mut line = vec![b'a'; 16];
        assert_eq!(scan_with(limits, &line), Ok(None));
        line.push(b'\n');
        assert!(matches!(
            scan_with(limits, &line),
            Ok(Some(Scanned::Inline { len: 17, .. }))
        ));
        let long = vec![b'a'; 17];
        assert_eq!(scan_with(limits, &long), Err(ScanError::TooBigInline));
        // Default: Redis's 64 KiB.
        let big = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(scan_one(&big), Err(ScanError::TooBigInline));
        assert_eq!(scan_one(&big[..64 * 1024]), Ok(None));
    }

    #[test]
    fn header_lines_are_capped() {
        let limits = ScanLimits {
            max_inline_len: 16,
            ..ScanLimits::default()
        };
        let count = [b"*".as_slice(), &[b'1'; 15]].concat();
        assert_eq!(scan_with(limits, &count), Ok(None));
        let count = [b"*".as_slice(), &[b'1'; 16]].concat();
        assert_eq!(scan_with(limits, &count), Err(ScanError::TooBigMbulkCount));
        let bulk = [b"*1\r\n$".as_slice(), &[b'1'; 16]].concat();
        assert_eq!(scan_with(limits, &bulk), Err(ScanError::TooBigBulkCount));
        let bulk = [b"*1\r\n$".as_slice(), &[b'1'; 15]].concat();
        assert_eq!(scan_with(limits, &bulk), Ok(None));
        // A terminator within the window is fine even when more bytes follow it.
        let mut ok = b"*1\r\n$4\r\nPING\r\n".to_vec();
        ok.extend_from_slice(&[b'x'; 100]);
        assert_eq!(
            scan_with(limits, &ok),
            Ok(Some(Scanned::Request { len: 14 }))
        );
    }

    #[test]
    fn multibulk_count_errors() {
        for data in [
            &b"*abc\r\n"[..],
            b"*\r\n",
            b"*01\r\n",
            b"*-0\r\n",
            b"*+1\r\n",
            b"* 1\r\n",
            b"*99999999999999999999\r\n",
            b"*1048577\r\n",
        ] {
            assert_eq!(
                scan_one(data),
                Err(ScanError::InvalidMultibulkLength),
                "{data:?}"
            );
        }
        assert_eq!(scan_one(b"*1048576\r\n"), Ok(None));
        let limits = ScanLimits {
            max_args: 2,
            ..ScanLimits::default()
        };
        assert_eq!(scan_with(limits, b"*2\r\n"), Ok(None));
        assert_eq!(
            scan_with(limits, b"*3\r\n"),
            Err(ScanError::InvalidMultibulkLength)
        );
    }

    #[test]
    fn bulk_length_errors() {
        for data in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$abc\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$01\r\n",
            b"*1\r\n$+3\r\n",
            b"*1\r\n$536870913\r\n",
        ] {
            assert_eq!(
                scan_one(data),
                Err(ScanError::InvalidBulkLength),
                "{data:?}"
            );
        }
        assert_eq!(scan_one(b"*1\r\n$536870912\r\n"), Ok(None));
        let limits = ScanLimits {
            max_bulk_len: 3,
            ..ScanLimits::default()
        };
        assert!(matches!(
            scan_with(limits, b"*1\r\n$3\r\nGET\r\n"),
            Ok(Some(Scanned::Request { len: 13 }))
        ));
        assert_eq!(
            scan_with(limits, b"*1\r\n$4\r\n"),
            Err(ScanError::InvalidBulkLength)
        );
    }

    #[test]
    fn expected_dollar_names_the_byte() {
        assert_eq!(
            scan_one(b"*1\r\nGET\r\n"),
            Err(ScanError::ExpectedDollar(b'G'))
        );
        assert_eq!(
            ScanError::ExpectedDollar(b'G').message(),
            "Protocol error: expected '$', got 'G'"
        );
        // An empty line: Redis sees the `\r`, and prints it as a space.
        assert_eq!(
            scan_one(b"*1\r\n\r\n"),
            Err(ScanError::ExpectedDollar(b'\r'))
        );
        assert_eq!(
            ScanError::ExpectedDollar(b'\r').message(),
            "Protocol error: expected '$', got ' '"
        );
        assert_eq!(
            ScanError::ExpectedDollar(0xff).message(),
            "Protocol error: expected '$'"
        );
        // Like Redis, the verdict waits for the whole line.
        assert_eq!(scan_one(b"*1\r\nGET"), Ok(None));
    }

    #[test]
    fn missing_crlf_is_refused() {
        for data in [
            &b"*1\r\n$3\r\nGETxx"[..],
            b"*1\r\n$3\r\nGET\rx",
            b"*1\rx",
            b"*1\r\n$3\rx",
        ] {
            assert_eq!(scan_one(data), Err(ScanError::MissingCrlf), "{data:?}");
        }
        assert_eq!(scan_one(b"*1\r\n$3\r\nGET\r"), Ok(None));
    }

    #[test]
    fn requests_over_4_gib_are_refused_before_buffering() {
        let limits = ScanLimits {
            max_bulk_len: usize::MAX,
            ..ScanLimits::default()
        };
        assert_eq!(
            RequestScanner::new(limits).limits().max_bulk_len,
            MAX_BULK_CAP
        );
        // One argument at the clamped cap still fits.
        let at_cap = format!("*1\r\n${MAX_BULK_CAP}\r\n");
        assert_eq!(scan_with(limits, at_cap.as_bytes()), Ok(None));
        let over = format!("*2\r\n$100\r\n{}\r\n${MAX_BULK_CAP}\r\n", "x".repeat(100));
        assert_eq!(
            scan_with(limits, over.as_bytes()),
            Err(ScanError::RequestTooLarge)
        );
    }

    #[test]
    fn every_error_has_a_redis_style_message() {
        let all = [
            ScanError::InvalidMultibulkLength,
            ScanError::InvalidBulkLength,
            ScanError::ExpectedDollar(b'x'),
            ScanError::TooBigInline,
            ScanError::UnbalancedQuotes,
            ScanError::TooBigMbulkCount,
            ScanError::TooBigBulkCount,
            ScanError::MissingCrlf,
            ScanError::RequestTooLarge,
        ];
        for error in all {
            let text = error.message();
            assert!(text.starts_with("Protocol error: "), "{text}");
            assert!(!text.contains(['\r', '\n']));
            assert_eq!(error.to_string(), text);
        }
        for byte in 0..128u8 {
            let text = ScanError::ExpectedDollar(byte).message();
            assert_eq!(text.len(), "Protocol error: expected '$', got 'x'".len());
            assert!(!text.contains(['\r', '\n']));
        }
        assert_eq!(
            ScanError::TooBigMbulkCount.message(),
            "Protocol error: too big mbulk count string"
        );
        assert_eq!(
            ScanError::TooBigBulkCount.message(),
            "Protocol error: too big bulk count string"
        );
        assert_eq!(
            ScanError::TooBigInline.message(),
            "Protocol error: too big inline request"
        );
        assert_eq!(
            ScanError::InvalidMultibulkLength.message(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            ScanError::InvalidBulkLength.message(),
            "Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn large_mset_in_16k_reads_is_linear() {
        let mut args = vec![b"MSET".to_vec()];
        for i in 0..80_000 {
            args.push(format!("key:{i:08}").into_bytes());
            args.push(format!("value-{i:014}").into_bytes());
        }
        let data = encode(&args);
        assert!(data.len() > 3_600_000);
        let mut scanner = RequestScanner::default();
        let mut ranges = Vec::new();
        let mut calls = 0;
        let mut result = None;
        for end in (16 * 1024..data.len() + 16 * 1024).step_by(16 * 1024) {
            calls += 1;
            result = scanner
                .scan(&data[..end.min(data.len())], &mut ranges)
                .unwrap();
        }
        assert_eq!(result, Some(Scanned::Request { len: data.len() }));
        assert_eq!(ranges.len(), args.len());
        assert_eq!(
            &data[ranges[160_000].start as usize..ranges[160_000].end as usize],
            &args[160_000][..]
        );
        // Each byte is examined at most once, plus the `\r` of a line cut by a read boundary.
        // Restarting from the request start on every read would examine ~500 MB here.
        assert!(
            scanner.examined <= data.len() + calls,
            "examined {} bytes of {} in {calls} calls",
            scanner.examined,
            data.len()
        );
    }

    #[test]
    fn big_bulk_payload_is_never_examined() {
        let payload_len = 8 * 1024 * 1024;
        let mut data = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${payload_len}\r\n").into_bytes();
        let header = data.len();
        data.resize(header + payload_len, b'\r');
        data.extend_from_slice(b"\r\n");
        let mut scanner = RequestScanner::default();
        let mut ranges = Vec::new();
        let mut result = None;
        for end in (64 * 1024..data.len() + 64 * 1024).step_by(64 * 1024) {
            result = scanner
                .scan(&data[..end.min(data.len())], &mut ranges)
                .unwrap();
        }
        assert_eq!(result, Some(Scanned::Request { len: data.len() }));
        assert_eq!(ranges[2], header as u32..(header + payload_len) as u32);
        // The first call may read the headers twice (fast attempt, then the exact path);
        // what matters is that the count doesn't grow with the payload.
        assert!(
            scanner.examined <= 2 * header,
            "examined {}",
            scanner.examined
        );
    }

    #[test]
    fn a_broken_resume_contract_restarts_instead_of_misreading() {
        let data = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        let mut scanner = RequestScanner::default();
        let mut args = Vec::new();
        assert_eq!(scanner.scan(&data[..16], &mut args), Ok(None));
        assert_eq!(args.len(), 1);
        // The caller lost the partial ranges: the scanner starts over and still gets it right.
        args.clear();
        let done = scanner.scan(data, &mut args).unwrap().unwrap();
        assert_eq!(
            describe(done, data, &args),
            Out::Request(22, args_of(&[b"GET", b"key"]))
        );

        // A shorter buffer than last time (a different request): restart, no panic.
        assert_eq!(scanner.scan(b"*1\r\n$10\r\n0123", &mut args), Ok(None));
        let ping = b"PING\r\n";
        let done = scanner.scan(ping, &mut args).unwrap().unwrap();
        assert!(matches!(describe(done, ping, &args), Out::Inline(6, _, _)));
    }

    #[test]
    fn the_scanner_is_reusable_after_an_error() {
        let mut scanner = RequestScanner::default();
        let mut args = Vec::new();
        args.push(0..1u32);
        assert_eq!(
            scanner.scan(b"*1\r\nX\r\n", &mut args),
            Err(ScanError::ExpectedDollar(b'X'))
        );
        assert!(args.is_empty());
        assert_eq!(
            scanner.scan(b"*1\r\n$4\r\nPING\r\n", &mut args),
            Ok(Some(Scanned::Request { len: 14 }))
        );
    }

    #[test]
    fn parse_ll_follows_string2ll() {
        assert_eq!(parse_ll(b"0"), Some(0));
        assert_eq!(parse_ll(b"-1"), Some(-1));
        assert_eq!(parse_ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"00",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"1a",
        ] {
            assert_eq!(parse_ll(bad), None, "{bad:?}");
        }
    }
}
