//! [`CacheMetrics`]: what the seed's monitoring section asks for — hit rate, slow operations,
//! errors by kind — plus a latency histogram. Lock-free counters, readable from code at any
//! time ([`CacheMetrics::snapshot`]) so the server can export them.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;

use crate::CacheErrorKind;

/// Upper bounds (seconds) of the latency histogram's buckets; a last, implicit bucket is +Inf.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Slow operations are logged at most this often; every one is counted.
const SLOW_LOG_EVERY: Duration = Duration::from_secs(1);

const ERROR_KINDS: [CacheErrorKind; 6] = [
    CacheErrorKind::Unavailable,
    CacheErrorKind::WrongType,
    CacheErrorKind::BadData,
    CacheErrorKind::Script,
    CacheErrorKind::Rejected,
    CacheErrorKind::InvalidInput,
];

#[derive(Debug)]
pub struct CacheMetrics {
    slow_threshold: Duration,
    started: Instant,
    operations: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: [AtomicU64; ERROR_KINDS.len()],
    slow_operations: AtomicU64,
    /// Milliseconds since `started` of the last slow-operation log line, plus one (0 = never).
    last_slow_log: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    latency_sum_micros: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsSnapshot {
    pub operations: u64,
    /// Reads that found their key.
    pub hits: u64,
    /// Reads whose key was missing.
    pub misses: u64,
    /// Failed operations by kind.
    pub errors: Vec<(CacheErrorKind, u64)>,
    /// Operations slower than the configured threshold.
    pub slow_operations: u64,
    /// Operation count per bucket of [`LATENCY_BUCKETS_SECONDS`] (not cumulative), then +Inf.
    pub latency_buckets: Vec<u64>,
    pub latency_sum: Duration,
}

impl MetricsSnapshot {
    /// hits / (hits + misses), or `None` before the first read.
    pub fn hit_rate(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }

    pub fn errors_of(&self, kind: CacheErrorKind) -> u64 {
        self.errors.iter().find(|(counted, _)| *counted == kind).map_or(0, |(_, count)| *count)
    }
}

impl CacheMetrics {
    pub(crate) fn new(slow_threshold: Duration) -> Self {
        Self {
            slow_threshold,
            started: Instant::now(),
            operations: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: Default::default(),
            slow_operations: AtomicU64::new(0),
            last_slow_log: AtomicU64::new(0),
            latency_buckets: Default::default(),
            latency_sum_micros: AtomicU64::new(0),
        }
    }

    pub fn slow_threshold(&self) -> Duration {
        self.slow_threshold
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            operations: self.operations.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            errors: ERROR_KINDS
                .iter()
                .zip(&self.errors)
                .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
                .collect(),
            slow_operations: self.slow_operations.load(Ordering::Relaxed),
            latency_buckets: self.latency_buckets.iter().map(|count| count.load(Ordering::Relaxed)).collect(),
            latency_sum: Duration::from_micros(self.latency_sum_micros.load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn record(&self, operation: &'static str, key: &str, latency: Duration, error: Option<CacheErrorKind>) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        let bucket =
            LATENCY_BUCKETS_SECONDS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Some(kind) = error {
            if let Some(index) = ERROR_KINDS.iter().position(|counted| *counted == kind) {
                self.errors[index].fetch_add(1, Ordering::Relaxed);
            }
        }
        if latency >= self.slow_threshold {
            self.slow_operations.fetch_add(1, Ordering::Relaxed);
            if self.may_log_slow() {
                tracing::warn!(
                    operation,
                    key = crate::error::cut_key(key).as_ref(),
                    latency_ms = latency.as_secs_f64() * 1_000.0,
                    threshold_ms = self.slow_threshold.as_secs_f64() * 1_000.0,
                    "slow cache operation"
                );
            }
        }
    }

    pub(crate) fn record_read(&self, found: bool) {
        let counter = if found { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn may_log_slow(&self) -> bool {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX).saturating_add(1);
        let last = self.last_slow_log.load(Ordering::Relaxed);
        let every = u64::try_from(SLOW_LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        (last == 0 || now.saturating_sub(last) >= every)
            && self.last_slow_log.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_operations_are_counted_and_logged_at_most_once_a_second() {
        let metrics = CacheMetrics::new(Duration::from_millis(10));
        metrics.record("get_value", "fast", Duration::from_millis(5), None);
        metrics.record("get_value", "slow", Duration::from_millis(20), None);
        metrics.record("get_value", "slow", Duration::from_millis(10), Some(CacheErrorKind::Unavailable));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.operations, 3);
        assert_eq!(snapshot.slow_operations, 2, "at or above the threshold is slow");
        assert_eq!(snapshot.errors_of(CacheErrorKind::Unavailable), 1);
        assert_eq!(snapshot.latency_sum, Duration::from_millis(35));
        assert!(!metrics.may_log_slow(), "the first slow operation just logged; the next must wait a second");
    }

    #[test]
    fn latency_lands_in_the_right_bucket() {
        let metrics = CacheMetrics::new(Duration::from_secs(1));
        metrics.record("op", "k", Duration::from_micros(50), None);
        metrics.record("op", "k", Duration::from_micros(300), None);
        metrics.record("op", "k", Duration::from_secs(5), None);
        let buckets = metrics.snapshot().latency_buckets;
        assert_eq!(buckets[0], 1, "≤ 100 µs");
        assert_eq!(buckets[2], 1, "≤ 500 µs");
        assert_eq!(buckets[LATENCY_BUCKETS_SECONDS.len()], 1, "+Inf");
        assert_eq!(buckets.iter().sum::<u64>(), 3);
    }
}
