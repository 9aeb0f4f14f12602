//! [`CacheMetrics`]: what the seed's monitoring section asks for — hit rate, slow operations,
//! errors by kind — plus a latency histogram. Lock-free counters, readable from code at any
//! time ([`CacheMetrics::snapshot`]) so the server can export them.
//!
//! Every slow operation is counted; the warning it logs is rate-limited ([`SLOW_LOG_EVERY`]).
//! There is also one counter per [`CacheEvent`] (near cache, `get_or_load`'s protections,
//! locks, replica waits) and per near-cache [`FlushCause`]: fieldless enums with an `ALL` list,
//! so an exporter can name every label, counted or not.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::time::Instant;

use crate::{CacheErrorKind, Op};

/// Upper bounds (seconds) of the latency histogram's buckets; a last, implicit bucket is +Inf.
pub const LATENCY_BUCKETS_SECONDS: [f64; 12] =
    [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Slow operations are logged at most this often; every one is counted.
const SLOW_LOG_EVERY: Duration = Duration::from_secs(1);

/// What the protections, the near cache and the locks did, one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheEvent {
    /// A read answered from the near cache (L1), with no Redis command.
    NearHit,
    /// A read the near cache could not answer (it went to Redis).
    NearMiss,
    /// A value put into the near cache.
    NearInsert,
    /// A near-cache entry removed for size, expiry or replacement (not by an invalidation).
    NearEviction,
    /// A key invalidation received from Redis (client tracking) or made by an own write.
    NearInvalidation,
    /// A read's answer not put into the near cache because an invalidation, a flush or a
    /// connection change happened while it was in flight.
    NearInsertCancelled,
    /// A value not cached: heavier than one near-cache shard's share of the budget.
    NearTooLarge,
    /// A loader run by `get_or_load` (the source was asked).
    Load,
    /// A `get_or_load` caller that waited for another caller's load instead of loading.
    CoalescedWait,
    /// A `get_or_load` answered `None` from a cached "missing" placeholder.
    NegativeHit,
    /// A probabilistic early refresh (XFetch) started.
    EarlyRefresh,
    /// A last good value served because Redis or the loader failed (stale-on-error).
    StaleServed,
    /// A load done straight from the source because Redis was unavailable (degraded mode).
    DegradedLoad,
    /// A key refused by a Bloom guard: certainly never added, so never loaded.
    BloomRejection,
    /// A lock lease extended by a guard's watchdog.
    LockExtension,
    /// A held lock found lost (expired or taken over) by its watchdog or on release.
    LockLoss,
    /// Writes the master's replicas acknowledged within the wait (`ReplicaWait`).
    ReplicasAcknowledged,
    /// Writes not acknowledged by every replica within the wait (or the WAIT failed): applied on
    /// the master, maybe lost in a failover.
    ReplicasUnconfirmed,
}

impl CacheEvent {
    pub const ALL: [CacheEvent; 18] = [
        CacheEvent::NearHit,
        CacheEvent::NearMiss,
        CacheEvent::NearInsert,
        CacheEvent::NearEviction,
        CacheEvent::NearInvalidation,
        CacheEvent::NearInsertCancelled,
        CacheEvent::NearTooLarge,
        CacheEvent::Load,
        CacheEvent::CoalescedWait,
        CacheEvent::NegativeHit,
        CacheEvent::EarlyRefresh,
        CacheEvent::StaleServed,
        CacheEvent::DegradedLoad,
        CacheEvent::BloomRejection,
        CacheEvent::LockExtension,
        CacheEvent::LockLoss,
        CacheEvent::ReplicasAcknowledged,
        CacheEvent::ReplicasUnconfirmed,
    ];

    /// The Prometheus-style name of the counter (without prefix or `_total`).
    pub fn name(self) -> &'static str {
        match self {
            CacheEvent::NearHit => "near_hits",
            CacheEvent::NearMiss => "near_misses",
            CacheEvent::NearInsert => "near_inserts",
            CacheEvent::NearEviction => "near_evictions",
            CacheEvent::NearInvalidation => "near_invalidations",
            CacheEvent::NearInsertCancelled => "near_inserts_cancelled",
            CacheEvent::NearTooLarge => "near_too_large",
            CacheEvent::Load => "loads",
            CacheEvent::CoalescedWait => "coalesced_waits",
            CacheEvent::NegativeHit => "negative_hits",
            CacheEvent::EarlyRefresh => "early_refreshes",
            CacheEvent::StaleServed => "stale_served",
            CacheEvent::DegradedLoad => "degraded_loads",
            CacheEvent::BloomRejection => "bloom_rejections",
            CacheEvent::LockExtension => "lock_extensions",
            CacheEvent::LockLoss => "lock_losses",
            CacheEvent::ReplicasAcknowledged => "replicas_acknowledged",
            CacheEvent::ReplicasUnconfirmed => "replicas_unconfirmed",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|event| *event == self).unwrap_or(0)
    }
}

/// Why the near cache dropped every entry one connection vouched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlushCause {
    /// The connection reported an error or closed.
    Disconnect,
    /// The connection came back: tracking has to be set up again, nothing it said before holds.
    Reconnect,
    /// The invalidation receiver fell behind and messages were lost.
    Lagged,
    /// The keyspace was flushed (FLUSHALL/FLUSHDB), seen by the connection's canary key.
    Flushed,
    /// The connection did not answer its heartbeat in time (frozen or half-open Redis).
    Unresponsive,
    /// The application asked for it.
    Requested,
    /// The connection's primary lost hash slots (a reshard): keys of a moved slot may be
    /// written on their new owner, which never tells this connection.
    SlotsMoved,
}

impl FlushCause {
    pub const ALL: [FlushCause; 7] = [
        FlushCause::Disconnect,
        FlushCause::Reconnect,
        FlushCause::Lagged,
        FlushCause::Flushed,
        FlushCause::Unresponsive,
        FlushCause::Requested,
        FlushCause::SlotsMoved,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FlushCause::Disconnect => "disconnect",
            FlushCause::Reconnect => "reconnect",
            FlushCause::Lagged => "lagged",
            FlushCause::Flushed => "flushed",
            FlushCause::Unresponsive => "unresponsive",
            FlushCause::Requested => "requested",
            FlushCause::SlotsMoved => "slots_moved",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|cause| *cause == self).unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct CacheMetrics {
    slow_threshold: Duration,
    started: Instant,
    operations: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    errors: [AtomicU64; CacheErrorKind::ALL.len()],
    slow_operations: AtomicU64,
    /// Milliseconds since `started` of the last slow-operation log line, plus one (0 = never).
    last_slow_log: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    latency_sum_micros: AtomicU64,
    events: [AtomicU64; CacheEvent::ALL.len()],
    flushes: [AtomicU64; FlushCause::ALL.len()],
    near_bytes: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub operations: u64,
    /// Reads that found their key.
    pub hits: u64,
    /// Reads whose key was missing.
    pub misses: u64,
    /// Failed operations by kind, in [`CacheErrorKind::ALL`] order.
    pub errors: Vec<(CacheErrorKind, u64)>,
    /// Operations slower than the configured threshold.
    pub slow_operations: u64,
    /// Operation count per bucket of [`LATENCY_BUCKETS_SECONDS`] (not cumulative), then +Inf.
    pub latency_buckets: Vec<u64>,
    pub latency_sum: Duration,
    /// How often each [`CacheEvent`] happened, in [`CacheEvent::ALL`] order.
    pub events: Vec<(CacheEvent, u64)>,
    /// Near-cache flushes by cause, in [`FlushCause::ALL`] order.
    pub flushes: Vec<(FlushCause, u64)>,
    /// Bytes the near cache holds now (keys and values).
    pub near_bytes: u64,
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

    pub fn event(&self, event: CacheEvent) -> u64 {
        self.events.iter().find(|(counted, _)| *counted == event).map_or(0, |(_, count)| *count)
    }

    pub fn flushes_by(&self, cause: FlushCause) -> u64 {
        self.flushes.iter().find(|(counted, _)| *counted == cause).map_or(0, |(_, count)| *count)
    }
}

impl CacheMetrics {
    pub fn new(slow_threshold: Duration) -> Self {
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
            events: Default::default(),
            flushes: Default::default(),
            near_bytes: AtomicU64::new(0),
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
            errors: CacheErrorKind::ALL
                .iter()
                .zip(&self.errors)
                .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
                .collect(),
            slow_operations: self.slow_operations.load(Ordering::Relaxed),
            latency_buckets: self.latency_buckets.iter().map(|count| count.load(Ordering::Relaxed)).collect(),
            latency_sum: Duration::from_micros(self.latency_sum_micros.load(Ordering::Relaxed)),
            events: CacheEvent::ALL
                .iter()
                .zip(&self.events)
                .map(|(event, count)| (*event, count.load(Ordering::Relaxed)))
                .collect(),
            flushes: FlushCause::ALL
                .iter()
                .zip(&self.flushes)
                .map(|(cause, count)| (*cause, count.load(Ordering::Relaxed)))
                .collect(),
            near_bytes: self.near_bytes.load(Ordering::Relaxed),
        }
    }

    pub fn record(&self, operation: Op, key: &str, latency: Duration, error: Option<CacheErrorKind>) {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        let bucket =
            LATENCY_BUCKETS_SECONDS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if let Some(kind) = error
            && let Some(index) = CacheErrorKind::ALL.iter().position(|counted| *counted == kind)
        {
            self.errors[index].fetch_add(1, Ordering::Relaxed);
        }
        if latency >= self.slow_threshold {
            self.slow_operations.fetch_add(1, Ordering::Relaxed);
            if self.may_log_slow() {
                tracing::warn!(
                    operation = operation.as_str(),
                    key = %crate::RedactedKey::new(key),
                    latency_ms = latency.as_secs_f64() * 1_000.0,
                    threshold_ms = self.slow_threshold.as_secs_f64() * 1_000.0,
                    "slow cache operation"
                );
            }
        }
    }

    pub fn record_read(&self, found: bool) {
        let counter = if found { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self, event: CacheEvent) {
        self.events[event.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_flush(&self, cause: FlushCause) {
        self.flushes[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_near_bytes(&self, bytes: u64) {
        self.near_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn remove_near_bytes(&self, bytes: u64) {
        // Saturating: a flush may race an insert's accounting; never wrap below zero.
        let _ =
            self.near_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| Some(held.saturating_sub(bytes)));
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
        metrics.record(Op::GetValue, "fast", Duration::from_millis(5), None);
        metrics.record(Op::GetValue, "slow", Duration::from_millis(20), None);
        metrics.record(Op::GetValue, "slow", Duration::from_millis(10), Some(CacheErrorKind::Unavailable));
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
        metrics.record(Op::GetValue, "k", Duration::from_micros(50), None);
        metrics.record(Op::GetValue, "k", Duration::from_micros(300), None);
        metrics.record(Op::GetValue, "k", Duration::from_secs(5), None);
        let buckets = metrics.snapshot().latency_buckets;
        assert_eq!(buckets[0], 1, "≤ 100 µs");
        assert_eq!(buckets[2], 1, "≤ 500 µs");
        assert_eq!(buckets[LATENCY_BUCKETS_SECONDS.len()], 1, "+Inf");
        assert_eq!(buckets.iter().sum::<u64>(), 3);
    }
}
