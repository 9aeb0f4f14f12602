//! How the near cache is configured ([`NearCacheSettings`]) and why it could not start
//! ([`NearCacheError`]): the settings' own bounds, and the Redis version whose invalidations
//! can be trusted to follow the read's reply.

use std::time::Duration;

use fred::{clients::Client, interfaces::ClientLike, types::InfoKind};

/// The oldest Redis whose invalidations always follow the read's reply (redis #9422).
const MINIMUM_REDIS_MAJOR: u64 = 7;

/// How the near cache behaves. Built once; see the field docs for the defaults.
#[derive(Clone, Debug)]
pub struct NearCacheSettings {
    /// Memory bound for keys and values (64 MiB by default).
    pub max_bytes: u64,
    /// No entry lives longer than this, whatever its TTL in Redis (30 s by default); each
    /// entry's cap is drawn between 90 % and 100 % of it.
    pub max_ttl: Duration,
    /// How often each connection proves it is alive and the keyspace was not flushed (250 ms).
    pub heartbeat_interval: Duration,
    /// Entries of a connection that has not answered a heartbeat for this long are not served
    /// (750 ms by default): the bound on staleness when Redis freezes or a socket goes half-open.
    /// Reads then go to Redis and fail at its command timeout: with the default 1 s, a frozen
    /// Redis answers 503 within 1.75 s of the freeze and never from memory after 750 ms. Reads
    /// are not failed fast on a silent connection: under CPU overload heartbeats arrive late,
    /// and that would turn slowness into errors.
    pub max_silence: Duration,
}

impl Default for NearCacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            max_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_millis(250),
            max_silence: Duration::from_millis(750),
        }
    }
}

/// Why the near cache could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NearCacheError {
    #[error("near cache: invalid setting {setting}: {problem}")]
    InvalidSetting { setting: &'static str, problem: &'static str },
    #[error("near cache: Redis {version} is older than 7.0, whose invalidations can arrive inside replies")]
    RedisTooOld { version: String },
    #[error("near cache: cannot read the Redis version: {0}")]
    Version(String),
    #[error("near cache: cannot turn on client tracking on connection {connection}: {reason}")]
    Tracking { connection: usize, reason: String },
}

pub(crate) fn check_settings(settings: &NearCacheSettings) -> Result<(), NearCacheError> {
    let invalid = |setting, problem| Err(NearCacheError::InvalidSetting { setting, problem });
    if settings.max_bytes == 0 {
        return invalid("max_bytes", "must be more than 0");
    }
    if settings.max_ttl < Duration::from_millis(1) {
        return invalid("max_ttl", "must be at least 1 ms");
    }
    if settings.heartbeat_interval < Duration::from_millis(1) {
        return invalid("heartbeat_interval", "must be at least 1 ms");
    }
    if settings.max_silence <= settings.heartbeat_interval {
        return invalid("max_silence", "must be longer than heartbeat_interval");
    }
    Ok(())
}

pub(crate) async fn check_redis_version(client: &Client) -> Result<(), NearCacheError> {
    let info: String = client
        .info(Some(InfoKind::Server))
        .await
        .map_err(|error| NearCacheError::Version(error.details().to_owned()))?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
        .ok_or_else(|| NearCacheError::Version("INFO server has no redis_version".to_owned()))?;
    let major: u64 = version.split('.').next().and_then(|major| major.parse().ok()).unwrap_or(0);
    if major < MINIMUM_REDIS_MAJOR {
        return Err(NearCacheError::RedisTooOld { version: version.to_owned() });
    }
    Ok(())
}
