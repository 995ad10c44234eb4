//! A connection that is plain TCP or TLS over TCP, for clients and backends alike.
//!
//! Sessions, backend connections and control-plane requests read and write through
//! [`Stream`], so TLS is one enum arm away from every I/O path rather than a second copy of
//! each. The plain arm keeps the one-syscall reads of [`crate::net`]; the TLS arm goes
//! through tokio-rustls, which decrypts into rustls's own buffer (so "the socket is
//! readable" says nothing about whether plaintext is waiting, and reads must go through
//! `AsyncRead`). Every read method here is cancel-safe: a read either completes or leaves
//! the bytes where they were, so callers may race it against timers in `select!`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::read_pool::ReadPool;

type TlsStream = tokio_rustls::TlsStream<TcpStream>;

/// Connects to a node: TCP to one of its addresses, then the TLS handshake when
/// `tls` is given (verified against the host the node announced, or the seed name its
/// address was resolved from). The error says which
/// step failed, for logs and client errors.
pub async fn connect(
    dns: &crate::dns::Dns,
    endpoint: &crate::endpoint::Endpoint,
    tls: Option<&crate::tls::Connector>,
) -> Result<Stream, String> {
    let tcp = dns.connect(endpoint).await?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(connector) => match connector.connect(tcp, endpoint.tls_name()).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls.into()))),
            Err(e) => Err(format!("TLS handshake failed: {e}")),
        },
    }
}

/// A plain or TLS connection. The TLS state is boxed: it is large, and most connections
/// are plain.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The TCP socket underneath, for addresses and socket options.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(tcp) => tcp,
            Self::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Waits for data and appends at most `max` bytes of it to `buf`. Over plain TCP an
    /// empty `buf` takes its room from `pool` only once data is there, so an idle
    /// connection holds no read buffer; a TLS connection reads into a buffer of its own.
    /// Returns the byte count (`0`: the peer closed) and whether the read filled all the
    /// room it had, which says the peer sends faster than we read.
    pub async fn read_some(
        &mut self,
        buf: &mut BytesMut,
        max: usize,
        pool: &ReadPool,
    ) -> io::Result<(usize, bool)> {
        match self {
            Self::Plain(tcp) => loop {
                tcp.readable().await?;
                let room = make_room(buf, max, pool);
                if let Some(n) = crate::net::read_once(tcp, buf, max)? {
                    return Ok((n, n >= room));
                }
                // A false positive (readiness may report one): hand the buffer back
                // rather than hold it while waiting again.
                if buf.is_empty() {
                    pool.give_back(std::mem::take(buf));
                }
            },
            Self::Tls(tls) => {
                // Readiness says nothing about decrypted bytes, so the room must be there
                // before waiting: a buffer of the session's own, not the pool's chunk, which
                // an idle client would otherwise hold for as long as it stays idle.
                if buf.capacity() - buf.len() < max / 4 {
                    buf.reserve(max);
                }
                let room = (buf.capacity() - buf.len()).min(max);
                let n = tls.read_buf(&mut (&mut *buf).limit(room)).await?;
                Ok((n, n >= room))
            }
        }
    }

    /// Called once everything read into `buf` was scanned (it is empty). A plain connection
    /// hands the buffer back to `pool` and takes one again when data arrives, so a client
    /// between requests holds none. A TLS connection must have room before it waits (see
    /// [`Self::read_some`]), so it keeps a buffer of its own, but while `idle` never one
    /// larger than `keep` that a large request grew.
    pub fn release_read_buf(&self, buf: &mut BytesMut, pool: &ReadPool, idle: bool, keep: usize) {
        debug_assert!(buf.is_empty(), "only a fully scanned buffer is released");
        match self {
            Self::Plain(_) => pool.give_back(std::mem::take(buf)),
            Self::Tls(_) if idle && buf.capacity() > keep => *buf = BytesMut::new(),
            Self::Tls(_) => {}
        }
    }

    /// Appends what has arrived by now without waiting for tokio to notice it: for the
    /// drain, which must not take "no event seen yet" for "nothing was sent". `Ok(None)`:
    /// nothing has arrived; `Ok(Some(0))`: the peer closed.
    pub async fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        match self {
            Self::Plain(tcp) => crate::net::read_now(tcp, buf),
            Self::Tls(tls) => {
                if let Some(result) = poll_read_once(tls, buf).await {
                    return result.map(Some);
                }
                // Nothing decrypted yet: bytes in the kernel are TLS records that have not
                // raised an event yet. They belong to a request, so wait for them.
                let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                let tcp = socket2::SockRef::from(tls.get_ref().0);
                match tcp.peek(&mut probe) {
                    Ok(0) => Ok(Some(0)),
                    Ok(_) => {
                        if buf.capacity() == buf.len() {
                            buf.reserve(4096);
                        }
                        tls.read_buf(buf).await.map(Some)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Writes all of `data` and flushes it to the socket (TLS buffers records until then).
    pub async fn write_all_flushed(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.write_all(data).await,
            Self::Tls(tls) => {
                tls.write_all(data).await?;
                tls.flush().await
            }
        }
    }

    /// Splits into halves that a reader task and a writer task can own.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Plain(tcp) => {
                let (reader, writer) = tcp.into_split();
                (ReadHalf::Plain(reader), WriteHalf::Plain(writer))
            }
            Self::Tls(tls) => {
                // One TLS session serves both directions, so the halves share it behind
                // tokio's lock; on one thread the lock is never contended.
                let (reader, writer) = tokio::io::split(*tls);
                (ReadHalf::Tls(reader), WriteHalf::Tls(writer))
            }
        }
    }
}

/// Makes room for a read of up to `max` bytes (at least a quarter of it), from `pool` when
/// `buf` holds nothing, and returns how much the read may take.
fn make_room(buf: &mut BytesMut, max: usize, pool: &ReadPool) -> usize {
    if buf.capacity() - buf.len() < max / 4 {
        if buf.is_empty() {
            *buf = pool.take(max / 4);
        } else {
            buf.reserve(max);
        }
    }
    (buf.capacity() - buf.len()).min(max)
}

/// Polls one read without waiting: `None` when it would have to wait.
async fn poll_read_once(tls: &mut TlsStream, buf: &mut BytesMut) -> Option<io::Result<usize>> {
    if buf.capacity() == buf.len() {
        buf.reserve(4096);
    }
    std::future::poll_fn(|cx| {
        let read = tls.read_buf(&mut *buf);
        let read = std::pin::pin!(read);
        match read.poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => Poll::Ready(None),
        }
    })
    .await
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The reading half of a [`Stream`].
pub enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream>),
}

impl ReadHalf {
    /// Waits for data and appends what is there to `buf`. `Ok(0)`: the peer closed.
    /// Cancel-safe.
    pub async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Plain(reader) => loop {
                reader.readable().await?;
                if let Some(n) = crate::net::read_once(reader.as_ref(), buf, usize::MAX)? {
                    return Ok(n);
                }
            },
            Self::Tls(reader) => {
                if buf.capacity() == buf.len() {
                    buf.reserve(16 * 1024);
                }
                reader.read_buf(buf).await
            }
        }
    }
}

/// The writing half of a [`Stream`].
pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream>),
}

impl WriteHalf {
    /// Writes all of `data` and flushes it to the socket.
    pub async fn write_all_flushed(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(writer) => writer.write_all(data).await,
            Self::Tls(writer) => {
                writer.write_all(data).await?;
                writer.flush().await
            }
        }
    }
}
