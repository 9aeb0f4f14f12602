//! [`Lifecycle`]: starts the cache backend before the server accepts anything and closes it
//! after the last request has drained. The one place that decides the start/stop order.

use cache_toolkit::CacheClient;
use config::Settings;
use infra::{Backend, InfraError};

/// Owns the backend for the life of the server.
#[derive(Debug)]
pub struct Lifecycle {
    backend: Backend,
}

impl Lifecycle {
    /// Initializes the store named by the settings (bounded by the connect timeout).
    pub async fn start(settings: &Settings) -> Result<Self, InfraError> {
        let backend = Backend::start(settings).await?;
        if backend.is_embedded() {
            tracing::warn!(
                "using the embedded in-process store: sessions are not shared between processes and do not survive a restart; set REDIS_URL or REDIS_HOST (or TESSERA_STORE=redis) for Redis"
            );
        }
        Ok(Self { backend })
    }

    pub fn cache(&self) -> &CacheClient {
        self.backend.cache()
    }

    pub fn describe_store(&self) -> String {
        self.backend.describe()
    }

    /// Closes the store last: QUIT, then wait for its connection task.
    pub async fn stop(self) {
        self.backend.close().await;
    }
}
