//! `SELECT n` on a backend of one shard (Sentinel, standalone), where other databases exist.
//!
//! Shared connections stay in database 0 for every client. A session that selects another
//! database gets a connection of its own to the primary (multiplexed, like a WATCH's), and
//! from then on every request it would have sent on a shared connection goes there
//! ([`Channel::Db`]). `SELECT` itself is forwarded on it, so the reply (and an
//! out-of-range error) is the node's own. When that connection breaks or the primary
//! changes (a new topology generation), the next request opens a new one and carries
//! `SELECT n` in front, its reply swallowed, so the database survives reconnects and
//! failovers. Connections of their own that start later (blocking commands, WATCH) carry
//! the same prefix. `RESET` returns to database 0 and the shared connections.
//!
//! In cluster mode `SELECT` other than 0 is refused, as Redis Cluster does
//! ([`super::local`]).

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::Session;
use super::queue::{Channel, Entry, Target};
use crate::backend::{Mode, NodeConn};
use crate::resp::ArgView;
use crate::resp::encode::encode_command;
use crate::router::{ONE_SHARD_SLOT, ReadIntent};
use crate::upstream::{self, Use};

/// The database a session selected, and its connection.
pub struct Database {
    /// The index as the client wrote it (a non-negative integer).
    index: Bytes,
    conn: Option<Rc<NodeConn>>,
    /// The topology generation `conn` was opened for: a new one may have a new primary.
    generation: u64,
}

impl Session {
    /// `SELECT index` on a backend of one shard; `false` when the local answer applies
    /// (wrong arity, or database 0 while none other was selected).
    pub(super) fn select_db(&self, frame: &Bytes, args: &ArgView<'_>) -> bool {
        let Some(index) = args.get(1).filter(|_| args.len() == 2) else {
            return false;
        };
        let valid = std::str::from_utf8(index)
            .ok()
            .and_then(|s| s.parse::<u32>().ok());
        if self.db.borrow().is_none() && valid == Some(0) {
            return false;
        }
        {
            let mut db = self.db.borrow_mut();
            let db = db.get_or_insert_with(|| Database {
                index: Bytes::from_static(b"0"),
                conn: None,
                generation: 0,
            });
            // Only an index the node can accept is replayed after a reconnect; the node
            // answers anything else with its own error and stays where it was.
            if valid.is_some() {
                db.index = Bytes::copy_from_slice(index);
            }
        }
        self.data_channel.set(Channel::Db);
        let mut entry = Entry::forwarded(frame.clone(), Target::Slot(ONE_SHARD_SLOT));
        entry.channel = Channel::Db;
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
        true
    }

    /// Back to database 0 on the shared connections (`RESET`).
    pub(super) fn leave_db(&self) {
        if let Some(db) = self.db.borrow_mut().take()
            && let Some(conn) = db.conn
        {
            conn.close_when_idle();
        }
        self.data_channel.set(Channel::Shared);
    }

    /// `frame` with `SELECT index` in front when the session is in another database, and
    /// how many replies that adds to swallow: for connections of its own that start
    /// elsewhere (blocking commands, WATCH).
    pub(super) fn in_selected_db(&self, frame: Bytes) -> (Bytes, u32) {
        match &*self.db.borrow() {
            Some(db) => (select_then(&db.index, &frame), 1),
            None => (frame, 0),
        }
    }

    /// The connection of the selected database for request `seq`, opening a new one (and
    /// putting `SELECT` in front of the request) when there is none, it broke, or the
    /// topology changed since it was opened.
    pub(super) fn db_connection(&self, seq: u64) -> Option<Rc<NodeConn>> {
        let mut db = self.db.borrow_mut();
        let db = db.as_mut()?;
        let generation = self.up.with_topology(|t| t.generation);
        if let Some(conn) = &db.conn
            && !conn.is_broken()
            && db.generation == generation
        {
            return Some(conn.clone());
        }
        if let Some(old) = db.conn.take() {
            old.close_when_idle();
        }
        let conn = self.up.resolve(
            upstream::Target::Shard(0),
            ReadIntent::Primary,
            Use::Own(Mode::Pinned),
            self.client.protocol,
        )?;
        db.conn = Some(conn.clone());
        db.generation = generation;
        self.queue.update(seq, |entry| {
            if let Some(frame) = entry.frame.take() {
                entry.frame = Some(select_then(&db.index, &frame));
                entry.swallow += 1;
            }
        });
        Some(conn)
    }

    /// Closes the database connection with the session.
    pub(super) fn close_db(&self) {
        if let Some(db) = self.db.borrow_mut().take()
            && let Some(conn) = db.conn
        {
            conn.close();
        }
    }
}

fn select_then(index: &[u8], frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 32);
    encode_command(&mut out, &[b"SELECT", index]);
    out.extend_from_slice(frame);
    out.freeze()
}
