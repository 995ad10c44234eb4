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
use super::reads::Marked;
use super::scan_cursor;
use crate::resp::ArgView;
use crate::resp::encode::encode_command;
use crate::router::{Merge, ReadIntent, SplitKind};
use crate::slot::key_slot;

impl Session {
    /// Sends one part per slot of a multi-key command whose keys span several slots.
    /// Reads (MGET, EXISTS) send each part by the read policy; writes mark every slot for
    /// read-your-writes.
    pub(super) fn split(&self, frame: &Bytes, kind: SplitKind, intent: ReadIntent) {
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
        let mut parent = Entry::parent(group_slots.len() as u32, merge);
        if intent == ReadIntent::Primary {
            parent.write_mark = self.mark_write(Marked::All);
        }
        self.queue.push(parent);
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
            let mut child = Entry::child(part, Target::Slot(*slot));
            child.intent = intent;
            let seq = self.queue.push(child);
            self.dispatch(seq, None);
        }
    }

    /// Sends the same request to every shard and merges their replies: to each primary,
    /// or for a read (KEYS, DBSIZE, RANDOMKEY) to the node of each shard the read policy
    /// picks.
    pub(super) fn fanout(&self, frame: Bytes, merge: Merge, intent: ReadIntent) {
        let first_slots = self.up.with_topology(|t| t.first_slots());
        if first_slots.is_empty() {
            return self.reply_error("CLUSTERDOWN slotgate has no slot map yet");
        }
        let mut parent = Entry::parent(first_slots.len() as u32, merge);
        if intent == ReadIntent::Primary {
            parent.write_mark = self.mark_write(Marked::All);
        }
        self.queue.push(parent);
        for (slot, _) in first_slots {
            let mut child = Entry::child(frame.clone(), Target::Slot(slot));
            child.intent = intent;
            let seq = self.queue.push(child);
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
        let (slot, tag, node_cursor) = match (cursor, first_slots.first()) {
            (_, None) => return self.reply_error("CLUSTERDOWN slotgate has no slot map yet"),
            (0, Some(&(first, _))) => (first, 0, 0),
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
        // The node cursor means something only on the node that made it: if that node may
        // not serve this page, the shard starts over on another (repeats, never misses).
        let policy = self
            .read_request(
                ReadIntent::Read,
                Target::Slot(first_slot),
                self.data_channel.get(),
                None,
            )
            .map(|read| read.policy);
        let (tag, node_cursor) = if tag == 0 || self.up.scan_node_serves(first_slot, tag, policy) {
            (tag, node_cursor)
        } else {
            (0, 0)
        };
        let parts: Vec<&[u8]> = args.iter().collect();
        let request = scan_cursor::rewrite_request(&parts, node_cursor);
        let mut entry = Entry::forwarded(request, Target::Slot(first_slot));
        entry.intent = ReadIntent::Read;
        // After `SELECT n` (a backend without slots) the scan runs in that database.
        entry.channel = self.data_channel.get();
        entry.role = Role::Scan {
            first_slot,
            next_first_slot,
            tag,
        };
        let seq = self.queue.push(entry);
        self.dispatch(seq, None);
    }
}
