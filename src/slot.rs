//! Hash-slot computation, exactly as Redis Cluster does it.
//!
//! A key maps to one of 16384 slots: CRC16 (XMODEM) of the key, or of its hash tag — the
//! bytes between the first `{` and the next `}` when that span is non-empty — masked to 14
//! bits. The router calls [`key_slot`] for every key of every request.

/// Number of hash slots in a Redis Cluster.
pub const SLOT_COUNT: usize = 16384;

/// The slot that `key` hashes to.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) & (SLOT_COUNT as u16 - 1)
}

/// A short hash tag for every slot: `{tag}` makes any key land in that slot. Built once,
/// on first use (about 150k hashes).
pub fn tag_for_slot(slot: u16) -> &'static str {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let mut tags = vec![String::new(); SLOT_COUNT];
        let mut missing = SLOT_COUNT;
        let mut candidate = 0u64;
        while missing > 0 {
            let text = candidate.to_string();
            let tag = &mut tags[usize::from(key_slot(text.as_bytes()))];
            if tag.is_empty() {
                *tag = text;
                missing -= 1;
            }
            candidate += 1;
        }
        tags
    });
    &tags[usize::from(slot) % SLOT_COUNT]
}

/// The part of `key` that is hashed: its hash tag when it has a non-empty one, else all of it.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on a real Redis 7 server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"123456789"), 12739);
    }

    #[test]
    fn every_slot_has_a_tag() {
        for slot in [0u16, 1, 5000, 12182, 16383] {
            let key = format!("x{{{}}}", tag_for_slot(slot));
            assert_eq!(key_slot(key.as_bytes()), slot);
        }
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        // An empty tag means the whole key is hashed.
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        // Only the first `{` counts, up to the first `}` after it.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // An unclosed tag hashes the whole key.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
    }
}
