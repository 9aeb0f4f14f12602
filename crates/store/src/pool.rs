//! [`CacheStore`]: the embedded store or a Redis route ([`RedisPool`]), and the one place an
//! operation is sent to either: [`CacheStore::run`] asks the Sentinel primary gate first,
//! reports Redis errors to the route (a cluster reads its map again) and to the gate (a
//! `READONLY` reply closes it), and turns every store's refusal into a [`StoreFailure`].
//!
//! A [`RedisPool`] wraps a fred pool connected elsewhere, handed over with
//! `RedisPool::from_fred`: the public item that names a fred type, so it is behind the
//! `fred-pool` feature (enabled by `infra`, the benchmarks and the conformance suite, through
//! `cache-toolkit`). [`RedisPool::with_primary_gate`] attaches the gate `run` asks.

use std::{sync::Arc, time::Duration};

use fred::clients::Pool;
use tokio::time::Instant;

use crate::{
    CacheError, EmbeddedStore, Op,
    embedded::{IncrementFailure, TextReadFailure, WrongType},
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

    /// The route commands take, for the near cache one layer up (which tracks its connections).
    #[doc(hidden)]
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The Sentinel primary gate commands ask, for the near cache one layer up: while it is
    /// closed, entries vouched for by the old primary are not served either.
    #[doc(hidden)]
    pub fn primary_gate(&self) -> Option<&Arc<PrimaryGate>> {
        self.gate.as_ref()
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

/// A store's answer before it becomes a [`CacheError`].
#[derive(Debug)]
pub enum StoreFailure {
    Redis(fred::error::Error),
    WrongType,
    /// A non-UTF-8 string read as text on the embedded store (fred's parse error on Redis).
    NotUtf8,
    /// A command the embedded store refuses with Redis's error reply (its text, without `ERR`).
    Refused(&'static str),
    /// Not sent: the primary is changing ([`PrimaryGate`]).
    PrimaryChanging(GateClosed),
    /// The embedded store cannot keep writes in its data directory (a full disk, an I/O error).
    NotDurable,
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

impl CacheStore {
    /// Which kind of store this is.
    pub fn kind(&self) -> StoreKind {
        match self {
            Self::Redis(_) => StoreKind::Redis,
            Self::Embedded(_) => StoreKind::Embedded,
        }
    }

    /// Runs one operation on this store: `on_redis` with the route (unless the primary gate is
    /// closed), or `on_embedded` with the keyspace. `on_embedded` may work in steps and yield
    /// between them (a SCAN), so it is async. Hidden: the typed operations of `cache-toolkit`
    /// are the public way in.
    #[doc(hidden)]
    pub async fn run<T, Refusal: Into<StoreFailure>>(
        &self,
        operation: Op,
        on_redis: impl AsyncFnOnce(&Route) -> Result<T, fred::error::Error>,
        on_embedded: impl AsyncFnOnce(&EmbeddedStore) -> Result<T, Refusal>,
    ) -> Result<T, StoreFailure> {
        match self {
            Self::Redis(RedisPool { route, gate }) => {
                if let Some(why) = gate.as_deref().and_then(PrimaryGate::closed) {
                    return Err(StoreFailure::PrimaryChanging(why));
                }
                // Boxed: the Redis side nests the route, the redirects and fred's own futures, and
                // inline that depth reaches rustc's layout recursion limit (128) in a caller's
                // async block (the README's `get_or_load`); one allocation per command is
                // nothing beside its round trip.
                Box::pin(on_redis(route)).await.map_err(|error| {
                    route.report(&error);
                    if let Some(gate) = gate.as_deref()
                        && crate::error::is_read_only_reply(&error)
                    {
                        gate.report_read_only();
                    }
                    StoreFailure::from(error)
                })
            }
            Self::Embedded(store) => {
                let writes = !operation.is_read_only();
                // A write the journal could not keep is refused before it is applied.
                if writes && store.write_failure().is_some() {
                    return Err(StoreFailure::NotDurable);
                }
                let outcome = on_embedded(store).await.map_err(Into::into)?;
                if writes {
                    // A lock's fencing counter must never go back after a crash: on disk before
                    // the lock is handed out, whatever the fsync policy.
                    let force = operation == Op::AcquireLock;
                    store.settle(force).await.map_err(|_| StoreFailure::NotDurable)?;
                }
                Ok(outcome)
            }
        }
    }

    /// PING every connection (Redis) and return the slowest round trip; the embedded store
    /// answers at once.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        match self {
            // A replica answers PING too: while the primary is changing, commands are refused,
            // and so is the question whether the store can serve them.
            Self::Redis(RedisPool { route, gate }) => match gate.as_deref().and_then(PrimaryGate::closed) {
                Some(why) => Err(CacheError::unavailable(Op::Ping, None, why.as_str())),
                None => ping_every_connection(route).await,
            },
            Self::Embedded(_) => Ok(Duration::ZERO),
        }
    }

    /// A cluster's primaries by the state of their pools, when this crate routes the cluster
    /// itself; `None` otherwise.
    pub fn primary_pools(&self) -> Option<crate::PrimaryPools> {
        match self {
            Self::Redis(RedisPool { route: Route::Cluster(nodes), .. }) => Some(nodes.primary_pools()),
            Self::Redis(_) | Self::Embedded(_) => None,
        }
    }

    /// Whether Redis commands are held now because the primary is changing (the primary gate
    /// of a sentinel set-up is closed); always `false` for the embedded store and without a gate.
    pub fn primary_gate_closed(&self) -> bool {
        match self {
            Self::Redis(RedisPool { gate: Some(gate), .. }) => gate.closed().is_some(),
            Self::Redis(_) | Self::Embedded(_) => false,
        }
    }
}

impl StoreFailure {
    /// The [`CacheError`] of `operation` on `key` that failed so.
    pub fn into_error(self, operation: Op, key: &str) -> CacheError {
        match self {
            Self::Redis(error) => CacheError::from_fred(operation, Some(key), error),
            Self::WrongType => CacheError::wrong_type(operation, key),
            Self::NotUtf8 => CacheError::bad_data(operation, key, "Could not convert to string."),
            Self::Refused(reply) => CacheError::rejected(operation, key, reply),
            Self::PrimaryChanging(why) => CacheError::unavailable(operation, Some(key), why.as_str()),
            Self::NotDurable => {
                CacheError::unavailable(operation, Some(key), "the embedded store cannot write its data directory")
            }
        }
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
