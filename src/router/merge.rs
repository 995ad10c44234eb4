//! Combining the sub-replies of a split or fanned-out request into the one reply its client
//! expects.
//!
//! ```text
//! client request -> router: split by slot (MGET, MSET, DEL, ...) or fan-out to every primary
//!   -> session: one sub-request per slot group / primary ("children", in a fixed order)
//!   -> backends: one complete reply per child, in the client's protocol version
//!   -> merge(policy, replies, proto) -> the single reply written to the client
//! ```
//!
//! Everything here is pure: bytes in, bytes out, no I/O and no state. Sub-replies arrive from
//! backend connections of the client's own protocol version, so an element taken from a child
//! (an MGET value, a KEYS name) is copied into the result as it is, never re-encoded.
//!
//! Rules shared by every policy:
//! - **Errors win.** If any child answered an error (`-` or RESP3 `!`), the client gets the
//!   first one in child order, unchanged: a fan-out that failed somewhere must not look like a
//!   success, and the node's own wording is the most useful thing to show. No policy
//!   overrides this (RANDOMKEY and FUNCTION LIST report an error too, even if another node
//!   could have answered, because a silent partial answer is worse than a retry).
//! - **No panics, no garbage.** A child reply of an unexpected type or shape (including a
//!   truncated or trailing-garbage frame) yields
//!   `-ERR slotgate: unexpected reply from a node while merging <what>`.
//! - **Zero children** gives the vacuous answer where one exists (`+OK`, `:0`, `*0`, null,
//!   an empty keyspace) and `-ERR slotgate: no node replied while merging <what>` where the
//!   reply's shape depends on a node (`AllEqual`, `First`, `AllOfIntegerArrays`, `SumPairs`).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use rustc_hash::FxHashSet;

use crate::resp::encode::{self, Protocol};
use crate::resp::walk::{ReplyKind, ReplyWalker};

/// How sub-replies combine into the client's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// MGET split by slot: `positions[i] = (child, index_in_child_array)` for the client's
    /// i-th key. Every element of every child must be used exactly once: a child answering
    /// more or fewer values than it was asked for is reported, not papered over.
    Mget { positions: Vec<(u16, u32)> },
    /// Every child must answer `+OK`; reply `+OK` (MSET, FLUSHALL, FLUSHDB, SCRIPT FLUSH,
    /// FUNCTION FLUSH/DELETE/RESTORE...).
    AllOk,
    /// Integers summed (DEL, UNLINK, EXISTS, TOUCH, DBSIZE, PUBSUB NUMPAT).
    SumIntegers,
    /// Arrays concatenated in child order (KEYS, PUBSUB CHANNELS, PUBSUB SHARDCHANNELS).
    /// A RESP3 set (`~`) child is accepted; the result is a set only if every child was one.
    ConcatArrays,
    /// PUBSUB CHANNELS/SHARDCHANNELS: concatenated, duplicates removed (channels are seen on
    /// every node for global pub/sub). The first occurrence keeps its place.
    UnionArrays,
    /// Every child's reply byte-identical -> that reply; otherwise an error saying the nodes
    /// disagree (SCRIPT LOAD, FUNCTION LOAD).
    AllEqual,
    /// SCRIPT EXISTS: element-wise AND of integer arrays (1 only if every primary has it).
    AllOfIntegerArrays,
    /// PUBSUB NUMSUB/SHARDNUMSUB: `[channel, count, ...]` as a flat array or a RESP3 map,
    /// counts summed per channel, in the first child's order and shape.
    ///
    /// Every child answered the same request, so pair `i` of every child is about the
    /// client's `i`-th channel: counts are summed by position (checking the names agree),
    /// which also keeps Redis's answer for a channel named twice (`NUMSUB a a` -> two pairs).
    SumPairs,
    /// RANDOMKEY: the first non-null reply in child order, else null.
    FirstNonNull,
    /// FUNCTION LIST / FUNCTION DUMP: the first child's reply (functions are loaded on every
    /// primary).
    First,
    /// INFO keyspace: the `# Keyspace` section of every child combined. Per `dbN:` line,
    /// every `name=integer` field is summed (`keys`, `expires`, and later additions such as
    /// Redis 7.4's `subexpiry`) except `avg_ttl`, which is the mean of the nodes' `avg_ttl`
    /// weighted by their `expires`, over the nodes that report a non-zero `avg_ttl` (Redis
    /// prints 0 until it has sampled, and a 0 would drag the mean down). That is the number
    /// a single server holding every key would estimate; a max would overstate it. Fields
    /// keep the order they first appear in; databases are listed in ascending order. Other
    /// sections in a child's text are ignored.
    InfoKeyspace,
    /// `INFO` with a keyspace section: slotgate's own sections (`local`, already text),
    /// then the keyspace summed over every primary.
    InfoWithKeyspace { local: Bytes },
}

impl Merge {
    /// What is being merged, for error messages.
    fn what(&self) -> &'static str {
        match self {
            Merge::Mget { .. } => "MGET",
            Merge::AllOk => "OK replies",
            Merge::SumIntegers => "integer replies",
            Merge::ConcatArrays => "array replies",
            Merge::UnionArrays => "array replies",
            Merge::AllEqual => "identical replies",
            Merge::AllOfIntegerArrays => "SCRIPT EXISTS",
            Merge::SumPairs => "PUBSUB NUMSUB",
            Merge::FirstNonNull => "RANDOMKEY",
            Merge::First => "the first reply",
            Merge::InfoKeyspace => "INFO keyspace",
            Merge::InfoWithKeyspace { .. } => "INFO keyspace",
        }
    }
}

/// Why a merge could not produce a real reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A child reply had the wrong type or shape.
    Unexpected,
    /// `AllEqual`: the children answered differently.
    Disagree,
    /// No children, and the reply's shape depends on one.
    NoReply,
}

type Merged = Result<Bytes, Failure>;

/// Combines `replies` (one complete RESP reply per child, in child order, RESP2 or RESP3 per
/// `proto`) into the client's reply.
///
/// Error rule: if any child reply is an error (`-` or `!`), the result is the first such
/// error, unchanged; no policy makes an exception. Never panics on malformed input: a child
/// reply of an unexpected type yields
/// `-ERR slotgate: unexpected reply from a node while merging <what>`.
pub fn merge(policy: &Merge, replies: &[Bytes], proto: Protocol) -> Bytes {
    if let Some(error) = replies.iter().find(|r| is_error(r)) {
        // Backend frames are walked before they get here, but a broken error must still not
        // reach the client as if it were one.
        return match single(error) {
            Some(ReplyKind::Error | ReplyKind::BlobError) => error.clone(),
            _ => failure_reply(policy, Failure::Unexpected),
        };
    }
    let merged = match policy {
        Merge::Mget { positions } => mget(positions, replies),
        Merge::AllOk => all_ok(replies),
        Merge::SumIntegers => sum_integers(replies),
        Merge::ConcatArrays => concat(replies, false),
        Merge::UnionArrays => concat(replies, true),
        Merge::AllEqual => all_equal(replies),
        Merge::AllOfIntegerArrays => all_of_integer_arrays(replies),
        Merge::SumPairs => sum_pairs(replies),
        Merge::FirstNonNull => first_non_null(replies, proto),
        Merge::First => first(replies),
        Merge::InfoKeyspace => info_keyspace(replies, proto),
        Merge::InfoWithKeyspace { local } => match keyspace_section(replies) {
            Some(keyspace) => {
                let mut text = local.to_vec();
                text.extend_from_slice(&keyspace);
                let mut out = BytesMut::new();
                encode::text(&mut out, trim_end(&text), proto);
                Ok(out.freeze())
            }
            None => Err(Failure::Unexpected),
        },
    };
    merged.unwrap_or_else(|failure| failure_reply(policy, failure))
}

fn failure_reply(policy: &Merge, failure: Failure) -> Bytes {
    let what = policy.what();
    let message = match failure {
        Failure::Unexpected => {
            format!("ERR slotgate: unexpected reply from a node while merging {what}")
        }
        Failure::Disagree => format!(
            "ERR slotgate: the primaries answered differently while merging {what}; \
             the command may have applied on some nodes only, check each node"
        ),
        Failure::NoReply => format!("ERR slotgate: no node replied while merging {what}"),
    };
    let mut out = BytesMut::with_capacity(message.len() + 3);
    encode::error(&mut out, &message);
    out.freeze()
}

/// Splits a complete array/set/push reply (`*`, `~`, `>` in RESP3) into its elements' raw
/// bytes (zero-copy `Bytes::slice`), or None if `reply` is not an aggregate of that kind.
/// Maps (`%`) yield 2n elements (key, value, key, value, ...). A leading RESP3 attribute
/// (`|`) is skipped; nulls (`*-1`, `_`) are not aggregates; bytes after the aggregate make
/// the reply invalid (None).
pub fn elements(reply: &Bytes) -> Option<Vec<Bytes>> {
    aggregate(reply).map(|(_, items)| items)
}

/// Parses an integer reply (`:n`), else None. The reply must be exactly one integer frame.
pub fn integer(reply: &[u8]) -> Option<i64> {
    let digits = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    parse_i64(digits)
}

/// A decimal `i64` as Redis prints it: optional `-`, then digits only.
fn parse_i64(text: &[u8]) -> Option<i64> {
    let unsigned = text.strip_prefix(b"-").unwrap_or(text);
    if unsigned.is_empty() || unsigned.len() > 19 || !unsigned.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Validated ASCII; `parse` then only has overflow left to refuse.
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn is_error(reply: &[u8]) -> bool {
    matches!(reply.first(), Some(b'-' | b'!'))
}

/// The kind of `reply` if it is exactly one complete, well-formed value.
fn single(reply: &[u8]) -> Option<ReplyKind> {
    match ReplyWalker::default().walk(reply) {
        Ok(Some(walked)) if walked.len == reply.len() => Some(walked.kind),
        _ => None,
    }
}

/// Reads the header line at `pos`: its type byte, its content and where the next line starts.
fn header(reply: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let rest = reply.get(pos..)?;
    let cr = rest.iter().position(|&b| b == b'\r')?;
    if rest.get(cr + 1) != Some(&b'\n') || cr == 0 {
        return None;
    }
    Some((rest[0], &rest[1..cr], pos + cr + 2))
}

/// A non-negative count as written in an aggregate header.
fn parse_count(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The element-level type byte (`*`, `~`, `>` or `%`) and elements of an aggregate reply.
fn aggregate(reply: &Bytes) -> Option<(u8, Vec<Bytes>)> {
    let mut walker = ReplyWalker::default();
    let mut pos = 0;
    // Attributes carry metadata about the value that follows; none is merged, so they are
    // stepped over. Each loop round consumes at least a header, so this terminates.
    let (tag, count) = loop {
        let (tag, text, next) = header(reply, pos)?;
        let count = parse_count(text)?;
        pos = next;
        match tag {
            b'|' => pos = skip(&mut walker, reply, pos, count.checked_mul(2)?)?,
            b'*' | b'~' | b'>' => break (tag, count),
            b'%' => break (tag, count.checked_mul(2)?),
            _ => return None,
        }
    };
    // Every element takes at least 3 bytes (`_\r\n`), so a lying count can't make this
    // reserve more than the reply's own size.
    let room = reply.len().saturating_sub(pos) / 3;
    let mut items = Vec::with_capacity(usize::try_from(count).ok()?.min(room));
    for _ in 0..count {
        let len = element_len(&mut walker, reply, pos)?;
        items.push(reply.slice(pos..pos + len));
        pos += len;
    }
    (pos == reply.len()).then_some((tag, items))
}

/// Length of the complete value starting at `pos`.
fn element_len(walker: &mut ReplyWalker, reply: &[u8], pos: usize) -> Option<usize> {
    match walker.walk(reply.get(pos..)?) {
        Ok(Some(walked)) => Some(walked.len),
        // Incomplete or malformed: the walker must forget the partial state.
        _ => {
            walker.reset();
            None
        }
    }
}

/// Steps over `count` values from `pos`; returns the position after them.
fn skip(walker: &mut ReplyWalker, reply: &[u8], mut pos: usize, count: u64) -> Option<usize> {
    for _ in 0..count {
        pos += element_len(walker, reply, pos)?;
    }
    Some(pos)
}

/// Appends an aggregate header with `tag` and `count`.
fn aggregate_header(out: &mut BytesMut, tag: u8, count: usize) {
    let mut digits = itoa::Buffer::new();
    out.put_u8(tag);
    out.put_slice(digits.format(count).as_bytes());
    out.put_slice(b"\r\n");
}

fn mget(positions: &[(u16, u32)], replies: &[Bytes]) -> Merged {
    let mut children = Vec::with_capacity(replies.len());
    for reply in replies {
        match aggregate(reply) {
            Some((b'*', items)) => children.push(items),
            _ => return Err(Failure::Unexpected),
        }
    }
    // Each child must have exactly as many values as keys it was sent; a mismatch means the
    // reply does not belong to this request.
    let mut used: Vec<usize> = vec![0; children.len()];
    let mut size = 16;
    for &(child, index) in positions {
        let item = children
            .get(usize::from(child))
            .and_then(|items| items.get(usize::try_from(index).ok()?))
            .ok_or(Failure::Unexpected)?;
        used[usize::from(child)] += 1;
        size += item.len();
    }
    if used
        .iter()
        .zip(&children)
        .any(|(&n, items)| n != items.len())
    {
        return Err(Failure::Unexpected);
    }
    let mut out = BytesMut::with_capacity(size);
    aggregate_header(&mut out, b'*', positions.len());
    for &(child, index) in positions {
        // Checked above: both lookups succeed.
        if let Some(item) = children
            .get(usize::from(child))
            .and_then(|items| items.get(usize::try_from(index).ok()?))
        {
            out.put_slice(item);
        }
    }
    Ok(out.freeze())
}

fn all_ok(replies: &[Bytes]) -> Merged {
    if replies.iter().all(|r| r.as_ref() == b"+OK\r\n") {
        Ok(Bytes::from_static(b"+OK\r\n"))
    } else {
        Err(Failure::Unexpected)
    }
}

fn sum_integers(replies: &[Bytes]) -> Merged {
    let mut sum: i64 = 0;
    for reply in replies {
        let n = integer(reply).ok_or(Failure::Unexpected)?;
        // Only a broken node could overflow an i64 of key counts.
        sum = sum.checked_add(n).ok_or(Failure::Unexpected)?;
    }
    let mut out = BytesMut::with_capacity(24);
    encode::integer(&mut out, sum);
    Ok(out.freeze())
}

fn concat(replies: &[Bytes], dedup: bool) -> Merged {
    let mut parts = Vec::with_capacity(replies.len());
    let mut all_sets = !replies.is_empty();
    for reply in replies {
        match aggregate(reply) {
            Some((tag @ (b'*' | b'~'), items)) => {
                all_sets &= tag == b'~';
                parts.push(items);
            }
            _ => return Err(Failure::Unexpected),
        }
    }
    let mut seen: FxHashSet<&[u8]> = FxHashSet::default();
    let mut kept: Vec<&Bytes> = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for item in parts.iter().flatten() {
        // Children share one protocol, so equal channels are byte-equal frames.
        if !dedup || seen.insert(item.as_ref()) {
            kept.push(item);
        }
    }
    let mut out = BytesMut::with_capacity(16 + kept.iter().map(|i| i.len()).sum::<usize>());
    aggregate_header(&mut out, if all_sets { b'~' } else { b'*' }, kept.len());
    for item in kept {
        out.put_slice(item);
    }
    Ok(out.freeze())
}

fn all_equal(replies: &[Bytes]) -> Merged {
    let first = replies.first().ok_or(Failure::NoReply)?;
    if single(first).is_none() {
        return Err(Failure::Unexpected);
    }
    if replies.iter().all(|r| r == first) {
        Ok(first.clone())
    } else {
        Err(Failure::Disagree)
    }
}

fn all_of_integer_arrays(replies: &[Bytes]) -> Merged {
    let mut all: Option<Vec<bool>> = None;
    for reply in replies {
        let Some((b'*', items)) = aggregate(reply) else {
            return Err(Failure::Unexpected);
        };
        let flags = items
            .iter()
            .map(|item| integer(item).map(|n| n != 0))
            .collect::<Option<Vec<bool>>>()
            .ok_or(Failure::Unexpected)?;
        match &mut all {
            None => all = Some(flags),
            Some(acc) if acc.len() == flags.len() => {
                acc.iter_mut().zip(flags).for_each(|(a, f)| *a &= f);
            }
            Some(_) => return Err(Failure::Unexpected),
        }
    }
    let all = all.ok_or(Failure::NoReply)?;
    let mut out = BytesMut::with_capacity(16 + 4 * all.len());
    aggregate_header(&mut out, b'*', all.len());
    for present in all {
        out.put_slice(if present { b":1\r\n" } else { b":0\r\n" });
    }
    Ok(out.freeze())
}

fn sum_pairs(replies: &[Bytes]) -> Merged {
    let first = replies.first().ok_or(Failure::NoReply)?;
    let (tag, names) = match aggregate(first) {
        Some((tag @ (b'*' | b'%'), items)) if items.len() % 2 == 0 => (tag, items),
        _ => return Err(Failure::Unexpected),
    };
    let mut counts = vec![0i64; names.len() / 2];
    for reply in replies {
        let items = match aggregate(reply) {
            Some((b'*' | b'%', items)) if items.len() == names.len() => items,
            _ => return Err(Failure::Unexpected),
        };
        for (i, pair) in items.chunks_exact(2).enumerate() {
            if pair[0] != names[2 * i] {
                return Err(Failure::Unexpected);
            }
            let n = integer(&pair[1]).ok_or(Failure::Unexpected)?;
            counts[i] = counts[i].checked_add(n).ok_or(Failure::Unexpected)?;
        }
    }
    let mut out = BytesMut::with_capacity(first.len() + 16);
    let header_count = if tag == b'%' {
        counts.len()
    } else {
        names.len()
    };
    aggregate_header(&mut out, tag, header_count);
    for (i, count) in counts.into_iter().enumerate() {
        out.put_slice(&names[2 * i]);
        encode::integer(&mut out, count);
    }
    Ok(out.freeze())
}

fn first_non_null(replies: &[Bytes], proto: Protocol) -> Merged {
    for reply in replies {
        match single(reply) {
            None => return Err(Failure::Unexpected),
            Some(ReplyKind::Null) => {}
            Some(_) => return Ok(reply.clone()),
        }
    }
    let mut out = BytesMut::with_capacity(5);
    encode::null(&mut out, proto);
    Ok(out.freeze())
}

fn first(replies: &[Bytes]) -> Merged {
    let first = replies.first().ok_or(Failure::NoReply)?;
    match single(first) {
        Some(_) => Ok(first.clone()),
        None => Err(Failure::Unexpected),
    }
}

/// The text of a bulk or verbatim string reply (a verbatim string's `xxx:` format prefix
/// removed).
fn text_payload(reply: &[u8]) -> Option<&[u8]> {
    let kind = single(reply)?;
    let (_, _, start) = header(reply, 0)?;
    let body = reply.get(start..reply.len().checked_sub(2)?)?;
    match kind {
        ReplyKind::Bulk => Some(body),
        ReplyKind::Verbatim => body.get(4..),
        _ => None,
    }
}

/// One database's fields, summed across nodes.
#[derive(Default)]
struct DbStats {
    /// (name, sum) in first-seen order; `avg_ttl`'s slot holds 0 until the end.
    fields: Vec<(Vec<u8>, i128)>,
    /// Sum of `avg_ttl * expires` over nodes reporting a non-zero `avg_ttl`.
    ttl_weighted: i128,
    /// Sum of `expires` over the same nodes.
    ttl_weight: i128,
    /// Plain sum of the non-zero `avg_ttl`s: the fallback when none of those nodes reports
    /// `expires`, and their count.
    ttl_plain: (i128, i128),
}

impl DbStats {
    fn add(&mut self, name: &[u8], value: i64) {
        let value = i128::from(value);
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, sum)) => *sum += value,
            None => self.fields.push((name.to_vec(), value)),
        }
    }

    fn avg_ttl(&self) -> i128 {
        if self.ttl_weight > 0 {
            self.ttl_weighted / self.ttl_weight
        } else if self.ttl_plain.1 > 0 {
            self.ttl_plain.0 / self.ttl_plain.1
        } else {
            0
        }
    }
}

/// One `dbN:` line: the database number and its `name=value` fields.
type KeyspaceLine<'a> = (u32, Vec<(&'a [u8], i64)>);

/// Parses `dbN:name=v,name=v`; None for lines of other shapes (section headers, other
/// sections), an error for a `dbN:` line whose fields are not `name=integer`.
fn keyspace_line(line: &[u8]) -> Option<Result<KeyspaceLine<'_>, Failure>> {
    let rest = line.strip_prefix(b"db")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let (db, fields) = (&rest[..colon], &rest[colon + 1..]);
    if db.is_empty() || db.len() > 9 || !db.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let db: u32 = std::str::from_utf8(db).ok()?.parse().ok()?;
    let parsed = fields
        .split(|&b| b == b',')
        .map(|field| {
            let eq = field.iter().position(|&b| b == b'=')?;
            let (name, value) = (&field[..eq], &field[eq + 1..]);
            if name.is_empty() {
                return None;
            }
            Some((name, parse_i64(value)?))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(Failure::Unexpected);
    Some(parsed.map(|fields| (db, fields)))
}

fn info_keyspace(replies: &[Bytes], proto: Protocol) -> Merged {
    let text = keyspace_text(replies)?;
    let mut out = BytesMut::with_capacity(text.len() + 24);
    encode::text(&mut out, &text, proto);
    Ok(out.freeze())
}

/// The combined `# Keyspace` section (as [`Merge::InfoKeyspace`] computes it) as plain text,
/// for an `INFO` reply that mixes slotgate's own sections with the cluster's keyspace. None
/// if a child answered an error or something that is not INFO text.
pub fn keyspace_section(replies: &[Bytes]) -> Option<Vec<u8>> {
    if replies.iter().any(|r| is_error(r)) {
        return None;
    }
    keyspace_text(replies).ok()
}

fn keyspace_text(replies: &[Bytes]) -> Result<Vec<u8>, Failure> {
    let mut dbs: BTreeMap<u32, DbStats> = BTreeMap::new();
    for reply in replies {
        let text = text_payload(reply).ok_or(Failure::Unexpected)?;
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(parsed) = keyspace_line(line) else {
                continue;
            };
            let (db, fields) = parsed?;
            let stats = dbs.entry(db).or_default();
            let expires = fields
                .iter()
                .find(|(name, _)| *name == b"expires")
                .map_or(0, |&(_, v)| i128::from(v));
            for &(name, value) in &fields {
                if name == b"avg_ttl" {
                    stats.add(name, 0);
                    if value != 0 {
                        stats.ttl_weighted += i128::from(value) * expires;
                        stats.ttl_weight += expires;
                        stats.ttl_plain.0 += i128::from(value);
                        stats.ttl_plain.1 += 1;
                    }
                } else {
                    stats.add(name, value);
                }
            }
        }
    }
    let mut text = Vec::with_capacity(16 + 48 * dbs.len());
    text.extend_from_slice(b"# Keyspace\r\n");
    let mut digits = itoa::Buffer::new();
    for (db, stats) in &dbs {
        text.extend_from_slice(b"db");
        text.extend_from_slice(digits.format(*db).as_bytes());
        text.push(b':');
        for (i, (name, sum)) in stats.fields.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            let value = if name == b"avg_ttl" {
                stats.avg_ttl()
            } else {
                *sum
            };
            text.extend_from_slice(name);
            text.push(b'=');
            text.extend_from_slice(digits.format(value).as_bytes());
        }
        text.extend_from_slice(b"\r\n");
    }
    Ok(text)
}

/// `text` without trailing CR/LF, as Redis ends an INFO reply.
fn trim_end(text: &[u8]) -> &[u8] {
    let end = text
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const R2: Protocol = Protocol::Resp2;
    const R3: Protocol = Protocol::Resp3;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    fn run(policy: &Merge, replies: &[&[u8]], proto: Protocol) -> Bytes {
        let replies: Vec<Bytes> = replies.iter().map(|r| b(r)).collect();
        merge(policy, &replies, proto)
    }

    fn unexpected(what: &str) -> Vec<u8> {
        format!("-ERR slotgate: unexpected reply from a node while merging {what}\r\n").into_bytes()
    }

    fn bulk(s: &str) -> Vec<u8> {
        format!("${}\r\n{s}\r\n", s.len()).into_bytes()
    }

    fn array(items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", items.len()).into_bytes();
        items.iter().for_each(|i| out.extend_from_slice(i));
        out
    }

    /// Every policy, for the generic rules.
    fn all_policies() -> Vec<Merge> {
        vec![
            Merge::Mget {
                positions: vec![(0, 0)],
            },
            Merge::AllOk,
            Merge::SumIntegers,
            Merge::ConcatArrays,
            Merge::UnionArrays,
            Merge::AllEqual,
            Merge::AllOfIntegerArrays,
            Merge::SumPairs,
            Merge::FirstNonNull,
            Merge::First,
            Merge::InfoKeyspace,
        ]
    }

    // ---- helpers -------------------------------------------------------------------------

    #[test]
    fn integer_parses_exact_integer_frames_only() {
        assert_eq!(integer(b":0\r\n"), Some(0));
        assert_eq!(integer(b":-42\r\n"), Some(-42));
        assert_eq!(integer(b":9223372036854775807\r\n"), Some(i64::MAX));
        assert_eq!(integer(b":-9223372036854775808\r\n"), Some(i64::MIN));
        for bad in [
            &b":9223372036854775808\r\n"[..],
            b":\r\n",
            b":-\r\n",
            b":+1\r\n",
            b": 1\r\n",
            b":1\r\n:2\r\n",
            b":1",
            b":1\n",
            b"$1\r\n1\r\n",
            b"",
            b":1x\r\n",
        ] {
            assert_eq!(integer(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn elements_split_every_aggregate_kind_zero_copy() {
        let reply = b(b"*3\r\n$1\r\na\r\n_\r\n*2\r\n:1\r\n$-1\r\n");
        let items = elements(&reply).unwrap();
        assert_eq!(
            items,
            vec![b(b"$1\r\na\r\n"), b(b"_\r\n"), b(b"*2\r\n:1\r\n$-1\r\n")]
        );
        // Zero-copy: the elements point into the reply's buffer.
        let base = reply.as_ptr() as usize;
        assert_eq!(items[0].as_ptr() as usize, base + 4);
        assert_eq!(items[1].as_ptr() as usize, base + 11);

        assert_eq!(
            elements(&b(b"~2\r\n+a\r\n+b\r\n")).unwrap(),
            vec![b(b"+a\r\n"), b(b"+b\r\n")]
        );
        assert_eq!(
            elements(&b(b">2\r\n+message\r\n:1\r\n")).unwrap(),
            vec![b(b"+message\r\n"), b(b":1\r\n")]
        );
        // Maps give key, value, key, value.
        assert_eq!(
            elements(&b(b"%2\r\n+a\r\n:1\r\n+b\r\n%1\r\n+c\r\n:2\r\n")).unwrap(),
            vec![
                b(b"+a\r\n"),
                b(b":1\r\n"),
                b(b"+b\r\n"),
                b(b"%1\r\n+c\r\n:2\r\n")
            ]
        );
        assert_eq!(elements(&b(b"*0\r\n")).unwrap(), Vec::<Bytes>::new());
        assert_eq!(elements(&b(b"%0\r\n")).unwrap(), Vec::<Bytes>::new());
        // A leading attribute is stepped over.
        assert_eq!(
            elements(&b(b"|1\r\n+ttl\r\n:3\r\n*1\r\n:7\r\n")).unwrap(),
            vec![b(b":7\r\n")]
        );
        // Attributes inside elements stay part of the element.
        assert_eq!(
            elements(&b(b"*1\r\n|1\r\n+a\r\n+b\r\n:7\r\n")).unwrap(),
            vec![b(b"|1\r\n+a\r\n+b\r\n:7\r\n")]
        );
    }

    #[test]
    fn elements_refuse_non_aggregates_and_broken_frames() {
        for bad in [
            &b"*-1\r\n"[..],
            b"_\r\n",
            b"$-1\r\n",
            b"+OK\r\n",
            b":1\r\n",
            b"$3\r\nabc\r\n",
            b"-ERR x\r\n",
            b"",
            b"*",
            b"*\r\n",
            b"*1\r\n",
            b"*1\r",
            b"*2\r\n:1\r\n",
            b"*1\r\n:1\r\n:2\r\n",
            b"*1\r\n?\r\n",
            b"*1\r\n$5\r\nab\r\n",
            b"*x\r\n",
            b"*+1\r\n",
            b"*99999999999999999999\r\n",
            b"*9999999999999999\r\n:1\r\n",
            b"%1\r\n+a\r\n",
            b"|1\r\n+a\r\n",
            b"|1\r\n+a\r\n:1\r\n+OK\r\n",
            b"*1\n:1\r\n",
        ] {
            assert_eq!(
                elements(&b(bad)),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn elements_handle_a_big_array() {
        let items: Vec<Vec<u8>> = (0..100_000).map(|i| bulk(&format!("key:{i}"))).collect();
        let reply = b(&array(&items));
        let split = elements(&reply).unwrap();
        assert_eq!(split.len(), 100_000);
        assert_eq!(split[99_999], b(&bulk("key:99999")));
    }

    // ---- generic rules -------------------------------------------------------------------

    #[test]
    fn the_first_error_wins_for_every_policy() {
        for policy in all_policies() {
            for proto in [R2, R3] {
                let got = run(
                    &policy,
                    &[
                        b"+OK\r\n",
                        b"-MOVED 1 x:1\r\n",
                        b"!5\r\nERR x\r\n",
                        b"-ERR b\r\n",
                    ],
                    proto,
                );
                assert_eq!(got, b(b"-MOVED 1 x:1\r\n"), "{policy:?}");
                let got = run(&policy, &[b"!5\r\nERR x\r\n", b"-ERR b\r\n"], proto);
                assert_eq!(got, b(b"!5\r\nERR x\r\n"), "{policy:?}");
            }
        }
    }

    #[test]
    fn garbage_never_panics_and_is_reported() {
        let garbage: &[&[u8]] = &[
            b"",
            b"*",
            b"\r\n",
            b"*1\r\n",
            b"$5\r\nab\r\n",
            b"=3\r\ntx\r\n",
            b"*-5\r\n",
            b"%1\r\n:1\r\n",
            b"\x00\xff",
            b"*2\r\n$1\r\n0\r\n",
            b"+OK\r\n+OK\r\n",
        ];
        for policy in all_policies() {
            for proto in [R2, R3] {
                for g in garbage {
                    let got = merge(&policy, &[b(g), b(g)], proto);
                    assert!(
                        got.starts_with(b"-ERR slotgate: unexpected reply"),
                        "{policy:?} {:?} -> {:?}",
                        String::from_utf8_lossy(g),
                        String::from_utf8_lossy(&got)
                    );
                }
            }
        }
    }

    #[test]
    fn no_children() {
        let cases: &[(Merge, &[u8], &[u8])] = &[
            (Merge::Mget { positions: vec![] }, b"*0\r\n", b"*0\r\n"),
            (Merge::AllOk, b"+OK\r\n", b"+OK\r\n"),
            (Merge::SumIntegers, b":0\r\n", b":0\r\n"),
            (Merge::ConcatArrays, b"*0\r\n", b"*0\r\n"),
            (Merge::UnionArrays, b"*0\r\n", b"*0\r\n"),
            (Merge::FirstNonNull, b"$-1\r\n", b"_\r\n"),
            (
                Merge::InfoKeyspace,
                b"$12\r\n# Keyspace\r\n\r\n",
                b"=16\r\ntxt:# Keyspace\r\n\r\n",
            ),
        ];
        for (policy, r2, r3) in cases {
            assert_eq!(merge(policy, &[], R2), b(r2), "{policy:?}");
            assert_eq!(merge(policy, &[], R3), b(r3), "{policy:?}");
        }
        for (policy, what) in [
            (Merge::AllEqual, "identical replies"),
            (Merge::First, "the first reply"),
            (Merge::AllOfIntegerArrays, "SCRIPT EXISTS"),
            (Merge::SumPairs, "PUBSUB NUMSUB"),
        ] {
            assert_eq!(
                merge(&policy, &[], R3),
                b(format!("-ERR slotgate: no node replied while merging {what}\r\n").as_bytes())
            );
        }
        // MGET positions pointing at children that did not reply.
        assert_eq!(
            merge(
                &Merge::Mget {
                    positions: vec![(0, 0)]
                },
                &[],
                R2
            ),
            b(&unexpected("MGET"))
        );
    }

    // ---- MGET ----------------------------------------------------------------------------

    #[test]
    fn mget_restores_the_clients_key_order_across_three_children() {
        // Client: MGET k0 k1 k2 k3 k4 k5; slot groups: child0 {k0,k3}, child1 {k5,k1}, child2 {k2,k4}.
        let positions = vec![(0, 0), (1, 1), (2, 0), (0, 1), (2, 1), (1, 0)];
        let policy = Merge::Mget { positions };
        let c0 = array(&[bulk("v0"), bulk("v3")]);
        let c1 = array(&[bulk("v5"), b"$-1\r\n".to_vec()]);
        let c2 = array(&[bulk("v2"), bulk("v4")]);
        let got = run(&policy, &[&c0, &c1, &c2], R2);
        let want = array(&[
            bulk("v0"),
            b"$-1\r\n".to_vec(),
            bulk("v2"),
            bulk("v3"),
            bulk("v4"),
            bulk("v5"),
        ]);
        assert_eq!(got, b(&want));
        // RESP3 nulls travel as they are.
        let c1 = array(&[bulk("v5"), b"_\r\n".to_vec()]);
        let got = run(&policy, &[&c0, &c1, &c2], R3);
        let want = array(&[
            bulk("v0"),
            b"_\r\n".to_vec(),
            bulk("v2"),
            bulk("v3"),
            bulk("v4"),
            bulk("v5"),
        ]);
        assert_eq!(got, b(&want));
    }

    #[test]
    fn mget_duplicate_keys_and_binary_values() {
        // MGET a a: each occurrence is its own position in the child's request.
        let policy = Merge::Mget {
            positions: vec![(0, 0), (0, 1)],
        };
        let c0 = b"*2\r\n$4\r\n\r\n\x00x\r\n$4\r\n\r\n\x00x\r\n";
        assert_eq!(run(&policy, &[c0], R2), b(c0));
    }

    #[test]
    fn mget_refuses_children_that_do_not_match_the_request() {
        let policy = Merge::Mget {
            positions: vec![(0, 0), (1, 0)],
        };
        let one = array(&[bulk("x")]);
        let two = array(&[bulk("x"), bulk("y")]);
        let cases: Vec<Vec<&[u8]>> = vec![
            // An extra value: a reply to some other request.
            vec![&one, &two],
            // A missing value.
            vec![&one, b"*0\r\n"],
            // A missing child.
            vec![&one],
            // Not arrays.
            vec![&one, b"$1\r\nx\r\n"],
            vec![&one, b"*-1\r\n"],
            vec![&one, b"_\r\n"],
            vec![&one, b"~1\r\n$1\r\nx\r\n"],
            vec![&one, b"%1\r\n$1\r\nx\r\n:1\r\n"],
            vec![&one, b":1\r\n"],
        ];
        for replies in cases {
            assert_eq!(run(&policy, &replies, R3), b(&unexpected("MGET")));
        }
        let far = Merge::Mget {
            positions: vec![(0, u32::MAX), (u16::MAX, 0)],
        };
        assert_eq!(run(&far, &[&one], R2), b(&unexpected("MGET")));
    }

    #[test]
    fn mget_big_split() {
        // 30k keys over 3 children, round-robin.
        let n = 30_000u32;
        let positions: Vec<(u16, u32)> = (0..n).map(|i| ((i % 3) as u16, i / 3)).collect();
        let children: Vec<Vec<u8>> = (0..3)
            .map(|c| {
                array(
                    &(0..n / 3)
                        .map(|j| bulk(&format!("value-{}", j * 3 + c)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let refs: Vec<&[u8]> = children.iter().map(Vec::as_slice).collect();
        let got = run(&Merge::Mget { positions }, &refs, R2);
        let want = array(
            &(0..n)
                .map(|i| bulk(&format!("value-{i}")))
                .collect::<Vec<_>>(),
        );
        assert_eq!(got, b(&want));
    }

    // ---- AllOk / SumIntegers -------------------------------------------------------------

    #[test]
    fn all_ok() {
        for proto in [R2, R3] {
            assert_eq!(
                run(&Merge::AllOk, &[b"+OK\r\n", b"+OK\r\n"], proto),
                b(b"+OK\r\n")
            );
            for other in [&b"+QUEUED\r\n"[..], b":1\r\n", b"$2\r\nOK\r\n", b"+ok\r\n"] {
                assert_eq!(
                    run(&Merge::AllOk, &[b"+OK\r\n", other], proto),
                    b(&unexpected("OK replies"))
                );
            }
        }
    }

    #[test]
    fn sum_integers() {
        for proto in [R2, R3] {
            assert_eq!(
                run(
                    &Merge::SumIntegers,
                    &[b":1\r\n", b":0\r\n", b":41\r\n"],
                    proto
                ),
                b(b":42\r\n")
            );
            assert_eq!(
                run(&Merge::SumIntegers, &[b":-3\r\n", b":1\r\n"], proto),
                b(b":-2\r\n")
            );
        }
        let overflow = run(
            &Merge::SumIntegers,
            &[b":9223372036854775807\r\n", b":1\r\n"],
            R2,
        );
        assert_eq!(overflow, b(&unexpected("integer replies")));
        for bad in [&b"$1\r\n1\r\n"[..], b"_\r\n", b",1.5\r\n", b"*1\r\n:1\r\n"] {
            assert_eq!(
                run(&Merge::SumIntegers, &[b":1\r\n", bad], R3),
                b(&unexpected("integer replies"))
            );
        }
    }

    // ---- arrays ---------------------------------------------------------------------------

    #[test]
    fn concat_arrays() {
        let c0 = array(&[bulk("a"), bulk("b")]);
        let c1 = array(&[]);
        let c2 = array(&[bulk("b"), bulk("c")]);
        for proto in [R2, R3] {
            assert_eq!(
                run(&Merge::ConcatArrays, &[&c0, &c1, &c2], proto),
                b(&array(&[bulk("a"), bulk("b"), bulk("b"), bulk("c")]))
            );
        }
        // RESP3 sets stay sets only if every child sent one.
        assert_eq!(
            run(
                &Merge::ConcatArrays,
                &[b"~1\r\n+a\r\n", b"~1\r\n+b\r\n"],
                R3
            ),
            b(b"~2\r\n+a\r\n+b\r\n")
        );
        assert_eq!(
            run(
                &Merge::ConcatArrays,
                &[b"~1\r\n+a\r\n", b"*1\r\n+b\r\n"],
                R3
            ),
            b(b"*2\r\n+a\r\n+b\r\n")
        );
        for bad in [&b"*-1\r\n"[..], b"_\r\n", b"%0\r\n", b">0\r\n", b"$-1\r\n"] {
            assert_eq!(
                run(&Merge::ConcatArrays, &[&c0, bad], R3),
                b(&unexpected("array replies"))
            );
        }
    }

    #[test]
    fn union_arrays_removes_duplicates_in_first_seen_order() {
        let c0 = array(&[bulk("news"), bulk("chat")]);
        let c1 = array(&[bulk("chat"), bulk("news"), bulk("sport")]);
        let c2 = array(&[bulk("sport"), bulk("weather"), bulk("weather")]);
        for proto in [R2, R3] {
            assert_eq!(
                run(&Merge::UnionArrays, &[&c0, &c1, &c2], proto),
                b(&array(&[
                    bulk("news"),
                    bulk("chat"),
                    bulk("sport"),
                    bulk("weather")
                ]))
            );
        }
        assert_eq!(
            run(
                &Merge::UnionArrays,
                &[b"~2\r\n+a\r\n+b\r\n", b"~2\r\n+b\r\n+c\r\n"],
                R3
            ),
            b(b"~3\r\n+a\r\n+b\r\n+c\r\n")
        );
        assert_eq!(
            run(&Merge::UnionArrays, &[&c0, b"+OK\r\n"], R2),
            b(&unexpected("array replies"))
        );
    }

    #[test]
    fn big_concat() {
        let children: Vec<Vec<u8>> = (0..4)
            .map(|c| {
                array(
                    &(0..25_000)
                        .map(|j| bulk(&format!("k{}", c * 25_000 + j)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let refs: Vec<&[u8]> = children.iter().map(Vec::as_slice).collect();
        let want = array(
            &(0..100_000)
                .map(|i| bulk(&format!("k{i}")))
                .collect::<Vec<_>>(),
        );
        assert_eq!(run(&Merge::ConcatArrays, &refs, R2), b(&want));
        assert_eq!(run(&Merge::UnionArrays, &refs, R2), b(&want));
    }

    // ---- AllEqual / First ----------------------------------------------------------------

    #[test]
    fn all_equal() {
        let sha = bulk("e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        for proto in [R2, R3] {
            assert_eq!(run(&Merge::AllEqual, &[&sha, &sha, &sha], proto), b(&sha));
        }
        let other = bulk("0000000000000000000000000000000000000000");
        let got = run(&Merge::AllEqual, &[&sha, &other], R2);
        assert!(
            got.starts_with(b"-ERR slotgate: the primaries answered differently"),
            "{got:?}"
        );
        assert!(got.ends_with(b"\r\n") && !got[..got.len() - 2].contains(&b'\n'));
        // Identical garbage is still garbage.
        assert_eq!(
            run(&Merge::AllEqual, &[b"$9\r\nx\r\n", b"$9\r\nx\r\n"], R2),
            b(&unexpected("identical replies"))
        );
    }

    #[test]
    fn first() {
        let list = b"*1\r\n%2\r\n+library_name\r\n+lib\r\n+functions\r\n*0\r\n";
        for proto in [R2, R3] {
            assert_eq!(run(&Merge::First, &[list, b"*0\r\n"], proto), b(list));
        }
        let dump = b"$10\r\n\n\x00]\x9b\\@\x0f\x7f\xa2\xda\r\n";
        assert_eq!(run(&Merge::First, &[dump, dump], R2), b(dump));
        assert_eq!(
            run(&Merge::First, &[b"*2\r\n:1\r\n", list], R2),
            b(&unexpected("the first reply"))
        );
    }

    // ---- SCRIPT EXISTS -------------------------------------------------------------------

    #[test]
    fn all_of_integer_arrays() {
        for proto in [R2, R3] {
            assert_eq!(
                run(
                    &Merge::AllOfIntegerArrays,
                    &[
                        b"*3\r\n:1\r\n:1\r\n:0\r\n",
                        b"*3\r\n:1\r\n:0\r\n:1\r\n",
                        b"*3\r\n:1\r\n:1\r\n:1\r\n"
                    ],
                    proto
                ),
                b(b"*3\r\n:1\r\n:0\r\n:0\r\n")
            );
        }
        assert_eq!(
            run(&Merge::AllOfIntegerArrays, &[b"*0\r\n", b"*0\r\n"], R2),
            b(b"*0\r\n")
        );
        for bad in [
            &b"*2\r\n:1\r\n:1\r\n"[..],
            b"*1\r\n$1\r\n1\r\n",
            b"*1\r\n#t\r\n",
            b"~1\r\n:1\r\n",
            b":1\r\n",
        ] {
            assert_eq!(
                run(&Merge::AllOfIntegerArrays, &[b"*1\r\n:1\r\n", bad], R3),
                b(&unexpected("SCRIPT EXISTS"))
            );
        }
    }

    // ---- PUBSUB NUMSUB -------------------------------------------------------------------

    #[test]
    fn sum_pairs_flat_and_map() {
        let c0 = b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:0\r\n";
        let c1 = b"*4\r\n$1\r\na\r\n:2\r\n$1\r\nb\r\n:5\r\n";
        for proto in [R2, R3] {
            assert_eq!(
                run(&Merge::SumPairs, &[c0, c1], proto),
                b(b"*4\r\n$1\r\na\r\n:3\r\n$1\r\nb\r\n:5\r\n")
            );
        }
        let m0 = b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:0\r\n";
        let m1 = b"%2\r\n$1\r\na\r\n:2\r\n$1\r\nb\r\n:5\r\n";
        assert_eq!(
            run(&Merge::SumPairs, &[m0, m1, m1], R3),
            b(b"%2\r\n$1\r\na\r\n:5\r\n$1\r\nb\r\n:10\r\n")
        );
        // A channel asked twice keeps both pairs, as Redis answers.
        let twice = b"*4\r\n$1\r\nx\r\n:1\r\n$1\r\nx\r\n:1\r\n";
        assert_eq!(
            run(&Merge::SumPairs, &[twice, twice], R2),
            b(b"*4\r\n$1\r\nx\r\n:2\r\n$1\r\nx\r\n:2\r\n")
        );
        assert_eq!(
            run(&Merge::SumPairs, &[b"*0\r\n", b"*0\r\n"], R2),
            b(b"*0\r\n")
        );
    }

    #[test]
    fn sum_pairs_refuses_mismatched_children() {
        let c0: &[u8] = b"*2\r\n$1\r\na\r\n:1\r\n";
        for bad in [
            &b"*2\r\n$1\r\nz\r\n:1\r\n"[..],
            b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:1\r\n",
            b"*2\r\n$1\r\na\r\n$1\r\n1\r\n",
            b"*1\r\n$1\r\na\r\n",
            b"~2\r\n$1\r\na\r\n:1\r\n",
            b":1\r\n",
        ] {
            assert_eq!(
                run(&Merge::SumPairs, &[c0, bad], R3),
                b(&unexpected("PUBSUB NUMSUB"))
            );
        }
        assert_eq!(
            run(&Merge::SumPairs, &[b"*1\r\n$1\r\na\r\n"], R2),
            b(&unexpected("PUBSUB NUMSUB"))
        );
        assert_eq!(
            run(
                &Merge::SumPairs,
                &[
                    b"*2\r\n$1\r\na\r\n:9223372036854775807\r\n",
                    b"*2\r\n$1\r\na\r\n:1\r\n"
                ],
                R2
            ),
            b(&unexpected("PUBSUB NUMSUB"))
        );
    }

    // ---- RANDOMKEY -----------------------------------------------------------------------

    #[test]
    fn first_non_null() {
        assert_eq!(
            run(
                &Merge::FirstNonNull,
                &[b"$-1\r\n", b"$1\r\nk\r\n", b"$1\r\nj\r\n"],
                R2
            ),
            b(b"$1\r\nk\r\n")
        );
        assert_eq!(
            run(&Merge::FirstNonNull, &[b"_\r\n", b"$1\r\nk\r\n"], R3),
            b(b"$1\r\nk\r\n")
        );
        assert_eq!(
            run(&Merge::FirstNonNull, &[b"$-1\r\n", b"*-1\r\n"], R2),
            b(b"$-1\r\n")
        );
        assert_eq!(
            run(&Merge::FirstNonNull, &[b"_\r\n", b"_\r\n"], R3),
            b(b"_\r\n")
        );
        assert_eq!(
            run(&Merge::FirstNonNull, &[b"_\r\n", b"$5\r\nk\r\n"], R3),
            b(&unexpected("RANDOMKEY"))
        );
    }

    // ---- INFO keyspace -------------------------------------------------------------------

    fn info_r2(text: &str) -> Vec<u8> {
        bulk(text)
    }

    fn info_r3(text: &str) -> Vec<u8> {
        format!("={}\r\ntxt:{text}\r\n", text.len() + 4).into_bytes()
    }

    #[test]
    fn info_keyspace_sums_per_db() {
        let a = "# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=1000\r\n";
        let b_ =
            "# Keyspace\r\ndb0:keys=5,expires=3,avg_ttl=2000\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n";
        let c = "# Keyspace\r\n";
        // avg_ttl: (1000*1 + 2000*3) / 4 = 1750.
        let want =
            "# Keyspace\r\ndb0:keys=7,expires=4,avg_ttl=1750\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n";
        assert_eq!(
            run(
                &Merge::InfoKeyspace,
                &[&info_r2(a), &info_r2(b_), &info_r2(c)],
                R2
            ),
            b(&info_r2(want))
        );
        assert_eq!(
            run(
                &Merge::InfoKeyspace,
                &[&info_r3(a), &info_r3(b_), &info_r3(c)],
                R3
            ),
            b(&info_r3(want))
        );
    }

    #[test]
    fn info_keyspace_avg_ttl_ignores_unsampled_nodes() {
        // A node that has not sampled yet says 0; it must not halve the estimate.
        let a = "# Keyspace\r\ndb0:keys=10,expires=10,avg_ttl=0\r\n";
        let b_ = "# Keyspace\r\ndb0:keys=10,expires=10,avg_ttl=5000\r\n";
        let want = "# Keyspace\r\ndb0:keys=20,expires=20,avg_ttl=5000\r\n";
        assert_eq!(
            run(&Merge::InfoKeyspace, &[&info_r2(a), &info_r2(b_)], R2),
            b(&info_r2(want))
        );
        // Without `expires`, a plain mean of the non-zero values.
        let a = "db0:keys=1,avg_ttl=100\r\n";
        let b_ = "db0:keys=1,avg_ttl=300\r\n";
        let want = "# Keyspace\r\ndb0:keys=2,avg_ttl=200\r\n";
        assert_eq!(
            run(&Merge::InfoKeyspace, &[&info_r2(a), &info_r2(b_)], R2),
            b(&info_r2(want))
        );
    }

    #[test]
    fn info_keyspace_keeps_unknown_fields_and_ignores_other_sections() {
        let a = "# Server\r\nredis_version:7.4.0\r\ndb_thing:1\r\n\r\n# Keyspace\r\ndb1:keys=1,expires=0,avg_ttl=0,subexpiry=2\r\ndb0:keys=1,expires=0,avg_ttl=0,subexpiry=0\r\n";
        let b_ = "# Keyspace\ndb1:keys=3,expires=0,avg_ttl=0,subexpiry=1\n";
        let want = "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0,subexpiry=0\r\ndb1:keys=4,expires=0,avg_ttl=0,subexpiry=3\r\n";
        assert_eq!(
            run(&Merge::InfoKeyspace, &[&info_r3(a), &info_r2(b_)], R3),
            b(&info_r3(want))
        );
    }

    #[test]
    fn keyspace_section_as_text() {
        let a = info_r3("# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n");
        let b_ = info_r2("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n");
        assert_eq!(
            keyspace_section(&[b(&a), b(&b_)]).unwrap(),
            b"# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\n"
        );
        assert_eq!(keyspace_section(&[]).unwrap(), b"# Keyspace\r\n");
        assert_eq!(keyspace_section(&[b(&a), b(b"-ERR x\r\n")]), None);
        assert_eq!(keyspace_section(&[b(b":1\r\n")]), None);
    }

    #[test]
    fn info_keyspace_refuses_bad_children() {
        for bad in [
            info_r2("# Keyspace\r\ndb0:keys=x,expires=0\r\n"),
            info_r2("db0:keys\r\n"),
            info_r2("db0:=1\r\n"),
            info_r2("db0:keys=99999999999999999999\r\n"),
            b"*1\r\n$1\r\nx\r\n".to_vec(),
            b":1\r\n".to_vec(),
            b"=3\r\ntxt\r\n".to_vec(),
            b"$-1\r\n".to_vec(),
        ] {
            assert_eq!(
                run(&Merge::InfoKeyspace, &[&bad], R2),
                b(&unexpected("INFO keyspace")),
                "{:?}",
                String::from_utf8_lossy(&bad)
            );
        }
    }

    // ---- fuzz-ish --------------------------------------------------------------------------

    /// xorshift64*: deterministic randomness without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_children_never_panic() {
        const PIECES: &[&[u8]] = &[
            b"*", b"%", b"~", b">", b"|", b"$", b":", b"_", b"-", b"!", b"=", b"+", b"1", b"2",
            b"0", b"-1", b"\r\n", b"OK", b"txt:", b"db0:", b"keys=", b",", b"x",
        ];
        let mut rng = Rng(0x6d65_7267_6521);
        for _ in 0..5_000 {
            let children: Vec<Bytes> = (0..rng.below(4))
                .map(|_| {
                    let mut child = Vec::new();
                    for _ in 0..rng.below(12) {
                        child.extend_from_slice(PIECES[rng.below(PIECES.len())]);
                    }
                    Bytes::from(child)
                })
                .collect();
            let positions = (0..rng.below(4))
                .map(|_| (rng.below(4) as u16, rng.below(3) as u32))
                .collect();
            let mut policies = all_policies();
            policies.push(Merge::Mget { positions });
            for policy in &policies {
                for proto in [R2, R3] {
                    let out = merge(policy, &children, proto);
                    // Whatever came in, what goes out is one well-formed reply.
                    assert_eq!(
                        single(&out).map(|_| ()),
                        Some(()),
                        "{policy:?} {children:?}"
                    );
                }
            }
            for child in &children {
                let _ = elements(child);
                let _ = integer(child);
            }
        }
    }
}
