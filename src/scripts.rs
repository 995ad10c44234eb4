//! The scripts clients loaded through slotgate, so they survive a node losing its cache.
//!
//! Redis does not replicate `SCRIPT LOAD` to replicas, so after a failover the promoted
//! replica answers `EVALSHA` with `NOSCRIPT`. slotgate remembers every script body loaded
//! through it (by SHA1, bounded by [`MAX_SCRIPTS`]); when an `EVALSHA` meets `NOSCRIPT`,
//! the session sends `SCRIPT LOAD` and the `EVALSHA` again in one write. Only the load path
//! takes the lock; `EVALSHA` takes it only after a `NOSCRIPT`.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// Scripts remembered at most; past it, the oldest half is forgotten.
pub const MAX_SCRIPTS: usize = 10_000;

/// Script bodies by lowercase hex SHA1.
#[derive(Default)]
pub struct ScriptCache {
    scripts: Mutex<HashMap<[u8; 40], (u64, Bytes)>>,
}

impl ScriptCache {
    /// Remembers `body` and returns its SHA1 in lowercase hex, as Redis names scripts.
    pub fn remember(&self, body: &[u8]) -> [u8; 40] {
        let sha = sha1_hex(body);
        let mut scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        if scripts.len() >= MAX_SCRIPTS && !scripts.contains_key(&sha) {
            // Forget the older half: a bound on memory matters more than a rare re-load.
            let mut ages: Vec<u64> = scripts.values().map(|(age, _)| *age).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            scripts.retain(|_, (age, _)| *age > cutoff);
        }
        let age = scripts.values().map(|(a, _)| *a).max().unwrap_or(0) + 1;
        scripts.insert(sha, (age, Bytes::copy_from_slice(body)));
        sha
    }

    /// Forgets every script (`SCRIPT FLUSH`): an `EVALSHA` must then fail as on Redis.
    pub fn clear(&self) {
        self.scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The body of script `sha` (any case), if it was loaded through slotgate.
    pub fn get(&self, sha: &[u8]) -> Option<Bytes> {
        let key: [u8; 40] = sha.to_ascii_lowercase().try_into().ok()?;
        let scripts = self.scripts.lock().unwrap_or_else(|e| e.into_inner());
        scripts.get(&key).map(|(_, body)| body.clone())
    }
}

fn sha1_hex(body: &[u8]) -> [u8; 40] {
    let digest = sha1_smol::Sha1::from(body).digest().to_string();
    let mut out = [b'0'; 40];
    out.copy_from_slice(&digest.as_bytes()[..40]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_matches_redis() {
        // `SCRIPT LOAD "return 1"` on Redis answers this SHA1.
        let cache = ScriptCache::default();
        let sha = cache.remember(b"return 1");
        assert_eq!(&sha, b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(
            cache
                .get(b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB")
                .unwrap(),
            &b"return 1"[..]
        );
        assert!(cache.get(b"nope").is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ScriptCache::default();
        for i in 0..MAX_SCRIPTS + 10 {
            cache.remember(format!("return {i}").as_bytes());
        }
        let len = cache.scripts.lock().unwrap().len();
        assert!(len <= MAX_SCRIPTS, "{len}");
        // The newest survives.
        let newest = format!("return {}", MAX_SCRIPTS + 9);
        let sha = sha1_hex(newest.as_bytes());
        assert!(cache.get(&sha).is_some());
    }
}
