//! [`InfraError`]: why the backend could not be built, reached or closed. `backend.rs` and
//! `redis.rs` use it; it uses no other file of the crate, so their imports point one way.

use std::time::Duration;

/// Why the backend could not be built, reached or closed. Texts name `host:port`, never a password.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("cannot configure the redis client for {addresses}: {reason}")]
    Build { addresses: String, reason: String },
    #[error("invalid setting TESSERA_KEY_PREFIX: {0}")]
    KeyPrefix(#[from] cache_toolkit::KeyPrefixError),
    #[error("cannot set up TLS for redis at {addresses}: {reason}")]
    TlsSetup { addresses: String, reason: String },
    #[error("cannot connect to redis ({topology}) at {addresses}: TLS certificate problem: {problem}")]
    TlsHandshake { topology: &'static str, addresses: String, problem: &'static str },
    #[error("cannot connect to redis ({topology}) at {addresses} within {timeout:?}")]
    ConnectTimeout { topology: &'static str, addresses: String, timeout: Duration },
    #[error("cannot connect to redis ({topology}) at {addresses}: {reason}")]
    Connect { topology: &'static str, addresses: String, reason: String },
    #[error("cannot reset the redis connections to {addresses}: {reason}")]
    Reset { addresses: String, reason: String },
    #[error("{0}")]
    NearCache(#[from] cache_toolkit::NearCacheError),
    #[error(
        "invalid setting TESSERA_NEAR_CACHE: `on`, but the store ({store}) cannot run a near cache (it needs Redis 7.0 or newer)"
    )]
    NearCacheUnsupported { store: String },
    /// The embedded store's data directory cannot be used: another process holds it, it
    /// cannot be read or written, or its journal is corrupt.
    #[error(transparent)]
    DataDir(#[from] store::embedded::DataDirError),
}
