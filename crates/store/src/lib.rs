//! The store layer: where cache data lives and how one operation reaches it. [`CacheStore`] is
//! either a Redis route ([`RedisPool`]: a standalone or Sentinel fred pool, or our own cluster
//! router with one pool per primary, behind the Sentinel [`PrimaryGate`]) or the in-process
//! [`EmbeddedStore`]. Every operation is named by an [`Op`], whose exhaustive
//! [`Op::is_read_only`] decides near-cache invalidation; every failure becomes a [`CacheError`]
//! that shows keys only as [`RedactedKey`]s; [`CacheMetrics`] counts it all.
//!
//! It depends on `embedded-store` alone, whose keyspace and value types ([`Ttl`], [`ListEnd`])
//! it re-exports (`store::embedded`). Its modules are public to the crates above it (`near-cache`, `cache-toolkit`), which build the
//! typed API; library users reach it through `cache-toolkit`, whose API names no fred type.

mod cluster;
mod error;
mod metrics;
mod op;
mod pool;
mod primary_gate;
mod redact;
pub mod redis;
mod route;
pub mod script;

pub use cluster::{ClusterNodes, PrimaryPools, PrimaryWatcher, Redirect, WatcherReply};
pub use embedded_store::{
    self as embedded, EmbeddedStats, EmbeddedStore, ListEnd, MAX_TTL, Ttl, decoded, saturating_deadline,
};
pub use error::{CacheError, CacheErrorKind, is_read_only_reply};
pub use metrics::{CacheEvent, CacheMetrics, FlushCause, LATENCY_BUCKETS_SECONDS, MetricsSnapshot};
pub use op::Op;
pub use pool::{CacheStore, RedisPool, StoreFailure, StoreKind};
pub use primary_gate::{GateClosed, PrimaryGate};
pub use redact::RedactedKey;
pub use route::{Route, RoutePool, same_pool};
pub use script::{CacheScript, ScriptReply};
