//! The session's side of reads from replicas: which requests go by the read policy, and
//! read-your-writes.
//!
//! A request goes by the policy when its command is a read ([`ReadIntent::Read`]), it
//! travels on the shared connections (not in a transaction, not pinned by `WATCH`, not in
//! another database), and the client did not send `READWRITE`. Everything else goes to
//! the primary ([`crate::reads`]).
//!
//! Read-your-writes (`read-your-writes = session`): every write the client sends marks its
//! slot (a write over several slots, or none, marks every slot). While the write is
//! unanswered the slot's reads go to the primary, as a pipelined read must see it; once it
//! is answered, at instant `t`, a replica may serve them only if the probe asked the
//! primary after `t` and found the replica at or past that offset. A mark is dropped
//! once every eligible replica of its shard has caught up, so a client that stops writing
//! reads from replicas again within about one `replica-check-interval`.

use std::cell::RefCell;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::Session;
use super::queue::{Channel, Target};
use crate::reads::ReadYourWrites;
use crate::reads::choose::ReadRequest;
use crate::router::ReadIntent;

/// Most slots tracked one by one; past that, one mark stands for every slot.
const MAX_MARKED_SLOTS: usize = 256;

/// Which slots a write marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marked {
    Slot(u16),
    /// Every slot (split writes, keyless writes, transactions, overflow).
    All,
}

impl Marked {
    /// What a write to `target` marks.
    pub fn of(target: Target) -> Marked {
        match target {
            Target::Slot(slot) => Marked::Slot(slot),
            Target::AnyPrimary => Marked::All,
        }
    }
}

/// A write's mark, carried by its queue entry so its answer can close it.
#[derive(Clone, Copy, Debug)]
pub struct WriteMark {
    pub marked: Marked,
    pub token: u64,
}

/// One slot's (or every slot's) last write.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// The latest write's token: only its answer closes the mark.
    token: u64,
    /// When that write was answered; `None` while it is in flight.
    answered_at: Option<Instant>,
}

/// What a read of one slot must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Constraint {
    None,
    /// A write is in flight: only the primary has it for sure.
    Pending,
    /// The last write was answered then.
    Since(Instant),
}

/// The client's recent writes; see the module docs.
#[derive(Debug, Default)]
pub struct WriteMarks {
    slots: FxHashMap<u16, Mark>,
    all: Option<Mark>,
    next_token: u64,
}

impl WriteMarks {
    /// Records a write sent now; the returned mark goes with its entry.
    pub fn wrote(&mut self, marked: Marked) -> WriteMark {
        self.next_token += 1;
        let mark = Mark {
            token: self.next_token,
            answered_at: None,
        };
        let marked = match marked {
            Marked::Slot(slot)
                if self.slots.len() < MAX_MARKED_SLOTS || self.slots.contains_key(&slot) =>
            {
                self.slots.insert(slot, mark);
                Marked::Slot(slot)
            }
            _ => {
                // Every slot: older slot marks are covered, since answers come in order
                // and this one is the newest.
                self.slots.clear();
                self.all = Some(mark);
                Marked::All
            }
        };
        WriteMark {
            marked,
            token: self.next_token,
        }
    }

    /// The write carrying `mark` was answered at `now`.
    pub fn answered(&mut self, mark: WriteMark, now: Instant) {
        let entry = match mark.marked {
            Marked::Slot(slot) => self.slots.get_mut(&slot),
            Marked::All => self.all.as_mut(),
        };
        if let Some(entry) = entry
            && entry.token == mark.token
        {
            entry.answered_at = Some(now);
        }
    }

    fn constraint(&self, slot: Option<u16>) -> Constraint {
        let marks = slot
            .and_then(|slot| self.slots.get(&slot))
            .into_iter()
            .chain(self.all.as_ref());
        let mut constraint = Constraint::None;
        for mark in marks {
            constraint = match (constraint, mark.answered_at) {
                (_, None) | (Constraint::Pending, _) => Constraint::Pending,
                (Constraint::Since(a), Some(b)) => Constraint::Since(a.max(b)),
                (Constraint::None, Some(b)) => Constraint::Since(b),
            };
        }
        constraint
    }

    /// Forgets the marks replicas have caught up with, as `caught_up(slot, since)` says
    /// (`slot` `None`: every shard).
    fn forget_caught_up(
        &mut self,
        slot: Option<u16>,
        caught_up: impl Fn(Option<u16>, Instant) -> bool,
    ) {
        if let Some(slot) = slot
            && let Some(Mark {
                answered_at: Some(at),
                ..
            }) = self.slots.get(&slot)
            && caught_up(Some(slot), *at)
        {
            self.slots.remove(&slot);
        }
        if let Some(Mark {
            answered_at: Some(at),
            ..
        }) = self.all
            && caught_up(None, at)
        {
            self.all = None;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.all.is_none()
    }
}

impl Session {
    /// The read policy's request for a request of `intent` to `target` on `channel`, or
    /// `None` when it goes to the primary.
    pub(super) fn read_request(
        &self,
        intent: ReadIntent,
        target: Target,
        channel: Channel,
        tag: Option<u8>,
    ) -> Option<ReadRequest> {
        if intent != ReadIntent::Read
            || channel != Channel::Shared
            || self.client.reads_from_primary
        {
            return None;
        }
        let settings = self.up.read_settings();
        // The listener's `read-from`: its own, else its backend's, else the top level's.
        let policy = self.listener.config().reads.read_from;
        if !policy.uses_replicas() {
            return None;
        }
        let slot = match target {
            Target::Slot(slot) => Some(slot),
            Target::AnyPrimary => None,
        };
        let written_at = if settings.read_your_writes == ReadYourWrites::Session {
            let mut marks = self.write_marks.borrow_mut();
            if marks.is_empty() {
                None
            } else {
                marks.forget_caught_up(slot, |slot, at| self.caught_up(slot, at));
                match marks.constraint(slot) {
                    Constraint::None => None,
                    Constraint::Pending => return None,
                    Constraint::Since(at) => Some(at),
                }
            }
        } else {
            None
        };
        Some(ReadRequest {
            policy,
            written_at,
            tag,
        })
    }

    /// Marks a write about to be sent to `marked`, when read-your-writes is on.
    pub(super) fn mark_write(&self, marked: Marked) -> Option<WriteMark> {
        let settings = self.up.read_settings();
        (settings.read_your_writes == ReadYourWrites::Session
            && self.listener.config().reads.read_from.uses_replicas())
        .then(|| self.write_marks.borrow_mut().wrote(marked))
    }

    fn caught_up(&self, slot: Option<u16>, at: Instant) -> bool {
        match slot {
            Some(slot) => self.up.caught_up(slot, at),
            None => {
                let slots = self.up.with_topology(|t| t.first_slots());
                slots.iter().all(|&(slot, _)| self.up.caught_up(slot, at))
            }
        }
    }
}

/// The session's marks (a field of [`Session`]).
pub type Marks = RefCell<WriteMarks>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_write_holds_its_slot_until_answered_then_until_caught_up() {
        let mut marks = WriteMarks::default();
        let t0 = Instant::now();
        let mark = marks.wrote(Marked::Slot(7));
        assert_eq!(marks.constraint(Some(7)), Constraint::Pending);
        assert_eq!(marks.constraint(Some(8)), Constraint::None);
        let later = marks.wrote(Marked::Slot(7));
        marks.answered(mark, t0);
        assert_eq!(
            marks.constraint(Some(7)),
            Constraint::Pending,
            "a later write is in flight"
        );
        let t1 = t0 + Duration::from_millis(5);
        marks.answered(later, t1);
        assert_eq!(marks.constraint(Some(7)), Constraint::Since(t1));
        marks.forget_caught_up(Some(7), |_, at| at < t1);
        assert_eq!(marks.constraint(Some(7)), Constraint::Since(t1));
        marks.forget_caught_up(Some(7), |_, at| at <= t1);
        assert_eq!(marks.constraint(Some(7)), Constraint::None);
        assert!(marks.is_empty());
    }

    #[test]
    fn a_write_to_every_slot_constrains_every_read() {
        let mut marks = WriteMarks::default();
        let t0 = Instant::now();
        let all = marks.wrote(Marked::All);
        assert_eq!(marks.constraint(Some(1)), Constraint::Pending);
        assert_eq!(marks.constraint(None), Constraint::Pending);
        marks.answered(all, t0);
        assert_eq!(marks.constraint(Some(1)), Constraint::Since(t0));
    }

    #[test]
    fn too_many_slots_fold_into_one_mark() {
        let mut marks = WriteMarks::default();
        let mut last = None;
        for slot in 0..=MAX_MARKED_SLOTS as u16 {
            last = Some(marks.wrote(Marked::Slot(slot)));
        }
        assert_eq!(last.unwrap().marked, Marked::All);
        assert_eq!(marks.constraint(Some(16000)), Constraint::Pending);
        marks.answered(last.unwrap(), Instant::now());
        assert!(matches!(marks.constraint(Some(3)), Constraint::Since(_)));
    }
}
