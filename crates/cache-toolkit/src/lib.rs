//! The cache toolkit: [`CacheClient`], the one type every other layer and every library user
//! calls to reach the cache — strings, JSON, lists, hashes, TTLs, locks, batch and pattern
//! deletes — on Redis (standalone, sentinel, cluster, through a fred pool) or on the
//! [`EmbeddedStore`], with the same semantics; [`CacheError`], its one error type;
//! [`CacheMetrics`], the counters the server exports; and [`BloomGuard`], a shared Bloom filter
//! of known keys against cache penetration.
//!
//! It is the top of the cache stack: the stores, routing and errors are the `store` crate's, the
//! L1 is the `near-cache` crate's, and both are re-exported here so a user needs this crate only.
//! It owns no configuration and connects nothing: `infra` builds the fred pool or the embedded
//! store and hands it over.

mod aside;
mod bloom;
mod client;
pub mod json;
mod key;
mod lock;
mod replication;

pub use aside::{
    CacheValue, DEFAULT_EARLY_REFRESH_BETA, DEFAULT_JITTER, DEFAULT_NEGATIVE_TTL, DEFAULT_STALE_CAPACITY, LoadError,
    LoadPolicy, LoadPolicyBuilder, LoadPolicyError, Loaded,
};
pub use bloom::BloomGuard;
pub use client::{CacheClient, CacheOptions, CappedPush};
pub use key::{KeyPrefix, KeyPrefixError};
pub use lock::{LockGuard, LockLoss, LockOptions, LockRelease};
pub use near_cache::{ListVerdict, NearCacheError, NearCacheSettings};
pub use replication::{ReplicaWait, Replication};
pub use store::embedded::{DataDirError, Durability, Fsync, JOURNAL_FILE, Recovered, Replayed};
pub use store::{
    CacheError, CacheErrorKind, CacheEvent, CacheMetrics, CacheScript, CacheStore, EmbeddedStats, EmbeddedStore,
    FlushCause, GateClosed, LATENCY_BUCKETS_SECONDS, ListEnd, MAX_TTL, MetricsSnapshot, Op, PrimaryGate, PrimaryPools,
    RedactedKey, RedisPool, ScriptReply, StoreKind, Ttl,
};

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
