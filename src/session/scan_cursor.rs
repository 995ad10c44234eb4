//! SCAN across every primary with one client-visible cursor.
//!
//! ```text
//! client: SCAN <cursor> [MATCH p] [COUNT n] [TYPE t]
//!   -> decode(cursor) = (first_slot, node tag, node_cursor)
//!   -> session: the node named by the tag in the shard that now serves `first_slot` (or,
//!      when no such node may serve it, a node the read policy picks, from node cursor 0)
//!      gets rewrite_request(args, node_cursor)
//!   -> node:   *2 $<node cursor> *n keys...
//!   -> rewrite_reply(reply, first_slot, its tag, next shard's first slot) -> client
//! ```
//!
//! # The cursor
//!
//! ```text
//!  63            50 49  46 45                                       0
//! +----------------+------+-------------------------------------------+
//! |   first slot   | node |           the node's own cursor           |
//! |    14 bits     |4 bits|                 46 bits                   |
//! +----------------+------+-------------------------------------------+
//! ```
//!
//! The node tag names the node a shard is being scanned on
//! ([`crate::reads::choose::node_tag`], 1 to 15 from its node id; 0 names none). Reads from
//! replicas may send each page of a shard to another node, and a node cursor means nothing
//! on another node (each process hashes with its own seed), so the scan stays on the named
//! node while it may serve the shard; when it may not (it failed, was promoted, left the
//! shard), the shard is scanned again from node cursor 0 on another node: keys may be
//! repeated, never missed, which SCAN allows.
//!
//! The high 14 bits name the shard by the **first (lowest) slot it serves**, not by a node id
//! or an index into the shard list: a promoted replica serves the same slots and holds the same
//! keys, and slot numbers mean the same thing in every topology snapshot, so the cursor needs
//! no state in slotgate and survives a restart of slotgate itself. 16384 slots fit 14 bits
//! exactly.
//!
//! The low 46 bits are the node's cursor, unchanged. Redis's SCAN cursor is a position in the
//! main dict's bucket table, iterated in reverse-binary order, so it is always below the
//! table's size (`dictScan` masks it with `ht_size_mask`; the carry out of the masked bits is
//! dropped). Tables are powers of two, at most about twice the key count while rehashing. A
//! node cursor reaching 2^50 would need a table of 2^50 buckets: 8 PiB of bucket pointers alone,
//! beyond any server. Redis 7.4+ in cluster mode keeps one dict per slot and puts the slot in
//! the cursor's low 14 bits, leaving 36 bits for one slot's table: 2^36 buckets (512 GiB of
//! pointers for a single slot) is still out of reach. So the split never truncates a real
//! cursor; should a node ever send one at or above 2^50, [`encode`] refuses it and the client
//! gets an error instead of a cursor that would silently jump elsewhere.
//!
//! Cursor 0 decodes to (slot 0, node cursor 0): "start from the beginning". The shards are
//! visited in ascending order of their first slot, so the next shard's first slot is never 0
//! and a mid-scan cursor is never 0; the last shard's final page returns 0, "done", as Redis
//! does. If no shard serves slot 0 (a cluster missing slots), the session starts at the shard
//! with the lowest first slot.
//!
//! # Topology changes mid-scan
//!
//! A cursor is resolved against the topology current when it comes back: the scan continues
//! on whichever node now serves `first_slot`.
//! - **Failover**: the promoted replica serves the same slots and holds the same keys, so the
//!   cursor still names the right shard and the scan goes on without an error. But the node
//!   cursor is a bucket position in the *old* node's table, and every Redis process hashes
//!   keys with its own random seed (`dictSetHashFunctionSeed` at start-up): on the new node
//!   that position divides the keys differently, so keys of this one shard may be missed or
//!   repeated. The shards after it start at node cursor 0 and are exact. (Detecting this
//!   would take a few cursor bits naming the node, e.g. a 4-bit tag of its node id, to
//!   restart the shard from 0 on a mismatch: repeats, never misses. The 50-bit field has
//!   room to spare, see above.)
//! - **Resharding**: if the slot ranges moved, the shard now serving `first_slot` may hold
//!   other keys, and the next shard is chosen from the new map; keys in slots that moved from
//!   a not-yet-scanned shard to an already-scanned one are missed, and keys moved the other
//!   way are returned twice. Redis Cluster clients scanning node by node have the same
//!   problem; the client sees a normal SCAN that may miss or repeat keys in moved slots.
//! - A cursor whose node cursor would not fit 46 bits: [`encode`] / [`rewrite_reply`] return
//!   None and the session answers an error rather than a wrong cursor.

use bytes::{BufMut, Bytes, BytesMut};

use crate::resp::encode as wire;
use crate::router::merge::elements;
use crate::slot::SLOT_COUNT;

/// Bits of the client cursor holding the node's own cursor.
pub const NODE_BITS: u32 = 46;
/// Where the first slot starts: above the node cursor and the 4-bit node tag.
const SLOT_SHIFT: u32 = NODE_BITS + 4;

/// The first node cursor that does not fit.
pub const NODE_CURSOR_LIMIT: u64 = 1 << NODE_BITS;

/// Packs a shard (by the first slot it serves), the node tag and that node's cursor into
/// the client's cursor. None if `first_slot` is not a slot (>= 16384), `tag` needs more
/// than 4 bits or `node_cursor` more than 46.
pub fn encode(first_slot: u16, tag: u8, node_cursor: u64) -> Option<u64> {
    if usize::from(first_slot) >= SLOT_COUNT || tag > 15 || node_cursor >= NODE_CURSOR_LIMIT {
        return None;
    }
    Some((u64::from(first_slot) << SLOT_SHIFT) | (u64::from(tag) << NODE_BITS) | node_cursor)
}

/// Splits a client cursor into (first slot, node tag, node cursor). Total: any u64 gives a
/// valid slot (14 bits), tag and node cursor, so a made-up cursor scans some shard from some
/// position, just as a made-up cursor does on a single Redis.
pub fn decode(
    cursor: u64,
) -> (
    u16, /*first_slot*/
    u8,  /*tag*/
    u64, /*node cursor*/
) {
    // 64 - 50 = 14 bits: always < 16384, the cast cannot truncate; the tag is 4 bits.
    let slot = (cursor >> SLOT_SHIFT) as u16;
    let tag = ((cursor >> NODE_BITS) & 0xf) as u8;
    (slot, tag, cursor & (NODE_CURSOR_LIMIT - 1))
}

/// Parses a cursor argument or a cursor in a node's reply: decimal digits only, fitting a
/// u64. None means the client should get Redis's `-ERR invalid cursor`.
pub fn parse(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Given a SCAN reply from a node (`*2 $cursor *n keys...`, RESP2/3 same shape), rewrite its
/// cursor: if the node cursor is non-zero -> encode(first_slot, tag, node_cursor); if zero ->
/// encode(next_first_slot, 0, 0) when there is a next shard (its node is chosen then), else 0.
///
/// Returns the rewritten reply; the keys part is sliced out of `reply` without parsing its
/// elements again and copied once, behind the new cursor, into the single buffer a reply
/// must be. None if the reply is not a SCAN reply (errors included: pass those through
/// first), if the node cursor does not fit 46 bits, or if `next_first_slot` is 0 or not a
/// slot (0 would read as "done" to the client and end the scan early).
pub fn rewrite_reply(
    reply: &Bytes,
    first_slot: u16,
    tag: u8,
    next_first_slot: Option<u16>,
) -> Option<Bytes> {
    // An array, not a map or set of two elements.
    if reply.first() != Some(&b'*') {
        return None;
    }
    let parts = elements(reply)?;
    let [cursor, keys] = parts.as_slice() else {
        return None;
    };
    // Redis always sends the cursor as a bulk string and the keys as an array.
    let node_cursor = parse(bulk_payload(cursor)?)?;
    if !matches!(keys.first(), Some(b'*')) || elements(keys).is_none() {
        return None;
    }
    let client_cursor = match (node_cursor, next_first_slot) {
        (0, None) => 0,
        (0, Some(0)) => return None,
        (0, Some(next)) => encode(next, 0, 0)?,
        (n, _) => encode(first_slot, tag, n)?,
    };
    let mut digits = itoa::Buffer::new();
    let text = digits.format(client_cursor).as_bytes();
    let mut out = BytesMut::with_capacity(16 + text.len() + keys.len());
    wire::array_header(&mut out, 2);
    wire::bulk(&mut out, text);
    out.put_slice(keys);
    Some(out.freeze())
}

/// The payload of a `$` bulk string frame.
fn bulk_payload(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"$")?;
    let cr = rest.iter().position(|&b| b == b'\r')?;
    let len: usize = std::str::from_utf8(&rest[..cr]).ok()?.parse().ok()?;
    let body = rest.get(cr + 2..)?.strip_suffix(b"\r\n")?;
    (body.len() == len).then_some(body)
}

/// Rewrites the client's SCAN request frame, replacing the cursor argument (args[1]) with
/// `node_cursor`; returns a new RESP array frame. MATCH/COUNT/TYPE travel unchanged. With
/// fewer than two arguments (which the arity check refuses before this point) the cursor is
/// appended after the command name, defaulting the name to `SCAN`, so the frame is always a
/// well-formed SCAN.
pub fn rewrite_request(args: &[&[u8]], node_cursor: u64) -> Bytes {
    let mut digits = itoa::Buffer::new();
    let cursor = digits.format(node_cursor).as_bytes();
    let name = args.first().copied().unwrap_or(b"SCAN");
    let rest = args.get(2..).unwrap_or_default();
    let size = 32 + name.len() + rest.iter().map(|a| a.len() + 16).sum::<usize>();
    let mut out = BytesMut::with_capacity(size);
    wire::array_header(&mut out, 2 + rest.len());
    wire::bulk(&mut out, name);
    wire::bulk(&mut out, cursor);
    for arg in rest {
        wire::bulk(&mut out, arg);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    fn scan_reply(cursor: &str, keys: &[&str]) -> Bytes {
        let mut out = format!("*2\r\n${}\r\n{cursor}\r\n*{}\r\n", cursor.len(), keys.len());
        for k in keys {
            out.push_str(&format!("${}\r\n{k}\r\n", k.len()));
        }
        Bytes::from(out)
    }

    #[test]
    fn round_trips_and_edges() {
        let max_node = NODE_CURSOR_LIMIT - 1;
        for slot in [0u16, 1, 5461, 10923, 16383] {
            for node in [0u64, 1, 2, 12345, 1 << 36, max_node] {
                for tag in [0u8, 1, 15] {
                    let cursor = encode(slot, tag, node).unwrap();
                    assert_eq!(decode(cursor), (slot, tag, node));
                }
            }
        }
        assert_eq!(encode(0, 0, 0), Some(0));
        assert_eq!(encode(0, 0, 7), Some(7));
        assert_eq!(encode(1, 0, 0), Some(1 << 50));
        assert_eq!(encode(16383, 15, max_node), Some(u64::MAX));
        assert_eq!(encode(0, 16, 0), None);
        assert_eq!(encode(0, 1, 0), Some(1 << 46));
        assert_eq!(encode(0, 0, NODE_CURSOR_LIMIT), None);
        assert_eq!(encode(5, 0, u64::MAX), None);
        assert_eq!(encode(16384, 0, 0), None);
        assert_eq!(encode(u16::MAX, 0, 0), None);
    }

    #[test]
    fn decode_is_total() {
        assert_eq!(decode(0), (0, 0, 0));
        assert_eq!(decode(u64::MAX), (16383, 15, NODE_CURSOR_LIMIT - 1));
        assert_eq!(decode(NODE_CURSOR_LIMIT), (0, 1, 0));
        assert_eq!(decode(1 << 50), (1, 0, 0));
        assert_eq!(decode(NODE_CURSOR_LIMIT - 1), (0, 0, NODE_CURSOR_LIMIT - 1));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let (slot, tag, node) = decode(x);
            assert!(usize::from(slot) < SLOT_COUNT);
            assert_eq!(encode(slot, tag, node), Some(x));
        }
    }

    #[test]
    fn parse_cursor_arguments() {
        assert_eq!(parse(b"0"), Some(0));
        assert_eq!(parse(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse(b"007"), Some(7));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"0x10",
            b"abc",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rewrite_reply_mid_shard_keeps_the_shard_and_its_node() {
        let reply = scan_reply("1234", &["a", "b"]);
        let got = rewrite_reply(&reply, 5461, 7, Some(10923)).unwrap();
        let want = encode(5461, 7, 1234).unwrap().to_string();
        assert_eq!(got, scan_reply(&want, &["a", "b"]));
        // The next shard's node is chosen when it is reached: no tag.
        let got = rewrite_reply(&scan_reply("0", &[]), 5461, 7, Some(10923)).unwrap();
        assert_eq!(
            got,
            scan_reply(&encode(10923, 0, 0).unwrap().to_string(), &[])
        );
    }

    #[test]
    fn rewrite_reply_end_of_shard_moves_to_the_next() {
        let reply = scan_reply("0", &["k"]);
        let got = rewrite_reply(&reply, 0, 0, Some(5461)).unwrap();
        assert_eq!(got, scan_reply(&(5461u64 << 50).to_string(), &["k"]));
        // The last shard's last page: 0, done.
        let got = rewrite_reply(&reply, 10923, 0, None).unwrap();
        assert_eq!(got, scan_reply("0", &["k"]));
        // A first shard's page from slot 0 with a small cursor reads like a plain cursor.
        let got = rewrite_reply(&scan_reply("17", &[]), 0, 0, Some(8192)).unwrap();
        assert_eq!(got, scan_reply("17", &[]));
    }

    #[test]
    fn rewrite_reply_shapes() {
        // Empty page, RESP3 nulls or binary keys inside the array: untouched.
        let keys = b"*3\r\n$0\r\n\r\n$3\r\n\r\n\x00\r\n$1\r\n*\r\n";
        let mut reply = b"*2\r\n$2\r\n12\r\n".to_vec();
        reply.extend_from_slice(keys);
        let got = rewrite_reply(&b(&reply), 3, 0, None).unwrap();
        let mut want = format!("*2\r\n$16\r\n{}\r\n", encode(3, 0, 12).unwrap()).into_bytes();
        assert_eq!(encode(3, 0, 12).unwrap().to_string().len(), 16);
        want.extend_from_slice(keys);
        assert_eq!(got, b(&want));

        // A page of many keys.
        let names: Vec<String> = (0..10_000).map(|i| format!("key:{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let got = rewrite_reply(&scan_reply("99", &refs), 16383, 0, None).unwrap();
        assert_eq!(
            got,
            scan_reply(&encode(16383, 0, 99).unwrap().to_string(), &refs)
        );
    }

    #[test]
    fn rewrite_reply_refuses_what_is_not_a_scan_reply() {
        for bad in [
            &b"-ERR invalid cursor\r\n"[..],
            b"!3\r\nERR\r\n",
            b"*-1\r\n",
            b"_\r\n",
            b"*1\r\n$1\r\n0\r\n",
            b"*3\r\n$1\r\n0\r\n*0\r\n*0\r\n",
            b"*2\r\n:0\r\n*0\r\n",
            b"*2\r\n+0\r\n*0\r\n",
            b"*2\r\n$1\r\nx\r\n*0\r\n",
            b"*2\r\n$2\r\n-1\r\n*0\r\n",
            b"*2\r\n$0\r\n\r\n*0\r\n",
            b"*2\r\n$1\r\n0\r\n$1\r\na\r\n",
            b"*2\r\n$1\r\n0\r\n~0\r\n",
            b"*2\r\n$1\r\n0\r\n*-1\r\n",
            b"*2\r\n$1\r\n0\r\n*1\r\n",
            b"*2\r\n$1\r\n0\r\n*0\r\nextra",
            b"%1\r\n$1\r\n0\r\n*0\r\n",
            b"",
        ] {
            assert_eq!(
                rewrite_reply(&b(bad), 0, 0, Some(1)),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Node cursor that does not fit, and a next shard that would read as "done".
        let huge = (NODE_CURSOR_LIMIT).to_string();
        assert_eq!(rewrite_reply(&scan_reply(&huge, &[]), 0, 0, None), None);
        assert_eq!(
            rewrite_reply(&scan_reply("18446744073709551616", &[]), 0, 0, None),
            None
        );
        assert_eq!(rewrite_reply(&scan_reply("0", &[]), 0, 0, Some(0)), None);
        assert_eq!(
            rewrite_reply(&scan_reply("0", &[]), 0, 0, Some(16384)),
            None
        );
        assert_eq!(rewrite_reply(&scan_reply("5", &[]), 16384, 0, None), None);
    }

    #[test]
    fn rewrite_request_replaces_only_the_cursor() {
        let args: &[&[u8]] = &[b"scan", b"1234567", b"MATCH", b"user:*", b"COUNT", b"100"];
        assert_eq!(
            rewrite_request(args, 42),
            b(b"*6\r\n$4\r\nscan\r\n$2\r\n42\r\n$5\r\nMATCH\r\n$6\r\nuser:*\r\n$5\r\nCOUNT\r\n$3\r\n100\r\n")
        );
        assert_eq!(
            rewrite_request(&[b"SCAN", b"0"], 0),
            b(b"*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n")
        );
        assert_eq!(
            rewrite_request(&[b"SCAN", b"0", b"TYPE", b"\r\n\x00"], u64::MAX),
            b(b"*4\r\n$4\r\nSCAN\r\n$20\r\n18446744073709551615\r\n$4\r\nTYPE\r\n$3\r\n\r\n\x00\r\n")
        );
        // Degenerate inputs still give a well-formed SCAN.
        assert_eq!(
            rewrite_request(&[b"SCAN"], 5),
            b(b"*2\r\n$4\r\nSCAN\r\n$1\r\n5\r\n")
        );
        assert_eq!(
            rewrite_request(&[], 5),
            b(b"*2\r\n$4\r\nSCAN\r\n$1\r\n5\r\n")
        );
    }

    #[test]
    fn a_full_scan_over_three_shards_visits_every_page() {
        // Simulates the session: shards by first slot, each node returning two pages.
        let shards = [0u16, 5461, 10923];
        let mut cursor = 0u64;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (slot, _, node_cursor) = decode(cursor);
            let index = shards.iter().position(|&s| s == slot).unwrap();
            let next = shards.get(index + 1).copied();
            let (node_next, key) = if node_cursor == 0 {
                ("9", "p1")
            } else {
                ("0", "p2")
            };
            let key = format!("{slot}:{key}");
            let reply = scan_reply(node_next, &[&key]);
            let client = rewrite_reply(&reply, slot, 0, next).unwrap();
            seen.push(key);
            let parts = elements(&client).unwrap();
            cursor = parse(bulk_payload(&parts[0]).unwrap()).unwrap();
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(
            seen,
            ["0:p1", "0:p2", "5461:p1", "5461:p2", "10923:p1", "10923:p2"]
        );
    }
}
