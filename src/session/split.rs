//! Requests that become several: multi-key commands split by slot, commands fanned out
//! to every primary, and SCAN walking the primaries one after the other.
//!
//! Each builds a parent entry and one child entry per part in the client's
//! [`ReplyQueue`](super::queue::ReplyQueue); the children travel like any request
//! (redirects and retries included) and the queue merges their replies with
//! [`merge`](super::merge) when the parent reaches the head.

use bytes::{Bytes, BytesMut};

use super::Session;
use super::merge::Merge;
use super::queue::{Entry, Role, Target};
use super::scan_cursor;
use crate::resp::ArgView;
use crate::resp::encode::encode_command;
use crate::router::SplitKind;
use crate::slot::key_slot;

impl Session {
    /// Sends one part per slot of a multi-key command whose keys span several slots.
    pub(super) fn split(&self, frame: &Bytes, kind: SplitKind) {
        let args = ArgView::new(frame, &self.args);
        let name = args.get(0).unwrap_or_default();
        let step = if kind == SplitKind::Mset { 2 } else { 1 };
        if kind == SplitKind::Mset && args.len().is_multiple_of(2) {
            return self.reply_error("ERR wrong number of arguments for 'mset' command");
        }
        // Slot groups in order of first appearance, each with its key argument indexes.
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        let mut positions = Vec::new();
        for index in (1..args.len()).step_by(step) {
            let slot = key_slot(args.get(index).unwrap_or_default());
            let group = match groups.iter().position(|(s, _)| *s == slot) {
                Some(group) => group,
                None => {
                    groups.push((slot, Vec::new()));
                    groups.len() - 1
                }
            };
            positions.push((group as u16, groups[group].1.len() as u32));
            groups[group].1.push(index);
        }
        let merge = match kind {
            SplitKind::Mget => Merge::Mget { positions },
            SplitKind::Mset => Merge::AllOk,
            SplitKind::CountKeys => Merge::SumIntegers,
        };
        self.queue.push(Entry::parent(groups.len() as u32, merge));
        let mut parts: Vec<&[u8]> = Vec::new();
        for (slot, indexes) in &groups {
            parts.clear();
            parts.push(name);
            for &index in indexes {
                for arg in index..index + step {
                    parts.push(args.get(arg).unwrap_or_default());
                }
            }
            let mut out = BytesMut::new();
            encode_command(&mut out, &parts);
            let seq = self
                .queue
                .push(Entry::child(out.freeze(), Target::Slot(*slot)));
            self.dispatch(seq, None);
        }
    }

    /// Sends the same request to every primary and merges their replies.
    pub(super) fn fanout(&self, frame: Bytes, merge: Merge) {
        let first_slots = self.worker.with_topology(|t| t.first_slots());
        if first_slots.is_empty() {
            return self.reply_error("CLUSTERDOWN slotgate has no slot map yet");
        }
        self.queue
            .push(Entry::parent(first_slots.len() as u32, merge));
        for (slot, _) in first_slots {
            let seq = self
                .queue
                .push(Entry::child(frame.clone(), Target::Slot(slot)));
            self.dispatch(seq, None);
        }
    }

    /// `SCAN cursor [...]`: the cursor names a shard (by its first slot) and that node's
    /// own cursor; each call asks one node and the reply's cursor names the next.
    pub(super) fn scan(&self, frame: &Bytes) {
        let args = ArgView::new(frame, &self.args);
        let Some(cursor) = args
            .get(1)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u64>().ok())
        else {
            return self.reply_error("ERR invalid cursor");
        };
        let first_slots = self.worker.with_topology(|t| t.first_slots());
        let (slot, node_cursor) = match (cursor, first_slots.first()) {
            (_, None) => return self.reply_error("CLUSTERDOWN slotgate has no slot map yet"),
            (0, Some(&(first, _))) => (first, 0),
            (cursor, Some(_)) => scan_cursor::decode(cursor),
        };
        let owner = self.worker.with_topology(|t| t.shard_index(slot));
        let Some(position) =
            owner.and_then(|owner| first_slots.iter().position(|&(_, s)| s == owner))
        else {
            return self.reply_error(
                "ERR invalid cursor: its shard no longer serves slots; restart the scan",
            );
        };
        let first_slot = first_slots[position].0;
        let next_first_slot = first_slots.get(position + 1).map(|&(s, _)| s);
        let parts: Vec<&[u8]> = args.iter().collect();
        let request = scan_cursor::rewrite_request(&parts, node_cursor);
        let mut entry = Entry::forwarded(request, Target::Slot(first_slot));
        entry.role = Role::Scan {
            first_slot,
            next_first_slot,
        };
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
    }
}
