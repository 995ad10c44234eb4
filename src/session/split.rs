//! Requests that become several: multi-key commands split by slot, commands fanned out
//! to every primary, and SCAN walking the primaries one after the other.
//!
//! Each builds a parent entry and one child entry per part in the client's
//! [`ReplyQueue`](super::queue::ReplyQueue); the children travel like any request
//! (redirects and retries included) and the queue merges their replies with
//! [`merge`](super::merge) when the parent reaches the head.

use bytes::{Bytes, BytesMut};

use super::Session;
use super::queue::{Entry, Role, Target};
use super::scan_cursor;
use crate::resp::ArgView;
use crate::resp::encode::encode_command;
use crate::router::Merge;
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
        // Slot groups in order of first appearance; each key's group, and for MGET the
        // key's place within its group's reply. Flat vectors: a split costs a handful of
        // allocations, not one per part.
        let mut group_slots: Vec<u16> = Vec::new();
        let mut group_sizes: Vec<u32> = Vec::new();
        let mut key_groups: Vec<u16> = Vec::with_capacity(args.len() / step);
        let mut positions = Vec::new();
        for index in (1..args.len()).step_by(step) {
            let slot = key_slot(args.get(index).unwrap_or_default());
            let group = match group_slots.iter().position(|&s| s == slot) {
                Some(group) => group,
                None => {
                    group_slots.push(slot);
                    group_sizes.push(0);
                    group_slots.len() - 1
                }
            };
            if kind == SplitKind::Mget {
                positions.push((group as u16, group_sizes[group]));
            }
            group_sizes[group] += 1;
            key_groups.push(group as u16);
        }
        let merge = match kind {
            SplitKind::Mget => Merge::Mget { positions },
            SplitKind::Mset => Merge::AllOk,
            SplitKind::CountKeys => Merge::SumIntegers,
        };
        self.queue
            .push(Entry::parent(group_slots.len() as u32, merge));
        // Every part is encoded into one buffer and split off it: one allocation for all.
        let headers = 16 * (args.len() + 2 * group_slots.len()) + name.len() * group_slots.len();
        let mut out = BytesMut::with_capacity(frame.len() + headers);
        let mut parts: Vec<&[u8]> =
            Vec::with_capacity(1 + group_sizes.iter().max().map_or(0, |&n| n as usize) * step);
        for (group, slot) in group_slots.iter().enumerate() {
            parts.clear();
            parts.push(name);
            for (key, _) in key_groups
                .iter()
                .enumerate()
                .filter(|(_, g)| usize::from(**g) == group)
            {
                let index = 1 + key * step;
                for arg in index..index + step {
                    parts.push(args.get(arg).unwrap_or_default());
                }
            }
            encode_command(&mut out, &parts);
            let part = out.split().freeze();
            let seq = self.queue.push(Entry::child(part, Target::Slot(*slot)));
            self.dispatch(seq, None);
        }
    }

    /// Sends the same request to every primary and merges their replies.
    pub(super) fn fanout(&self, frame: Bytes, merge: Merge) {
        let first_slots = self.up.with_topology(|t| t.first_slots());
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
        let first_slots = self.up.with_topology(|t| t.first_slots());
        let (slot, node_cursor) = match (cursor, first_slots.first()) {
            (_, None) => return self.reply_error("CLUSTERDOWN slotgate has no slot map yet"),
            (0, Some(&(first, _))) => (first, 0),
            (cursor, Some(_)) => scan_cursor::decode(cursor),
        };
        let owner = self.up.with_topology(|t| t.shard_index(slot));
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
