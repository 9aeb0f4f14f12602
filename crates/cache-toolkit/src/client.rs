//! [`CacheClient`]: every cache operation, once, for both stores. Each call goes through
//! [`CacheClient::call`], which applies the key prefix, times the call, counts it (and its
//! error kind) in [`CacheMetrics`], traces it, and turns store errors into [`CacheError`].
//! This file holds the client, its construction, the near-cache handle and that shared
//! machinery; the operations are in `client/`, one file per command family (`strings`,
//! `keys`, `hashes`, `lists`, `locks`, `scripts`).
//!
//! `call` also drops the key from the near cache, before it returns, for every operation whose
//! [`Op`] is not read-only ([`Op::is_read_only`]). A TTL is checked before any I/O
//! (`check_ttl`): under 1 ms or over [`MAX_TTL`] is refused as invalid input, and counted.

mod hashes;
mod keys;
mod lists;
mod locks;
mod scripts;
mod strings;

use std::{borrow::Cow, sync::Arc, time::Duration};

use near_cache::{NearCache, NearCacheError, NearCacheSettings};
use store::{CacheMetrics, CacheStore, EmbeddedStore, FlushCause, Route, StoreFailure, StoreKind, embedded::WrongType};
use tokio::time::Instant;

pub use lists::CappedPush;

use crate::{CacheError, KeyPrefix, MAX_TTL, Op};

/// How a [`CacheClient`] behaves around its store.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Put in front of every key and pattern; empty by default (the Python system's keys).
    pub key_prefix: KeyPrefix,
    /// Operations at least this slow are counted and logged (rate-limited).
    pub slow_threshold: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self { key_prefix: KeyPrefix::default(), slow_threshold: Duration::from_millis(50) }
    }
}

/// A cheap-to-clone handle on the cache; clones share the store and the metrics.
/// Keys are always given and returned without the prefix.
#[derive(Clone, Debug)]
pub struct CacheClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: CacheStore,
    prefix: KeyPrefix,
    metrics: Arc<CacheMetrics>,
    /// The near cache (L1), on Redis when asked for; shared by clients made with other prefixes.
    near: Option<Arc<NearCache>>,
}

impl CacheClient {
    pub fn new(store: CacheStore, options: CacheOptions) -> Self {
        let metrics = Arc::new(CacheMetrics::new(options.slow_threshold));
        Self { inner: Arc::new(Inner { store, prefix: options.key_prefix, metrics, near: None }) }
    }

    /// A client on a fresh embedded store with default options (tests, examples, dev).
    pub fn embedded() -> Self {
        Self::new(CacheStore::Embedded(EmbeddedStore::new()), CacheOptions::default())
    }

    /// Another client on the same store (same connections or keyspace) under another prefix,
    /// with its own metrics.
    pub fn with_key_prefix(&self, key_prefix: KeyPrefix) -> Self {
        let options = CacheOptions { key_prefix, slow_threshold: self.inner.metrics.slow_threshold() };
        let client = Self::new(self.inner.store.clone(), options);
        match &self.inner.near {
            Some(near) => Self {
                inner: Arc::new(Inner {
                    store: client.inner.store.clone(),
                    prefix: client.inner.prefix.clone(),
                    metrics: Arc::clone(&client.inner.metrics),
                    near: Some(Arc::clone(near)),
                }),
            },
            None => client,
        }
    }

    /// The same client with a near cache (L1) in front of Redis for [`Self::get_value`] (and so
    /// [`Self::get_json`] and `get_or_load`): repeated reads are answered from memory, and kept
    /// coherent by Redis client tracking on every pooled connection (see the `near-cache` crate for the
    /// invariants, `docs/NEAR-CACHE.md` for the staleness bound in each failure case).
    ///
    /// Needs a pool built with RESP3 (as `infra` builds it). On Redis older than 7.0 the near
    /// cache stays off with a warning; the embedded store needs none (it is memory) and is
    /// returned as it is. Clones and [`Self::with_key_prefix`] clients share the near cache;
    /// its counters go to this client's [`CacheMetrics`].
    pub async fn with_near_cache(&self, settings: NearCacheSettings) -> Result<Self, NearCacheError> {
        let CacheStore::Redis(pool) = &self.inner.store else { return Ok(self.clone()) };
        if self.inner.near.is_some() {
            return Ok(self.clone());
        }
        let near = match NearCache::start(
            pool.route(),
            pool.primary_gate().cloned(),
            settings,
            Arc::clone(&self.inner.metrics),
        )
        .await
        {
            Ok(near) => near,
            Err(NearCacheError::RedisTooOld { version }) => {
                tracing::warn!(%version, "near cache off: Redis is older than 7.0");
                return Ok(self.clone());
            }
            Err(error) => return Err(error),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store: self.inner.store.clone(),
                prefix: self.inner.prefix.clone(),
                metrics: Arc::clone(&self.inner.metrics),
                near: Some(near),
            }),
        })
    }

    /// Whether reads go through a near cache.
    pub fn near_cache_enabled(&self) -> bool {
        self.inner.near.is_some()
    }

    /// The near cache's settings, when there is one.
    pub fn near_cache_settings(&self) -> Option<&NearCacheSettings> {
        self.inner.near.as_deref().map(NearCache::settings)
    }

    /// Drops every near-cache entry (after a SWAPDB, which Redis does not announce, say).
    pub fn flush_near_cache(&self) {
        if let Some(near) = &self.inner.near {
            near.invalidate_everything(Some(FlushCause::Requested));
        }
    }

    /// What the near cache would answer for `key` now, without asking Redis or counting:
    /// `None` when it holds nothing it may serve. For tests and diagnostics.
    pub fn near_cache_peek(&self, key: &str) -> Option<Option<String>> {
        self.inner.near.as_ref()?.peek(&self.key(key))
    }

    /// Test hook: the invalidation listeners stop reading for `duration`, so fred's channel
    /// overflows as it would behind a slow listener.
    #[doc(hidden)]
    pub fn hold_near_cache_listeners_for(&self, duration: Duration) {
        if let Some(near) = &self.inner.near {
            near.hold_listeners_for(duration);
        }
    }

    /// Test hook: every near-cache insert waits this long after its reply arrived, which
    /// widens the window in which an invalidation races the insert.
    #[doc(hidden)]
    pub fn delay_near_cache_inserts(&self, delay: Duration) {
        if let Some(near) = &self.inner.near {
            near.delay_inserts_by(delay);
        }
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.inner.metrics
    }

    pub fn key_prefix(&self) -> &KeyPrefix {
        &self.inner.prefix
    }

    /// The embedded store's sizes; `None` on Redis.
    pub fn embedded_stats(&self) -> Option<crate::EmbeddedStats> {
        match &self.inner.store {
            CacheStore::Embedded(store) => Some(store.stats()),
            CacheStore::Redis(_) => None,
        }
    }

    /// A Redis Cluster's primaries by the state of the pool kept for each (connected, or
    /// reconnecting); `None` on the embedded store and on a standalone or sentinel Redis.
    pub fn primary_pools(&self) -> Option<crate::PrimaryPools> {
        self.inner.store.primary_pools()
    }

    /// Whether Redis commands are held now because the primary is changing (the primary gate
    /// of a sentinel set-up is closed); always `false` for the embedded store and without a gate.
    pub fn primary_gate_closed(&self) -> bool {
        self.inner.store.primary_gate_closed()
    }

    /// Which kind of store this client has.
    pub fn store_kind(&self) -> StoreKind {
        self.inner.store.kind()
    }

    pub(crate) fn key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        self.inner.prefix.apply(key)
    }

    /// How errors and log lines show `key` (given without the prefix, as to every operation).
    pub fn redacted_key(&self, key: &str) -> crate::RedactedKey {
        crate::RedactedKey::new(&self.key(key))
    }

    /// Runs one operation on whichever store this client has.
    pub(crate) async fn call<T>(
        &self,
        operation: Op,
        key: &str,
        on_redis: impl AsyncFnOnce(&Route) -> Result<T, fred::error::Error>,
        on_embedded: impl FnOnce(&EmbeddedStore) -> Result<T, WrongType>,
    ) -> Result<T, CacheError> {
        self.call_refusing(operation, key, on_redis, on_embedded).await
    }

    /// [`Self::call`] for an embedded side that can refuse with more than [`WrongType`]
    /// (a text read of a non-UTF-8 value, an INCR of a non-integer).
    pub(crate) async fn call_refusing<T, Refusal: Into<StoreFailure>>(
        &self,
        operation: Op,
        key: &str,
        on_redis: impl AsyncFnOnce(&Route) -> Result<T, fred::error::Error>,
        on_embedded: impl FnOnce(&EmbeddedStore) -> Result<T, Refusal>,
    ) -> Result<T, CacheError> {
        self.call_in_steps(operation, key, on_redis, async move |store| on_embedded(store)).await
    }

    /// [`Self::call_refusing`] for an embedded side that works in steps and yields between them
    /// (a SCAN), so it must not hold the keyspace lock for the whole operation.
    async fn call_in_steps<T, Refusal: Into<StoreFailure>>(
        &self,
        operation: Op,
        key: &str,
        on_redis: impl AsyncFnOnce(&Route) -> Result<T, fred::error::Error>,
        on_embedded: impl AsyncFnOnce(&EmbeddedStore) -> Result<T, Refusal>,
    ) -> Result<T, CacheError> {
        let started = Instant::now();
        let outcome = self.inner.store.run(operation, on_redis, on_embedded).await;
        if let Some(near) = &self.inner.near
            && !operation.is_read_only()
        {
            near.invalidate(key);
        }
        let result = outcome.map_err(|failure| failure.into_error(operation, key));
        self.finish(operation, key, started, result)
    }

    pub(super) fn finish<T>(
        &self,
        operation: Op,
        key: &str,
        started: Instant,
        result: Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let latency = started.elapsed();
        let error_kind = result.as_ref().err().map(CacheError::kind);
        self.inner.metrics.record(operation, key, latency, error_kind);
        tracing::trace!(
            operation = operation.as_str(),
            key = %crate::RedactedKey::new(key),
            latency_us = latency.as_micros() as u64,
            ok = error_kind.is_none()
        );
        result
    }

    /// Invalidates `stored` keys (already prefixed) in the near cache after a multi-key write.
    fn written(&self, stored: &[String]) {
        if let Some(near) = &self.inner.near {
            for key in stored {
                near.invalidate(key);
            }
        }
    }

    fn read<T>(&self, found: Result<Option<T>, CacheError>) -> Result<Option<T>, CacheError> {
        if let Ok(value) = &found {
            self.inner.metrics.record_read(value.is_some());
        }
        found
    }

    /// Refuses a TTL under 1 ms or over [`MAX_TTL`] before any I/O (and counts the refusal).
    pub(crate) fn check_ttl(&self, operation: Op, key: &str, ttl: Option<Duration>) -> Result<(), CacheError> {
        match ttl {
            Some(ttl) if ttl < Duration::from_millis(1) => {
                Err(self.refuse(operation, key, "a TTL must be at least 1 ms".to_owned()))
            }
            Some(ttl) => self.check_ttl_ceiling(operation, key, ttl),
            None => Ok(()),
        }
    }

    /// Refuses a TTL over [`MAX_TTL`] (which Redis would refuse as an invalid expire time, and
    /// the embedded store could not represent) before any I/O.
    fn check_ttl_ceiling(&self, operation: Op, key: &str, ttl: Duration) -> Result<(), CacheError> {
        if ttl > MAX_TTL {
            return Err(self.refuse(operation, key, format!("a TTL must be at most {} ms", MAX_TTL.as_millis())));
        }
        Ok(())
    }

    /// An [`crate::CacheErrorKind::InvalidInput`] error, counted like any failed operation.
    pub(crate) fn refuse(&self, operation: Op, key: &str, problem: String) -> CacheError {
        let error = CacheError::invalid_input(operation, Some(key), problem);
        self.inner.metrics.record(operation, key, Duration::ZERO, Some(error.kind()));
        error
    }

    /// PING every connection (Redis) and return the slowest round trip; the embedded store
    /// answers at once.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let started = Instant::now();
        let result = self.inner.store.ping().await;
        self.finish(Op::Ping, "", started, result)
    }
}
