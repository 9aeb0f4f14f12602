//! [`Backend`]: an initialized cache backend and its lifecycle. Holding one means the first
//! connection succeeded; the only way to a [`CacheClient`] is through it.

use std::time::{Duration, Instant};

use fred::{clients::Pool, interfaces::ClientLike, types::ConnectHandle};

use cache_toolkit::{CacheClient, CacheError};
use config::RedisSettings;

/// Why the backend could not be built, reached or closed. Texts name `host:port`, never a password.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("cannot configure the redis client for {addresses}: {reason}")]
    Build { addresses: String, reason: String },
    #[error("rediss:// (TLS) for {addresses} is not supported by this build; use redis:// on a trusted network")]
    TlsUnsupported { addresses: String },
    #[error("cannot connect to redis ({topology}) at {addresses} within {timeout:?}")]
    ConnectTimeout { topology: &'static str, addresses: String, timeout: Duration },
    #[error("cannot connect to redis ({topology}) at {addresses}: {reason}")]
    Connect { topology: &'static str, addresses: String, reason: String },
    #[error("cannot reset the redis connections to {addresses}: {reason}")]
    Reset { addresses: String, reason: String },
}

/// The Redis backend: a connected fred pool, the task that drives it, and how to describe it.
#[derive(Debug)]
pub struct Backend {
    pool: Pool,
    cache: CacheClient,
    connection_task: ConnectHandle,
    topology: &'static str,
    addresses: String,
    close_timeout: Duration,
}

impl Backend {
    /// Connects and waits (at most the connect timeout) for every pooled connection to be ready.
    /// A backend that failed to connect is torn down here, never handed out half-alive.
    #[tracing::instrument(skip_all, fields(topology = settings.target.topology(), addresses = %settings.target.addresses()))]
    pub async fn init(settings: &RedisSettings) -> Result<Self, InfraError> {
        let topology = settings.target.topology();
        let addresses = settings.target.addresses();
        let pool = crate::redis::build_pool(settings)?;
        let started = Instant::now();
        let connection_task = match tokio::time::timeout(settings.connect_timeout, pool.init()).await {
            Ok(Ok(task)) => task,
            Ok(Err(error)) => {
                abandon(&pool).await;
                return Err(InfraError::Connect { topology, addresses, reason: error.details().to_owned() });
            }
            Err(_) => {
                abandon(&pool).await;
                return Err(InfraError::ConnectTimeout { topology, addresses, timeout: settings.connect_timeout });
            }
        };
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            pool_size = pool.size(),
            "connected to redis"
        );
        Ok(Self {
            cache: CacheClient::new(pool.clone()),
            pool,
            connection_task,
            topology,
            addresses,
            close_timeout: settings.connect_timeout.max(settings.command_timeout),
        })
    }

    /// The cache handle; clones share this backend's connections.
    pub fn cache(&self) -> &CacheClient {
        &self.cache
    }

    /// `redis standalone 127.0.0.1:6379`: safe to log, no credentials.
    pub fn describe(&self) -> String {
        format!("redis {} {}", self.topology, self.addresses)
    }

    /// PING on every pooled connection; the slowest round trip, or why the store cannot answer.
    pub async fn health(&self) -> Result<Duration, CacheError> {
        self.cache.ping().await
    }

    /// Drops and rebuilds every connection in place (the seed's `reset_async_redis`); handles
    /// already given out keep working. In a cluster this also refreshes the slot map.
    pub async fn reset(&self) -> Result<(), InfraError> {
        self.pool.force_reconnection().await.map_err(|error| InfraError::Reset {
            addresses: self.addresses.clone(),
            reason: error.details().to_owned(),
        })
    }

    /// Sends QUIT on every connection and waits (bounded) for the connection task to end.
    pub async fn close(self) {
        if tokio::time::timeout(self.close_timeout, self.pool.quit()).await.is_err() {
            tracing::warn!(addresses = %self.addresses, "redis QUIT did not complete in time");
        }
        let mut task = self.connection_task;
        match tokio::time::timeout(self.close_timeout, &mut task).await {
            Ok(Ok(Ok(()))) => tracing::info!(addresses = %self.addresses, "redis connections closed"),
            Ok(Ok(Err(error))) if error.is_canceled() => {
                tracing::info!(addresses = %self.addresses, "redis connections closed")
            }
            Ok(Ok(Err(error))) => {
                tracing::warn!(addresses = %self.addresses, %error, "redis connection task ended with an error")
            }
            Ok(Err(join_error)) => {
                tracing::warn!(addresses = %self.addresses, %join_error, "redis connection task failed")
            }
            Err(_) => {
                tracing::warn!(addresses = %self.addresses, "redis connection task did not stop in time; aborting it");
                task.abort();
            }
        }
    }
}

/// A pool whose first connection failed must not keep retrying in the background.
async fn abandon(pool: &Pool) {
    let _ = tokio::time::timeout(Duration::from_millis(500), pool.quit()).await;
}
