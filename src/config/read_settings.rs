//! The read settings of a backend: `read-from`, `replica-max-lag`, `replica-check-interval`
//! and `read-your-writes`, as [`super::build`] validates them. What they do is
//! [`crate::reads`]'s business; they live here so the config needs nothing above it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::units::{format_duration, format_size, parse_duration, parse_size};

/// Which nodes serve reads (`read-from`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadFrom {
    /// Every command to the shard's primary (the default, and what writes always get).
    #[default]
    Primary,
    /// The primary; an eligible replica when the primary cannot be reached.
    PrimaryPreferred,
    /// An eligible replica; an error when the shard has none.
    Replica,
    /// An eligible replica; the primary when the shard has none.
    ReplicaPreferred,
    /// The node with the lowest measured round trip, primary included.
    Nearest,
    /// Spread over the primary and every eligible replica.
    Any,
}

impl ReadFrom {
    pub const ALL: [ReadFrom; 6] = [
        ReadFrom::Primary,
        ReadFrom::PrimaryPreferred,
        ReadFrom::Replica,
        ReadFrom::ReplicaPreferred,
        ReadFrom::Nearest,
        ReadFrom::Any,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReadFrom::Primary => "primary",
            ReadFrom::PrimaryPreferred => "primary-preferred",
            ReadFrom::Replica => "replica",
            ReadFrom::ReplicaPreferred => "replica-preferred",
            ReadFrom::Nearest => "nearest",
            ReadFrom::Any => "any",
        }
    }

    /// True when replicas may serve reads under this policy.
    pub fn uses_replicas(self) -> bool {
        self != ReadFrom::Primary
    }
}

impl fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ReadFrom {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        ReadFrom::ALL
            .into_iter()
            .find(|policy| policy.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                format!(
                    "unknown read policy {text:?}: use one of primary, primary-preferred, \
                     replica, replica-preferred, nearest, any"
                )
            })
    }
}

/// How far behind its primary a replica may be and still serve reads (`replica-max-lag`).
/// Either bound may be off; a replica must be within both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxLag {
    /// Seconds since the replica last acknowledged the replication stream, as its primary
    /// reports it (`INFO replication`, `lag=`; replicas acknowledge every second).
    pub time: Option<Duration>,
    /// Bytes of replication stream the replica has not processed yet.
    pub bytes: Option<u64>,
}

impl Default for MaxLag {
    fn default() -> Self {
        Self {
            time: Some(Duration::from_secs(2)),
            bytes: Some(16 * 1024 * 1024),
        }
    }
}

impl MaxLag {
    /// Reads `"2s 16mb"`: durations bound the time, sizes the bytes, in any order, separated
    /// by spaces or commas; `"none"` turns both bounds off.
    pub fn parse(text: &str) -> Result<MaxLag, String> {
        let mut lag = MaxLag {
            time: None,
            bytes: None,
        };
        let parts: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .collect();
        if parts.is_empty() {
            return Err("empty: give a time (2s), a size (16mb) or both, or none".to_owned());
        }
        if parts.len() == 1 && parts[0].eq_ignore_ascii_case("none") {
            return Ok(lag);
        }
        for part in parts {
            let is_size = part
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .to_ascii_lowercase()
                .ends_with('b');
            if is_size {
                let bytes = parse_size(part).map_err(|e| format!("{part:?}: {e}"))?;
                if lag.bytes.replace(bytes).is_some() {
                    return Err("two sizes given: give at most one size and one time".into());
                }
            } else {
                let time = parse_duration(part).map_err(|e| {
                    format!("{part:?}: {e} (a time such as 2s, or a size such as 16mb)")
                })?;
                if time.is_zero() {
                    return Err(format!(
                        "{part:?}: a zero time would exclude every replica; use none to \
                         turn the bound off"
                    ));
                }
                if lag.time.replace(time).is_some() {
                    return Err("two times given: give at most one time and one size".into());
                }
            }
        }
        Ok(lag)
    }
}

impl fmt::Display for MaxLag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.time, self.bytes) {
            (None, None) => f.write_str("none"),
            (Some(time), None) => f.write_str(&format_duration(time)),
            (None, Some(bytes)) => f.write_str(&format_size(bytes)),
            (Some(time), Some(bytes)) => {
                write!(f, "{} {}", format_duration(time), format_size(bytes))
            }
        }
    }
}

/// `read-your-writes`: whether a client's own writes steer its reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadYourWrites {
    /// Reads follow the policy alone: a read right after a write may miss it on a replica.
    #[default]
    Off,
    /// After a client writes a slot, its reads of that slot go to the primary until a
    /// probe shows a replica has caught up with the primary's offset after that write.
    Session,
}

impl FromStr for ReadYourWrites {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(ReadYourWrites::Off),
            "session" => Ok(ReadYourWrites::Session),
            other => Err(format!("unknown value {other:?}: use off or session")),
        }
    }
}

impl ReadYourWrites {
    pub fn name(self) -> &'static str {
        match self {
            ReadYourWrites::Off => "off",
            ReadYourWrites::Session => "session",
        }
    }
}

/// The read settings of one backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSettings {
    pub read_from: ReadFrom,
    pub max_lag: MaxLag,
    /// How often every node's replication state and round trip are probed; a probe not
    /// answered within this time makes the replica ineligible at once.
    pub check_interval: Duration,
    pub read_your_writes: ReadYourWrites,
}

/// `replica-check-interval`'s default.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl ReadSettings {
    pub fn defaults() -> Self {
        Self {
            check_interval: DEFAULT_CHECK_INTERVAL,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_by_name_and_print_back() {
        for policy in ReadFrom::ALL {
            assert_eq!(policy.name().parse::<ReadFrom>(), Ok(policy));
            assert_eq!(policy.to_string().to_uppercase().parse(), Ok(policy));
        }
        let err = "replicas".parse::<ReadFrom>().unwrap_err();
        assert!(err.contains("replica-preferred"), "{err}");
    }

    #[test]
    fn max_lag_takes_a_time_a_size_or_both() {
        let both = MaxLag::parse("2s 16mb").unwrap();
        assert_eq!(both.time, Some(Duration::from_secs(2)));
        assert_eq!(both.bytes, Some(16 * 1024 * 1024));
        assert_eq!(MaxLag::parse("16mb,2s").unwrap(), both);
        assert_eq!(both, MaxLag::default());
        let time = MaxLag::parse("500ms").unwrap();
        assert_eq!(
            (time.time, time.bytes),
            (Some(Duration::from_millis(500)), None)
        );
        let bytes = MaxLag::parse("1024b").unwrap();
        assert_eq!((bytes.time, bytes.bytes), (None, Some(1024)));
        let none = MaxLag::parse("none").unwrap();
        assert_eq!((none.time, none.bytes), (None, None));
        for bad in ["", "2s 3s", "1mb 2mb", "0s", "fast"] {
            assert!(MaxLag::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for lag in [both, time, bytes, none] {
            assert_eq!(MaxLag::parse(&lag.to_string()).unwrap(), lag);
        }
    }
}
