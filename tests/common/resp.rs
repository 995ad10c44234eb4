//! A raw RESP client for exact wire tests: [`RespConn`].
//!
//! Bytes go out exactly as the test wrote them ([`RespConn::send_raw`]) or as a RESP array of
//! bulk strings ([`RespConn::cmd`]); replies come back as their raw bytes, cut at the frame
//! boundary that `redis-protocol` (our test oracle, independent of slotgate's own walker)
//! finds. Bytes after that boundary stay buffered for the next read, so pipelined replies
//! and RESP3 push frames are read one at a time. The reading itself ([`read_frame`]) works
//! on any byte stream, so the TLS client reads replies the same way.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read timeout of a new connection: long enough for a slow CI box, short enough that a
/// missing reply fails the test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking TCP connection speaking raw RESP.
pub struct RespConn {
    stream: TcpStream,
    /// Bytes read but not yet returned as a reply.
    buf: Vec<u8>,
}

impl RespConn {
    /// Connects with a 5 s read (and write) timeout and `TCP_NODELAY`.
    pub fn connect(addr: SocketAddr) -> RespConn {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RespConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Changes the read timeout (e.g. short, to assert that no reply comes).
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// The underlying socket, for tests that need to half-close or inspect it.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Writes `bytes` as they are: partial frames, inline commands, garbage, pipelines.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes: {e}", bytes.len()));
    }

    /// Sends `args` as one RESP array of bulk strings and returns the raw bytes of one reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send_raw(&encode_command(args));
        self.read_reply()
    }

    /// [`RespConn::cmd`] for text arguments.
    pub fn cmd_str(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd(&args)
    }

    /// Reads exactly one complete reply (RESP2 or RESP3) and returns its bytes. Panics on
    /// timeout, EOF or bytes that are not RESP, showing what was received.
    pub fn read_reply(&mut self) -> Vec<u8> {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Like [`RespConn::read_reply`], but a timeout or EOF is an `Err` describing what arrived.
    pub fn try_read_reply(&mut self) -> Result<Vec<u8>, String> {
        read_frame(&mut self.stream, &mut self.buf)
    }

    /// Reads until the peer closes the connection and returns everything not yet returned
    /// (for protocol-error tests: the error reply, then EOF). Panics if the peer keeps the
    /// connection open past the read timeout.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return std::mem::take(&mut self.buf),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset after the server's last bytes still means "closed".
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return std::mem::take(&mut self.buf);
                }
                Err(e) => panic!(
                    "expected the server to close the connection, got {e} with {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }
}

/// Reads from `stream` into `buf` until `buf` starts with one complete reply, then takes
/// that reply out of `buf` (what follows stays buffered for the next call). A timeout, EOF
/// or bytes that are not RESP are an `Err` describing what arrived. Any byte stream will
/// do: plain TCP here, a rustls stream in `super::tls::TlsConn`.
pub fn read_frame(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<Vec<u8>, String> {
    loop {
        match frame_len(buf) {
            Ok(Some(len)) => return Ok(buf.drain(..len).collect()),
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "not a valid RESP reply ({e}): {:?}",
                    String::from_utf8_lossy(buf)
                ));
            }
        }
        let mut chunk = [0u8; 64 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "connection closed; {} bytes of an incomplete reply: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(buf)
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "{e} (timeout?) with {} bytes buffered: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(buf)
                ));
            }
        }
    }
}

/// Encodes `args` as a RESP array of bulk strings, the way every client sends commands.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the first complete reply in `buf`, `None` if incomplete.
///
/// RESP3 is tried first (a superset for everything but nulls); RESP2's `$-1` / `*-1` nulls
/// look like RESP3 streaming headers to that decoder and fail, so RESP2 decides then.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    match redis_protocol::resp3::decode::complete::decode_range(buf) {
        Ok(found) => Ok(found.map(|(_, len)| len)),
        Err(resp3_err) => match redis_protocol::resp2::decode::decode_range(buf) {
            Ok(found) => Ok(found.map(|(_, len)| len)),
            Err(resp2_err) => Err(format!("RESP3: {resp3_err:?}; RESP2: {resp2_err:?}")),
        },
    }
}
