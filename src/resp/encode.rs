//! Encoding of the few frames slotgate writes itself.
//!
//! Forwarded requests and replies are never re-encoded; this module only serves local
//! replies (PING, HELLO, CLUSTER emulation, errors, ...) and the commands slotgate sends on
//! its own (ASKING, HELLO, discovery). Each writer appends to a caller-owned buffer so no
//! intermediate allocation is made, and picks the RESP2 or RESP3 form where they differ.

use bytes::{BufMut, BytesMut};

/// The protocol version a client or backend connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Resp2,
    Resp3,
}

impl Protocol {
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// Appends `args` as a RESP array of bulk strings: the form every command travels in.
pub fn encode_command(out: &mut BytesMut, args: &[&[u8]]) {
    array_header(out, args.len());
    for arg in args {
        bulk(out, arg);
    }
}

fn line(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut digits = itoa::Buffer::new();
    out.put_u8(prefix);
    out.put_slice(digits.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

/// `+text`; `text` must not contain CR or LF.
pub fn simple(out: &mut BytesMut, text: &str) {
    out.put_u8(b'+');
    out.put_slice(text.as_bytes());
    out.put_slice(b"\r\n");
}

/// `-message`: `message` starts with the error code (`ERR`, `CROSSSLOT`, ...). Line breaks
/// are replaced by spaces, as Redis does, so a message can never break the framing.
pub fn error(out: &mut BytesMut, message: &str) {
    out.put_u8(b'-');
    for &b in message.as_bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

pub fn integer(out: &mut BytesMut, n: i64) {
    line(out, b':', n);
}

pub fn bulk(out: &mut BytesMut, data: &[u8]) {
    line(out, b'$', data.len() as i64);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// A null bulk: `$-1` in RESP2, `_` in RESP3.
pub fn null(out: &mut BytesMut, proto: Protocol) {
    match proto {
        Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
        Protocol::Resp3 => out.put_slice(b"_\r\n"),
    }
}

pub fn array_header(out: &mut BytesMut, len: usize) {
    line(out, b'*', len as i64);
}

/// A map of `pairs` entries: `%n` in RESP3, a flat array of `2n` items in RESP2.
pub fn map_header(out: &mut BytesMut, pairs: usize, proto: Protocol) {
    match proto {
        Protocol::Resp2 => line(out, b'*', 2 * pairs as i64),
        Protocol::Resp3 => line(out, b'%', pairs as i64),
    }
}

/// Free text such as `INFO` output: a verbatim string in RESP3 (as Redis sends it), a bulk
/// string in RESP2.
pub fn text(out: &mut BytesMut, data: &[u8], proto: Protocol) {
    match proto {
        Protocol::Resp2 => bulk(out, data),
        Protocol::Resp3 => {
            line(out, b'=', data.len() as i64 + 4);
            out.put_slice(b"txt:");
            out.put_slice(data);
            out.put_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut out = BytesMut::new();
        f(&mut out);
        out.to_vec()
    }

    #[test]
    fn commands_are_arrays_of_bulks() {
        let bytes = build(|o| encode_command(o, &[b"GET", b"k"]));
        assert_eq!(bytes, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }

    #[test]
    fn errors_cannot_break_framing() {
        assert_eq!(build(|o| error(o, "ERR a\r\nb")), b"-ERR a  b\r\n");
    }

    #[test]
    fn protocol_dependent_forms() {
        assert_eq!(build(|o| null(o, Protocol::Resp2)), b"$-1\r\n");
        assert_eq!(build(|o| null(o, Protocol::Resp3)), b"_\r\n");
        assert_eq!(build(|o| map_header(o, 2, Protocol::Resp2)), b"*4\r\n");
        assert_eq!(build(|o| map_header(o, 2, Protocol::Resp3)), b"%2\r\n");
        assert_eq!(
            build(|o| text(o, b"a", Protocol::Resp3)),
            b"=5\r\ntxt:a\r\n"
        );
        assert_eq!(build(|o| text(o, b"a", Protocol::Resp2)), b"$1\r\na\r\n");
    }
}
