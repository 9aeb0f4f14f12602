//! Tessera's settings: loaded once with figment, validated into typed [`Settings`], secrets
//! redacted. Precedence, lowest first: built-in defaults, `configs/{APP_ENV}.toml`,
//! `configs/.env.{APP_ENV}`, the process environment.
//!
//! This crate depends on no other Tessera crate and knows nothing about Redis clients or HTTP.

mod access;
mod dotenv;
mod duration;
mod effective;
mod environment;
#[cfg(test)]
mod properties;
mod raw;
mod redis_target;
mod redis_tls;
mod secret;
#[cfg(test)]
mod tests;
mod unknown;
mod validate;

use std::{
    fmt,
    net::SocketAddr,
    num::NonZeroU64,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    Figment, Metadata, Provider,
    providers::{Format, Toml},
};

pub use access::{InternalKeys, InternalScope, internal_scope, is_internal_path};
pub use duration::parse_duration;
pub use effective::{EffectiveSetting, NOT_SET, REDACTED};
pub use environment::{SETTINGS, SettingName};
pub use redis_target::{HostPort, RedisTarget};
pub use redis_tls::{ClientIdentity, RedisTls, TrustedRoots};
pub use secret::Secret;
pub use unknown::{UnknownVariable, unknown_variables};

use raw::RawSettings;
use validate::Validator;

/// Which `configs/` profile is loaded: `APP_ENV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnv {
    Dev,
    Test,
    Prod,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Test => "test",
            Self::Prod => "prod",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dev" | "development" => Some(Self::Dev),
            "test" => Some(Self::Test),
            "prod" | "production" => Some(Self::Prod),
            _ => None,
        }
    }
}

/// Which backend keeps the data: `TESSERA_STORE`. Unset, it is `embedded` in the dev profile
/// when neither `REDIS_URL` nor `REDIS_HOST` is set, and `redis` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Redis,
    /// In-process: not shared between processes; kept in [`DataSettings::dir`] across restarts.
    Embedded,
}

/// Where the embedded store keeps its data (`TESSERA_DATA_DIR`) and when a write reaches the
/// disk (`TESSERA_FSYNC`). Unused with Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSettings {
    /// `None`: memory only (`TESSERA_DATA_DIR=none`, and the test profile's default), lost on
    /// restart. Default: `$XDG_DATA_HOME/tessera`, else `$HOME/.local/share/tessera`.
    pub dir: Option<std::path::PathBuf>,
    pub fsync: FsyncPolicy,
}

/// `TESSERA_FSYNC`, as Redis's `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `always`: a write is acknowledged once it is on disk.
    Always,
    /// `everysec` (the default): on disk within about a second.
    EverySecond,
}

impl FsyncPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::EverySecond => "everysec",
        }
    }
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Embedded => "embedded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Everything about reaching Redis.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub target: RedisTarget,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `Some` exactly when the URL's scheme is `rediss`, `rediss-cluster` or `rediss-sentinel`:
    /// every connection (nodes, sentinels, the primary) is then TLS with the server's
    /// certificate checked against the host name, or none is made.
    pub tls: Option<RedisTls>,
    pub pool_size: usize,
    /// Bounds the first connection and every reconnection attempt.
    pub connect_timeout: Duration,
    /// Bounds every command: a slow or absent Redis answers with an error, never a hang.
    pub command_timeout: Duration,
    /// Reconnect backoff: starts here, doubles, never waits longer than `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

/// How tokens are issued and kept.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Oldest sessions beyond this many per user are revoked at issue time; `None`: no cap
    /// (`TESSERA_MAX_SESSIONS_PER_USER=0`).
    pub max_sessions_per_user: Option<NonZeroU64>,
    /// Every successful verification renews the token's TTL, to the lifetime it was issued
    /// with, never past `max_session_lifetime` after its `iat`.
    pub sliding_expiry: bool,
    /// How long after its `iat` a token may live at most, renewals included
    /// (`TESSERA_MAX_SESSION_LIFETIME`, 30 days by default); no token is issued for longer.
    pub max_session_lifetime: Duration,
    /// The format new tokens are issued in: `TESSERA_TOKEN_FORMAT`.
    pub token_format: TokenFormat,
    /// How tokens are kept in the store: `TESSERA_TOKEN_STORAGE`.
    pub token_storage: TokenStorage,
    /// How long a revocation waits for the Redis master's replicas to acknowledge it
    /// (`TESSERA_REVOCATION_WAIT_MS`); zero: no wait.
    pub revocation_wait: Duration,
    /// How long issuing a token waits for the master's replicas to acknowledge it
    /// (`TESSERA_ISSUE_WAIT_MS`); zero, the default: no wait.
    pub issue_wait: Duration,
}

/// `TESSERA_TOKEN_FORMAT`: `v1` (the Python system's shape, the default) or `v2` (`tsr_`
/// prefix and a checksum). Both are accepted whatever the setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormat {
    V1,
    V2,
}

/// `TESSERA_TOKEN_STORAGE`: `plain` (the default; the only form the Python system reads),
/// `hashed` (SHA-256 of the token in keys and lists) or `migrate` (reads both, moves plain
/// tokens to hashed on use, writes hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStorage {
    Plain,
    Hashed,
    Migrate,
}

/// `TESSERA_NEAR_CACHE`: whether verifications (and the toolkit's reads) go through the
/// in-process near cache kept coherent by Redis client tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearCacheMode {
    /// Not set: on when the store is Redis 7.0 or newer, off otherwise (with a warning).
    Auto,
    /// On; start-up fails when the store is a Redis too old to support it.
    On,
    Off,
}

/// The near cache: `TESSERA_NEAR_CACHE`, `TESSERA_NEAR_CACHE_TTL_MS`,
/// `TESSERA_NEAR_CACHE_MAX_BYTES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NearCacheConfig {
    pub mode: NearCacheMode,
    /// How long a verdict (any entry) may be kept at most.
    pub max_ttl: Duration,
    /// Memory bound for keys and values.
    pub max_bytes: u64,
}

/// The HTTP face: which paths skip auth, which metadata fields become forward-auth headers,
/// the size limits and the connection limits.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Exact paths served without a token.
    pub public_paths: Vec<String>,
    /// `(metadata field, response header)` pairs added by `/auth/verify`.
    pub forward_headers: Vec<(String, String)>,
    /// A cookie that carries the token when a request has no `Authorization` header
    /// (`TESSERA_TOKEN_COOKIE`), for browser apps; `None`: tokens come from the header only.
    pub token_cookie: Option<String>,
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// Open connections at most. At the cap the oldest idle keep-alive connection is closed
    /// for a new one; while none is idle, new ones wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Open connections from one IP address at most; past it the peer's oldest idle connection
    /// is closed, or, none being idle, the new connection is refused.
    pub max_connections_per_ip: usize,
    /// How long a request head may take to arrive, from its first byte (or, on a new
    /// connection, from the accept): slow clients are cut after this.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request; at least
    /// `header_read_timeout`.
    pub idle_timeout: Duration,
}

/// The validated settings, built by [`Settings::load`] (as the server reads them),
/// [`Settings::from_env_pairs`] (from code) or [`Settings::from_figment`], never field by field:
/// every value went through validation. Fields may be added in any release.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    pub app_env: AppEnv,
    pub listen: SocketAddr,
    pub store: StoreKind,
    /// The embedded store's data directory and fsync policy.
    pub data: DataSettings,
    pub redis: RedisSettings,
    pub near_cache: NearCacheConfig,
    pub access_token_ttl: Duration,
    /// Put in front of every key (a namespace); empty keeps the Python system's keys.
    pub key_prefix: String,
    /// Cache operations at least this slow are counted and logged.
    pub slow_operation: Duration,
    pub auth: AuthSettings,
    pub http: HttpSettings,
    /// Keys accepted on internal routes, per job; several while a key is rotated. All empty:
    /// internal routes off.
    pub internal_keys: InternalKeys,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    pub log_format: LogFormat,
    /// A `tracing` filter directive such as `info` or `tessera=debug,fred=warn`.
    pub log_filter: String,
}

/// A setting that could not be used: which one, where its value came from, what is wrong.
/// Its text is one line and never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {setting} (from {origin}): {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub origin: String,
    pub problem: String,
}

impl Settings {
    /// Loads from `APP_ENV`, `TESSERA_CONFIG_DIR` (default `configs`) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with_sources().map(|(settings, _)| settings)
    }

    /// [`Settings::load`], also returning where the values came from (`tessera check-config`).
    pub fn load_with_sources() -> Result<(Self, Sources), ConfigError> {
        let (app_env, app_env_origin) = match std::env::var("APP_ENV") {
            Err(_) => (AppEnv::Dev, DEFAULT_ORIGIN),
            Ok(text) => (
                AppEnv::parse(&text).ok_or_else(|| ConfigError {
                    setting: "APP_ENV".to_owned(),
                    origin: environment::ENVIRONMENT_SOURCE.to_owned(),
                    problem: format!("unknown environment `{text}`, expected dev, test or prod"),
                })?,
                environment::ENVIRONMENT_SOURCE,
            ),
        };
        let (config_dir, config_dir_origin) = match std::env::var_os(CONFIG_DIR_VARIABLE) {
            None => (PathBuf::from(DEFAULT_CONFIG_DIR), DEFAULT_ORIGIN),
            Some(dir) => (PathBuf::from(dir), environment::ENVIRONMENT_SOURCE),
        };
        let figment = Self::figment(app_env, &config_dir)?;
        let settings = Self::from_figment(app_env, &figment)?;
        Ok((settings, Sources { app_env, app_env_origin, config_dir, config_dir_origin, figment }))
    }

    /// The layered sources for `app_env`, lowest precedence first.
    pub fn figment(app_env: AppEnv, config_dir: &Path) -> Result<Figment, ConfigError> {
        let toml_path = config_dir.join(format!("{}.toml", app_env.as_str()));
        let mut figment = Figment::new();
        if toml_path.is_file() {
            let toml = Toml::file_exact(&toml_path);
            reject_unknown_keys(&toml, &toml_path)?;
            figment = figment.merge(toml);
        }
        let dotenv_path = config_dir.join(format!(".env.{}", app_env.as_str()));
        Ok(figment.merge(dotenv::DotenvFile::new(&dotenv_path)).merge(environment::ProcessEnvironment))
    }

    /// Settings from environment-style pairs alone (no files, no process environment), for
    /// services that embed Tessera and for tests: `[("REDIS_URL", "redis://127.0.0.1:7000")]`.
    pub fn from_env_pairs(app_env: AppEnv, pairs: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let given = environment::GivenValues { pairs };
        if let Err(error) = given.data() {
            return Err(ConfigError {
                setting: "settings".to_owned(),
                origin: environment::GIVEN_SOURCE.to_owned(),
                problem: one_line(&error.kind),
            });
        }
        Self::from_figment(app_env, &Figment::from(given))
    }

    /// Extracts and validates the settings from an assembled figment.
    pub fn from_figment(app_env: AppEnv, figment: &Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(|error| extraction_error(figment, &error))?;
        Validator { figment }.validate(app_env, raw)
    }
}

/// Where loaded settings came from: the profile, the folder of its files, and the layers as
/// merged, so each value's origin can be reported ([`Sources::effective`]).
#[derive(Debug)]
pub struct Sources {
    pub app_env: AppEnv,
    app_env_origin: &'static str,
    pub config_dir: PathBuf,
    config_dir_origin: &'static str,
    figment: Figment,
}

/// The variable naming the folder of the profile files; not a setting itself.
pub const CONFIG_DIR_VARIABLE: &str = "TESSERA_CONFIG_DIR";
const DEFAULT_CONFIG_DIR: &str = "configs";
/// The origin of a value that no source set.
const DEFAULT_ORIGIN: &str = "default";

/// Where a value came from, in words: `environment`, `file configs/dev.toml`, or `default`.
fn origin(metadata: Option<&Metadata>) -> String {
    match metadata {
        None => DEFAULT_ORIGIN.to_owned(),
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(path)) => format!("file {}", path.display()),
            _ => metadata.name.to_string(),
        },
    }
}

fn extraction_error(figment: &Figment, error: &figment::Error) -> ConfigError {
    let key = error.path.first().map(String::as_str).unwrap_or_default();
    let metadata = error.metadata.as_ref().or_else(|| figment.find_metadata(key));
    let setting = if key.is_empty() { "settings".to_owned() } else { environment::env_name(key).to_owned() };
    ConfigError { setting, origin: origin(metadata), problem: one_line(&error.kind) }
}

fn one_line(kind: &impl fmt::Display) -> String {
    escape_control_characters(kind.to_string().lines().map(str::trim).collect::<Vec<_>>().join(" "))
}

/// `text` with control characters written as escapes (`\n`), so a value quoted in a message
/// cannot break its one line.
fn escape_control_characters(text: String) -> String {
    if !text.contains(char::is_control) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if character.is_control() {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    escaped
}

/// A misspelt key in a TOML file would otherwise be ignored in silence.
fn reject_unknown_keys(toml: &impl Provider, path: &Path) -> Result<(), ConfigError> {
    let origin = format!("file {}", path.display());
    let data = toml.data().map_err(|error| ConfigError {
        setting: "settings".to_owned(),
        origin: origin.clone(),
        problem: one_line(&error.kind),
    })?;
    for dict in data.values() {
        if let Some(key) = dict.keys().find(|key| !SETTINGS.iter().any(|setting| setting.key == key.as_str())) {
            return Err(ConfigError {
                setting: key.clone(),
                origin,
                problem: "unknown setting (README lists the known ones)".to_owned(),
            });
        }
    }
    Ok(())
}
