//! The cache toolkit: [`CacheClient`], the one type every other layer and every library user
//! calls to reach the cache — strings, JSON, lists, hashes, TTLs, locks, batch and pattern
//! deletes — on Redis (standalone, sentinel, cluster, through a fred pool) or on the
//! [`EmbeddedStore`], with the same semantics; [`CacheError`], its one error type;
//! [`CacheMetrics`], the counters the server exports; and [`BloomGuard`], a shared Bloom filter
//! of known keys against cache penetration.
//!
//! It owns no configuration and connects nothing: `infra` builds the fred pool or the embedded
//! store and hands it over. It must not depend on any other Tessera crate.

mod aside;
mod bloom;
mod client;
mod cluster;
#[cfg(test)]
mod conformance;
mod decoded;
mod embedded;
mod error;
pub mod json;
mod key;
mod lock;
mod metrics;
mod near;
mod op;
mod primary_gate;
mod redact;
mod redis;
mod replication;
mod route;
mod script;

use std::time::Duration;

pub use aside::{
    CacheValue, DEFAULT_EARLY_REFRESH_BETA, DEFAULT_JITTER, DEFAULT_NEGATIVE_TTL, DEFAULT_STALE_CAPACITY, LoadError,
    LoadPolicy, LoadPolicyBuilder, LoadPolicyError, Loaded,
};
pub use bloom::BloomGuard;
pub use client::{CacheClient, CacheOptions, CacheStore, CappedPush, RedisPool, StoreKind};
pub use embedded::{EmbeddedStats, EmbeddedStore};
pub use error::{CacheError, CacheErrorKind};
pub use key::{KeyPrefix, KeyPrefixError};
pub use lock::{LockGuard, LockLoss, LockOptions, LockRelease};
pub use metrics::{CacheEvent, CacheMetrics, FlushCause, LATENCY_BUCKETS_SECONDS, MetricsSnapshot};
pub use near::{ListVerdict, NearCacheError, NearCacheSettings};
pub use op::Op;
pub use primary_gate::{GateClosed, PrimaryGate};
pub use redact::RedactedKey;
pub use replication::{ReplicaWait, Replication};
pub use script::{CacheScript, ScriptReply};

/// Which end of a list an operation works on (the seed's `direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListEnd {
    /// The head: LPUSH, LPOP. Index 0.
    Left,
    /// The tail: RPUSH, RPOP. Index -1.
    Right,
}

/// How long a key has left to live: Redis's -2 / -1 / n, as a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    NoExpiry,
    /// The key expires after this long (millisecond precision on Redis).
    ExpiresIn(Duration),
}

/// The longest TTL any operation accepts: 2^62 ms, about 146 million years.
///
/// Redis refuses an expiry whose deadline, in Unix milliseconds, does not fit a signed 64-bit
/// integer ("invalid expire time"), a bound that moves with the clock. This one stays below
/// it for the next 146 million years, so every store refuses the same TTLs, and refuses them
/// before any I/O as [`CacheErrorKind::InvalidInput`].
pub const MAX_TTL: Duration = Duration::from_millis(1 << 62);

/// `from + after`, saturating: when the sum cannot be represented (a "wait forever" such as
/// `Duration::MAX`), about 30 years from `from`, as tokio's own timers do — no process waits
/// that long, and no addition panics.
pub(crate) fn saturating_deadline(from: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    from.checked_add(after).unwrap_or_else(|| from + FAR_FUTURE)
}

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
