//! [`CacheClient`]: every cache operation, once, for both stores. Each call goes through
//! [`CacheClient::call`], which applies the key prefix, times the call, counts it (and its
//! error kind) in [`CacheMetrics`], traces it, and turns store errors into [`CacheError`].

use std::{borrow::Cow, collections::HashMap, sync::Arc, time::Duration};

use fred::clients::Pool;
use serde::{Serialize, de::DeserializeOwned};
use tokio::time::Instant;

use crate::{
    CacheError, CacheScript, EmbeddedStore, FlushCause, KeyPrefix, ListEnd, MAX_TTL, ScriptReply, Ttl,
    embedded::{IncrementFailure, TextReadFailure, WrongType},
    metrics::CacheMetrics,
    near::{NearCache, NearCacheError, NearCacheSettings},
    primary_gate::{GateClosed, PrimaryGate},
    redis,
};

/// Operations that change nothing. Every other operation invalidates its key in the near cache
/// when it returns (successful or not: a timed-out write may still have been applied).
const READ_ONLY_OPERATIONS: [&str; 15] = [
    "replica_count",
    "replication_barrier",
    "list_contains",
    "get_value_and_list_contains",
    "get_value",
    "get_hash",
    "get_hash_all",
    "list_range",
    "list_position",
    "list_len",
    "key_exists",
    "existing_keys",
    "get_ttl",
    "ping",
    "load_script",
];

/// What [`CacheClient::push_to_capped_list`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CappedPush {
    /// The list's length after the push and the trim: at most the cap.
    pub len: u64,
    /// What the trim removed from the tail, in list order (the oldest last).
    pub evicted: Vec<String>,
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
    pool: Pool,
    /// Closed while the primary changes (sentinel): commands are refused instead of sent.
    gate: Option<Arc<PrimaryGate>>,
}

impl RedisPool {
    /// Wraps a fred pool its caller has connected (and will close).
    #[cfg(any(feature = "fred-pool", test))]
    pub fn from_fred(pool: Pool) -> Self {
        Self { pool, gate: None }
    }

    /// Commands through this pool ask `gate` first and are refused (unavailable) while it is
    /// closed; a `READONLY` reply is reported to it.
    pub fn with_primary_gate(mut self, gate: Arc<PrimaryGate>) -> Self {
        self.gate = Some(gate);
        self
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
        let CacheStore::Redis(RedisPool { pool, .. }) = &self.inner.store else { return Ok(self.clone()) };
        if self.inner.near.is_some() {
            return Ok(self.clone());
        }
        let near = match NearCache::start(pool, settings, Arc::clone(&self.inner.metrics)).await {
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

    /// `redis` or `embedded`.
    pub fn store_kind(&self) -> &'static str {
        match self.inner.store {
            CacheStore::Redis(_) => "redis",
            CacheStore::Embedded(_) => "embedded",
        }
    }

    /// Whether [`Self::run_script`] works here: Redis standalone or sentinel. The embedded
    /// store runs no Lua, and a cluster refuses scripts that touch keys of several slots, so
    /// callers fall back to plain operations there.
    pub fn runs_scripts(&self) -> bool {
        match &self.inner.store {
            CacheStore::Redis(RedisPool { pool, .. }) => !fred::interfaces::ClientLike::is_clustered(pool.next()),
            CacheStore::Embedded(_) => false,
        }
    }

    /// Runs a Lua script by EVALSHA (reloading it on NOSCRIPT). `keys` get the key prefix;
    /// `args` are passed as they are. On a store that [cannot](Self::runs_scripts) run
    /// scripts this is an [`crate::CacheErrorKind::InvalidInput`] error.
    pub async fn run_script(
        &self,
        script: &CacheScript,
        keys: &[&str],
        args: &[&str],
    ) -> Result<ScriptReply, CacheError> {
        let first = keys.first().map_or(Cow::Borrowed(""), |key| self.key(key)).into_owned();
        if !self.runs_scripts() {
            return Err(CacheError::invalid_input("run_script", Some(&first), "this store does not run scripts"));
        }
        let keys: Vec<String> = keys.iter().map(|key| self.key(key).into_owned()).collect();
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let reply = self
            .call(
                "run_script",
                &first,
                async |pool| crate::script::run(pool, script, keys.clone(), args).await,
                |_| unreachable!("runs_scripts() is false for the embedded store"),
            )
            .await;
        self.written(&keys);
        reply
    }

    /// Loads a script on every primary ahead of its first use (optional: EVALSHA reloads it
    /// on NOSCRIPT anyway). Nothing to do where scripts do not run.
    pub async fn load_script(&self, script: &CacheScript) -> Result<(), CacheError> {
        if !self.runs_scripts() {
            return Ok(());
        }
        self.call("load_script", "", async |pool| crate::script::load(pool, script).await, |_| Ok(())).await
    }

    pub(crate) fn key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        self.inner.prefix.apply(key)
    }

    /// Runs one operation on whichever store this client has.
    pub(crate) async fn call<T>(
        &self,
        operation: &'static str,
        key: &str,
        on_redis: impl AsyncFnOnce(&Pool) -> Result<T, fred::error::Error>,
        on_embedded: impl FnOnce(&EmbeddedStore) -> Result<T, WrongType>,
    ) -> Result<T, CacheError> {
        self.call_refusing(operation, key, on_redis, on_embedded).await
    }

    /// [`Self::call`] for an embedded side that can refuse with more than [`WrongType`]
    /// (a text read of a non-UTF-8 value, an INCR of a non-integer).
    pub(crate) async fn call_refusing<T, Refusal: Into<StoreFailure>>(
        &self,
        operation: &'static str,
        key: &str,
        on_redis: impl AsyncFnOnce(&Pool) -> Result<T, fred::error::Error>,
        on_embedded: impl FnOnce(&EmbeddedStore) -> Result<T, Refusal>,
    ) -> Result<T, CacheError> {
        self.call_in_steps(operation, key, on_redis, async move |store| on_embedded(store)).await
    }

    /// [`Self::call_refusing`] for an embedded side that works in steps and yields between them
    /// (a SCAN), so it must not hold the keyspace lock for the whole operation.
    async fn call_in_steps<T, Refusal: Into<StoreFailure>>(
        &self,
        operation: &'static str,
        key: &str,
        on_redis: impl AsyncFnOnce(&Pool) -> Result<T, fred::error::Error>,
        on_embedded: impl AsyncFnOnce(&EmbeddedStore) -> Result<T, Refusal>,
    ) -> Result<T, CacheError> {
        let started = Instant::now();
        let outcome = match &self.inner.store {
            CacheStore::Redis(RedisPool { pool, gate }) => match gate.as_deref() {
                None => on_redis(pool).await.map_err(StoreFailure::from),
                Some(gate) => match gate.closed() {
                    Some(why) => Err(StoreFailure::PrimaryChanging(why)),
                    None => on_redis(pool).await.map_err(|error| {
                        if crate::error::is_read_only_reply(&error) {
                            gate.report_read_only();
                        }
                        StoreFailure::from(error)
                    }),
                },
            },
            CacheStore::Embedded(store) => on_embedded(store).await.map_err(Into::into),
        };
        if let Some(near) = &self.inner.near {
            if !READ_ONLY_OPERATIONS.contains(&operation) {
                near.invalidate(key);
            }
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

    fn finish<T>(
        &self,
        operation: &'static str,
        key: &str,
        started: Instant,
        result: Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let latency = started.elapsed();
        let error_kind = result.as_ref().err().map(CacheError::kind);
        self.inner.metrics.record(operation, key, latency, error_kind);
        tracing::trace!(
            operation,
            key = crate::error::cut_key(key).as_ref(),
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
    pub(crate) fn check_ttl(
        &self,
        operation: &'static str,
        key: &str,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
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
    fn check_ttl_ceiling(&self, operation: &'static str, key: &str, ttl: Duration) -> Result<(), CacheError> {
        if ttl > MAX_TTL {
            return Err(self.refuse(operation, key, format!("a TTL must be at most {} ms", MAX_TTL.as_millis())));
        }
        Ok(())
    }

    /// An [`crate::CacheErrorKind::InvalidInput`] error, counted like any failed operation.
    pub(crate) fn refuse(&self, operation: &'static str, key: &str, problem: String) -> CacheError {
        let error = CacheError::invalid_input(operation, Some(key), problem);
        self.inner.metrics.record(operation, key, Duration::ZERO, Some(error.kind()));
        error
    }

    /// PING every connection (Redis) and return the slowest round trip; the embedded store
    /// answers at once.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let started = Instant::now();
        let result = match &self.inner.store {
            CacheStore::Redis(RedisPool { pool, .. }) => ping_every_connection(pool).await,
            CacheStore::Embedded(_) => Ok(Duration::ZERO),
        };
        self.finish("ping", "", started, result)
    }

    // --- strings -------------------------------------------------------------------------

    /// SET `key` to `value`, with an optional TTL (none: the key never expires, and any earlier
    /// TTL is cleared, as Redis does).
    pub async fn set_value(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), CacheError> {
        let key = self.key(key);
        self.check_ttl("set_value", &key, ttl)?;
        self.call(
            "set_value",
            &key,
            async |pool| redis::set(pool, &key, value, ttl, false).await,
            |store| Ok(store.set(&key, value, ttl, false)),
        )
        .await
        .map(drop)
    }

    /// SET NX: writes only if the key is absent; `true` when written.
    pub async fn set_value_if_absent(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.check_ttl("set_value_if_absent", &key, ttl)?;
        self.call(
            "set_value_if_absent",
            &key,
            async |pool| redis::set(pool, &key, value, ttl, true).await,
            |store| Ok(store.set(&key, value, ttl, true)),
        )
        .await
    }

    /// GET: `None` when the key is missing (or expired). A value that is not UTF-8 (a Bloom
    /// bitmap, say) is a [`crate::CacheErrorKind::BadData`] error on every store.
    pub async fn get_value(&self, key: &str) -> Result<Option<String>, CacheError> {
        let key = self.key(key);
        let found = match &self.inner.near {
            Some(near) => {
                if let Some(cached) = near.lookup(&key) {
                    self.inner.metrics.record_read(cached.is_some());
                    return Ok(cached);
                }
                self.call_refusing(
                    "get_value",
                    &key,
                    async |pool| near.read_through(pool, &key).await,
                    |store| store.get(&key),
                )
                .await
            }
            None => {
                self.call_refusing(
                    "get_value",
                    &key,
                    async |pool| redis::get(pool, &key).await,
                    |store| store.get(&key),
                )
                .await
            }
        };
        self.read(found)
    }

    // --- JSON (the seed's set_dict/get_dict and set_list/get_list_value) --------------------

    /// Stores any serializable value as compact JSON (simd-json), like the seed's orjson.
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let json = crate::json::encode(value)
            .map_err(|error| CacheError::invalid_input("set_json", Some(&self.key(key)), error))?;
        self.set_value(key, &json, ttl).await
    }

    /// Reads a JSON value: `None` when missing; a stored value that is not valid JSON for `T`
    /// is a [`crate::CacheErrorKind::BadData`] error naming the key.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let Some(text) = self.get_value(key).await? else { return Ok(None) };
        let mut bytes = text.into_bytes();
        crate::json::decode::<T>(&mut bytes)
            .map(Some)
            .map_err(|error| CacheError::bad_data("get_json", &self.key(key), error))
    }

    // --- keys --------------------------------------------------------------------------------

    /// DEL one key; `true` when it existed.
    pub async fn delete_key(&self, key: &str) -> Result<bool, CacheError> {
        let stored = self.key(key).into_owned();
        let deleted = self
            .call(
                "delete_key",
                &stored,
                async |pool| redis::unlink(pool, std::slice::from_ref(&stored)).await,
                |store| Ok(store.delete(&[stored.as_str()])),
            )
            .await?;
        Ok(deleted > 0)
    }

    /// Sets a TTL on an existing key (`false` when it does not exist). A zero TTL deletes the
    /// key, as in Redis; one over [`MAX_TTL`] is refused.
    pub async fn set_expiry(&self, key: &str, ttl: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.check_ttl_ceiling("set_expiry", &key, ttl)?;
        self.call(
            "set_expiry",
            &key,
            async |pool| redis::expire(pool, &key, ttl).await,
            |store| Ok(store.expire(&key, ttl)),
        )
        .await
    }

    pub async fn key_exists(&self, key: &str) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.call("key_exists", &key, async |pool| redis::exists(pool, &key).await, |store| Ok(store.exists(&key)))
            .await
    }

    /// Which of `keys` exist, in order; one round trip (a pipeline), even in a cluster. An
    /// empty list costs nothing.
    pub async fn existing_keys<K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<bool>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let stored: Vec<String> = keys.iter().map(|key| self.key(key.as_ref()).into_owned()).collect();
        let first = stored[0].clone();
        self.call(
            "existing_keys",
            &first,
            async |pool| redis::existing(pool, &stored).await,
            |store| Ok(stored.iter().map(|key| store.exists(key)).collect()),
        )
        .await
    }

    pub async fn get_ttl(&self, key: &str) -> Result<Ttl, CacheError> {
        let key = self.key(key);
        self.call("get_ttl", &key, async |pool| redis::ttl(pool, &key).await, |store| Ok(store.ttl(&key))).await
    }

    /// Deletes many keys; works in a cluster (grouped by hash slot). An empty list costs no
    /// round trip. Returns how many existed.
    pub async fn batch_delete_keys<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let stored: Vec<String> = keys.iter().map(|key| self.key(key.as_ref()).into_owned()).collect();
        let first = stored[0].clone();
        let deleted = self
            .call(
                "batch_delete_keys",
                &first,
                async |pool| redis::unlink(pool, &stored).await,
                |store| Ok(store.delete(&stored.iter().map(String::as_str).collect::<Vec<_>>())),
            )
            .await;
        self.written(&stored);
        deleted
    }

    /// Deletes every key matching a Redis glob pattern (under the prefix), by SCAN over every
    /// primary — never KEYS. Returns how many were deleted.
    pub async fn delete_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let pattern = format!("{}{pattern}", crate::embedded::glob_escape(self.inner.prefix.as_str()));
        let deleted = self
            .call_in_steps(
                "delete_matching",
                &pattern,
                async |pool| redis::delete_matching(pool, &pattern).await,
                async |store| Ok::<_, WrongType>(store.delete_matching(&pattern).await),
            )
            .await;
        // Which keys went is not known here: drop everything (tracking would tell, but only
        // after this call returned).
        if let Some(near) = &self.inner.near {
            near.invalidate_everything(None);
        }
        deleted
    }

    // --- hashes ------------------------------------------------------------------------------

    /// HSET one field; `true` when the field is new.
    pub async fn set_hash(&self, name: &str, field: &str, value: &str) -> Result<bool, CacheError> {
        let name = self.key(name);
        self.call(
            "set_hash",
            &name,
            async |pool| redis::hash_set(pool, &name, field, value).await,
            |store| store.hash_set(&name, field, value),
        )
        .await
    }

    pub async fn get_hash(&self, name: &str, field: &str) -> Result<Option<String>, CacheError> {
        let name = self.key(name);
        let found = self
            .call(
                "get_hash",
                &name,
                async |pool| redis::hash_get(pool, &name, field).await,
                |store| store.hash_get(&name, field),
            )
            .await;
        self.read(found)
    }

    /// HGETALL: every field; empty when the hash is missing.
    pub async fn get_hash_all(&self, name: &str) -> Result<HashMap<String, String>, CacheError> {
        let name = self.key(name);
        self.call(
            "get_hash_all",
            &name,
            async |pool| redis::hash_get_all(pool, &name).await,
            |store| store.hash_get_all(&name),
        )
        .await
    }

    /// HDEL one field; `true` when it existed.
    pub async fn delete_hash_field(&self, name: &str, field: &str) -> Result<bool, CacheError> {
        let name = self.key(name);
        self.call(
            "delete_hash_field",
            &name,
            async |pool| redis::hash_delete(pool, &name, field).await,
            |store| store.hash_delete(&name, field),
        )
        .await
    }

    // --- lists -------------------------------------------------------------------------------

    /// LPUSH or RPUSH one value; returns the list's new length.
    pub async fn push_to_list(&self, name: &str, value: &str, end: ListEnd) -> Result<u64, CacheError> {
        self.push_many_to_list(name, &[value], end).await
    }

    /// LPUSH or RPUSH several values in one command (LPUSH a b leaves b first, as Redis does).
    pub async fn push_many_to_list<V: AsRef<str>>(
        &self,
        name: &str,
        values: &[V],
        end: ListEnd,
    ) -> Result<u64, CacheError> {
        let name = self.key(name);
        let owned: Vec<String> = values.iter().map(|value| value.as_ref().to_owned()).collect();
        if owned.is_empty() {
            return self.list_len_stored(&name).await;
        }
        self.call(
            "push_to_list",
            &name,
            async |pool| redis::list_push(pool, &name, owned.clone(), end).await,
            |store| store.list_push(&name, &owned.iter().map(String::as_str).collect::<Vec<_>>(), end),
        )
        .await
    }

    /// Pushes `values` at the head (LPUSH: the last one ends up first) and keeps only the
    /// first `max_len` elements, in one atomic step — a bounded list, newest first. Returns
    /// the length left and the elements the trim evicted from the tail, in list order: nobody
    /// ever sees the list longer than `max_len` after this call's push, and each evicted
    /// element is returned to exactly one caller. No values: only the trim (a missing list
    /// stays missing). `max_len` 0 deletes the list. The list keeps its TTL. On Redis this
    /// is a script on the one key, so it runs on a cluster too.
    pub async fn push_to_capped_list<V: AsRef<str>>(
        &self,
        name: &str,
        values: &[V],
        max_len: u64,
    ) -> Result<CappedPush, CacheError> {
        let name = self.key(name);
        let owned: Vec<String> = values.iter().map(|value| value.as_ref().to_owned()).collect();
        // A Redis list holds at most 2^32 - 1 elements: a larger cap is the same cap, and this
        // one is exact in Lua's numbers.
        let max_len = max_len.min(u64::from(u32::MAX));
        let (len, evicted) = self
            .call(
                "push_to_capped_list",
                &name,
                async |pool| redis::push_capped(pool, &name, &owned, max_len).await,
                |store| store.list_push_capped(&name, &owned.iter().map(String::as_str).collect::<Vec<_>>(), max_len),
            )
            .await?;
        Ok(CappedPush { len, evicted })
    }

    /// LRANGE 0 -1: the whole list; empty when missing. Answered by the near cache when there
    /// is one.
    pub async fn get_list(&self, name: &str) -> Result<Vec<String>, CacheError> {
        match &self.inner.near {
            Some(near) => Ok(self.near_list(near, &self.key(name)).await?.to_vec()),
            None => self.list_range(name, 0, -1).await,
        }
    }

    /// The value of `key` if the near cache can answer for it now (`Some(None)`: known to be
    /// missing); `None` when it cannot (no near cache, or not cached). Never asks the store.
    pub fn get_value_if_cached(&self, key: &str) -> Option<Option<String>> {
        let value = self.inner.near.as_ref()?.lookup_if_cached(&self.key(key))?;
        self.inner.metrics.record_read(value.is_some());
        Some(value)
    }

    /// The value of `key` decoded by `decode`, if process memory can answer for it now: the
    /// near cache, or the embedded store (which is process memory). `decode` runs once per
    /// stored value: the decoded form stays beside it, shared by every reader, and goes when
    /// the value is replaced, invalidated, flushed or expires. `Some(None)`: known to be
    /// missing; `None`: not answerable here (not cached, no near cache on Redis, or a key of
    /// another type — ask with [`Self::get_value`]). For a value read on every request, such as
    /// a session's token, this saves the copy and the decode on each read.
    pub fn get_decoded_if_cached<T: std::any::Any + Send + Sync>(
        &self,
        key: &str,
        decode: impl Fn(&str) -> T,
    ) -> Option<Option<Arc<T>>> {
        let key = self.key(key);
        let value = match (&self.inner.near, &self.inner.store) {
            (Some(near), _) => near.lookup_decoded_if_cached(&key, decode)?,
            (None, CacheStore::Embedded(store)) => {
                let started = Instant::now();
                let value = store.get_decoded(&key, decode).ok()?;
                self.inner.metrics.record("get_value", &key, started.elapsed(), None);
                value
            }
            (None, CacheStore::Redis(_)) => return None,
        };
        self.inner.metrics.record_read(value.is_some());
        Some(value)
    }

    /// Whether the list `name` holds `element`: LPOS, or the near cache's copy of the list.
    pub async fn list_contains(&self, name: &str, element: &str) -> Result<bool, CacheError> {
        let name = self.key(name);
        let found = match &self.inner.near {
            Some(near) => self.near_list(near, &name).await?.iter().any(|item| item == element),
            None => self
                .call(
                    "list_contains",
                    &name,
                    async |pool| redis::list_position(pool, &name, element).await,
                    |store| store.list_position(&name, element),
                )
                .await?
                .is_some(),
        };
        self.inner.metrics.record_read(found);
        Ok(found)
    }

    /// The string `key` and whether the list `list` holds `element`, in one round trip at most:
    /// from the near cache (reading only what it lacks, GET and LRANGE pipelined), or GET and
    /// LPOS pipelined without a script. The embedded store answers both at once. A wrong type
    /// under either key is a [`crate::CacheErrorKind::WrongType`] error (ask separately to tell
    /// which).
    pub async fn get_value_and_list_contains(
        &self,
        key: &str,
        list: &str,
        element: &str,
    ) -> Result<(Option<String>, bool), CacheError> {
        let (key, list) = (self.key(key), self.key(list));
        let (value, listed) = match &self.inner.near {
            Some(near) => match (near.lookup(&key), near.lookup_list(&list)) {
                (Some(value), Some(items)) => (value, items.iter().any(|item| item == element)),
                (Some(value), None) => {
                    (value, self.near_list_read(near, &list).await?.iter().any(|item| item == element))
                }
                (None, cached_list) => {
                    let (value, items) = self
                        .call_refusing(
                            "get_value_and_list_contains",
                            &key,
                            async |pool| match &cached_list {
                                Some(items) => Ok((near.read_through(pool, &key).await?, Arc::clone(items))),
                                None => near.read_text_and_list_through(pool, &key, &list).await,
                            },
                            |store| -> Result<_, TextReadFailure> {
                                Ok((store.get(&key)?, store.list_range(&list, 0, -1)?.into()))
                            },
                        )
                        .await?;
                    (value, items.iter().any(|item| item == element))
                }
            },
            None => {
                let (value, position) = self
                    .call_refusing(
                        "get_value_and_list_contains",
                        &key,
                        async |pool| redis::get_and_list_position(pool, &key, &list, element).await,
                        // A WRONGTYPE from either command wins over a value that is not
                        // UTF-8, as in Redis's pipeline (the server's error comes first).
                        |store| -> Result<_, TextReadFailure> {
                            let value = store.get(&key);
                            let position = store.list_position(&list, element)?;
                            Ok((value?, position))
                        },
                    )
                    .await?;
                (value, position.is_some())
            }
        };
        self.inner.metrics.record_read(value.is_some());
        Ok((value, listed))
    }

    /// The list from the near cache, or read through it.
    async fn near_list(&self, near: &NearCache, name: &str) -> Result<Arc<[String]>, CacheError> {
        match near.lookup_list(name) {
            Some(items) => Ok(items),
            None => self.near_list_read(near, name).await,
        }
    }

    async fn near_list_read(&self, near: &NearCache, name: &str) -> Result<Arc<[String]>, CacheError> {
        self.call(
            "list_contains",
            name,
            async |pool| near.read_list_through(pool, name).await,
            |store| Ok(store.list_range(name, 0, -1)?.into()),
        )
        .await
    }

    /// LRANGE with Redis's index rules (negative indices count from the tail, inclusive ends).
    pub async fn list_range(&self, name: &str, start: i64, stop: i64) -> Result<Vec<String>, CacheError> {
        let name = self.key(name);
        self.call(
            "list_range",
            &name,
            async |pool| redis::list_range(pool, &name, start, stop).await,
            |store| store.list_range(&name, start, stop),
        )
        .await
    }

    /// LPOP: the head, `None` when the list is empty or missing.
    pub async fn left_pop_list(&self, name: &str) -> Result<Option<String>, CacheError> {
        self.pop_list(name, ListEnd::Left).await
    }

    pub async fn pop_list(&self, name: &str, end: ListEnd) -> Result<Option<String>, CacheError> {
        let name = self.key(name);
        let found = self
            .call(
                "pop_list",
                &name,
                async |pool| redis::list_pop(pool, &name, end).await,
                |store| store.list_pop(&name, end),
            )
            .await;
        self.read(found)
    }

    /// LPOS: the index of the first `value`, `None` when absent. Membership without fetching
    /// the list.
    pub async fn list_position(&self, name: &str, value: &str) -> Result<Option<u64>, CacheError> {
        let name = self.key(name);
        let found = self
            .call(
                "list_position",
                &name,
                async |pool| redis::list_position(pool, &name, value).await,
                |store| store.list_position(&name, value),
            )
            .await;
        self.read(found)
    }

    /// LREM: `count > 0` removes the first `count` matches from the head, `count < 0` from the
    /// tail, `0` every match. Returns how many were removed.
    pub async fn list_remove(&self, name: &str, count: i64, value: &str) -> Result<u64, CacheError> {
        let name = self.key(name);
        self.call(
            "list_remove",
            &name,
            async |pool| redis::list_remove(pool, &name, count, value).await,
            |store| store.list_remove(&name, count, value),
        )
        .await
    }

    /// LTRIM: keep only `start..=stop` (Redis's index rules).
    pub async fn list_trim(&self, name: &str, start: i64, stop: i64) -> Result<(), CacheError> {
        let name = self.key(name);
        self.call(
            "list_trim",
            &name,
            async |pool| redis::list_trim(pool, &name, start, stop).await,
            |store| store.list_trim(&name, start, stop),
        )
        .await
    }

    /// LLEN: 0 when missing.
    pub async fn list_len(&self, name: &str) -> Result<u64, CacheError> {
        let name = self.key(name);
        self.list_len_stored(&name).await
    }

    async fn list_len_stored(&self, name: &str) -> Result<u64, CacheError> {
        self.call("list_len", name, async |pool| redis::list_len(pool, name).await, |store| store.list_len(name)).await
    }

    // --- compare-and-act (locks) -----------------------------------------------------------

    /// Deletes `key` only while it still holds `expected`, atomically.
    pub(crate) async fn delete_if_equals(&self, key: &str, expected: &str) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.call(
            "release_lock",
            &key,
            async |pool| redis::delete_if_equals(pool, &key, expected).await,
            |store| store.delete_if_equals(&key, expected),
        )
        .await
    }

    /// Sets a new TTL on `key` only while it still holds `expected`, atomically.
    pub(crate) async fn expire_if_equals(&self, key: &str, expected: &str, ttl: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        self.check_ttl("extend_lock", &key, Some(ttl))?;
        self.call(
            "extend_lock",
            &key,
            async |pool| redis::expire_if_equals(pool, &key, expected, ttl).await,
            |store| store.expire_if_equals(&key, expected, ttl),
        )
        .await
    }
}

async fn ping_every_connection(pool: &Pool) -> Result<Duration, CacheError> {
    use fred::interfaces::ClientLike;
    let mut slowest = Duration::ZERO;
    for client in pool.clients() {
        let started = Instant::now();
        client.ping::<()>(None).await.map_err(|error| CacheError::from_fred("ping", None, error))?;
        slowest = slowest.max(started.elapsed());
    }
    Ok(slowest)
}
