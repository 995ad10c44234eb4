//! Socket reads that cost one system call, not two.
//!
//! Tokio registers sockets edge-triggered and keeps a socket "readable" until a read
//! returns `WouldBlock`, so the usual loop pays a second `recv` per message just to learn
//! the socket is empty. A read that returned less than the buffer could take has drained
//! the socket at that instant, and any byte arriving later raises a new edge, so
//! [`read_once`] clears the readiness itself after a short read. This is safe on a
//! current-thread runtime: the I/O driver cannot run between the read and the clear,
//! because neither yields.

use std::io;

use bytes::{BufMut, BytesMut};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads at most `max` bytes of what `stream` holds into `buf`. `Ok(None)`: nothing to
/// read yet; `Ok(Some(0))`: the peer closed.
pub fn read_once(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> io::Result<Option<usize>> {
    let spare = (buf.capacity() - buf.len()).min(max);
    match stream.try_read_buf(&mut (&mut *buf).limit(spare)) {
        Ok(n) => {
            if n > 0 && n < spare {
                let _ = stream.try_io(Interest::READABLE, || {
                    Err::<(), _>(io::ErrorKind::WouldBlock.into())
                });
            }
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads what the kernel holds for `stream` right now, ignoring tokio's readiness cache:
/// for the drain, which must not mistake "no event seen yet" for "nothing was sent".
/// `Ok(None)`: the socket is truly empty; `Ok(Some(0))`: the peer closed.
pub fn read_now(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    if buf.capacity() == buf.len() {
        buf.reserve(4096);
    }
    let socket = socket2::SockRef::from(stream);
    match socket.recv(buf.spare_capacity_mut()) {
        Ok(n) => {
            // SAFETY: `recv` initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            Ok(Some(n))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => read_now(stream, buf),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn short_reads_leave_later_data_readable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(b"first").await.unwrap();
        let mut buf = BytesMut::with_capacity(1024);
        server.readable().await.unwrap();
        assert_eq!(read_once(&server, &mut buf, 1024).unwrap(), Some(5));
        // Data sent after the short read must wake the reader again.
        client.write_all(b"second").await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server.readable())
            .await
            .expect("readiness must come back for new data")
            .unwrap();
        assert_eq!(read_once(&server, &mut buf, 1024).unwrap(), Some(6));
        assert_eq!(&buf[..], b"firstsecond");
        drop(client);
        server.readable().await.unwrap();
        assert_eq!(read_once(&server, &mut buf, 1024).unwrap(), Some(0));
    }
}
