//! The store layer: where cache data lives and how one operation reaches it. [`CacheStore`] is
//! either a Redis route ([`RedisPool`]: a standalone or Sentinel fred pool, or our own cluster
//! router with one pool per primary, behind the Sentinel [`PrimaryGate`]) or the in-process
//! [`EmbeddedStore`]. Every operation is named by an [`Op`], whose exhaustive
//! [`Op::is_read_only`] decides near-cache invalidation; every failure becomes a [`CacheError`]
//! that shows keys only as [`RedactedKey`]s; [`CacheMetrics`] counts it all.
//!
//! This crate is the bottom of the cache stack and depends on no other Tessera crate. Its
//! modules are public to the crates above it (`near-cache`, `cache-toolkit`), which build the
//! typed API; library users reach it through `cache-toolkit`, whose API names no fred type.

mod cluster;
pub mod decoded;
pub mod embedded;
mod error;
mod metrics;
mod op;
mod pool;
mod primary_gate;
mod redact;
pub mod redis;
mod route;
pub mod script;

use std::time::Duration;

pub use cluster::{ClusterNodes, PrimaryWatcher, WatcherReply};
pub use embedded::{EmbeddedStats, EmbeddedStore};
pub use error::{CacheError, CacheErrorKind, is_read_only_reply};
pub use metrics::{CacheEvent, CacheMetrics, FlushCause, LATENCY_BUCKETS_SECONDS, MetricsSnapshot};
pub use op::Op;
pub use pool::{CacheStore, RedisPool, StoreFailure, StoreKind};
pub use primary_gate::{GateClosed, PrimaryGate};
pub use redact::RedactedKey;
pub use route::{Route, RoutePool, same_pool};
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
/// that long, and no addition panics. Every deadline built from a caller's duration in the
/// cache stack uses it: lock waits and leases, `get_or_load`'s wait, embedded TTLs.
pub fn saturating_deadline(from: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    from.checked_add(after).unwrap_or_else(|| from + FAR_FUTURE)
}
