//! Transactions: MULTI/EXEC/DISCARD/WATCH/UNWATCH with Redis's semantics.
//!
//! Between MULTI and EXEC, slotgate queues the commands itself: it answers `+QUEUED`,
//! and answers at once the errors Redis reports at queue time (unknown command, wrong
//! arity, `CROSSSLOT` when the keys leave the transaction's slot), which flag the
//! transaction so EXEC answers `EXECABORT`, as Redis does. EXEC sends `MULTI`, the queued
//! commands and `EXEC` in one write to the slot's primary, so no other client's command
//! can come between them even on a shared connection, and only EXEC's reply reaches the
//! client. If the slot moved before EXEC, the node refuses the whole transaction (nothing
//! runs) and slotgate replays it where the slot now lives.
//!
//! WATCH pins a dedicated connection to the watched keys' primary: the watch lives there,
//! so the transaction that follows runs on it too, and a slot move cannot be replayed
//! (the watch would be lost): the client is told nothing ran and should retry.

use bytes::{Bytes, BytesMut};

use super::Session;
use super::queue::{Channel, Entry, Target};
use crate::backend::{Mode, NodeConn, Outcome};
use crate::metrics::WorkerStats;
use crate::resp::ArgView;
use crate::resp::encode::{self, encode_command};
use crate::router::{CROSSSLOT, Local, ReadIntent, Route, TxCommand};
use crate::slot::key_slot;
use crate::upstream::{self, Use};

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Commands queued between MULTI and EXEC.
#[derive(Default, Debug)]
pub struct Transaction {
    frames: Vec<Bytes>,
    slot: Option<u16>,
    /// A queue-time error happened: EXEC must answer EXECABORT.
    dirty: bool,
}

/// The connection WATCH pinned, and the slot it watches.
pub struct Pinned {
    pub backend: std::rc::Rc<NodeConn>,
    pub slot: u16,
    /// Holds requests while the database is re-selected there ([`super::db`]).
    pub gate: Option<std::rc::Rc<super::db::Gate>>,
}

/// The reply for a watched transaction whose node changed under it.
pub fn pinned_moved_reply(outcome: &Outcome) -> Bytes {
    let why = match outcome {
        Outcome::NotSent(failure) => failure.describe(),
        Outcome::NotPrimary(_) => "the watched node stopped being the primary".to_owned(),
        _ => "the watched slot moved to another node".to_owned(),
    };
    let mut out = BytesMut::new();
    encode::error(
        &mut out,
        &format!(
            "ERR slotgate: {why} before the watched transaction ran; nothing was executed, retry it"
        ),
    );
    out.freeze()
}

impl Session {
    pub(super) fn transaction(&mut self, command: TxCommand, frame: Bytes) {
        match command {
            TxCommand::Multi if self.tx.is_some() => {
                self.reply_error("ERR MULTI calls can not be nested")
            }
            TxCommand::Multi => {
                self.tx = Some(Transaction::default());
                self.reply_simple("OK");
            }
            TxCommand::Watch if self.tx.is_some() => {
                self.reply_error("ERR WATCH inside MULTI is not allowed")
            }
            TxCommand::Watch => self.watch(frame),
            TxCommand::Unwatch => {
                // Closing the pinned connection is what forgets the watches.
                self.unpin();
                self.reply_simple("OK");
            }
            TxCommand::Discard => match self.tx.take() {
                None => self.reply_error("ERR DISCARD without MULTI"),
                Some(_) => {
                    self.unpin();
                    self.reply_simple("OK");
                }
            },
            TxCommand::Exec => match self.tx.take() {
                None => self.reply_error("ERR EXEC without MULTI"),
                Some(tx) => self.exec(tx),
            },
        }
    }

    /// Closes the pinned connection when its node is no longer the primary of the watched
    /// slot in the current map, so that what is sent on it fails as not executed, naming
    /// the change. The node's own refusal cannot be relied on: after a Sentinel failover the
    /// demoted primary keeps taking writes until Sentinel reconfigures it, and a transaction
    /// it ran then would be lost with its data.
    pub(super) fn end_pinned_if_primary_changed(&self, pinned: &Pinned) {
        let still_primary = self.up.with_topology(|topology| {
            topology
                .primary_for(pinned.slot)
                .is_some_and(|node| &node.endpoint == pinned.backend.endpoint())
        });
        if !still_primary {
            pinned
                .backend
                .close_because("the watched slot's primary changed to another node");
        }
    }

    /// `WATCH key ...`: keys of one slot, on the pinned connection.
    fn watch(&mut self, frame: Bytes) {
        let args = ArgView::new(&frame, &self.args);
        if args.len() < 2 {
            return self.reply_error("ERR wrong number of arguments for 'watch' command");
        }
        // One shard owns every slot: any keys may be watched together.
        let slot_of = |key: &[u8]| {
            if self.one_shard {
                crate::router::ONE_SHARD_SLOT
            } else {
                key_slot(key)
            }
        };
        let slot = slot_of(args.get(1).unwrap_or_default());
        let same_slot = args.iter().skip(2).all(|k| slot_of(k) == slot);
        if !same_slot || self.pinned.as_ref().is_some_and(|p| p.slot != slot) {
            return self.reply_error(CROSSSLOT);
        }
        if self.pinned.is_none() {
            // Everything about a transaction runs on the primary.
            let backend = self.up.resolve(
                upstream::Target::Slot(slot),
                ReadIntent::Primary,
                Use::Own(Mode::Pinned),
                self.client.protocol,
            );
            let Some(backend) = backend else {
                return self.reply_error("CLUSTERDOWN Hash slot not served");
            };
            // A new connection starts in database 0: into the selected one first.
            let gate = self.select_on(&backend);
            self.pinned = Some(Pinned {
                backend,
                slot,
                gate,
            });
        }
        let mut entry = Entry::forwarded(frame, Target::Slot(slot));
        entry.channel = Channel::Pinned;
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
    }

    /// Queues a command between MULTI and EXEC, or answers the error Redis would give at
    /// queue time and flags the transaction.
    pub(super) fn queue_in_transaction(&mut self, frame: Bytes, route: Route) {
        let pinned_slot = self.pinned.as_ref().map(|p| p.slot);
        let Some(tx) = self.tx.as_mut() else { return };
        let error = match route {
            Route::Slot(slot) | Route::Blocking(Some(slot)) => {
                let expected = tx.slot.or(pinned_slot);
                if expected.is_some_and(|s| s != slot) {
                    Some(CROSSSLOT.to_owned())
                } else {
                    tx.slot = Some(slot);
                    None
                }
            }
            Route::AnyPrimary | Route::Blocking(None) | Route::Local(Local::Ping | Local::Echo) => {
                None
            }
            Route::Local(Local::Quit) => {
                // QUIT is never queued: it ends the connection at once.
                self.tx = None;
                let args = ArgView::new(&frame, &self.args);
                let mut out = BytesMut::new();
                super::local::execute(
                    Local::Quit,
                    &args,
                    &mut self.client,
                    &self.worker.state,
                    &self.listener,
                    &mut out,
                );
                self.reading = false;
                self.queue.push(Entry::ready(out.freeze(), true));
                return;
            }
            Route::Local(_) => {
                let args = ArgView::new(&frame, &self.args);
                let name = String::from_utf8_lossy(args.get(0).unwrap_or_default()).to_lowercase();
                Some(format!(
                    "ERR slotgate: '{name}' cannot be queued in a transaction: slotgate answers it itself"
                ))
            }
            Route::Error(message) => Some(message.into_owned()),
            Route::Split(_) => Some(CROSSSLOT.to_owned()),
            Route::PubSub(_) => Some(
                "ERR slotgate: subscription commands cannot be queued in a transaction".to_owned(),
            ),
            Route::Fanout(_) | Route::Scan => Some(
                "ERR slotgate: this command spans every node and cannot run in a transaction"
                    .to_owned(),
            ),
            Route::Transaction(_) => None,
        };
        match error {
            Some(message) => {
                tx.dirty = true;
                WorkerStats::bump(&self.worker.stats.commands_rejected);
                self.reply_error(&message);
            }
            None => {
                // Kept until EXEC, which the client may send much later: a copy, so it
                // does not pin a shared read chunk (crate::read_pool).
                tx.frames.push(Bytes::copy_from_slice(&frame));
                self.reply_simple("QUEUED");
            }
        }
    }

    /// Sends MULTI, the queued commands and EXEC as one request.
    fn exec(&mut self, tx: Transaction) {
        if tx.dirty {
            self.unpin();
            return self.reply_error(EXECABORT);
        }
        let mut frame = BytesMut::new();
        encode_command(&mut frame, &[b"MULTI"]);
        for queued in &tx.frames {
            frame.extend_from_slice(queued);
        }
        encode_command(&mut frame, &[b"EXEC"]);
        let (target, channel) = match (&self.pinned, tx.slot) {
            (Some(pinned), _) => (Target::Slot(pinned.slot), Channel::Pinned),
            (None, Some(slot)) => (Target::Slot(slot), self.data_channel.get()),
            (None, None) => (Target::AnyPrimary, self.data_channel.get()),
        };
        let mut entry = Entry::forwarded(frame.freeze(), target);
        entry.channel = channel;
        entry.swallow = tx.frames.len() as u32 + 1;
        entry.write_mark = self.mark_write(super::reads::Marked::All);
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
        // EXEC forgets the watches; the pinned connection closes once EXEC is answered.
        self.unpin();
    }

    /// Releases the pinned connection once it has answered what it was sent.
    pub(super) fn unpin(&mut self) {
        if let Some(pinned) = self.pinned.take() {
            pinned.backend.close_when_idle();
        }
    }
}
