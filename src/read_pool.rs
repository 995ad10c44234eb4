//! One read buffer that a worker's sessions take turns with.
//!
//! A session needs a read buffer only between "the socket is readable" and "every complete
//! request in it was dispatched". Most of the time, and always for an idle client, it holds
//! nothing, so instead of a buffer per connection (4 KB x 10,000 idle clients) each worker
//! keeps one spare chunk: a session takes it when data arrives and gives it back once it
//! has scanned everything; only a session left with a partial request (or requests waiting
//! for room in flight) keeps its buffer. Frames are split off the front of the chunk and
//! frozen (zero-copy), so many sessions' frames share one allocation, which is freed when
//! the last of them is answered: one allocation per [`CHUNK`] of requests instead of per
//! connection. Everything here runs on one worker thread.

use std::cell::RefCell;

use bytes::BytesMut;

/// Size of a fresh chunk: a few hundred small requests.
pub const CHUNK: usize = 64 * 1024;
/// A buffer larger than this (after a large request) is freed rather than pooled, so one
/// large request does not pin its memory.
const MAX_POOLED: usize = 4 * CHUNK;

/// The worker's spare read buffer; see the module docs.
#[derive(Default)]
pub struct ReadPool {
    spare: RefCell<BytesMut>,
}

impl ReadPool {
    /// An empty buffer with room for at least `room` bytes: the pooled one when it has that
    /// much left, else a fresh chunk.
    pub fn take(&self, room: usize) -> BytesMut {
        let spare = std::mem::take(&mut *self.spare.borrow_mut());
        if spare.capacity() >= room {
            return spare;
        }
        BytesMut::with_capacity(CHUNK.max(room))
    }

    /// Returns an empty buffer; the pool keeps whichever of it and its own has more room
    /// (within [`MAX_POOLED`]).
    pub fn give_back(&self, buf: BytesMut) {
        debug_assert!(buf.is_empty(), "only empty buffers go back to the pool");
        if !buf.is_empty() || buf.capacity() > MAX_POOLED {
            return;
        }
        let mut spare = self.spare.borrow_mut();
        if buf.capacity() > spare.capacity() {
            *spare = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_share_one_chunk_and_frames_keep_their_bytes() {
        let pool = ReadPool::default();
        let mut first = pool.take(1024);
        assert_eq!(first.capacity(), CHUNK);
        first.extend_from_slice(b"PING\r\n");
        let frame = first.split_to(6).freeze();
        pool.give_back(first);
        // The next session reads into the rest of the same allocation.
        let mut second = pool.take(1024);
        assert_eq!(second.capacity(), CHUNK - 6);
        second.extend_from_slice(b"ECHO\r\n");
        assert_eq!(&frame[..], b"PING\r\n", "earlier frames are untouched");
        let _ = second.split_to(6);
        pool.give_back(second);
        // Too little room left for the request size: a fresh chunk.
        let big = pool.take(CHUNK);
        assert_eq!(big.capacity(), CHUNK);
    }

    #[test]
    fn large_buffers_are_not_pooled() {
        let pool = ReadPool::default();
        pool.give_back(BytesMut::with_capacity(8 << 20));
        assert_eq!(
            pool.take(0).capacity(),
            0,
            "an 8 MB buffer must be freed, not kept"
        );
    }
}
