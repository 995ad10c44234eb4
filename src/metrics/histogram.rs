//! A latency histogram made of relaxed atomics, written by one thread and read by a scrape.
//!
//! Buckets are fixed powers of two times 25 µs (25 µs .. 6.55 s, then +Inf), so finding a
//! bucket is one division and a `leading_zeros`, and recording is two relaxed
//! load/store pairs: no allocation, no lock, no read-modify-write. The single writer is the
//! worker thread that owns the struct; a scrape on another thread sums whatever it sees
//! (a sample may be in a bucket and not yet in the sum, which no rate will notice).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bound of the first bucket, in microseconds.
const FIRST_BOUND_US: u64 = 25;
/// Finite buckets; one more (+Inf) follows.
pub const FINITE_BUCKETS: usize = 19;
/// Every bucket, +Inf included.
pub const BUCKETS: usize = FINITE_BUCKETS + 1;

/// Upper bound of finite bucket `i`, in microseconds.
pub const fn bound_us(i: usize) -> u64 {
    FIRST_BOUND_US << i
}

/// Upper bounds in seconds, +Inf last, as Prometheus wants them.
pub fn bounds_seconds() -> [f64; BUCKETS] {
    let mut bounds = [f64::INFINITY; BUCKETS];
    for (i, bound) in bounds.iter_mut().enumerate().take(FINITE_BUCKETS) {
        *bound = bound_us(i) as f64 / 1e6;
    }
    bounds
}

/// Index of the bucket counting a sample of `us` microseconds.
#[inline]
pub fn bucket_index(us: u64) -> usize {
    // Units of 25 µs, rounded up: bucket i holds (25·2^(i-1), 25·2^i].
    let units = us.div_ceil(FIRST_BOUND_US);
    if units <= 1 {
        return 0;
    }
    let index = (64 - (units - 1).leading_zeros()) as usize;
    index.min(FINITE_BUCKETS)
}

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
pub(crate) fn add_single_writer(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// A latency histogram; see the module docs. `Default` is empty.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// What a scrape reads from one or more [`Histogram`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Samples per bucket (not cumulative), +Inf last.
    pub buckets: [u64; BUCKETS],
    pub sum_us: u64,
}

impl Histogram {
    /// Records one sample. Only the owning thread may call this.
    #[inline]
    pub fn observe(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.observe_us(us);
    }

    /// Records one sample of `us` microseconds. Only the owning thread may call this.
    #[inline]
    pub fn observe_us(&self, us: u64) {
        add_single_writer(&self.buckets[bucket_index(us)], 1);
        add_single_writer(&self.sum_us, us);
    }

    /// Adds this histogram's counts into `into` (scrapes sum over workers).
    pub fn add_to(&self, into: &mut HistogramSnapshot) {
        for (total, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            *total = total.wrapping_add(bucket.load(Ordering::Relaxed));
        }
        into.sum_us = into
            .sum_us
            .wrapping_add(self.sum_us.load(Ordering::Relaxed));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot::default();
        self.add_to(&mut snapshot);
        snapshot
    }
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// `(upper bound in seconds, samples in that bucket)` pairs, as the encoder wants them.
    pub fn encoder_buckets(&self) -> [(f64, u64); BUCKETS] {
        let bounds = bounds_seconds();
        std::array::from_fn(|i| (bounds[i], self.buckets[i]))
    }

    /// The smallest bucket bound below which at least `q` (0..=1) of the samples lie, in
    /// microseconds; `None` when empty, `u64::MAX` for the +Inf bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let wanted = ((count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return Some(if i < FINITE_BUCKETS {
                    bound_us(i)
                } else {
                    u64::MAX
                });
            }
        }
        Some(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_inclusive_upper_bounds() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(25), 0);
        assert_eq!(bucket_index(26), 1);
        assert_eq!(bucket_index(50), 1);
        assert_eq!(bucket_index(51), 2);
        assert_eq!(bucket_index(100), 2);
        assert_eq!(bucket_index(101), 3);
        for i in 0..FINITE_BUCKETS {
            assert_eq!(bucket_index(bound_us(i)), i, "bound {}", bound_us(i));
            assert_eq!(bucket_index(bound_us(i) + 1), i + 1);
        }
        assert_eq!(bucket_index(u64::MAX), FINITE_BUCKETS);
        assert_eq!(bound_us(FINITE_BUCKETS - 1), 6_553_600);
    }

    #[test]
    fn observe_and_snapshot() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_secs(100));
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[FINITE_BUCKETS], 1);
        assert_eq!(s.sum_us, 100_000_040);
        assert_eq!(s.quantile_bound_us(0.5), Some(50));
        assert_eq!(s.quantile_bound_us(1.0), Some(u64::MAX));
        assert_eq!(HistogramSnapshot::default().quantile_bound_us(0.5), None);
        let pairs = s.encoder_buckets();
        assert_eq!(pairs[0], (0.000025, 1));
        assert!(pairs[BUCKETS - 1].0.is_infinite());
    }
}
