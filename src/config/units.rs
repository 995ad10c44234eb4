//! Sizes and durations as people write them in config files and flags.
//!
//! Text comes from a TOML value or a flag/env string (see [`super::raw::Scalar`]) and leaves
//! as bytes (`u64`) or a [`Duration`] for the checks in [`super::build`]. The `format_*`
//! functions go the other way, so error messages speak the same units the user wrote.
//!
//! Sizes follow redis.conf exactly (`memtoll`): a whole number with an optional,
//! case-insensitive unit, where `k`/`m`/`g` are powers of 1000 and `kb`/`mb`/`gb` powers of
//! 1024. Durations are ours (redis.conf has none with units): `500ms`, `2s`, `1m`, `1h`,
//! fractions (`1.5s`) and sums (`1m30s`).

use std::time::Duration;

/// 1024 bytes: the `kb` unit.
pub const KB: u64 = 1024;
/// 1024² bytes: the `mb` unit.
pub const MB: u64 = 1024 * KB;
/// 1024³ bytes: the `gb` unit.
pub const GB: u64 = 1024 * MB;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why a size or duration text was refused. Messages never repeat the whole input: the
/// caller already names the key and the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty")]
    Empty,
    #[error("must not be negative")]
    Negative,
    #[error("{0:?} is not a whole number")]
    BadNumber(String),
    #[error("missing unit (write e.g. \"5s\" or \"500ms\")")]
    MissingUnit,
    #[error("unknown unit {0:?} (use ms, s, m or h)")]
    UnknownDurationUnit(String),
    #[error("unknown unit {0:?} (use b, k, kb, m, mb, g or gb, as in redis.conf)")]
    UnknownSizeUnit(String),
    #[error("too large")]
    TooLarge,
}

/// Parses a redis.conf memory size: `1048576`, `100k`, `64kb`, `512mb`, `1GB`.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    // Redis takes whole numbers only; "1.5gb" is a bad number, not an unknown unit ".5gb".
    if number.is_empty() || unit.starts_with('.') {
        return Err(UnitError::BadNumber(text.to_owned()));
    }
    let multiplier = size_unit(unit)?;
    // Only digits are left, so the sole way to fail is overflow.
    let value: u64 = number.parse().map_err(|_| UnitError::TooLarge)?;
    value.checked_mul(multiplier).ok_or(UnitError::TooLarge)
}

/// Bytes per unit, with Redis's rules: `k` = 1000 but `kb` = 1024.
fn size_unit(unit: &str) -> Result<u64, UnitError> {
    Ok(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => KB,
        "m" => 1000 * 1000,
        "mb" => MB,
        "g" => 1000 * 1000 * 1000,
        "gb" => GB,
        _ => return Err(UnitError::UnknownSizeUnit(unit.to_owned())),
    })
}

/// Parses a duration: one or more `<number><unit>` parts, e.g. `500ms`, `1.5s`, `1m30s`.
/// A bare `0` is accepted because zero needs no unit; any other bare number is refused
/// because `5` could mean seconds or milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    if text.is_empty() {
        return Err(UnitError::Empty);
    }
    if text.starts_with('-') {
        return Err(UnitError::Negative);
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (part, next) = split_duration_part(rest)?;
        total_nanos = total_nanos.checked_add(part).ok_or(UnitError::TooLarge)?;
        rest = next;
    }
    let secs = u64::try_from(total_nanos / NANOS_PER_SEC).map_err(|_| UnitError::TooLarge)?;
    // The remainder is below one second, so it fits in u32.
    let nanos = (total_nanos % NANOS_PER_SEC) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Splits the leading `<number><unit>` off `text` and returns its length in nanoseconds.
fn split_duration_part(text: &str) -> Result<(u128, &str), UnitError> {
    let is_number_char = |c: char| c.is_ascii_digit() || c == '.';
    let number_end = text.find(|c| !is_number_char(c)).unwrap_or(text.len());
    let (number, after) = text.split_at(number_end);
    if number.is_empty() {
        return Err(UnitError::BadNumber(text.to_owned()));
    }
    let unit_end = after.find(is_number_char).unwrap_or(after.len());
    let (unit, next) = after.split_at(unit_end);
    let unit_nanos: u128 = match unit {
        "" => return Err(UnitError::MissingUnit),
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3600 * NANOS_PER_SEC,
        _ => return Err(UnitError::UnknownDurationUnit(unit.to_owned())),
    };
    Ok((scale_decimal(number, unit_nanos)?, next))
}

/// `number` (digits with at most one `.`) times `unit_nanos`, truncated to whole nanoseconds.
fn scale_decimal(number: &str, unit_nanos: u128) -> Result<u128, UnitError> {
    let bad = || UnitError::BadNumber(number.to_owned());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    // 18 fraction digits times the largest unit (an hour in ns, ~3.6e12) stays far below
    // u128::MAX; more digits than that are noise anyway.
    if fraction.len() > 18 || whole.len() > 30 {
        return Err(UnitError::TooLarge);
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let whole_nanos = whole.checked_mul(unit_nanos).ok_or(UnitError::TooLarge)?;
    if fraction.is_empty() {
        return Ok(whole_nanos);
    }
    let digits: u128 = fraction.parse().map_err(|_| bad())?;
    let scale = 10u128.pow(fraction.len() as u32);
    Ok(whole_nanos + digits * unit_nanos / scale)
}

/// Renders bytes in the largest redis.conf unit that divides them: `512mb`, `64kb`, `100 bytes`.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0 => "0 bytes".to_owned(),
        b if b.is_multiple_of(GB) => format!("{}gb", b / GB),
        b if b.is_multiple_of(MB) => format!("{}mb", b / MB),
        b if b.is_multiple_of(KB) => format!("{}kb", b / KB),
        b => format!("{b} bytes"),
    }
}

/// Renders a duration the way [`parse_duration`] reads it: `100ms`, `5s`, `2m`, `1h`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        // Finer than milliseconds: Debug prints an exact, still readable value ("1.0000001s").
        return format!("{duration:?}");
    }
    match millis {
        0 => "0s".to_owned(),
        ms if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        ms if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        ms if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_redis_units() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("10b"), Ok(10));
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("64kb"), Ok(64 * 1024));
        assert_eq!(parse_size("2m"), Ok(2_000_000));
        assert_eq!(parse_size("512mb"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Ok(1_000_000_000));
        assert_eq!(parse_size("1gb"), Ok(1 << 30));
    }

    #[test]
    fn size_units_ignore_case() {
        assert_eq!(parse_size("1GB"), Ok(GB));
        assert_eq!(parse_size("1Gb"), Ok(GB));
        assert_eq!(parse_size("64KB"), Ok(64 * KB));
        assert_eq!(parse_size("5M"), Ok(5_000_000));
    }

    #[test]
    fn bad_sizes_say_why() {
        assert_eq!(parse_size(""), Err(UnitError::Empty));
        assert_eq!(parse_size("-1"), Err(UnitError::Negative));
        assert_eq!(parse_size("mb"), Err(UnitError::BadNumber("mb".into())));
        assert_eq!(
            parse_size("12xb"),
            Err(UnitError::UnknownSizeUnit("xb".into()))
        );
        assert_eq!(
            parse_size("1.5gb"),
            Err(UnitError::BadNumber("1.5gb".into()))
        );
        assert_eq!(
            parse_size("1 mb"),
            Err(UnitError::UnknownSizeUnit(" mb".into()))
        );
        assert_eq!(parse_size("99999999999gb"), Err(UnitError::TooLarge));
        assert_eq!(
            parse_size("99999999999999999999999"),
            Err(UnitError::TooLarge)
        );
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(".25s"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse_duration(""), Err(UnitError::Empty));
        assert_eq!(parse_duration("5"), Err(UnitError::MissingUnit));
        assert_eq!(parse_duration("-5s"), Err(UnitError::Negative));
        assert_eq!(
            parse_duration("5sec"),
            Err(UnitError::UnknownDurationUnit("sec".into()))
        );
        assert_eq!(
            parse_duration("5S"),
            Err(UnitError::UnknownDurationUnit("S".into()))
        );
        assert_eq!(parse_duration("s"), Err(UnitError::BadNumber("s".into())));
        assert_eq!(
            parse_duration("1.2.3s"),
            Err(UnitError::BadNumber("1.2.3".into()))
        );
        assert_eq!(parse_duration(".s"), Err(UnitError::BadNumber(".".into())));
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(UnitError::TooLarge)
        );
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["0s", "100ms", "1500ms", "5s", "2m", "90s", "1h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        for text in ["1gb", "512mb", "64kb", "100 bytes", "0 bytes"] {
            let bytes = parse_size(text.trim_end_matches(" bytes")).unwrap();
            assert_eq!(format_size(bytes), text);
        }
        assert_eq!(format_duration(Duration::new(1, 100)), "1.0000001s");
    }
}
