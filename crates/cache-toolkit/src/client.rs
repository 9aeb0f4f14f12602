//! [`CacheClient`]: the cache operations over a fred connection pool.

use std::time::{Duration, Instant};

use fred::{clients::Pool, interfaces::ClientLike};

use crate::error::CacheError;

/// A cheap-to-clone handle on the cache. Get one from an initialized `infra` lifecycle, which
/// owns the connections; clones share them.
#[derive(Clone, Debug)]
pub struct CacheClient {
    pool: Pool,
}

impl CacheClient {
    /// Wraps a pool that is already connected. Connecting and closing it is the owner's job.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// Sends PING on every connection of the pool and returns the slowest round trip:
    /// one broken connection is enough to say the cache cannot answer.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let mut slowest = Duration::ZERO;
        for client in self.pool.clients() {
            let started = Instant::now();
            client.ping::<()>(None).await.map_err(|error| CacheError::from_fred("ping", None, error))?;
            slowest = slowest.max(started.elapsed());
        }
        Ok(slowest)
    }
}
