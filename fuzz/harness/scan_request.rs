//! Fuzzes `RequestScanner`: arbitrary client bytes must never panic, and feeding them in
//! random-size chunks (resuming after every `Ok(None)`) must give exactly the one-shot results.
//!
//! Input layout: byte 0 picks the limits (default or tiny, to reach the limit paths),
//! bytes 1..=8 pick the chunk sizes, the rest (after `expand`) is the client byte stream.

use std::ops::Range;

use bytes::Bytes;
use slotgate::resp::scan::{RequestScanner, ScanError, ScanLimits, Scanned};

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Request(Vec<Vec<u8>>, usize),
    Inline(Vec<Vec<u8>>, usize, Bytes),
    Empty(usize),
    Err(ScanError),
}

fn limits(selector: u8) -> ScanLimits {
    if selector & 1 == 0 {
        ScanLimits::default()
    } else {
        // Tiny, so short inputs reach every limit.
        ScanLimits {
            max_bulk_len: 4,
            max_args: 3,
            max_inline_len: 12,
        }
    }
}

/// Checks what must hold for every scanned request, then copies it out for comparison.
fn check(limits: ScanLimits, scanned: Scanned, buf: &[u8], args: &[Range<u32>]) -> (Out, usize) {
    let copy = |frame: &[u8]| -> Vec<Vec<u8>> {
        let mut last = 0;
        args.iter()
            .map(|r| {
                assert!(r.start >= last && r.start <= r.end && r.end as usize <= frame.len());
                last = r.end;
                frame[r.start as usize..r.end as usize].to_vec()
            })
            .collect()
    };
    let (out, len) = match scanned {
        Scanned::Request { len } => {
            assert!(!args.is_empty() && args.len() <= limits.max_args);
            assert!(
                args.iter()
                    .all(|r| (r.end - r.start) as usize <= limits.max_bulk_len)
            );
            (Out::Request(copy(&buf[..len]), len), len)
        }
        Scanned::Inline { len, frame } => {
            assert!(!args.is_empty());
            let words = copy(&frame);
            // The re-encoding is plain RESP that scans back to the same arguments.
            let mut again = RequestScanner::new(ScanLimits {
                max_bulk_len: usize::MAX,
                max_args: usize::MAX,
                max_inline_len: limits.max_inline_len,
            });
            let mut ranges = Vec::new();
            let rescanned = again.scan(&frame, &mut ranges);
            assert_eq!(rescanned, Ok(Some(Scanned::Request { len: frame.len() })));
            let rewords: Vec<Vec<u8>> = ranges
                .iter()
                .map(|r| frame[r.start as usize..r.end as usize].to_vec())
                .collect();
            assert_eq!(rewords, words);
            (Out::Inline(words, len, frame), len)
        }
        Scanned::Empty { len } => {
            assert!(args.is_empty());
            (Out::Empty(len), len)
        }
    };
    assert!(len > 0 && len <= buf.len());
    // A complete request is never complete one byte earlier.
    let mut fresh = RequestScanner::new(limits);
    assert_eq!(fresh.scan(&buf[..len - 1], &mut Vec::new()), Ok(None));
    (out, len)
}

/// Plays a session: appends each chunk, scans and splits off every complete request.
fn feed(limits: ScanLimits, data: &[u8], chunks: &[usize]) -> (Vec<Out>, usize) {
    let mut scanner = RequestScanner::new(limits);
    let mut buf = Vec::new();
    let mut args = Vec::new();
    let mut outs = Vec::new();
    let mut offset = 0;
    let mut sizes = chunks.iter().cycle();
    while offset < data.len() {
        let size = sizes.next().copied().unwrap_or(data.len()).max(1);
        let end = (offset + size).min(data.len());
        buf.extend_from_slice(&data[offset..end]);
        offset = end;
        loop {
            match scanner.scan(&buf, &mut args) {
                Ok(None) => break,
                Ok(Some(scanned)) => {
                    let (out, len) = check(limits, scanned, &buf, &args);
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

/// Protocol fragments that input bytes 0xF0..=0xFF stand for, so short inputs reach deep
/// structure (a request with more arguments than the limit, nested aggregates) that
/// byte-level mutation alone finds slowly. 0xEF escapes the next byte as itself.
const FRAGMENTS: [&[u8]; 16] = [
    b"\r\n",
    b"*1\r\n",
    b"*2\r\n",
    b"*3\r\n",
    b"*4\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"$0\r\n\r\n",
    b"$1\r\nx\r\n",
    b"$3\r\nGET\r\n",
    b"$4\r\nPING\r\n",
    b"$5\r\nabcde\r\n",
    b"$-1\r\n",
    b"\"a b\" ",
    b"'\\'' ",
    b"\\x4",
];

fn expand(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() * 2);
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        match b {
            0xef => out.extend(bytes.next()),
            0xf0..=0xff => out.extend_from_slice(FRAGMENTS[usize::from(b - 0xf0)]),
            _ => out.push(b),
        }
    }
    out
}

/// One fuzz input: panics (an assertion) on any finding. Also replayed by
/// `tests/security_malformed.rs` on every file in `fuzz/seeds/` and `fuzz/regressions/`.
pub fn run(input: &[u8]) {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let split = rest.len().min(8);
    let (sizes, data) = rest.split_at(split);
    let data = &expand(data)[..];
    let limits = limits(selector);
    let chunks: Vec<usize> = sizes.iter().map(|&s| usize::from(s % 64) + 1).collect();
    let one_shot = feed(limits, data, &[data.len()]);
    let chunked = feed(limits, data, &chunks);
    assert_eq!(chunked, one_shot);
}
