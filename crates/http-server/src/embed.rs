//! [`Tessera`]: Tessera inside another Rust service — constructors from a Redis URL, for the
//! in-process store, or from [`Settings`], giving the [`AuthLayer`], the [`CacheClient`] and the [`Authenticator`] over
//! one store, and [`Tessera::close`] at the end. It is a thin handle on [`Lifecycle`], which
//! the `tessera` server and its token commands use the same way.

use auth_core::Authenticator;
use cache_toolkit::CacheClient;
use config::{AppEnv, ConfigError, Settings};
use infra::InfraError;

use crate::{AuthLayer, Lifecycle};

/// Why [`Tessera`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum TesseraError {
    /// The URL or a setting is not valid (the text never repeats a password).
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// The store could not be reached or set up.
    #[error(transparent)]
    Store(#[from] InfraError),
}

/// A connected store and the authenticator over it, with the settings' token policy and storage.
/// Clones of [`Self::cache`] and [`Self::authenticator`] (and layers from [`Self::auth_layer`])
/// share its connections; [`Self::close`] closes them once the service has stopped.
///
/// ```
/// use http_server::prelude::*;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // `Tessera::connect("redis://127.0.0.1:6379/0")` in production.
/// let tessera = Tessera::embedded().await?;
/// let issued = tessera.authenticator().issue(UserId::Integer(42), MetadataObject::new(), None).await?;
/// let verified = tessera.authenticator().verify(issued.token.expose()).await?;
/// assert!(matches!(verified, Verification::Valid(principal) if principal.user_id() == &UserId::Integer(42)));
/// tessera.cache().set_value("greeting", "hello", None).await?;
/// assert_eq!(tessera.cache().get_value("greeting").await?.as_deref(), Some("hello"));
/// let layer = tessera.auth_layer().public_paths(["/healthz"]); // wrap your routes with it
/// # let _ = layer;
/// tessera.close().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Tessera {
    lifecycle: Lifecycle,
    authenticator: Authenticator,
}

impl Tessera {
    /// Connects to the Redis at `url` (`redis://`, `rediss://`, `redis-cluster://`,
    /// `redis-sentinel://` …, as `REDIS_URL`) with every other setting at its default.
    /// Bounded by the connect timeout.
    pub async fn connect(url: &str) -> Result<Self, TesseraError> {
        let settings = Settings::from_env_pairs(AppEnv::Prod, &[("REDIS_URL", url)])?;
        Self::from_settings(&settings).await
    }

    /// An in-process store with every other setting at its default (tests, examples, one
    /// process alone: nothing is shared with another process).
    pub async fn embedded() -> Result<Self, TesseraError> {
        let settings = Settings::from_env_pairs(AppEnv::Prod, &[("TESSERA_STORE", "embedded")])?;
        Self::from_settings(&settings).await
    }

    /// Starts the store the settings name ([`Settings::load`] reads them as the server does;
    /// [`Settings::from_env_pairs`] takes them from code), with their token policy, storage
    /// mode, key prefix and near cache.
    pub async fn from_settings(settings: &Settings) -> Result<Self, TesseraError> {
        let lifecycle = Lifecycle::start(settings).await?;
        let authenticator = lifecycle.authenticator(settings);
        Ok(Self { lifecycle, authenticator })
    }

    /// A new auth layer over this store: every path needs a bearer token until
    /// [`AuthLayer::public_paths`] or [`AuthLayer::internal`] say otherwise.
    pub fn auth_layer(&self) -> AuthLayer {
        AuthLayer::new(self.authenticator.clone())
    }

    /// The cache (strings, JSON, lists, hashes, locks, `get_or_load`) on the same store.
    pub fn cache(&self) -> &CacheClient {
        self.lifecycle.cache()
    }

    /// Issues, verifies, lists and revokes tokens.
    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    /// `redis standalone 127.0.0.1:6379` or `embedded (in-process)`: safe to log.
    pub fn describe_store(&self) -> String {
        self.lifecycle.describe_store()
    }

    /// Closes the store's connections (QUIT, bounded); call it after the service has stopped.
    pub async fn close(self) {
        self.lifecycle.stop().await;
    }
}
