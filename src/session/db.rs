//! `SELECT n` on a backend of one shard (Sentinel, standalone), where other databases exist.
//!
//! Shared connections stay in database 0 for every client. A session that selects another
//! database gets a connection of its own to the primary (multiplexed, like a WATCH's), and
//! from then on every request it would have sent on a shared connection goes there
//! ([`Channel::Db`]). `SELECT` itself is forwarded on it, so the reply (and an
//! out-of-range error) is the node's own. When that connection breaks or the primary
//! changes (a new topology generation), the next request opens a new one that re-selects
//! the database first. Connections of their own that start later (blocking commands,
//! WATCH) re-select it too. `RESET` returns to database 0 and the shared connections.
//!
//! A command must never run in a database other than the client's, so a `SELECT` is
//! never pipelined with what follows it: every `SELECT` slotgate sends on a connection
//! (the client's own or a re-select) goes alone through that connection's [`Gate`], which
//! holds the later requests until the node has answered. A re-select the node refuses (a
//! new primary configured with fewer `databases`) leaves the connection refused: each
//! request gets an error naming the database and the node and is not sent, until the
//! client selects again, the connection breaks or the topology changes.
//!
//! In cluster mode `SELECT` other than 0 is refused, as Redis Cluster does
//! ([`super::local`]).

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::Session;
use super::queue::{Channel, Entry, Target};
use crate::backend::{Failure, Mode, NodeConn, Outcome, ReplySink, Request};
use crate::resp::ArgView;
use crate::resp::encode::{self, encode_command};
use crate::router::{ONE_SHARD_SLOT, ReadIntent};
use crate::upstream::{self, Use};

/// The database a session selected, and its connection.
pub struct Database {
    /// The index the client is in (a non-negative integer as it wrote it): changed only
    /// by a `SELECT` the node accepted. Shared with the gates that learn of that.
    index: Rc<RefCell<Bytes>>,
    conn: Option<(Rc<NodeConn>, Rc<Gate>)>,
    /// The topology generation `conn` was opened for: a new one may have a new primary.
    generation: u64,
    /// The client's `SELECT` requests not yet answered: (sequence, index).
    selects: Vec<(u64, Bytes)>,
}

impl Session {
    /// `SELECT index` on a backend of one shard; `false` when the local answer applies
    /// (wrong arity, or database 0 while none other was selected).
    pub(super) fn select_db(&self, frame: &Bytes, args: &ArgView<'_>) -> bool {
        let Some(index) = args.get(1).filter(|_| args.len() == 2) else {
            return false;
        };
        if self.db.borrow().is_none() && index == b"0" {
            return false;
        }
        if self.pinned.is_some() {
            // The watch lives on the pinned connection, in the database it was set in;
            // switching both it and the session's own connection with one reply is not
            // done (docs/commands.md, "Databases").
            self.reply_rejected(
                "ERR slotgate: SELECT is not supported while keys are watched; send EXEC, DISCARD or UNWATCH first",
            );
            return true;
        }
        let mut entry = Entry::forwarded(frame.clone(), Target::Slot(ONE_SHARD_SLOT));
        entry.channel = Channel::Db;
        let seq = self.queue.push(entry);
        self.db
            .borrow_mut()
            .get_or_insert_with(|| Database {
                index: Rc::new(RefCell::new(Bytes::from_static(b"0"))),
                conn: None,
                generation: 0,
                selects: Vec::new(),
            })
            .selects
            .push((seq, Bytes::copy_from_slice(index)));
        self.data_channel.set(Channel::Db);
        self.dispatch(seq, None);
        true
    }

    /// Back to database 0 on the shared connections (`RESET`).
    pub(super) fn leave_db(&self) {
        if let Some(db) = self.db.borrow_mut().take()
            && let Some((conn, _)) = db.conn
        {
            conn.close_when_idle();
        }
        self.data_channel.set(Channel::Shared);
    }

    /// For a watch's connection, opened while the session is in another database: a gate
    /// that has sent `SELECT` on `conn`.
    pub(super) fn select_on(&self, conn: &Rc<NodeConn>) -> Option<Rc<Gate>> {
        let db = self.db.borrow();
        let index = db.as_ref()?.index.clone();
        let gate = Gate::new(index);
        gate.reselect(conn);
        Some(gate)
    }

    /// Sends request `seq` on the connection of the selected database, opening a new one
    /// (which re-selects the database first) when there is none, it broke, or the
    /// topology changed since it was opened. The request comes back when no primary is
    /// known.
    ///
    /// `single_use`: the request is a blocking command for that connection of its own
    /// instead. It closes after one reply, so `SELECT` cannot go ahead of the command
    /// alone there: it is pipelined in front, and only once the session's connection, to
    /// the same primary, has had the same `SELECT` accepted (a node's `databases` is fixed
    /// while it runs).
    pub(super) fn send_on_db(
        &self,
        request: Request,
        single_use: Option<Rc<NodeConn>>,
    ) -> Result<(), Request> {
        let seq = request.seq;
        let generation = self.up.with_topology(|t| t.generation);
        let mut guard = self.db.borrow_mut();
        let Some(db) = guard.as_mut() else {
            return Err(request);
        };
        // Answered SELECTs are forgotten once their entries leave the queue (until then a
        // retry may send one again).
        db.selects
            .retain(|(s, _)| self.queue.update(*s, |_| ()).is_some());
        let select = db
            .selects
            .iter()
            .find(|(s, _)| *s == seq && single_use.is_none())
            .map(|(_, index)| index.clone());
        let reusable = db
            .conn
            .as_ref()
            .is_some_and(|(conn, _)| !conn.is_broken() && db.generation == generation);
        if !reusable {
            if let Some((old, _)) = db.conn.take() {
                old.close_when_idle();
            }
            let Some(conn) = self.up.resolve(
                upstream::Target::Shard(0),
                ReadIntent::Primary,
                Use::Own(Mode::Pinned),
                self.client.protocol,
            ) else {
                return Err(request);
            };
            let gate = Gate::new(db.index.clone());
            // The client's own SELECT decides the database of a new connection itself.
            if select.is_none() {
                gate.reselect(&conn);
            }
            db.conn = Some((conn, gate));
            db.generation = generation;
        }
        let Some((conn, gate)) = db.conn.clone() else {
            return Err(request);
        };
        drop(guard);
        match (select, single_use) {
            (Some(index), _) => gate.client_select(&conn, index, request, !reusable),
            (None, Some(single_use)) => gate.send_prefixed(single_use, request),
            (None, None) => gate.send(&conn, request),
        }
        Ok(())
    }

    /// Closes the database connection with the session.
    pub(super) fn close_db(&self) {
        if let Some(db) = self.db.borrow_mut().take()
            && let Some((conn, _)) = db.conn
        {
            conn.close();
        }
    }
}

/// A request waiting for a `SELECT`'s reply.
struct Held {
    request: Request,
    then: Then,
}

/// What a held request is, and so how it goes on once the gate opens.
enum Then {
    /// Sent on the gate's connection.
    Send,
    /// The client's own `SELECT` of this database, itself gated when its turn comes.
    Select(Bytes),
    /// A blocking command for this connection of its own, sent there with `SELECT` in
    /// front.
    Prefixed(Rc<NodeConn>),
}

/// What may be sent on one connection in a selected database.
pub struct Gate {
    state: RefCell<GateState>,
    /// The session's database index (see [`Database::index`]).
    index: Rc<RefCell<Bytes>>,
}

enum GateState {
    /// The connection is in the session's database: requests go straight on.
    Open,
    /// A `SELECT` is on its way: requests wait here, in order, for its reply. `before`
    /// is the state to return to if the node refuses a client's `SELECT` (`None`: the
    /// connection is new and in no database of the client's).
    Selecting {
        held: Vec<Held>,
        before: Option<Box<GateState>>,
    },
    /// The node refused the re-select: every request gets this error, unsent.
    Refused(Bytes),
}

impl Gate {
    fn new(index: Rc<RefCell<Bytes>>) -> Rc<Self> {
        Rc::new(Self {
            state: RefCell::new(GateState::Open),
            index,
        })
    }

    /// Sends `request` now, holds it behind a pending `SELECT`, or refuses it.
    pub fn send(&self, conn: &NodeConn, request: Request) {
        let refusal = match &mut *self.state.borrow_mut() {
            GateState::Open => None,
            GateState::Selecting { held, .. } => {
                held.push(Held {
                    request,
                    then: Then::Send,
                });
                return;
            }
            GateState::Refused(reply) => Some(reply.clone()),
        };
        match refusal {
            None => conn.send(request),
            Some(reply) => request.sink.complete(request.seq, Outcome::Reply(reply)),
        }
    }

    /// Sends `request` with `SELECT` of the session's database in front on `single_use`
    /// once this gate's connection is in that database; refuses it as the gate does.
    fn send_prefixed(&self, single_use: Rc<NodeConn>, mut request: Request) {
        let refusal = match &mut *self.state.borrow_mut() {
            GateState::Open => None,
            GateState::Selecting { held, .. } => {
                held.push(Held {
                    request,
                    then: Then::Prefixed(single_use),
                });
                return;
            }
            GateState::Refused(reply) => Some(reply.clone()),
        };
        match refusal {
            None => {
                request.frame = select_then(&self.index.borrow(), &request.frame);
                request.swallow += 1;
                single_use.send(request);
            }
            Some(reply) => {
                single_use.close();
                request.sink.complete(request.seq, Outcome::Reply(reply));
            }
        }
    }

    /// Sends `SELECT index` (the session's database) alone on a new connection.
    fn reselect(self: &Rc<Self>, conn: &Rc<NodeConn>) {
        let index = self.index.borrow().clone();
        self.start_select(conn, index, None, None);
    }

    /// Sends the client's `SELECT` (request, for database `index`) alone; its reply is
    /// the client's. `fresh`: the connection has selected nothing yet.
    fn client_select(
        self: &Rc<Self>,
        conn: &Rc<NodeConn>,
        index: Bytes,
        request: Request,
        fresh: bool,
    ) {
        if let GateState::Selecting { held, .. } = &mut *self.state.borrow_mut() {
            held.push(Held {
                request,
                then: Then::Select(index),
            });
            return;
        }
        let before = if fresh {
            None
        } else {
            let state = std::mem::replace(&mut *self.state.borrow_mut(), GateState::Open);
            Some(Box::new(state))
        };
        self.start_select(conn, index, Some(request), before);
    }

    fn start_select(
        self: &Rc<Self>,
        conn: &Rc<NodeConn>,
        index: Bytes,
        client: Option<Request>,
        before: Option<Box<GateState>>,
    ) {
        let frame = match &client {
            Some(request) => request.frame.clone(),
            None => {
                let mut out = BytesMut::new();
                encode_command(&mut out, &[b"SELECT", &index]);
                out.freeze()
            }
        };
        let (client_sink, asking) = match client {
            Some(request) => (Some((request.sink, request.seq)), request.asking),
            None => (None, false),
        };
        *self.state.borrow_mut() = GateState::Selecting {
            held: Vec::new(),
            before,
        };
        let sink = Rc::new(SelectReply {
            gate: self.clone(),
            conn: conn.clone(),
            index,
            client: client_sink,
        });
        conn.send(Request {
            sink,
            seq: 0,
            frame,
            asking,
            swallow: 0,
        });
    }

    /// The `SELECT` was answered: `state` is the new state; held requests are sent,
    /// refused or handed back to be retried (`retry`: the connection is no good).
    fn settle(self: &Rc<Self>, conn: &Rc<NodeConn>, state: GateState, retry: Option<Failure>) {
        let held = match std::mem::replace(&mut *self.state.borrow_mut(), state) {
            GateState::Selecting { held, .. } => held,
            _ => Vec::new(),
        };
        for Held { request, then } in held {
            match (&retry, then) {
                // Never written: the session sends it again on a new connection.
                (Some(failure), then) => {
                    if let Then::Prefixed(single_use) = then {
                        single_use.close();
                    }
                    request
                        .sink
                        .complete(request.seq, Outcome::NotSent(failure.clone()));
                }
                // A later SELECT holds the rest again, behind it.
                (None, Then::Select(index)) => self.client_select(conn, index, request, false),
                (None, Then::Prefixed(single_use)) => self.send_prefixed(single_use, request),
                (None, Then::Send) => self.send(conn, request),
            }
        }
    }
}

/// Receives the reply to a `SELECT` sent through a [`Gate`].
struct SelectReply {
    gate: Rc<Gate>,
    conn: Rc<NodeConn>,
    /// The database it selects.
    index: Bytes,
    /// The client's entry, when the `SELECT` is the client's.
    client: Option<(Rc<dyn ReplySink>, u64)>,
}

impl ReplySink for SelectReply {
    fn complete(&self, _seq: u64, outcome: Outcome) {
        let accepted = matches!(&outcome, Outcome::Reply(r) if r.starts_with(b"+OK"));
        let failure = match &outcome {
            Outcome::NotSent(f) | Outcome::Unknown(f) => Some(f.clone()),
            // LOADING, MASTERDOWN ...: the node cannot say now; a new connection asks again.
            Outcome::NotNow(r) | Outcome::NotPrimary(r) if self.client.is_none() => {
                Some(Failure::ConnectionLost {
                    node: self.conn.endpoint().clone(),
                    reason: format!(
                        "SELECT answered {}",
                        String::from_utf8_lossy(r.get(1..).unwrap_or_default()).trim_end()
                    ),
                })
            }
            _ => None,
        };
        let node_error = match &outcome {
            Outcome::Reply(r)
            | Outcome::NotNow(r)
            | Outcome::NotPrimary(r)
            | Outcome::NoScript(r) => String::from_utf8_lossy(r.get(1..).unwrap_or_default())
                .trim_end()
                .to_owned(),
            Outcome::Moved { .. } | Outcome::Ask { .. } => "a redirect".to_owned(),
            Outcome::NotSent(f) | Outcome::Unknown(f) => f.describe(),
        };
        let before = match &mut *self.gate.state.borrow_mut() {
            GateState::Selecting { before, .. } => before.take(),
            _ => None,
        };
        if let Some((sink, seq)) = &self.client {
            sink.complete(*seq, outcome);
        }
        if accepted {
            *self.gate.index.borrow_mut() = self.index.clone();
            return self.gate.settle(&self.conn, GateState::Open, None);
        }
        if let Some(failure) = failure {
            // The connection is lost or unsure: a new one re-selects the database.
            self.conn.close();
            return self.gate.settle(&self.conn, GateState::Open, Some(failure));
        }
        match (&self.client, before) {
            // The node refused the client's SELECT: the connection stays where it was.
            (Some(_), Some(before)) => self.gate.settle(&self.conn, *before, None),
            // ... and a new connection is in no database of the client's: open another.
            (Some(_), None) => {
                self.conn.close();
                let failure = Failure::ConnectionLost {
                    node: self.conn.endpoint().clone(),
                    reason: "closed after a refused SELECT".into(),
                };
                self.gate.settle(&self.conn, GateState::Open, Some(failure));
            }
            (None, _) => {
                let mut out = BytesMut::new();
                encode::error(
                    &mut out,
                    &format!(
                        "ERR slotgate: database {} is not available on the primary {} (SELECT failed: {node_error}); the command was not executed",
                        String::from_utf8_lossy(&self.index),
                        self.conn.endpoint(),
                    ),
                );
                self.gate
                    .settle(&self.conn, GateState::Refused(out.freeze()), None);
            }
        }
    }
}

fn select_then(index: &[u8], frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(frame.len() + 32);
    encode_command(&mut out, &[b"SELECT", index]);
    out.extend_from_slice(frame);
    out.freeze()
}
