//! Reply walker: backend bytes -> one reply's boundary at a time, without copying.
//!
//! ```text
//! backend socket -> connection read buffer -> ReplyWalker::walk(buf) -> Walked { len, kind }
//!                      connection splits buf[..len] off and hands it, untouched, to the session
//!                      waiting first in FIFO order -> client socket
//! ```
//!
//! The walker only finds where a reply ends; it never builds a value. It knows every RESP2 and
//! RESP3 type (`+ - : $ * _ , # ( = % ~ > | !`), including the RESP2 nulls `$-1` and `*-1`, and
//! treats an attribute (`|`) as part of the value that follows it. It is:
//!
//! - **iterative**: open aggregates live on an explicit stack capped at `max_depth`, so a
//!   hostile or broken node sending 100k nested arrays gets [`WalkError::TooDeep`], not a stack
//!   overflow;
//! - **resumable and linear**: on `Ok(None)` it remembers the stack, the position of the next
//!   element and how far the current line search got, so a big reply arriving in small reads is
//!   walked once; bulk payloads are skipped by length, never examined;
//! - **allocation-free in steady state**: the stack vector keeps its capacity between replies.
//!
//! Limits: bulk/blob/verbatim lengths and simple lines (`+ - , (`) are capped at
//! `max_bulk_len` (512 MiB unless set with [`ReplyWalker::with_max_bulk_len`]); number-like
//! lines (lengths, counts, `:`, `_`, `#`) at 32 bytes. Streamed RESP3 values (`$?`, `*?`, `;`,
//! `.`) are never sent by Redis and are refused with [`WalkError::Streamed`].

use std::fmt;

use super::scan::canonical_number;

/// Default cap on bulk payload and simple line length (Redis `proto-max-bulk-len`).
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// Longest line for lengths, counts, integers, nulls and booleans: an `i64` has 20 characters,
/// so anything longer is broken and can be refused before more of it is buffered.
const MAX_NUMBER_LINE: usize = 32;

/// A malformed reply. The connection can't be re-synchronised after one; its pending requests
/// fail and the connection is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A value started with a byte that is no RESP2/RESP3 type; carries that byte.
    BadType(u8),
    /// A length or count that is not a number, or negative where no null form exists.
    BadLength,
    /// Aggregates nested deeper than `max_depth`.
    TooDeep,
    /// A line not ended by CRLF, a bulk payload not followed by CRLF, or a line whose content
    /// is invalid for its type (`:` not an integer, `#` not `t`/`f`, `_` not empty).
    BadLine,
    /// A bulk payload or simple line longer than the walker's cap.
    TooLarge,
    /// A streamed RESP3 value (`$?`, `*?`, `%?`, `~?`, `;`, `.`), which Redis never sends.
    Streamed,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadType(byte) => write!(f, "invalid reply type byte 0x{byte:02x}"),
            Self::BadLength => f.write_str("invalid length or count in reply"),
            Self::TooDeep => f.write_str("reply nested too deeply"),
            Self::BadLine => f.write_str("malformed line in reply"),
            Self::TooLarge => f.write_str("reply element larger than the configured limit"),
            Self::Streamed => f.write_str("streamed RESP3 reply not supported"),
        }
    }
}

impl std::error::Error for WalkError {}

/// One complete reply at the start of the buffer: `buf[..len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walked {
    pub len: usize,
    pub kind: ReplyKind,
}

/// Type of the top-level value (after any attribute prefix). `$-1`, `*-1` and `_` are all
/// [`ReplyKind::Null`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    Simple,
    Error,
    Integer,
    Bulk,
    Array,
    Null,
    Map,
    Set,
    Double,
    Boolean,
    BigNumber,
    Verbatim,
    BlobError,
    Push,
}

/// An aggregate whose elements are still being walked.
#[derive(Clone, Copy, Debug)]
struct Open {
    /// Elements still to come (a map or attribute of N pairs has 2N elements).
    remaining: u64,
    /// Attributes annotate the next value instead of being a value of their own parent.
    attribute: bool,
}

/// What the walker expects at `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A type byte and the rest of its line.
    Line,
    /// `bulk_len` payload bytes followed by CRLF.
    Body,
}

/// Resumable reply walker; one per backend connection (and protocol version).
#[derive(Debug)]
pub struct ReplyWalker {
    max_depth: usize,
    max_bulk_len: usize,
    stack: Vec<Open>,
    phase: Phase,
    /// Start of the next line or payload, as an offset into the reply.
    pos: usize,
    /// Next byte to examine when looking for the current line's `\r`.
    search: usize,
    bulk_len: usize,
    /// The top-level value's kind, once its type byte has been read.
    kind: Option<ReplyKind>,
    /// `buf.len()` at the last incomplete call; a shorter buffer forces a restart.
    seen: usize,
    /// Bytes examined by line searches, to prove linearity in tests.
    #[cfg(test)]
    examined: usize,
}

/// What one line turned out to be.
enum Item {
    /// A complete value (scalar, null, empty aggregate).
    Value,
    /// A payload of this many bytes follows.
    Payload(usize),
    /// An aggregate with this many elements (non-zero) was opened.
    Open(Open),
    /// An empty attribute: nothing to count, the annotated value follows.
    Nothing,
}

impl ReplyWalker {
    /// A walker refusing aggregates nested deeper than `max_depth` (the proxy uses 128) and,
    /// by default, bulk payloads over 512 MiB.
    pub fn new(max_depth: usize) -> Self {
        Self {
            max_depth,
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            stack: Vec::new(),
            phase: Phase::Line,
            pos: 0,
            search: 0,
            bulk_len: 0,
            kind: None,
            seen: 0,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Sets the cap on bulk/blob/verbatim payloads and simple lines.
    pub fn with_max_bulk_len(mut self, max_bulk_len: usize) -> Self {
        self.max_bulk_len = max_bulk_len;
        self
    }

    /// Finds the end of the reply at the start of `buf`; `Ok(None)` = incomplete.
    ///
    /// On `Ok(None)` call again with the same bytes plus more appended; if `buf` is shorter
    /// than last time the walk restarts from its first byte. On `Ok(Some(_))` or `Err` the
    /// state resets for the next reply.
    pub fn walk(&mut self, buf: &[u8]) -> Result<Option<Walked>, WalkError> {
        if buf.len() < self.seen {
            self.reset();
        }
        let result = self.step(buf);
        match result {
            Ok(None) => self.seen = buf.len(),
            Ok(Some(_)) | Err(_) => self.reset(),
        }
        result
    }

    /// Forgets any partial reply (keeps the stack's capacity).
    pub fn reset(&mut self) {
        self.stack.clear();
        self.phase = Phase::Line;
        self.pos = 0;
        self.search = 0;
        self.bulk_len = 0;
        self.kind = None;
        self.seen = 0;
    }

    fn step(&mut self, buf: &[u8]) -> Result<Option<Walked>, WalkError> {
        loop {
            if self.phase == Phase::Body {
                let end = self.pos + self.bulk_len;
                let Some(tail) = buf.get(end..end + 2) else {
                    return Ok(None);
                };
                if tail != b"\r\n" {
                    return Err(WalkError::BadLine);
                }
                self.phase = Phase::Line;
                self.begin(end + 2);
                if self.value_done() {
                    return Ok(self.finished());
                }
                continue;
            }
            // Fast path: a complete length/count line written the canonical way. Anything
            // else (incomplete, `-1`, `?`, leading zeros, junk) takes the exact path.
            let fast = match buf.get(self.pos) {
                Some(&tag) if self.search == self.pos && is_sized(tag) => {
                    canonical_number(buf, self.pos, tag, MAX_NUMBER_LINE)
                        .map(|(n, next)| (tag, n, next))
                }
                _ => None,
            };
            let (item, next) = match fast {
                Some((tag, n, next)) => {
                    #[cfg(test)]
                    {
                        self.examined += next - self.pos;
                    }
                    (self.sized(tag, n)?, next)
                }
                None => {
                    let Some(cr) = self.find_cr(buf)? else {
                        return Ok(None);
                    };
                    let line = buf.get(self.pos..cr).unwrap_or_default();
                    (self.parse_line(line)?, cr + 2)
                }
            };
            self.begin(next);
            match item {
                Item::Value => {
                    if self.value_done() {
                        return Ok(self.finished());
                    }
                }
                Item::Payload(len) => {
                    self.phase = Phase::Body;
                    self.bulk_len = len;
                }
                Item::Open(open) => {
                    if self.stack.len() >= self.max_depth {
                        return Err(WalkError::TooDeep);
                    }
                    self.stack.push(open);
                }
                Item::Nothing => {}
            }
        }
    }

    /// The reply is complete at `pos`.
    fn finished(&self) -> Option<Walked> {
        // `kind` is always set by then: a value completes only after its type byte was read.
        self.kind.map(|kind| Walked {
            len: self.pos,
            kind,
        })
    }

    fn begin(&mut self, pos: usize) {
        self.pos = pos;
        self.search = pos;
    }

    /// Counts one finished value against the open aggregates, closing those it completes.
    /// Returns true when the top-level value is complete.
    fn value_done(&mut self) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return true;
            };
            top.remaining -= 1;
            if top.remaining > 0 {
                return false;
            }
            let closed = self.stack.pop();
            if closed.is_some_and(|open| open.attribute) {
                // A finished attribute is not an element of its parent: the value it
                // annotates comes next.
                return false;
            }
        }
    }

    /// Interprets one complete line (type byte + content, CRLF excluded).
    fn parse_line(&mut self, line: &[u8]) -> Result<Item, WalkError> {
        let Some((&tag, rest)) = line.split_first() else {
            return Err(WalkError::BadType(b'\r'));
        };
        let top = self.stack.is_empty();
        if top && tag != b'|' {
            self.kind = Some(kind_of(tag)?);
        }
        // RESP2 nulls: reported as `Null`, like RESP3's `_`.
        if matches!(tag, b'$' | b'*') && rest == b"-1" {
            if top {
                self.kind = Some(ReplyKind::Null);
            }
            return Ok(Item::Value);
        }
        match tag {
            b'+' | b'-' | b',' | b'(' => Ok(Item::Value),
            b':' => parse_int(rest)
                .map(|_| Item::Value)
                .ok_or(WalkError::BadLine),
            b'_' if rest.is_empty() => Ok(Item::Value),
            b'#' if rest == b"t" || rest == b"f" => Ok(Item::Value),
            b'_' | b'#' => Err(WalkError::BadLine),
            b'$' | b'!' | b'=' | b'*' | b'%' | b'~' | b'>' | b'|' => {
                self.sized(tag, parse_len(rest)?)
            }
            b';' | b'.' => Err(WalkError::Streamed),
            other => Err(WalkError::BadType(other)),
        }
    }

    /// What a length-prefixed value (`$ ! =`) or an aggregate (`* % ~ > |`) with length or
    /// count `n` turns into.
    fn sized(&mut self, tag: u8, n: usize) -> Result<Item, WalkError> {
        if self.stack.is_empty() && tag != b'|' {
            self.kind = Some(kind_of(tag)?);
        }
        if matches!(tag, b'$' | b'!' | b'=') {
            if n > self.max_bulk_len {
                return Err(WalkError::TooLarge);
            }
            return Ok(Item::Payload(n));
        }
        let count = n as u64;
        let remaining = if matches!(tag, b'%' | b'|') {
            count.checked_mul(2).ok_or(WalkError::BadLength)?
        } else {
            count
        };
        Ok(match (remaining, tag) {
            (0, b'|') => Item::Nothing,
            (0, _) => Item::Value,
            _ => Item::Open(Open {
                remaining,
                attribute: tag == b'|',
            }),
        })
    }

    /// Finds the CRLF ending the line at `pos`, resuming where the last search stopped.
    /// Returns the offset of its `\r`. The line's cap depends on its type byte, and the
    /// window is fixed relative to the line start, so the verdict doesn't depend on how the
    /// bytes were split into reads.
    fn find_cr(&mut self, buf: &[u8]) -> Result<Option<usize>, WalkError> {
        let Some(&tag) = buf.get(self.pos) else {
            return Ok(None);
        };
        // An unknown type byte is refused at once, without waiting for its line.
        let (cap, too_long) = match tag {
            b'+' | b'-' | b',' | b'(' => (self.max_bulk_len, WalkError::TooLarge),
            b':' | b'_' | b'#' => (MAX_NUMBER_LINE, WalkError::BadLine),
            b'$' | b'!' | b'=' | b'*' | b'%' | b'~' | b'>' | b'|' => {
                (MAX_NUMBER_LINE, WalkError::BadLength)
            }
            b';' | b'.' => return Err(WalkError::Streamed),
            other => return Err(WalkError::BadType(other)),
        };
        // Offsets 0..=cap + 1 from the line start: type byte + at most `cap` content bytes,
        // then the `\r`.
        let window_end = self.pos.saturating_add(cap).saturating_add(2);
        let end = buf.len().min(window_end);
        let from = self.search.min(end);
        let hay = buf.get(from..end).unwrap_or_default();
        let found = hay.iter().position(|&b| b == b'\r');
        #[cfg(test)]
        {
            self.examined += found.map_or(hay.len(), |i| i + 1);
        }
        let Some(i) = found else {
            self.search = end;
            return if end >= window_end {
                Err(too_long)
            } else {
                Ok(None)
            };
        };
        let cr = from + i;
        self.search = cr;
        match buf.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(cr)),
            Some(_) => Err(WalkError::BadLine),
        }
    }
}

impl Default for ReplyWalker {
    fn default() -> Self {
        Self::new(128)
    }
}

/// Types whose line is a length or a count.
fn is_sized(tag: u8) -> bool {
    matches!(tag, b'$' | b'!' | b'=' | b'*' | b'%' | b'~' | b'>' | b'|')
}

fn kind_of(tag: u8) -> Result<ReplyKind, WalkError> {
    Ok(match tag {
        b'+' => ReplyKind::Simple,
        b'-' => ReplyKind::Error,
        b':' => ReplyKind::Integer,
        b'$' => ReplyKind::Bulk,
        b'*' => ReplyKind::Array,
        b'_' => ReplyKind::Null,
        b'%' => ReplyKind::Map,
        b'~' => ReplyKind::Set,
        b',' => ReplyKind::Double,
        b'#' => ReplyKind::Boolean,
        b'(' => ReplyKind::BigNumber,
        b'=' => ReplyKind::Verbatim,
        b'!' => ReplyKind::BlobError,
        b'>' => ReplyKind::Push,
        b';' | b'.' => return Err(WalkError::Streamed),
        other => return Err(WalkError::BadType(other)),
    })
}

/// A length or count: plain decimal digits, `?` (streamed) refused, nothing negative.
fn parse_len(s: &[u8]) -> Result<usize, WalkError> {
    if s == b"?" {
        return Err(WalkError::Streamed);
    }
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return Err(WalkError::BadLength);
    }
    // At most 19 digits: always fits a u64, and usize is 64-bit where slotgate runs; on a
    // narrower target the conversion fails cleanly.
    let value = s
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    usize::try_from(value).map_err(|_| WalkError::BadLength)
}

/// An `i64` as Redis prints it (optional `-`, digits); lenient about leading zeros.
fn parse_int(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_protocol::resp2::decode::decode as resp2_decode;
    use redis_protocol::resp3::decode::complete::decode as resp3_decode;

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

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            const SPICY: &[u8] = b"\r\n*$:+-_%|>~!=#,( ?";
            (0..len)
                .map(|_| match self.below(3) {
                    0 => SPICY[self.below(SPICY.len())],
                    _ => self.next() as u8,
                })
                .collect()
        }

        /// Printable ASCII without CR/LF, as simple strings and errors carry.
        fn text(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| b' ' + self.below(95) as u8).collect()
        }

        fn len(&mut self) -> usize {
            match self.below(10) {
                0 => self.below(2000),
                1 => 0,
                _ => self.below(30),
            }
        }
    }

    fn line(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
        out.push(tag);
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }

    fn blob(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
        line(out, tag, body.len().to_string().as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends a random RESP2 reply; returns its kind.
    fn gen_resp2(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) -> ReplyKind {
        let choices = if depth < 4 { 7 } else { 5 };
        match rng.below(choices) {
            0 => {
                let n = rng.len();
                line(out, b'+', &rng.text(n));
                ReplyKind::Simple
            }
            1 => {
                let n = rng.len();
                line(out, b'-', &rng.text(n));
                ReplyKind::Error
            }
            2 => {
                let n = [0, -1, i64::MIN, i64::MAX, rng.next() as i64][rng.below(5)];
                line(out, b':', n.to_string().as_bytes());
                ReplyKind::Integer
            }
            3 => {
                let n = rng.len();
                blob(out, b'$', &rng.bytes(n));
                ReplyKind::Bulk
            }
            4 => {
                out.extend_from_slice(b"$-1\r\n");
                ReplyKind::Null
            }
            5 => {
                let count = rng.below(6);
                line(out, b'*', count.to_string().as_bytes());
                for _ in 0..count {
                    gen_resp2(rng, depth + 1, out);
                }
                ReplyKind::Array
            }
            _ => {
                out.extend_from_slice(b"*-1\r\n");
                ReplyKind::Null
            }
        }
    }

    /// Appends a random RESP3 scalar that `redis-protocol` accepts as a map key / set member.
    fn gen_resp3_key(rng: &mut Rng, out: &mut Vec<u8>) -> ReplyKind {
        match rng.below(10) {
            0 => {
                let n = rng.len();
                line(out, b'+', &rng.text(n));
                ReplyKind::Simple
            }
            1 => {
                let n = rng.len();
                line(out, b'-', &rng.text(n));
                ReplyKind::Error
            }
            2 => {
                line(out, b':', (rng.next() as i64).to_string().as_bytes());
                ReplyKind::Integer
            }
            3 => {
                let n = rng.len();
                blob(out, b'$', &rng.bytes(n));
                ReplyKind::Bulk
            }
            4 => {
                out.extend_from_slice(b"_\r\n");
                ReplyKind::Null
            }
            5 => {
                let doubles: [&[u8]; 7] =
                    [b"1.5", b"-2", b"inf", b"-inf", b"0", b"3.25e10", b"nan"];
                line(out, b',', doubles[rng.below(doubles.len())]);
                ReplyKind::Double
            }
            6 => {
                line(out, b'#', if rng.below(2) == 0 { b"t" } else { b"f" });
                ReplyKind::Boolean
            }
            7 => {
                let digits: Vec<u8> = (0..1 + rng.below(40))
                    .map(|_| b'0' + rng.below(10) as u8)
                    .collect();
                line(out, b'(', &digits);
                ReplyKind::BigNumber
            }
            8 => {
                let n = rng.len();
                let body = [b"txt:".as_slice(), &rng.text(n)].concat();
                blob(out, b'=', &body);
                ReplyKind::Verbatim
            }
            _ => {
                let n = rng.len();
                blob(out, b'!', &rng.text(n));
                ReplyKind::BlobError
            }
        }
    }

    /// Appends a random RESP3 reply, sometimes behind an attribute; returns its kind.
    fn gen_resp3(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) -> ReplyKind {
        let choice = rng.below(if depth < 4 { 14 } else { 10 });
        // `redis-protocol` refuses attributes on nulls, so only other values get them.
        if rng.below(8) == 0 && choice != 4 {
            let pairs = rng.below(3);
            line(out, b'|', pairs.to_string().as_bytes());
            for _ in 0..pairs {
                gen_resp3_key(rng, out);
                gen_resp3_key(rng, out);
            }
        }
        let count = rng.below(5);
        match choice {
            0..10 => {
                // Same distribution as the key generator, re-seeded by `choice`.
                let mut fork = Rng(rng.next() | 1);
                let mut scalar = Vec::new();
                let mut kind = gen_resp3_key(&mut fork, &mut scalar);
                // Keep `choice == 4` a null so the attribute rule above holds.
                if choice == 4 {
                    scalar = b"_\r\n".to_vec();
                    kind = ReplyKind::Null;
                } else if kind == ReplyKind::Null {
                    scalar = b"#t\r\n".to_vec();
                    kind = ReplyKind::Boolean;
                }
                out.extend(scalar);
                kind
            }
            10 => {
                line(out, b'*', count.to_string().as_bytes());
                for _ in 0..count {
                    gen_resp3(rng, depth + 1, out);
                }
                ReplyKind::Array
            }
            11 => {
                line(out, b'%', count.to_string().as_bytes());
                for _ in 0..count {
                    gen_resp3_key(rng, out);
                    gen_resp3(rng, depth + 1, out);
                }
                ReplyKind::Map
            }
            12 => {
                line(out, b'~', count.to_string().as_bytes());
                for _ in 0..count {
                    gen_resp3_key(rng, out);
                }
                ReplyKind::Set
            }
            _ => {
                line(out, b'>', count.to_string().as_bytes());
                for _ in 0..count {
                    gen_resp3(rng, depth + 1, out);
                }
                ReplyKind::Push
            }
        }
    }

    fn walk_one(data: &[u8]) -> Result<Option<Walked>, WalkError> {
        ReplyWalker::default().walk(data)
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Out {
        Reply(Walked),
        Err(WalkError),
    }

    /// Plays a backend connection: appends each chunk, splits off every complete reply.
    /// Returns the outcomes and the bytes left unconsumed.
    fn feed(walker: &mut ReplyWalker, data: &[u8], chunks: &[usize]) -> (Vec<Out>, usize) {
        let mut buf = Vec::new();
        let mut outs = Vec::new();
        let mut offset = 0;
        let mut sizes = chunks.iter().cycle();
        while offset < data.len() {
            let end = (offset + (*sizes.next().unwrap()).max(1)).min(data.len());
            buf.extend_from_slice(&data[offset..end]);
            offset = end;
            loop {
                match walker.walk(&buf) {
                    Ok(None) => break,
                    Ok(Some(walked)) => {
                        assert!(walked.len > 0 && walked.len <= buf.len());
                        buf.drain(..walked.len);
                        outs.push(Out::Reply(walked));
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
        feed(&mut ReplyWalker::default(), data, &[data.len()])
    }

    #[test]
    fn walks_typical_replies() {
        let cases: &[(&[u8], ReplyKind)] = &[
            (b"+OK\r\n", ReplyKind::Simple),
            (b"-ERR wrong\r\n", ReplyKind::Error),
            (b":-42\r\n", ReplyKind::Integer),
            (b"$5\r\nhello\r\n", ReplyKind::Bulk),
            (b"$0\r\n\r\n", ReplyKind::Bulk),
            (b"$-1\r\n", ReplyKind::Null),
            (b"*-1\r\n", ReplyKind::Null),
            (b"_\r\n", ReplyKind::Null),
            (b"*0\r\n", ReplyKind::Array),
            (b"*2\r\n$1\r\na\r\n:1\r\n", ReplyKind::Array),
            (b"%1\r\n+k\r\n*1\r\n:1\r\n", ReplyKind::Map),
            (b"%0\r\n", ReplyKind::Map),
            (b"~2\r\n:1\r\n:2\r\n", ReplyKind::Set),
            (b",3.14\r\n", ReplyKind::Double),
            (b"#t\r\n", ReplyKind::Boolean),
            (b"(12345678901234567890\r\n", ReplyKind::BigNumber),
            (b"=8\r\ntxt:abcd\r\n", ReplyKind::Verbatim),
            (b"!3\r\nERR\r\n", ReplyKind::BlobError),
            (b">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n", ReplyKind::Push),
            // Attributes belong to the value they precede, at the top or inside aggregates.
            (b"|1\r\n+ttl\r\n:3\r\n+OK\r\n", ReplyKind::Simple),
            (b"|0\r\n$-1\r\n", ReplyKind::Null),
            (
                b"|1\r\n+a\r\n|1\r\n+b\r\n:1\r\n:2\r\n*0\r\n",
                ReplyKind::Array,
            ),
            (
                b"*2\r\n|1\r\n+a\r\n*1\r\n:1\r\n:1\r\n:2\r\n",
                ReplyKind::Array,
            ),
            (b"*1\r\n*1\r\n|1\r\n+a\r\n+b\r\n:7\r\n", ReplyKind::Array),
        ];
        for (data, kind) in cases {
            let mut with_next = data.to_vec();
            with_next.extend_from_slice(b"+NEXT\r\n");
            let walked = walk_one(&with_next).unwrap();
            assert_eq!(
                walked,
                Some(Walked {
                    len: data.len(),
                    kind: *kind
                }),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn matches_redis_protocol_resp2() {
        let mut rng = Rng(0x3a1c_0001);
        let mut walker = ReplyWalker::default();
        for _ in 0..3000 {
            let mut data = Vec::new();
            let kinds: Vec<_> = (0..1 + rng.below(4))
                .map(|_| gen_resp2(&mut rng, 0, &mut data))
                .collect();
            let mut offset = 0;
            for kind in kinds {
                let rest = &data[offset..];
                let (_, their_len) = resp2_decode(rest).unwrap().unwrap();
                let walked = walker.walk(rest).unwrap().unwrap();
                assert_eq!(
                    walked,
                    Walked {
                        len: their_len,
                        kind
                    }
                );
                offset += walked.len;
            }
            assert_eq!(offset, data.len());
        }
    }

    #[test]
    fn matches_redis_protocol_resp3() {
        let mut rng = Rng(0x3a1c_0002);
        let mut walker = ReplyWalker::default();
        for _ in 0..3000 {
            let mut data = Vec::new();
            let kinds: Vec<_> = (0..1 + rng.below(4))
                .map(|_| gen_resp3(&mut rng, 0, &mut data))
                .collect();
            let mut offset = 0;
            for kind in kinds {
                let rest = &data[offset..];
                let (_, their_len) = resp3_decode(rest)
                    .unwrap_or_else(|e| panic!("{e:?} on {:?}", String::from_utf8_lossy(rest)))
                    .unwrap();
                let walked = walker.walk(rest).unwrap().unwrap();
                assert_eq!(
                    walked,
                    Walked {
                        len: their_len,
                        kind
                    }
                );
                offset += walked.len;
            }
            assert_eq!(offset, data.len());
        }
    }

    #[test]
    fn every_prefix_is_incomplete_and_byte_feeding_resumes() {
        let mut rng = Rng(0x3a1c_0003);
        for round in 0..300 {
            let mut data = Vec::new();
            if round % 2 == 0 {
                gen_resp2(&mut rng, 0, &mut data);
            } else {
                gen_resp3(&mut rng, 0, &mut data);
            }
            let expected = walk_one(&data).unwrap().unwrap();
            assert_eq!(expected.len, data.len());
            for end in 0..data.len() {
                assert_eq!(walk_one(&data[..end]), Ok(None), "prefix {end} of {data:?}");
            }
            let mut walker = ReplyWalker::default();
            for end in 0..data.len() {
                assert_eq!(walker.walk(&data[..end]), Ok(None));
            }
            assert_eq!(walker.walk(&data), Ok(Some(expected)));
        }
    }

    #[test]
    fn chunked_feeding_equals_one_shot() {
        let mut rng = Rng(0x3a1c_0004);
        for round in 0..1500 {
            let mut data = Vec::new();
            for _ in 0..1 + rng.below(5) {
                if rng.below(2) == 0 {
                    gen_resp2(&mut rng, 0, &mut data);
                } else {
                    gen_resp3(&mut rng, 0, &mut data);
                }
            }
            if round % 4 == 0 {
                let n = rng.below(20);
                data.extend(rng.bytes(n));
            }
            let expected = one_shot(&data);
            let chunks: Vec<usize> = (0..8).map(|_| 1 + rng.below(64)).collect();
            assert_eq!(feed(&mut ReplyWalker::default(), &data, &chunks), expected);
            assert_eq!(feed(&mut ReplyWalker::default(), &data, &[1]), expected);
        }
    }

    #[test]
    fn random_bytes_never_panic_and_chunking_does_not_matter() {
        let mut rng = Rng(0x3a1c_0005);
        for _ in 0..3000 {
            let n = rng.below(200);
            let data = rng.bytes(n);
            let expected = one_shot(&data);
            let chunks: Vec<usize> = (0..4).map(|_| 1 + rng.below(16)).collect();
            let mut walker = ReplyWalker::new(4).with_max_bulk_len(64);
            let small = feed(&mut walker, &data, &chunks);
            assert_eq!(
                small,
                feed(
                    &mut ReplyWalker::new(4).with_max_bulk_len(64),
                    &data,
                    &[data.len()]
                )
            );
            assert_eq!(feed(&mut ReplyWalker::default(), &data, &chunks), expected);
        }
    }

    #[test]
    fn malformed_replies_are_refused() {
        let cases: &[(&[u8], WalkError)] = &[
            (b"?", WalkError::BadType(b'?')),
            (b"\r\n", WalkError::BadType(b'\r')),
            (b"*1\r\nX", WalkError::BadType(b'X')),
            (b"$?\r\n", WalkError::Streamed),
            (b"*?\r\n", WalkError::Streamed),
            (b"%?\r\n", WalkError::Streamed),
            (b";3\r\nabc\r\n", WalkError::Streamed),
            (b".\r\n", WalkError::Streamed),
            (b"$-2\r\n", WalkError::BadLength),
            (b"%-1\r\n", WalkError::BadLength),
            (b"~-1\r\n", WalkError::BadLength),
            (b"!-1\r\n", WalkError::BadLength),
            (b"$abc\r\n", WalkError::BadLength),
            (b"$\r\n", WalkError::BadLength),
            (b"*+1\r\n", WalkError::BadLength),
            (b"*99999999999999999999\r\n", WalkError::BadLength),
            (b":abc\r\n", WalkError::BadLine),
            (b":\r\n", WalkError::BadLine),
            (b":99999999999999999999\r\n", WalkError::BadLine),
            (b"_x\r\n", WalkError::BadLine),
            (b"#x\r\n", WalkError::BadLine),
            (b"+OK\rX", WalkError::BadLine),
            (b"$3\r\nabcXY", WalkError::BadLine),
            (b"$536870913\r\n", WalkError::TooLarge),
        ];
        for (data, error) in cases {
            assert_eq!(
                walk_one(data),
                Err(*error),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
        assert_eq!(walk_one(b"$536870912\r\n"), Ok(None));
    }

    #[test]
    fn lines_are_capped() {
        let mut walker = ReplyWalker::new(8).with_max_bulk_len(16);
        // Type byte + 16 content bytes may still be followed by `\r`.
        assert_eq!(
            walker.walk(&[b"+".as_slice(), &[b'a'; 16]].concat()),
            Ok(None)
        );
        walker.reset();
        assert_eq!(
            walker.walk(&[b"+".as_slice(), &[b'a'; 17]].concat()),
            Err(WalkError::TooLarge)
        );
        assert_eq!(walker.walk(b"$17\r\n"), Err(WalkError::TooLarge));
        let ok = [b"+".as_slice(), &[b'a'; 16], b"\r\n"].concat();
        assert_eq!(walker.walk(&ok).unwrap().map(|w| w.len), Some(19));
        // Number lines are refused as soon as they can't be a number.
        let long = [b"*".as_slice(), &[b'1'; 33]].concat();
        assert_eq!(walk_one(&long), Err(WalkError::BadLength));
        assert_eq!(walk_one(&long[..33]), Ok(None));
        let long = [b":".as_slice(), &[b'1'; 33]].concat();
        assert_eq!(walk_one(&long), Err(WalkError::BadLine));
    }

    #[test]
    fn depth_is_capped_at_max_depth() {
        let nested = |depth: usize| {
            let mut data = b"*1\r\n".repeat(depth);
            data.extend_from_slice(b":1\r\n");
            data
        };
        let ok = nested(128);
        assert_eq!(
            walk_one(&ok),
            Ok(Some(Walked {
                len: ok.len(),
                kind: ReplyKind::Array
            }))
        );
        assert_eq!(walk_one(&nested(129)), Err(WalkError::TooDeep));
        // Attributes and maps count as levels too.
        let mut walker = ReplyWalker::new(2);
        assert_eq!(
            walker.walk(b"|1\r\n+a\r\n%1\r\n+k\r\n*1\r\n:1\r\n"),
            Err(WalkError::TooDeep)
        );
    }

    #[test]
    fn hundred_thousand_nested_arrays_do_not_overflow_the_stack() {
        let mut data = b"*1\r\n".repeat(100_000);
        data.extend_from_slice(b":1\r\n");
        assert_eq!(walk_one(&data), Err(WalkError::TooDeep));
        // With the cap lifted the walk completes: the stack is a Vec, not recursion.
        let mut walker = ReplyWalker::new(usize::MAX);
        assert_eq!(
            walker.walk(&data),
            Ok(Some(Walked {
                len: data.len(),
                kind: ReplyKind::Array
            }))
        );
        // The oracle would recurse; it is only given a shallow copy.
        assert!(resp2_decode(&data[data.len() - 40..]).is_ok());
    }

    #[test]
    fn big_array_in_16k_reads_is_linear() {
        let mut data = b"*100000\r\n".to_vec();
        for i in 0..100_000 {
            blob(&mut data, b'$', format!("value-{i:020}").as_bytes());
        }
        let mut walker = ReplyWalker::default();
        let mut calls = 0;
        let mut result = None;
        for end in (16 * 1024..data.len() + 16 * 1024).step_by(16 * 1024) {
            calls += 1;
            result = walker.walk(&data[..end.min(data.len())]).unwrap();
        }
        assert_eq!(
            result,
            Some(Walked {
                len: data.len(),
                kind: ReplyKind::Array
            })
        );
        assert!(
            walker.examined <= data.len() + calls,
            "examined {} of {} bytes in {calls} calls",
            walker.examined,
            data.len()
        );
    }

    #[test]
    fn big_bulk_payload_is_never_examined() {
        let payload = 8 * 1024 * 1024;
        let mut data = format!("${payload}\r\n").into_bytes();
        data.resize(data.len() + payload, b'\r');
        data.extend_from_slice(b"\r\n");
        let mut walker = ReplyWalker::default();
        let mut result = None;
        for end in (64 * 1024..data.len() + 64 * 1024).step_by(64 * 1024) {
            result = walker.walk(&data[..end.min(data.len())]).unwrap();
        }
        assert_eq!(result.map(|w| w.len), Some(data.len()));
        assert!(walker.examined <= 16, "examined {}", walker.examined);
    }

    #[test]
    fn a_shorter_buffer_restarts_the_walk() {
        let mut walker = ReplyWalker::default();
        assert_eq!(walker.walk(b"*2\r\n$10\r\n0123"), Ok(None));
        assert_eq!(
            walker.walk(b"+OK\r\n"),
            Ok(Some(Walked {
                len: 5,
                kind: ReplyKind::Simple
            }))
        );
        // And the walker is usable after an error.
        assert_eq!(walker.walk(b"*1\r\n?"), Err(WalkError::BadType(b'?')));
        assert_eq!(
            walker.walk(b":1\r\n").map(|w| w.map(|w| w.len)),
            Ok(Some(4))
        );
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            WalkError::BadType(b'?').to_string(),
            "invalid reply type byte 0x3f"
        );
        assert_eq!(WalkError::TooDeep.to_string(), "reply nested too deeply");
    }
}
