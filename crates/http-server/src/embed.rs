//! [`Tessera`]: Tessera inside another Rust service — constructors from a Redis URL, for the
//! in-process store, or from [`Settings`], giving the [`AuthLayer`], the [`CacheClient`] and the [`Authenticator`] over
//! one store, and [`Tessera::close`] at the end. It is a thin handle on [`Lifecycle`], which
//! the `tessera` server and its token commands use the same way.

use std::time::Duration;

use auth_core::Authenticator;
use cache_toolkit::CacheClient;
use config::{AppEnv, ConfigError, Settings};
use dao::TokenStorage;
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

/// Settings for [`Tessera`] chosen in code: the store comes from [`Tessera::builder`] or
/// [`Tessera::embedded_builder`], each method sets one setting, and [`Self::connect`] validates
/// them all as the server validates its environment (production rules: a bad value is an
/// error naming the setting, never a silent default).
///
/// ```
/// use std::time::Duration;
/// use http_server::prelude::*;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // `Tessera::builder("redis://127.0.0.1:6379/0")` in production.
/// let tessera = Tessera::embedded_builder()
///     .key_prefix("shop:")
///     .token_ttl_minutes(120)
///     .sliding_expiry(true)
///     .connect()
///     .await?;
/// let issued = tessera.authenticator().issue(UserId::Integer(7), IssueOptions::default()).await?;
/// assert_eq!(issued.expires_in, Duration::from_secs(2 * 3600));
/// tessera.close().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `connect`"]
pub struct TesseraBuilder {
    /// Settings by the names the server reads them under; a later pair wins.
    pairs: Vec<(String, String)>,
}

impl TesseraBuilder {
    fn new((name, value): (&str, &str)) -> Self {
        Self { pairs: vec![(name.to_owned(), value.to_owned())] }
    }

    /// Any setting by the name the server reads it under (README, "Configuration"), for
    /// those without a method here.
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.pairs.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The near cache in front of Redis (`TESSERA_NEAR_CACHE`; on by default where Redis
    /// supports it).
    pub fn near_cache(self, on: bool) -> Self {
        self.setting("TESSERA_NEAR_CACHE", if on { "on" } else { "off" })
    }

    /// A namespace in front of every key (`TESSERA_KEY_PREFIX`); none keeps the Python
    /// system's keys.
    pub fn key_prefix(self, prefix: &str) -> Self {
        self.setting("TESSERA_KEY_PREFIX", prefix)
    }

    /// How tokens are kept at rest (`TESSERA_TOKEN_STORAGE`).
    pub fn token_storage(self, storage: TokenStorage) -> Self {
        let name = match storage {
            TokenStorage::Plain => "plain",
            TokenStorage::Hashed => "hashed",
            TokenStorage::Migrate => "migrate",
        };
        self.setting("TESSERA_TOKEN_STORAGE", name)
    }

    /// The lifetime of a token issued without one, in minutes (`ACCESS_TOKEN_EXPIRE_MINUTES`,
    /// the original design's setting).
    pub fn token_ttl_minutes(self, minutes: u32) -> Self {
        self.setting("ACCESS_TOKEN_EXPIRE_MINUTES", &minutes.to_string())
    }

    /// Whether each verification renews its token's lifetime (`TESSERA_SLIDING_EXPIRY`).
    pub fn sliding_expiry(self, on: bool) -> Self {
        self.setting("TESSERA_SLIDING_EXPIRY", if on { "true" } else { "false" })
    }

    /// The most a session can live, renewals included (`TESSERA_MAX_SESSION_LIFETIME`), in
    /// whole seconds: a lifetime under one second is refused at [`Self::connect`].
    pub fn max_session_lifetime(self, lifetime: Duration) -> Self {
        self.setting("TESSERA_MAX_SESSION_LIFETIME", &format!("{}s", lifetime.as_secs()))
    }

    /// Keeps the embedded store's data in `dir` across restarts (`TESSERA_DATA_DIR`; locked
    /// while this process runs).
    pub fn data_dir(self, dir: &std::path::Path) -> Self {
        self.setting("TESSERA_DATA_DIR", &dir.to_string_lossy())
    }

    /// Whether a write to the embedded store is acknowledged only once it is on disk
    /// (`TESSERA_FSYNC=always`) rather than synced every second (`everysec`, the default).
    pub fn fsync_always(self, always: bool) -> Self {
        self.setting("TESSERA_FSYNC", if always { "always" } else { "everysec" })
    }

    /// Validates the settings and starts the store (bounded by the connect timeout).
    pub async fn connect(self) -> Result<Tessera, TesseraError> {
        let pairs: Vec<(&str, &str)> = self.pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let settings = Settings::from_env_pairs(AppEnv::Prod, &pairs)?;
        Tessera::from_settings(&settings).await
    }
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
/// let issued = tessera.authenticator().issue(UserId::Integer(42), IssueOptions::default()).await?;
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
        Self::builder(url).connect().await
    }

    /// An in-process store, in memory only, with every other setting at its default (tests,
    /// examples, one process alone: nothing is shared with another process or kept across a
    /// restart; [`TesseraBuilder::data_dir`] keeps it).
    pub async fn embedded() -> Result<Self, TesseraError> {
        Self::embedded_builder().connect().await
    }

    /// A [`TesseraBuilder`] on the Redis at `url`, for settings other than the defaults.
    pub fn builder(url: &str) -> TesseraBuilder {
        TesseraBuilder::new(("REDIS_URL", url))
    }

    /// A [`TesseraBuilder`] on an in-process store, in memory only until
    /// [`TesseraBuilder::data_dir`] names a directory.
    pub fn embedded_builder() -> TesseraBuilder {
        TesseraBuilder::new(("TESSERA_STORE", "embedded")).setting("TESSERA_DATA_DIR", "none")
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
