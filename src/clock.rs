//! Wall-clock time, for what is reported to people and clients (`INFO`, `SLOWLOG`,
//! `/topology`). Durations and deadlines use tokio's monotonic `Instant` instead.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
