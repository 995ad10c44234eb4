//! Redis glob matching (`stringmatchlen` in Redis' util.c) for ACL key patterns.
//!
//! A pattern from a `~pattern` rule ([`super::rules`]) is matched against each key of a
//! request ([`super::User::check`]): `*` any run of bytes, `?` one byte, `[abc]`, `[^a]`,
//! `[a-z]` (a reversed range is swapped, as Redis does), and `\x` for a literal `x`, inside
//! or outside a class. Matching is case-sensitive and byte-wise, like Redis.
//!
//! Unlike Redis' recursive matcher this is iterative: every token other than `*` consumes
//! exactly one byte, so backtracking to the last `*` is enough (time O(pattern × key),
//! no recursion, no allocation).

/// True when `key` matches `pattern` as Redis' `stringmatchlen(pattern, key, nocase=0)`.
pub fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    let mut p = 0;
    let mut k = 0;
    // Where to resume after the last `*`: (pattern index after it, key index it covers up to).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if p < pattern.len() {
            if pattern[p] == b'*' {
                while p < pattern.len() && pattern[p] == b'*' {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, k));
                continue;
            }
            if let Some(next) = match_one(pattern, p, key[k]) {
                p = next;
                k += 1;
                continue;
            }
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match star {
            Some((after_star, covered)) => {
                p = after_star;
                k = covered + 1;
                star = Some((after_star, covered + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches the single-byte token at `pattern[p]` (not `*`) against `byte`: the index of the
/// next token when it matches, `None` when not.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'[' => match_class(pattern, p + 1, byte),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == byte).then_some(p + 2),
        literal => (literal == byte).then_some(p + 1),
    }
}

/// A `[...]` class whose body starts at `pattern[start]`. An unterminated class runs to the
/// end of the pattern, as in Redis.
fn match_class(pattern: &[u8], start: usize, byte: u8) -> Option<usize> {
    let mut i = start;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(i) {
            None => break,
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') if i + 1 < pattern.len() => {
                matched |= pattern[i + 1] == byte;
                i += 2;
            }
            Some(&low) if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() => {
                let high = pattern[i + 2];
                let (low, high) = if low <= high {
                    (low, high)
                } else {
                    (high, low)
                };
                matched |= (low..=high).contains(&byte);
                i += 3;
            }
            Some(&literal) => {
                matched |= literal == byte;
                i += 1;
            }
        }
    }
    (matched != negate).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[track_caller]
    fn yes(pattern: &str, key: &str) {
        assert!(
            glob_match(pattern.as_bytes(), key.as_bytes()),
            "{pattern:?} should match {key:?}"
        );
    }

    #[track_caller]
    fn no(pattern: &str, key: &str) {
        assert!(
            !glob_match(pattern.as_bytes(), key.as_bytes()),
            "{pattern:?} should not match {key:?}"
        );
    }

    #[test]
    fn stars_and_literals() {
        yes("*", "");
        yes("*", "anything");
        yes("cache:*", "cache:");
        yes("cache:*", "cache:user:1");
        no("cache:*", "cach");
        no("cache:*", "xcache:1");
        yes("*:1", "a:b:1");
        no("*:1", "a:b:12");
        yes("a*b*c", "aXXbYYc");
        yes("a*b*c", "abbbc");
        no("a*b*c", "acb");
        yes("**a**", "xxaxx");
        yes("", "");
        no("", "a");
        no("abc", "ab");
        no("ab", "abc");
        no("Cache:*", "cache:1");
    }

    #[test]
    fn question_marks() {
        yes("user:?", "user:1");
        no("user:?", "user:");
        no("user:?", "user:12");
        yes("?*", "x");
        no("?*", "");
    }

    #[test]
    fn classes() {
        yes("k[abc]", "kb");
        no("k[abc]", "kd");
        yes("k[^abc]", "kd");
        no("k[^abc]", "ka");
        yes("k[a-c]x", "kbx");
        no("k[a-c]x", "kdx");
        // A reversed range is swapped, as in Redis.
        yes("k[c-a]", "kb");
        yes("k[\\]]", "k]");
        yes("k[\\-]", "k-");
        // As in Redis, `a-]` is a range from `]` to `a`, leaving the class unterminated.
        no("k[a-]", "k-");
        yes("k[a-]", "k_");
        // An unterminated class runs to the end of the pattern.
        yes("k[ab", "kb");
        no("k[ab", "kc");
        yes("*[0-9]", "abc7");
    }

    #[test]
    fn escapes() {
        yes("a\\*b", "a*b");
        no("a\\*b", "aXb");
        yes("a\\?", "a?");
        no("a\\?", "ab");
        // A lone trailing backslash is a literal backslash.
        yes("a\\", "a\\");
    }

    #[test]
    fn binary_and_long_keys() {
        assert!(glob_match(b"bin:*", b"bin:\x00\xff\r\n"));
        assert!(glob_match(b"bin:?", b"bin:\x00"));
        let long = vec![b'a'; 100_000];
        let mut pattern = b"*a".repeat(20);
        pattern.push(b'b');
        // Pathological for a naive recursive matcher; linear-ish here.
        assert!(!glob_match(&pattern, &long));
        assert!(glob_match(b"*a*a*a*a", &long));
    }
}
