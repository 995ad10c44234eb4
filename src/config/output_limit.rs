//! `client-output-buffer-limit`: how many reply bytes a client may leave unread.
//!
//! Redis's syntax and meaning, per client class: `<class> <hard> <soft> <soft-seconds>`.
//! A client whose unwritten replies reach `hard` bytes, or stay at or above `soft` bytes
//! for `soft-seconds`, is disconnected; 0 turns a limit off. slotgate has two classes:
//! `normal` and `pubsub` (a client with subscriptions). Sessions check the limit
//! (`crate::session`); this module parses and holds it.

use std::time::Duration;

use tokio::time::Instant;

use super::units::{self, MB};

/// One class's limits; a zero limit is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_seconds: Duration,
}

impl OutputLimit {
    pub const NONE: OutputLimit = OutputLimit {
        hard: 0,
        soft: 0,
        soft_seconds: Duration::ZERO,
    };

    /// Whether a client holding `pending` unwritten bytes at `now` must be disconnected.
    /// `over_soft_since` remembers when it went over the soft limit (reset below it).
    pub fn exceeded(
        &self,
        pending: usize,
        over_soft_since: &mut Option<Instant>,
        now: Instant,
    ) -> bool {
        if self.hard > 0 && pending >= self.hard {
            return true;
        }
        if self.soft == 0 || pending < self.soft {
            *over_soft_since = None;
            return false;
        }
        let since = *over_soft_since.get_or_insert(now);
        now.saturating_duration_since(since) >= self.soft_seconds
    }
}

/// The limits of both classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputBufferLimits {
    pub normal: OutputLimit,
    pub pubsub: OutputLimit,
}

impl Default for OutputBufferLimits {
    /// Redis's defaults.
    fn default() -> Self {
        Self {
            normal: OutputLimit::NONE,
            pubsub: OutputLimit {
                hard: (32 * MB) as usize,
                soft: (8 * MB) as usize,
                soft_seconds: Duration::from_secs(60),
            },
        }
    }
}

impl OutputBufferLimits {
    /// Parses `<class> <hard> <soft> <soft-seconds>` groups over the defaults: classes not
    /// named keep theirs, as in Redis.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err(format!(
                "{text:?} is not \"<class> <hard> <soft> <soft-seconds>\" groups, \
                 e.g. \"pubsub 32mb 8mb 60\""
            ));
        }
        let mut limits = Self::default();
        for group in words.chunks(4) {
            let size = |word: &str| -> Result<usize, String> {
                units::parse_size(word)
                    .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
                    .map_err(|why| format!("{word:?} is not a size: {why}"))
            };
            let seconds: u64 = group[3]
                .parse()
                .map_err(|_| format!("{:?} is not a whole number of seconds", group[3]))?;
            let limit = OutputLimit {
                hard: size(group[1])?,
                soft: size(group[2])?,
                soft_seconds: Duration::from_secs(seconds.min(365 * 24 * 3600)),
            };
            match group[0].to_ascii_lowercase().as_str() {
                "normal" => limits.normal = limit,
                "pubsub" => limits.pubsub = limit,
                "replica" | "slave" => {
                    return Err(format!(
                        "class {:?} does not apply: replicas never connect through slotgate \
                         (classes: normal, pubsub)",
                        group[0]
                    ));
                }
                other => {
                    return Err(format!(
                        "{other:?} is not a client class: use normal or pubsub"
                    ));
                }
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_not_named_keep_their_defaults() {
        let limits = OutputBufferLimits::parse("normal 64mb 16mb 10").unwrap();
        assert_eq!(limits.normal.hard, 64 << 20);
        assert_eq!(limits.normal.soft, 16 << 20);
        assert_eq!(limits.normal.soft_seconds, Duration::from_secs(10));
        assert_eq!(limits.pubsub, OutputBufferLimits::default().pubsub);
        let both = OutputBufferLimits::parse("normal 0 0 0 PUBSUB 1mb 0 0").unwrap();
        assert_eq!(both.normal, OutputLimit::NONE);
        assert_eq!(both.pubsub.hard, 1 << 20);
    }

    #[test]
    fn bad_groups_are_explained() {
        for (text, needle) in [
            ("normal 1mb", "groups"),
            ("replica 256mb 64mb 60", "replicas never connect"),
            ("clients 1mb 1mb 1", "not a client class"),
            ("normal lots 1mb 1", "not a size"),
            ("normal 1mb 1mb soon", "whole number of seconds"),
        ] {
            let error = OutputBufferLimits::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn soft_limit_needs_its_seconds_and_hard_limit_none() {
        let limit = OutputLimit {
            hard: 100,
            soft: 10,
            soft_seconds: Duration::from_secs(5),
        };
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut since = None;
        assert!(!limit.exceeded(9, &mut since, at(0)));
        assert!(!limit.exceeded(50, &mut since, at(0)));
        assert!(!limit.exceeded(50, &mut since, at(4)));
        assert!(limit.exceeded(50, &mut since, at(5)));
        // Dropping below the soft limit starts the clock again.
        assert!(!limit.exceeded(5, &mut since, at(6)));
        assert!(!limit.exceeded(50, &mut since, at(7)));
        assert!(limit.exceeded(100, &mut None, at(0)));
        assert!(!OutputLimit::NONE.exceeded(usize::MAX, &mut None, at(0)));
    }
}
