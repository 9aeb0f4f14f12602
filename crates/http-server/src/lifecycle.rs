//! [`Lifecycle`]: starts the cache backend before the server accepts anything and closes it
//! after the last request has drained. The one place that decides the start/stop order. It
//! also builds the [`Authenticator`] from the settings (token policy, storage mode, replica
//! waits), the same one for the server and the `tessera token` commands.

use auth_core::{AuthPolicy, Authenticator, TokenFormat};
use cache_toolkit::CacheClient;
use config::Settings;
use dao::{CacheDao, TokenStorage};
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
        if backend.is_embedded() && backend.data_dir().is_none() {
            tracing::warn!(
                "using the embedded in-process store in memory only: sessions are not shared between processes and do not survive a restart; set TESSERA_DATA_DIR to keep them, or REDIS_URL or REDIS_HOST (or TESSERA_STORE=redis) for Redis"
            );
        }
        Ok(Self { backend })
    }

    pub fn cache(&self) -> &CacheClient {
        self.backend.cache()
    }

    /// The authenticator over this store with the settings' token policy and storage mode:
    /// the server's, and the `tessera token` commands'.
    pub fn authenticator(&self, settings: &Settings) -> Authenticator {
        let policy = AuthPolicy {
            default_ttl: settings.access_token_ttl,
            max_sessions_per_user: settings.auth.max_sessions_per_user,
            sliding_expiry: settings.auth.sliding_expiry,
            max_session_lifetime: settings.auth.max_session_lifetime,
            token_format: match settings.auth.token_format {
                config::TokenFormat::V1 => TokenFormat::V1,
                config::TokenFormat::V2 => TokenFormat::V2,
            },
        };
        let storage = match settings.auth.token_storage {
            config::TokenStorage::Plain => TokenStorage::Plain,
            config::TokenStorage::Hashed => TokenStorage::Hashed,
            config::TokenStorage::Migrate => TokenStorage::Migrate,
        };
        let dao = CacheDao::with_storage(self.cache().clone(), storage)
            .with_revocation_wait(settings.auth.revocation_wait)
            .with_issue_wait(settings.auth.issue_wait);
        Authenticator::new(dao, policy)
    }

    pub fn describe_store(&self) -> String {
        self.backend.describe()
    }

    /// Closes the store last: QUIT, then wait for its connection task.
    pub async fn stop(self) {
        self.backend.close().await;
    }
}
