//! [`Backend`]: an initialized cache backend — Redis or embedded — and its lifecycle. Holding
//! one means the store is ready; the only way to a [`CacheClient`] is through it.
//!
//! [`Backend::start`] starts the store the settings name, then the near cache as
//! `TESSERA_NEAR_CACHE` asks (`auto`, `on`, `off`). Connecting is bounded by the connect
//! timeout, and a pool whose first connection failed is shut down, never handed out. With
//! sentinels a watch follows the primary, behind a [`PrimaryGate`]. On a cluster it waits for
//! the pools per primary, warns when `cluster-require-full-coverage` is `yes`, and closes fred's
//! cluster pool, which only lent its settings and slot map. A failed TLS handshake is
//! `InfraError::TlsHandshake`: one line naming the node and the certificate problem (each
//! sentinel is asked again, since fred keeps only "failed to connect to all").
//!
//! [`Backend::health`] PINGs every pooled connection (a cluster answers while one primary
//! does); [`Backend::reset`] reads a cluster's slot map again and rebuilds every connection in
//! place, so handles given out stay valid; [`Backend::close`] QUITs, then awaits the connection
//! task, bounded.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use fred::{clients::Pool, interfaces::ClientLike, types::ConnectHandle};

use cache_toolkit::{
    CacheClient, CacheError, CacheOptions, CacheStore, EmbeddedStore, KeyPrefix, NearCacheSettings, PrimaryGate,
    RedisPool,
};
use config::{
    DataSettings, FsyncPolicy, NearCacheConfig, NearCacheMode, RedisSettings, RedisTarget, Settings, StoreKind,
};
use store::embedded::{Durability, Fsync};

use crate::error::InfraError;

/// A ready store: the cache handle plus whatever must be closed at the end.
#[derive(Debug)]
pub struct Backend {
    cache: CacheClient,
    store: Store,
}

#[derive(Debug)]
enum Store {
    Redis(RedisConnection),
    /// The in-process store; with its data directory when it keeps its data there.
    Embedded(Option<DurableStore>),
}

#[derive(Debug)]
struct DurableStore {
    store: EmbeddedStore,
    dir: std::path::PathBuf,
}

/// A connected Redis store, the fred pool it was built from and the task that drives that pool,
/// and how to describe it.
#[derive(Debug)]
struct RedisConnection {
    redis_pool: RedisPool,
    /// `None` for a cluster, whose pool only lent its settings and slot map and is closed once
    /// the pools per primary are up (`RedisPool::from_fred`).
    fred_pool: Option<(Pool, ConnectHandle)>,
    topology: &'static str,
    addresses: String,
    tls: bool,
    close_timeout: Duration,
    /// Sentinel only: follows the primary through failovers.
    sentinel_watch: Option<crate::sentinel::SentinelWatch>,
}

impl Backend {
    /// Starts the store the settings name: connects to Redis (bounded by the connect timeout)
    /// or creates the embedded store.
    pub async fn start(settings: &Settings) -> Result<Self, InfraError> {
        let options = CacheOptions {
            key_prefix: KeyPrefix::parse(&settings.key_prefix)?,
            slow_threshold: settings.slow_operation,
        };
        match settings.store {
            StoreKind::Redis => {
                let mut backend = Self::connect_redis(&settings.redis, options).await?;
                if let Err(error) = backend.start_near_cache(&settings.near_cache).await {
                    backend.close().await;
                    return Err(error);
                }
                Ok(backend)
            }
            StoreKind::Embedded => Self::open_embedded(&settings.data, options),
        }
    }

    /// The embedded store in the settings' data directory (its journal replayed, the
    /// directory locked), or in memory only when there is none.
    pub fn open_embedded(data: &DataSettings, options: CacheOptions) -> Result<Self, InfraError> {
        let Some(dir) = &data.dir else { return Ok(Self::embedded(options)) };
        let fsync = match data.fsync {
            FsyncPolicy::Always => Fsync::Always,
            FsyncPolicy::EverySecond => Fsync::EverySecond,
        };
        let started = Instant::now();
        let (store, loaded) = EmbeddedStore::open(&Durability::new(dir, fsync))?;
        tracing::info!(
            dir = %dir.display(),
            fsync = data.fsync.as_str(),
            keys = loaded.keys,
            records = loaded.records,
            bytes = loaded.bytes,
            took_ms = started.elapsed().as_millis() as u64,
            "embedded store loaded from its data directory"
        );
        let cache = CacheClient::new(CacheStore::Embedded(store.clone()), options);
        Ok(Self { cache, store: Store::Embedded(Some(DurableStore { store, dir: dir.clone() })) })
    }

    /// Puts the near cache in front of Redis as `TESSERA_NEAR_CACHE` asks: `auto` turns it on
    /// where Redis supports it (7.0+) and warns otherwise; `on` makes an old Redis an error.
    pub async fn start_near_cache(&mut self, config: &NearCacheConfig) -> Result<(), InfraError> {
        if config.mode == NearCacheMode::Off || self.is_embedded() {
            return Ok(());
        }
        let settings =
            NearCacheSettings { max_bytes: config.max_bytes, max_ttl: config.max_ttl, ..NearCacheSettings::default() };
        let cache = self.cache.with_near_cache(settings).await?;
        if config.mode == NearCacheMode::On && !cache.near_cache_enabled() {
            return Err(InfraError::NearCacheUnsupported { store: self.describe() });
        }
        tracing::info!(
            enabled = cache.near_cache_enabled(),
            max_ttl_ms = config.max_ttl.as_millis() as u64,
            "near cache"
        );
        self.cache = cache;
        Ok(())
    }

    /// A fresh in-process store, in memory only.
    pub fn embedded(options: CacheOptions) -> Self {
        Self {
            cache: CacheClient::new(CacheStore::Embedded(EmbeddedStore::new()), options),
            store: Store::Embedded(None),
        }
    }

    /// Connects and waits (at most the connect timeout) for every pooled connection to be ready.
    /// A pool that failed to connect is torn down here, never handed out half-alive.
    #[tracing::instrument(skip_all, fields(topology = settings.target.topology(), addresses = %settings.target.addresses()))]
    pub async fn connect_redis(settings: &RedisSettings, options: CacheOptions) -> Result<Self, InfraError> {
        let topology = settings.target.topology();
        let addresses = settings.target.addresses();
        let pool = crate::redis::build_pool(settings)?;
        let started = Instant::now();
        let connection_task = match tokio::time::timeout(settings.connect_timeout, pool.init()).await {
            Ok(Ok(task)) => task,
            Ok(Err(error)) => {
                abandon(&pool).await;
                return Err(connect_error(settings, addresses, error.details()).await);
            }
            Err(_) => {
                abandon(&pool).await;
                return Err(InfraError::ConnectTimeout { topology, addresses, timeout: settings.connect_timeout });
            }
        };
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            pool_size = pool.size(),
            tls = settings.tls.is_some(),
            "connected to redis"
        );
        let gate = Arc::new(PrimaryGate::new());
        let sentinel_watch = match crate::sentinel::SentinelWatch::start(settings, &pool, Arc::clone(&gate)) {
            Ok(watch) => watch,
            Err(error) => {
                abandon(&pool).await;
                return Err(error);
            }
        };
        let redis_pool = match sentinel_watch {
            Some(_) => RedisPool::from_fred(pool.clone()).with_primary_gate(gate),
            None => RedisPool::from_fred(pool.clone()),
        };
        let close_timeout = settings.connect_timeout.max(settings.command_timeout);
        let fred_pool = if redis_pool.routes_itself() {
            warn_if_full_coverage_required(&pool).await;
            let connected = redis_pool.wait_until_connected(settings.connect_timeout).await;
            tracing::debug!("closing the cluster pool that lent its settings and slot map to the pools per primary");
            close_pool(&pool, connection_task, close_timeout, &addresses).await;
            if !connected {
                redis_pool.close().await;
                return Err(InfraError::ConnectTimeout { topology, addresses, timeout: settings.connect_timeout });
            }
            None
        } else {
            Some((pool, connection_task))
        };
        let connection = RedisConnection {
            redis_pool: redis_pool.clone(),
            fred_pool,
            topology,
            addresses,
            tls: settings.tls.is_some(),
            close_timeout,
            sentinel_watch,
        };
        Ok(Self { cache: CacheClient::new(CacheStore::Redis(redis_pool), options), store: Store::Redis(connection) })
    }

    /// The cache handle; clones share this backend's connections (or keyspace).
    pub fn cache(&self) -> &CacheClient {
        &self.cache
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.store, Store::Embedded(_))
    }

    /// The embedded store's data directory, when it keeps its data in one.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match &self.store {
            Store::Embedded(Some(durable)) => Some(&durable.dir),
            _ => None,
        }
    }

    /// `redis standalone 127.0.0.1:6379`, `redis cluster h1:7000,h2:7000 over TLS` or
    /// `embedded`: safe to log, no credentials.
    pub fn describe(&self) -> String {
        match &self.store {
            Store::Redis(redis) => {
                let over_tls = if redis.tls { " over TLS" } else { "" };
                format!("redis {} {}{over_tls}", redis.topology, redis.addresses)
            }
            Store::Embedded(None) => "embedded (in-process, memory only)".to_owned(),
            Store::Embedded(Some(durable)) => format!("embedded (in-process, data in {})", durable.dir.display()),
        }
    }

    /// PING on every pooled connection; the slowest round trip, or why the store cannot answer.
    pub async fn health(&self) -> Result<Duration, CacheError> {
        self.cache.ping().await
    }

    /// Drops and rebuilds every connection in place (the seed's `reset_async_redis`); handles
    /// already given out keep working. In a cluster this also refreshes the slot map. Nothing
    /// to do for the embedded store.
    pub async fn reset(&self) -> Result<(), InfraError> {
        let Store::Redis(redis) = &self.store else { return Ok(()) };
        redis
            .redis_pool
            .reconnect()
            .await
            .map_err(|error| InfraError::Reset { addresses: redis.addresses.clone(), reason: error.to_string() })
    }

    /// Sends QUIT on every connection and waits (bounded) for the connection task to end.
    pub async fn close(self) {
        let redis = match self.store {
            Store::Redis(redis) => redis,
            Store::Embedded(None) => {
                tracing::info!("embedded store dropped (memory only)");
                return;
            }
            Store::Embedded(Some(durable)) => {
                // Everything acknowledged so far on disk before the process goes.
                match durable.store.settle(true).await {
                    Ok(()) => {
                        tracing::info!(dir = %durable.dir.display(), "embedded store synced to its data directory")
                    }
                    Err(error) => {
                        tracing::error!(dir = %durable.dir.display(), %error, "embedded store: the last writes may not be on disk")
                    }
                }
                return;
            }
        };
        if let Some(watch) = redis.sentinel_watch {
            watch.stop(redis.close_timeout).await;
        }
        redis.redis_pool.close().await;
        if let Some((pool, task)) = redis.fred_pool {
            close_pool(&pool, task, redis.close_timeout, &redis.addresses).await;
        }
        tracing::info!(addresses = %redis.addresses, "redis connections closed");
    }
}

/// With `cluster-require-full-coverage yes` (Redis's default) every node of a cluster refuses
/// every command from the moment a dead primary is marked failed until its replica is promoted
/// (about a second), which undoes the isolation of the healthy shards (docs/CLUSTER.md). Asked of
/// one node; a Redis that refuses CONFIG (a managed service) is not asked further.
async fn warn_if_full_coverage_required(pool: &Pool) {
    use fred::types::{ClusterHash, CustomCommand};
    const PARAMETER: &str = "cluster-require-full-coverage";
    // fred is built without its CONFIG commands (`i-config`); one custom command does.
    let command = CustomCommand::new_static("CONFIG", ClusterHash::Random, false);
    let answer = tokio::time::timeout(
        Duration::from_millis(500),
        pool.next().custom::<std::collections::HashMap<String, String>, _>(command, vec!["GET", PARAMETER]),
    )
    .await;
    if let Ok(Ok(config)) = answer
        && config.get(PARAMETER).is_some_and(|value| value == "yes")
    {
        tracing::warn!(
            "redis cluster: cluster-require-full-coverage is yes, so a dead primary makes every node refuse \
             commands for about a second before its replica takes over; set it to no (docs/CLUSTER.md)"
        );
    }
}

/// Sends QUIT on every connection of `pool` and waits (bounded) for its connection task to end.
async fn close_pool(pool: &Pool, mut task: ConnectHandle, close_timeout: Duration, addresses: &str) {
    if tokio::time::timeout(close_timeout, pool.quit()).await.is_err() {
        tracing::warn!(%addresses, "redis QUIT did not complete in time");
    }
    match tokio::time::timeout(close_timeout, &mut task).await {
        Ok(Ok(Ok(()))) => tracing::debug!(%addresses, "redis connection task ended"),
        Ok(Ok(Err(error))) if error.is_canceled() => tracing::debug!(%addresses, "redis connection task ended"),
        Ok(Ok(Err(error))) => tracing::warn!(%addresses, %error, "redis connection task ended with an error"),
        Ok(Err(join_error)) => tracing::warn!(%addresses, %join_error, "redis connection task failed"),
        Err(_) => {
            tracing::warn!(%addresses, "redis connection task did not stop in time; aborting it");
            task.abort();
        }
    }
}

/// The start-up error for a failed first connection: a TLS certificate problem is named as one
/// (for sentinels, after asking each one again: fred keeps only "failed to connect to all";
/// that second look is bounded by one more connect timeout in all).
async fn connect_error(settings: &RedisSettings, addresses: String, details: &str) -> InfraError {
    let topology = settings.target.topology();
    if settings.tls.is_some() {
        if let Some(problem) = crate::tls::handshake_problem(details) {
            return InfraError::TlsHandshake { topology, addresses, problem };
        }
        if let RedisTarget::Sentinel { sentinels, .. } = &settings.target {
            let first_problem = async {
                for sentinel in sentinels {
                    if let Some(problem) = crate::redis::tls_handshake_problem(settings, sentinel).await {
                        return Some((sentinel.to_string(), problem));
                    }
                }
                None
            };
            if let Ok(Some((address, problem))) = tokio::time::timeout(settings.connect_timeout, first_problem).await {
                return InfraError::TlsHandshake { topology, addresses: address, problem };
            }
        }
    }
    InfraError::Connect { topology, addresses, reason: one_line(details) }
}

/// fred's texts may span lines and carry a debug-printed I/O error
/// (`IO Error: Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }`);
/// start-up errors are one line an operator reads: the system's message alone, lower-cased
/// as the rest of the line (`connection refused`).
fn one_line(text: &str) -> String {
    let text = match text.split_once("message: \"").and_then(|(_, rest)| rest.split_once('"')) {
        Some((message, _)) if text.contains("Os {") => {
            let mut message = message.to_owned();
            if let Some(first) = message.get_mut(..1) {
                first.make_ascii_lowercase();
            }
            message
        }
        _ => text.to_owned(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A pool whose first connection failed must not keep retrying in the background: its clients
/// still connecting or connected are told to quit. A client whose first connection failed has
/// already stopped (`fail_fast`), and fred warns about each stopped client told to quit, which
/// would put two warnings with nothing to act on before the one error that says what failed.
async fn abandon(pool: &Pool) {
    let running = pool.clients().iter().filter(|client| client.state() != fred::types::ClientState::Disconnected);
    let quits = running.map(|client| tokio::time::timeout(Duration::from_millis(500), client.quit()));
    futures::future::join_all(quits).await;
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn connection_errors_read_as_one_plain_line() {
        let cases = [
            (
                r#"IO Error: Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }"#,
                "connection refused",
            ),
            ("Failed to connect to all sentinel nodes.", "Failed to connect to all sentinel nodes."),
            (
                "WRONGPASS invalid username-password pair\n or user is disabled.",
                "WRONGPASS invalid username-password pair or user is disabled.",
            ),
        ];
        for (details, expected) in cases {
            assert_eq!(one_line(details), expected, "{details}");
        }
    }
}
