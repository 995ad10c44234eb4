//! Fuzzes `ReplyWalker`: arbitrary backend bytes must never panic, and feeding them in
//! random-size chunks (resuming after every `Ok(None)`) must give exactly the one-shot results.
//!
//! Input layout: byte 0 picks the limits (default or tiny depth/bulk caps), bytes 1..=8 pick
//! the chunk sizes, the rest is the backend byte stream.

use slotgate::resp::walk::{ReplyWalker, WalkError, Walked};

#[derive(Debug, PartialEq, Eq)]
enum Out {
    Reply(Walked),
    Err(WalkError),
}

fn walker(selector: u8) -> ReplyWalker {
    if selector & 1 == 0 {
        ReplyWalker::new(128)
    } else {
        ReplyWalker::new(4).with_max_bulk_len(64)
    }
}

/// Plays a backend connection: appends each chunk, splits off every complete reply.
fn feed(selector: u8, data: &[u8], chunks: &[usize]) -> (Vec<Out>, usize) {
    let mut walker = walker(selector);
    let mut buf = Vec::new();
    let mut outs = Vec::new();
    let mut offset = 0;
    let mut sizes = chunks.iter().cycle();
    while offset < data.len() {
        let size = sizes.next().copied().unwrap_or(data.len()).max(1);
        let end = (offset + size).min(data.len());
        buf.extend_from_slice(&data[offset..end]);
        offset = end;
        loop {
            match walker.walk(&buf) {
                Ok(None) => break,
                Ok(Some(walked)) => {
                    assert!(walked.len > 0 && walked.len <= buf.len());
                    // The reply alone walks the same, and is incomplete one byte earlier.
                    assert_eq!(
                        self::walker(selector).walk(&buf[..walked.len]),
                        Ok(Some(walked))
                    );
                    assert_eq!(
                        self::walker(selector).walk(&buf[..walked.len - 1]),
                        Ok(None)
                    );
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

/// Protocol fragments that input bytes 0xF0..=0xFF stand for, so short inputs reach deep
/// structure (a request with more arguments than the limit, nested aggregates) that
/// byte-level mutation alone finds slowly. 0xEF escapes the next byte as itself.
const FRAGMENTS: [&[u8]; 16] = [
    b"\r\n",
    b"*1\r\n",
    b"*2\r\n",
    b"%1\r\n",
    b"|1\r\n",
    b"~1\r\n",
    b">1\r\n",
    b"+OK\r\n",
    b":1\r\n",
    b"$0\r\n\r\n",
    b"$1\r\nx\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"_\r\n",
    b"#t\r\n",
    b"=5\r\ntxt:x\r\n",
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
    let chunks: Vec<usize> = sizes.iter().map(|&s| usize::from(s % 64) + 1).collect();
    let one_shot = feed(selector, data, &[data.len()]);
    let chunked = feed(selector, data, &chunks);
    assert_eq!(chunked, one_shot);
}
