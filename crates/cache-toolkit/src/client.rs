//! [`CacheClient`]: every cache operation, once, for both stores. Each call goes through
//! [`CacheClient::call`], which applies the key prefix, times the call, counts it (and its
//! error kind) in [`CacheMetrics`], traces it, and turns store errors into [`CacheError`].
//! This file holds the client, its construction, the near-cache handle and that shared
//! machinery; the operations are in `client/`, one file per command family (`strings`,
//! `keys`, `hashes`, `lists`, `locks`, `scripts`).

mod hashes;
mod keys;
mod lists;
mod locks;
mod scripts;
mod strings;

use std::{borrow::Cow, sync::Arc, time::Duration};

use fred::clients::Pool;
use tokio::time::Instant;

pub use lists::CappedPush;

use crate::{
    CacheError, EmbeddedStore, FlushCause, KeyPrefix, MAX_TTL, Op,
    embedded::{IncrementFailure, TextReadFailure, WrongType},
    metrics::CacheMetrics,
    near::{NearCache, NearCacheError, NearCacheSettings},
    primary_gate::{GateClosed, PrimaryGate},
    route::Route,
};

/// The kind of a [`CacheStore`], without the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Redis,
    Embedded,
}

impl StoreKind {
    /// `redis` or `embedded`, as logs name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Embedded => "embedded",
        }
    }
}

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum CacheStore {
    /// A connected Redis pool (standalone, sentinel or cluster). Its owner connects and closes it.
    Redis(RedisPool),
    /// The in-process store.
    Embedded(EmbeddedStore),
}

/// A connected Redis connection pool, opaque: this crate's API names no type of the Redis
/// client it uses (fred), so users are not tied to its version. `infra` builds one from the
/// settings; code that builds its own fred pool (tests, benchmarks) enables the `fred-pool`
/// feature for [`RedisPool::from_fred`].
#[derive(Clone, Debug)]
pub struct RedisPool {
    route: Route,
    /// Closed while the primary changes (sentinel): commands are refused instead of sent.
    gate: Option<Arc<PrimaryGate>>,
}

impl RedisPool {
    /// Wraps a fred pool its caller has connected (and will close). A connected cluster pool
    /// lends its settings and slot map only: commands go to one pool per primary that this
    /// crate opens and routes by hash slot, so a dead primary fails only its own slots
    /// (docs/CLUSTER.md); [`Self::close`] closes those pools. Call it inside a Tokio runtime.
    #[cfg(any(feature = "fred-pool", test))]
    pub fn from_fred(pool: Pool) -> Self {
        use fred::interfaces::ClientLike;
        let route = if !pool.next().is_clustered() {
            Route::Pool(pool)
        } else {
            match crate::cluster::ClusterNodes::from_cluster_pool(&pool) {
                Ok(Some(nodes)) => Route::Cluster(nodes),
                Ok(None) => {
                    tracing::warn!(
                        "redis cluster: the pool holds no slot map (not connected); fred routes every command"
                    );
                    Route::Pool(pool)
                }
                Err(error) => {
                    tracing::warn!(%error, "redis cluster: cannot open a pool per primary; fred routes every command");
                    Route::Pool(pool)
                }
            }
        };
        Self { route, gate: None }
    }

    /// Commands through this pool ask `gate` first and are refused (unavailable) while it is
    /// closed; a `READONLY` reply is reported to it.
    pub fn with_primary_gate(mut self, gate: Arc<PrimaryGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Whether this crate opened connections of its own (one pool per cluster primary) and
    /// routes commands itself; the fred pool it was built from is then not used.
    pub fn routes_itself(&self) -> bool {
        matches!(self.route, Route::Cluster(_))
    }

    /// Waits until every connection this crate opened itself (a cluster's pools, one per
    /// primary) is up; `false` when `timeout` passed first. Nothing to wait for otherwise: the
    /// caller connected its pool.
    pub async fn wait_until_connected(&self, timeout: Duration) -> bool {
        let Route::Cluster(_) = &self.route else { return true };
        let pools = self.route.pools();
        let connected = futures::future::try_join_all(
            pools.iter().map(|node| fred::interfaces::ClientLike::wait_for_connect(&node.pool)),
        );
        matches!(tokio::time::timeout(timeout, connected).await, Ok(Ok(_)))
    }

    /// Drops and rebuilds every connection; in a cluster, reads the slot map again first.
    pub async fn reconnect(&self) -> Result<(), CacheError> {
        let failed = |error: fred::error::Error| CacheError::from_fred(Op::Reconnect, None, error);
        if let Route::Cluster(nodes) = &self.route {
            nodes.refresh().await.map_err(failed)?;
        }
        for node in self.route.pools() {
            fred::interfaces::ClientLike::force_reconnection(&node.pool).await.map_err(failed)?;
        }
        Ok(())
    }

    /// Closes the connections this crate opened itself (a cluster's pools, one per primary).
    /// The pool given to [`Self::from_fred`] stays its caller's to close.
    pub async fn close(&self) {
        if let Route::Cluster(nodes) = &self.route {
            nodes.close().await;
        }
    }
}

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

/// A store's answer before it becomes a [`CacheError`].
pub(crate) enum StoreFailure {
    Redis(fred::error::Error),
    WrongType,
    /// A non-UTF-8 string read as text on the embedded store (fred's parse error on Redis).
    NotUtf8,
    /// A command the embedded store refuses with Redis's error reply (its text, without `ERR`).
    Refused(&'static str),
    /// Not sent: the primary is changing ([`PrimaryGate`]).
    PrimaryChanging(GateClosed),
}

impl From<fred::error::Error> for StoreFailure {
    fn from(error: fred::error::Error) -> Self {
        Self::Redis(error)
    }
}

impl From<WrongType> for StoreFailure {
    fn from(WrongType: WrongType) -> Self {
        Self::WrongType
    }
}

impl From<TextReadFailure> for StoreFailure {
    fn from(failure: TextReadFailure) -> Self {
        match failure {
            TextReadFailure::WrongType => Self::WrongType,
            TextReadFailure::NotUtf8 => Self::NotUtf8,
        }
    }
}

impl From<IncrementFailure> for StoreFailure {
    fn from(failure: IncrementFailure) -> Self {
        match failure {
            IncrementFailure::WrongType => Self::WrongType,
            IncrementFailure::NotAnInteger => Self::Refused("value is not an integer or out of range"),
            IncrementFailure::Overflow => Self::Refused("increment or decrement would overflow"),
        }
    }
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
    /// coherent by Redis client tracking on every pooled connection (see `near.rs` for the
    /// invariants, `docs/NEAR-CACHE.md` for the staleness bound in each failure case).
    ///
    /// Needs a pool built with RESP3 (as `infra` builds it). On Redis older than 7.0 the near
    /// cache stays off with a warning; the embedded store needs none (it is memory) and is
    /// returned as it is. Clones and [`Self::with_key_prefix`] clients share the near cache;
    /// its counters go to this client's [`CacheMetrics`].
    pub async fn with_near_cache(&self, settings: NearCacheSettings) -> Result<Self, NearCacheError> {
        let CacheStore::Redis(RedisPool { route, .. }) = &self.inner.store else { return Ok(self.clone()) };
        if self.inner.near.is_some() {
            return Ok(self.clone());
        }
        let near = match NearCache::start(route, settings, Arc::clone(&self.inner.metrics)).await {
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

    /// Whether Redis commands are held now because the primary is changing (the primary gate
    /// of a sentinel set-up is closed); always `false` for the embedded store and without a gate.
    pub fn primary_gate_closed(&self) -> bool {
        match &self.inner.store {
            CacheStore::Redis(RedisPool { gate: Some(gate), .. }) => gate.closed().is_some(),
            CacheStore::Redis(_) | CacheStore::Embedded(_) => false,
        }
    }

    /// Which kind of store this client has.
    pub fn store_kind(&self) -> StoreKind {
        match self.inner.store {
            CacheStore::Redis(_) => StoreKind::Redis,
            CacheStore::Embedded(_) => StoreKind::Embedded,
        }
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
        let outcome = match &self.inner.store {
            CacheStore::Redis(RedisPool { route, gate }) => {
                let closed = gate.as_deref().and_then(PrimaryGate::closed);
                match closed {
                    Some(why) => Err(StoreFailure::PrimaryChanging(why)),
                    None => on_redis(route).await.map_err(|error| {
                        route.report(&error);
                        if let Some(gate) = gate.as_deref()
                            && crate::error::is_read_only_reply(&error)
                        {
                            gate.report_read_only();
                        }
                        StoreFailure::from(error)
                    }),
                }
            }
            CacheStore::Embedded(store) => on_embedded(store).await.map_err(Into::into),
        };
        if let Some(near) = &self.inner.near
            && !operation.is_read_only()
        {
            near.invalidate(key);
        }
        let result = outcome.map_err(|failure| match failure {
            StoreFailure::Redis(error) => CacheError::from_fred(operation, Some(key), error),
            StoreFailure::WrongType => CacheError::wrong_type(operation, key),
            StoreFailure::NotUtf8 => CacheError::bad_data(operation, key, "Could not convert to string."),
            StoreFailure::Refused(reply) => CacheError::rejected(operation, key, reply),
            StoreFailure::PrimaryChanging(why) => CacheError::unavailable(operation, Some(key), why.as_str()),
        });
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
        let result = match &self.inner.store {
            // A replica answers PING too: while the primary is changing, commands are refused,
            // and so is the question whether the store can serve them.
            CacheStore::Redis(RedisPool { route, gate }) => match gate.as_deref().and_then(PrimaryGate::closed) {
                Some(why) => Err(CacheError::unavailable(Op::Ping, None, why.as_str())),
                None => ping_every_connection(route).await,
            },
            CacheStore::Embedded(_) => Ok(Duration::ZERO),
        };
        self.finish(Op::Ping, "", started, result)
    }
}

/// PING on every connection; the slowest round trip. In a cluster Tessera routes itself, the
/// primaries are asked at once and one that does not answer fails only if none does: a dead
/// primary stalls its own slots, not the whole store (docs/CLUSTER.md).
async fn ping_every_connection(route: &Route) -> Result<Duration, CacheError> {
    use fred::interfaces::ClientLike;
    let ping_pool = async |pool: Pool| {
        let mut slowest = Duration::ZERO;
        for client in pool.clients() {
            let started = Instant::now();
            client.ping::<()>(None).await.map_err(|error| CacheError::from_fred(Op::Ping, None, error))?;
            slowest = slowest.max(started.elapsed());
        }
        Ok::<_, CacheError>(slowest)
    };
    let cluster = matches!(route, Route::Cluster(_));
    let answers = futures::future::join_all(route.pools().into_iter().map(|node| ping_pool(node.pool))).await;
    let (mut slowest, mut first_error) = (None, None);
    for answer in answers {
        match answer {
            Ok(latency) => slowest = Some(slowest.unwrap_or(Duration::ZERO).max(latency)),
            Err(error) => {
                if cluster {
                    tracing::warn!(%error, "redis cluster: a primary does not answer PING");
                }
                first_error.get_or_insert(error);
            }
        }
    }
    match (slowest, first_error) {
        (Some(slowest), Some(_)) if cluster => Ok(slowest),
        (_, Some(error)) => Err(error),
        (slowest, None) => Ok(slowest.unwrap_or(Duration::ZERO)),
    }
}
