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
mod redis_target;
mod redis_tls;
mod secret;
#[cfg(test)]
mod tests;
mod unknown;

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
use serde::{Deserialize, Serialize};

pub use access::{InternalKeys, InternalScope, internal_scope, is_internal_path};
pub use duration::parse_duration;
pub use effective::{EffectiveSetting, NOT_SET, REDACTED};
pub use environment::{SETTINGS, SettingName};
pub use redis_target::{HostPort, RedisTarget};
pub use redis_tls::{ClientIdentity, RedisTls, TrustedRoots};
pub use secret::Secret;
pub use unknown::{UnknownVariable, unknown_variables};

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
    /// In-process: not shared between processes, lost on restart. For development and trials.
    Embedded,
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

/// The validated settings. Built only by [`Settings::load`] or [`Settings::from_figment`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub app_env: AppEnv,
    pub listen: SocketAddr,
    pub store: StoreKind,
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

const MAX_POOL_SIZE: usize = 256;
const MAX_KEY_PREFIX_LEN: usize = 64;
/// hyper's smallest read buffer; the largest is a sane cap for one request's head.
const MIN_HEADER_BYTES: usize = 8 * 1024;
const MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Far beyond what one process can hold open (file descriptors, memory); a typo guard.
const MAX_CONNECTIONS: usize = 1_000_000;
/// One peer's share when not set: a proxy in front keeps far fewer upstream connections, and
/// one client cannot hold more than a tenth of the default cap.
const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1_000;

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

/// The settings as written, before validation. Keys are [`SETTINGS`]' keys. Serialized only to
/// report the defaults.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default)]
struct RawSettings {
    redis_url: Option<String>,
    redis_host: Option<String>,
    redis_port: u16,
    redis_password: Option<String>,
    redis_username: Option<String>,
    redis_db: u8,
    access_token_expire_minutes: u32,
    listen: String,
    store: Option<String>,
    key_prefix: String,
    slow_operation_ms: u64,
    max_sessions_per_user: u64,
    sliding_expiry: String,
    max_session_lifetime: String,
    revocation_wait_ms: u64,
    issue_wait_ms: u64,
    public_paths: String,
    forward_headers: String,
    token_cookie: Option<String>,
    max_header_bytes: usize,
    max_body_bytes: usize,
    max_connections: usize,
    max_connections_per_ip: Option<usize>,
    header_read_timeout_ms: u64,
    idle_timeout_ms: u64,
    internal_key: Option<String>,
    introspection_key: Option<String>,
    metrics_key: Option<String>,
    redis_pool_size: Option<usize>,
    redis_connect_timeout_ms: u64,
    redis_command_timeout_ms: u64,
    redis_reconnect_min_ms: u64,
    redis_reconnect_max_ms: u64,
    redis_ca_file: Option<String>,
    redis_cert_file: Option<String>,
    redis_key_file: Option<String>,
    shutdown_timeout_ms: u64,
    log_format: String,
    log: String,
    token_format: String,
    token_storage: String,
    near_cache: Option<String>,
    near_cache_ttl_ms: u64,
    near_cache_max_bytes: u64,
}

impl Default for RawSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_host: None,
            redis_port: 6379,
            redis_password: None,
            redis_username: None,
            redis_db: 0,
            access_token_expire_minutes: 30,
            listen: "127.0.0.1:8080".to_owned(),
            store: None,
            key_prefix: String::new(),
            slow_operation_ms: 50,
            max_sessions_per_user: 100,
            sliding_expiry: "false".to_owned(),
            max_session_lifetime: "30d".to_owned(),
            revocation_wait_ms: 500,
            issue_wait_ms: 0,
            public_paths: "/healthz,/readyz,/openapi.json".to_owned(),
            forward_headers: String::new(),
            token_cookie: None,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: None,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 95_000,
            internal_key: None,
            introspection_key: None,
            metrics_key: None,
            redis_pool_size: None,
            redis_connect_timeout_ms: 2_000,
            redis_command_timeout_ms: 1_000,
            redis_reconnect_min_ms: 100,
            redis_reconnect_max_ms: 2_000,
            redis_ca_file: None,
            redis_cert_file: None,
            redis_key_file: None,
            shutdown_timeout_ms: 10_000,
            log_format: "pretty".to_owned(),
            log: "info".to_owned(),
            token_format: "v1".to_owned(),
            token_storage: "plain".to_owned(),
            near_cache: None,
            near_cache_ttl_ms: 30_000,
            near_cache_max_bytes: 64 * 1024 * 1024,
        }
    }
}

struct Validator<'a> {
    figment: &'a Figment,
}

impl Validator<'_> {
    fn validate(&self, app_env: AppEnv, raw: RawSettings) -> Result<Settings, ConfigError> {
        let redis = self.redis(&raw)?;
        let listen = raw.listen.trim().parse::<SocketAddr>().map_err(|_| {
            self.error(
                "listen",
                format!("`{}` is not an address such as 127.0.0.1:8080 (port 0 picks a free port)", raw.listen),
            )
        })?;
        let store = match raw.store.as_deref().map(|store| store.trim().to_ascii_lowercase()) {
            Some(store) if store == "redis" => StoreKind::Redis,
            Some(store) if store == "embedded" => StoreKind::Embedded,
            Some(other) => {
                return Err(self.error("store", format!("unknown store `{other}`, expected `redis` or `embedded`")));
            }
            None => {
                let redis_named = [&raw.redis_url, &raw.redis_host]
                    .iter()
                    .any(|setting| setting.as_deref().is_some_and(|text| !text.trim().is_empty()));
                if app_env == AppEnv::Prod && !redis_named {
                    return Err(self.error(
                        "store",
                        "no store is named: in prod set REDIS_URL or REDIS_HOST (or TESSERA_STORE=embedded \
                         for one process that shares its sessions with no other)"
                            .to_owned(),
                    ));
                }
                if app_env == AppEnv::Dev && !redis_named { StoreKind::Embedded } else { StoreKind::Redis }
            }
        };
        if raw.key_prefix.len() > MAX_KEY_PREFIX_LEN
            || raw.key_prefix.chars().any(|character| character.is_whitespace() || character.is_control())
        {
            return Err(self.error(
                "key_prefix",
                format!("must be at most {MAX_KEY_PREFIX_LEN} bytes without whitespace or control characters"),
            ));
        }
        if raw.access_token_expire_minutes == 0 {
            return Err(self.error("access_token_expire_minutes", "must be at least 1 minute".to_owned()));
        }
        let internal_keys = self.all_internal_keys(app_env, &raw)?;
        let max_session_lifetime = self.max_session_lifetime(&raw)?;
        if u64::from(raw.access_token_expire_minutes) * 60 > max_session_lifetime.as_secs() {
            return Err(self.error(
                "access_token_expire_minutes",
                format!(
                    "{} minutes is longer than TESSERA_MAX_SESSION_LIFETIME ({} s)",
                    raw.access_token_expire_minutes,
                    max_session_lifetime.as_secs()
                ),
            ));
        }
        let http = self.http(&raw)?;
        let log_format = match raw.log_format.trim().to_ascii_lowercase().as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(
                    self.error("log_format", format!("unknown log format `{other}`, expected `pretty` or `json`"))
                );
            }
        };
        Ok(Settings {
            app_env,
            listen,
            store,
            redis,
            near_cache: self.near_cache(&raw)?,
            access_token_ttl: Duration::from_secs(u64::from(raw.access_token_expire_minutes) * 60),
            key_prefix: raw.key_prefix,
            slow_operation: self.positive_millis("slow_operation_ms", raw.slow_operation_ms)?,
            auth: AuthSettings {
                max_sessions_per_user: NonZeroU64::new(raw.max_sessions_per_user),
                sliding_expiry: self.flag("sliding_expiry", &raw.sliding_expiry)?,
                max_session_lifetime,
                token_format: self.token_format(&raw.token_format)?,
                token_storage: self.token_storage(&raw.token_storage)?,
                revocation_wait: self.replica_wait("revocation_wait_ms", raw.revocation_wait_ms)?,
                issue_wait: self.replica_wait("issue_wait_ms", raw.issue_wait_ms)?,
            },
            http,
            internal_keys,
            shutdown_timeout: self.positive_millis("shutdown_timeout_ms", raw.shutdown_timeout_ms)?,
            log_format,
            log_filter: raw.log,
        })
    }

    fn redis(&self, raw: &RawSettings) -> Result<RedisSettings, ConfigError> {
        let separate_password = raw.redis_password.clone().filter(|password| !password.is_empty());
        let url = raw.redis_url.as_deref().map(str::trim).filter(|url| !url.is_empty());
        let host_set = raw.redis_host.as_deref().is_some_and(|host| !host.trim().is_empty());
        // Both named: the one from the higher-precedence source wins (the process environment
        // over `.env` over TOML), as for every other setting; from the same source, the URL.
        let url = url.filter(|_| !host_set || self.rank("redis_url") >= self.rank("redis_host"));
        let (target, username, password, tls) = match url {
            Some(url) => {
                let parsed = redis_target::parse_redis_url(url).map_err(|problem| self.error("redis_url", problem))?;
                let url_rank = self.rank("redis_url");
                // A separate password or user from a stronger source than the URL wins over the URL's.
                let password = match parsed.password {
                    Some(_) if separate_password.is_some() && self.rank("redis_password") > url_rank => {
                        separate_password
                    }
                    from_url => from_url.or(separate_password),
                };
                let separate_username = raw.redis_username.clone().filter(|name| !name.is_empty());
                let username = match parsed.username {
                    Some(_) if separate_username.is_some() && self.rank("redis_username") > url_rank => {
                        separate_username
                    }
                    from_url => from_url.or(separate_username),
                };
                (parsed.target, username, password, parsed.tls)
            }
            None => {
                if raw.redis_port == 0 {
                    return Err(self.error("redis_port", "0 is not a valid port, expected 1-65535".to_owned()));
                }
                let host = raw.redis_host.as_deref().map(str::trim).filter(|host| !host.is_empty());
                let server = HostPort { host: host.unwrap_or("127.0.0.1").to_owned(), port: raw.redis_port };
                (
                    RedisTarget::Standalone { server, db: raw.redis_db },
                    raw.redis_username.clone(),
                    separate_password,
                    false,
                )
            }
        };
        let pool_size =
            raw.redis_pool_size.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from).max(2));
        if !(1..=MAX_POOL_SIZE).contains(&pool_size) {
            return Err(
                self.error("redis_pool_size", format!("{pool_size} is out of range, expected 1-{MAX_POOL_SIZE}"))
            );
        }
        let reconnect_min = self.positive_millis("redis_reconnect_min_ms", raw.redis_reconnect_min_ms)?;
        let reconnect_max = self.positive_millis("redis_reconnect_max_ms", raw.redis_reconnect_max_ms)?;
        if reconnect_max < reconnect_min {
            return Err(self.error(
                "redis_reconnect_max_ms",
                format!(
                    "{} is below TESSERA_REDIS_RECONNECT_MIN_MS ({})",
                    raw.redis_reconnect_max_ms, raw.redis_reconnect_min_ms
                ),
            ));
        }
        let tls = self.redis_tls(raw, tls)?;
        Ok(RedisSettings {
            target,
            username,
            password: password.map(Secret::new),
            tls,
            pool_size,
            connect_timeout: self.positive_millis("redis_connect_timeout_ms", raw.redis_connect_timeout_ms)?,
            command_timeout: self.positive_millis("redis_command_timeout_ms", raw.redis_command_timeout_ms)?,
            reconnect_min,
            reconnect_max,
        })
    }

    /// The TLS files, read and decoded now. Set without TLS they would do nothing, which is a
    /// trap (the operator believes the link is encrypted): an error, as is half a client identity.
    fn redis_tls(&self, raw: &RawSettings, tls: bool) -> Result<Option<RedisTls>, ConfigError> {
        let path_of = |setting: &Option<String>| {
            setting.as_deref().map(str::trim).filter(|path| !path.is_empty()).map(PathBuf::from)
        };
        let files = [
            ("redis_ca_file", path_of(&raw.redis_ca_file)),
            ("redis_cert_file", path_of(&raw.redis_cert_file)),
            ("redis_key_file", path_of(&raw.redis_key_file)),
        ];
        if !tls {
            return match files.iter().find(|(_, path)| path.is_some()) {
                None => Ok(None),
                Some((key, _)) => Err(self.error(
                    key,
                    "is set but TLS is off: REDIS_URL must start with rediss://, rediss-cluster:// or \
                     rediss-sentinel:// for the file to be used"
                        .to_owned(),
                )),
            };
        }
        let [(_, ca_path), (_, cert_path), (_, key_path)] = files;
        let trusted_roots = match ca_path {
            None => TrustedRoots::System,
            Some(path) => {
                let certificates =
                    redis_tls::read_certificates(&path).map_err(|problem| self.error("redis_ca_file", problem))?;
                TrustedRoots::CaFile { path, certificates }
            }
        };
        let client_identity = match (cert_path, key_path) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.error(
                    "redis_cert_file",
                    "is set without TESSERA_REDIS_KEY_FILE: a client certificate needs its private key".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(self.error(
                    "redis_key_file",
                    "is set without TESSERA_REDIS_CERT_FILE: a private key needs its client certificate".to_owned(),
                ));
            }
            (Some(cert_path), Some(key_path)) => {
                let certificates = redis_tls::read_certificates(&cert_path)
                    .map_err(|problem| self.error("redis_cert_file", problem))?;
                let key =
                    redis_tls::read_private_key(&key_path).map_err(|problem| self.error("redis_key_file", problem))?;
                Some(ClientIdentity { cert_path, certificates, key_path, key: std::sync::Arc::new(key) })
            }
        };
        Ok(Some(RedisTls { trusted_roots, client_identity }))
    }

    fn http(&self, raw: &RawSettings) -> Result<HttpSettings, ConfigError> {
        let public_paths: Vec<String> = comma_list(&raw.public_paths).map(str::to_owned).collect();
        if let Some(path) = public_paths.iter().find(|path| !path.starts_with('/') || path.contains(['?', '#', '%'])) {
            return Err(self.error("public_paths", format!("`{path}` is not a plain path starting with `/`")));
        }
        if let Some(path) = public_paths.iter().find(|path| reaches_internal_path(path)) {
            return Err(self.error(
                "public_paths",
                format!(
                    "`{path}` is (or could be read as) an internal path; internal paths always need the internal key"
                ),
            ));
        }
        let mut forward_headers = Vec::new();
        for pair in comma_list(&raw.forward_headers) {
            let Some((field, header)) = pair.split_once('=').map(|(field, header)| (field.trim(), header.trim()))
            else {
                return Err(self.error("forward_headers", format!("`{pair}` is not FIELD=Header-Name")));
            };
            let is_token_char = |byte: u8| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
            if field.is_empty() || header.is_empty() || !header.bytes().all(is_token_char) {
                return Err(self.error("forward_headers", format!("`{pair}` is not FIELD=Header-Name")));
            }
            if let Some(why) = reserved_header(header) {
                return Err(self.error(
                    "forward_headers",
                    format!(
                        "`{header}` cannot carry metadata: it is {why}; pick a name of your own such as X-Auth-{field}"
                    ),
                ));
            }
            if forward_headers.iter().any(|(_, taken): &(String, String)| taken.eq_ignore_ascii_case(header)) {
                return Err(self.error("forward_headers", format!("`{header}` is named twice")));
            }
            forward_headers.push((field.to_owned(), header.to_owned()));
        }
        if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&raw.max_header_bytes) {
            return Err(self.error(
                "max_header_bytes",
                format!("{} is out of range, expected {MIN_HEADER_BYTES}-{MAX_HEADER_BYTES}", raw.max_header_bytes),
            ));
        }
        if raw.max_body_bytes == 0 {
            return Err(self.error("max_body_bytes", "must be at least 1 byte".to_owned()));
        }
        if !(1..=MAX_CONNECTIONS).contains(&raw.max_connections) {
            return Err(self.error(
                "max_connections",
                format!("{} is out of range, expected 1-{MAX_CONNECTIONS}", raw.max_connections),
            ));
        }
        let max_connections_per_ip =
            raw.max_connections_per_ip.unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP.min(raw.max_connections));
        if !(1..=raw.max_connections).contains(&max_connections_per_ip) {
            return Err(self.error(
                "max_connections_per_ip",
                format!(
                    "{max_connections_per_ip} is out of range, expected 1 to TESSERA_MAX_CONNECTIONS ({})",
                    raw.max_connections
                ),
            ));
        }
        let header_read_timeout = self.millis_up_to_a_day("header_read_timeout_ms", raw.header_read_timeout_ms)?;
        let idle_timeout = self.millis_up_to_a_day("idle_timeout_ms", raw.idle_timeout_ms)?;
        if idle_timeout < header_read_timeout {
            return Err(self.error(
                "idle_timeout_ms",
                format!(
                    "{} is below TESSERA_HEADER_READ_TIMEOUT_MS ({}): a connection waiting for a request head \
                     is cut at the idle timeout",
                    raw.idle_timeout_ms, raw.header_read_timeout_ms
                ),
            ));
        }
        let token_cookie = match raw.token_cookie.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) if name.bytes().all(is_cookie_name_byte) => Some(name.to_owned()),
            Some(name) => {
                return Err(self.error(
                    "token_cookie",
                    format!("`{name}` is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"),
                ));
            }
        };
        Ok(HttpSettings {
            public_paths,
            forward_headers,
            token_cookie,
            max_header_bytes: raw.max_header_bytes,
            max_body_bytes: raw.max_body_bytes,
            max_connections: raw.max_connections,
            max_connections_per_ip,
            header_read_timeout,
            idle_timeout,
        })
    }

    fn near_cache(&self, raw: &RawSettings) -> Result<NearCacheConfig, ConfigError> {
        let mode = match raw.near_cache.as_deref().map(|text| text.trim().to_ascii_lowercase()) {
            None => NearCacheMode::Auto,
            Some(text) if text.is_empty() || text == "auto" => NearCacheMode::Auto,
            Some(text) if text == "on" => NearCacheMode::On,
            Some(text) if text == "off" => NearCacheMode::Off,
            Some(other) => {
                return Err(self.error("near_cache", format!("unknown value `{other}`, expected `on` or `off`")));
            }
        };
        if raw.near_cache_max_bytes < 1024 {
            return Err(self.error("near_cache_max_bytes", "must be at least 1024 bytes".to_owned()));
        }
        // The cap is the bound on staleness should an invalidation ever be missed: a day at most.
        const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
        if raw.near_cache_ttl_ms > DAY_MS {
            return Err(self.error("near_cache_ttl_ms", format!("must be at most {DAY_MS} (a day)")));
        }
        Ok(NearCacheConfig {
            mode,
            max_ttl: self.positive_millis("near_cache_ttl_ms", raw.near_cache_ttl_ms)?,
            max_bytes: raw.near_cache_max_bytes,
        })
    }

    fn token_format(&self, text: &str) -> Result<TokenFormat, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "v1" => Ok(TokenFormat::V1),
            "v2" => Ok(TokenFormat::V2),
            other => Err(self.error("token_format", format!("unknown token format `{other}`, expected `v1` or `v2`"))),
        }
    }

    fn token_storage(&self, text: &str) -> Result<TokenStorage, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "plain" => Ok(TokenStorage::Plain),
            "hashed" => Ok(TokenStorage::Hashed),
            "migrate" => Ok(TokenStorage::Migrate),
            other => Err(self.error(
                "token_storage",
                format!("unknown token storage `{other}`, expected `plain`, `hashed` or `migrate`"),
            )),
        }
    }

    fn flag(&self, key: &str, text: &str) -> Result<bool, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            other => Err(self.error(key, format!("`{other}` is not a boolean, expected true or false"))),
        }
    }

    /// The keys of each job. A key may serve one job only (a scrape job's key that could also
    /// introspect is no longer least privilege); in prod keys are at least 32 bytes and none
    /// is a key the documentation shows.
    fn all_internal_keys(&self, app_env: AppEnv, raw: &RawSettings) -> Result<InternalKeys, ConfigError> {
        let keys = InternalKeys {
            administration: self.internal_keys(app_env, "internal_key", raw.internal_key.as_deref())?,
            introspection: self.internal_keys(app_env, "introspection_key", raw.introspection_key.as_deref())?,
            metrics: self.internal_keys(app_env, "metrics_key", raw.metrics_key.as_deref())?,
        };
        let jobs = [
            ("introspection_key", &keys.introspection, "internal_key", &keys.administration),
            ("metrics_key", &keys.metrics, "internal_key", &keys.administration),
            ("metrics_key", &keys.metrics, "introspection_key", &keys.introspection),
        ];
        for (key, own, other_key, others) in jobs {
            if own.iter().any(|mine| others.iter().any(|other| other.expose() == mine.expose())) {
                return Err(self.error(
                    key,
                    format!("a key is also set in {}: give each job its own key", environment::env_name(other_key)),
                ));
            }
        }
        Ok(keys)
    }

    fn internal_keys(&self, app_env: AppEnv, key: &str, text: Option<&str>) -> Result<Vec<Secret>, ConfigError> {
        let keys: Vec<&str> =
            text.unwrap_or_default().split(',').map(str::trim).filter(|key| !key.is_empty()).collect();
        let min_len = if app_env == AppEnv::Prod { access::MIN_PRODUCTION_KEY_LEN } else { access::MIN_KEY_LEN };
        for (position, candidate) in keys.iter().enumerate() {
            let number = position + 1;
            if candidate.len() < min_len {
                let context = if app_env == AppEnv::Prod { " in prod" } else { "" };
                return Err(self.error(key, format!("key number {number} is shorter than {min_len} bytes{context}")));
            }
            if app_env == AppEnv::Prod && access::SAMPLE_KEYS.contains(candidate) {
                return Err(self.error(
                    key,
                    format!("key number {number} is a sample key from the documentation; generate one (openssl rand -hex 32)"),
                ));
            }
        }
        Ok(keys.into_iter().map(Secret::new).collect())
    }

    /// `TESSERA_MAX_SESSION_LIFETIME`: how long after its `iat` a token may be renewed by sliding
    /// expiry or issued for, at most: a duration such as `30d` or `12h`.
    fn max_session_lifetime(&self, raw: &RawSettings) -> Result<Duration, ConfigError> {
        duration::parse_duration(&raw.max_session_lifetime)
            .map_err(|problem| self.error("max_session_lifetime", problem))
    }

    /// How strong the source of `key`'s value is: the process environment (or values given in
    /// code) over `.env` over TOML over the default.
    fn rank(&self, key: &str) -> u8 {
        match self.figment.find_metadata(key) {
            None => 0,
            Some(metadata) => match &metadata.source {
                Some(figment::Source::File(path)) if path.extension().is_some_and(|extension| extension == "toml") => 1,
                Some(figment::Source::File(_)) => 2,
                _ => 3,
            },
        }
    }

    fn positive_millis(&self, key: &str, millis: u64) -> Result<Duration, ConfigError> {
        if millis == 0 {
            return Err(self.error(key, "must be at least 1 millisecond".to_owned()));
        }
        Ok(Duration::from_millis(millis))
    }

    /// `TESSERA_REVOCATION_WAIT_MS`, `TESSERA_ISSUE_WAIT_MS`: 0 (off) to a minute; a
    /// revocation (an issue) answers only after its replicas acknowledged it or this long.
    fn replica_wait(&self, key: &str, millis: u64) -> Result<Duration, ConfigError> {
        const MINUTE_MS: u64 = 60_000;
        if millis > MINUTE_MS {
            return Err(self.error(key, format!("{millis} is more than a minute, expected 0 (no wait) to {MINUTE_MS}")));
        }
        Ok(Duration::from_millis(millis))
    }

    /// A timeout that becomes a deadline on a clock: at least 1 ms, at most a day.
    fn millis_up_to_a_day(&self, key: &str, millis: u64) -> Result<Duration, ConfigError> {
        const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
        if millis > DAY_MS {
            return Err(self.error(key, format!("{millis} is more than a day, expected at most {DAY_MS}")));
        }
        self.positive_millis(key, millis)
    }

    fn error(&self, key: &str, problem: String) -> ConfigError {
        ConfigError {
            setting: environment::env_name(key).to_owned(),
            origin: origin(self.figment.find_metadata(key)),
            problem: escape_control_characters(problem),
        }
    }
}

/// A byte of an RFC 6265 cookie name (an RFC 7230 token).
fn is_cookie_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Why a response header cannot carry metadata, if it cannot: an identity header Tessera
/// sets (the application trusts it), a credential, or a header that frames the message or
/// belongs to the hop (a proxy would act on it).
fn reserved_header(header: &str) -> Option<&'static str> {
    const RESERVED: &[(&str, &str)] = &[
        ("x-auth-user-id", "the identity header"),
        ("x-auth-session-id", "an identity header"),
        ("x-request-id", "the request id Tessera sets"),
        ("x-internal-key", "a credential"),
        ("authorization", "a credential"),
        ("proxy-authorization", "a credential"),
        ("cookie", "a credential"),
        ("set-cookie", "a credential"),
        ("www-authenticate", "part of Tessera's answer"),
        ("cache-control", "part of Tessera's answer"),
        ("x-content-type-options", "part of Tessera's answer"),
        ("retry-after", "part of Tessera's answer"),
        ("content-length", "a framing header"),
        ("content-type", "a framing header"),
        ("content-encoding", "a framing header"),
        ("transfer-encoding", "a framing header"),
        ("host", "a framing header"),
        ("connection", "a hop-by-hop header"),
        ("keep-alive", "a hop-by-hop header"),
        ("proxy-connection", "a hop-by-hop header"),
        ("proxy-authenticate", "a hop-by-hop header"),
        ("te", "a hop-by-hop header"),
        ("trailer", "a hop-by-hop header"),
        ("upgrade", "a hop-by-hop header"),
    ];
    RESERVED.iter().find(|(name, _)| name.eq_ignore_ascii_case(header)).map(|(_, why)| *why)
}

/// Whether a public path could expose an internal one: it is internal, or it becomes internal
/// once a proxy or framework lowercases it, merges repeated slashes, resolves `.` and `..`
/// segments or drops a trailing slash (`//internal/sessions`, `/Metrics`, `/a/../metrics/`).
fn reaches_internal_path(path: &str) -> bool {
    let lowered = path.to_ascii_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    for segment in lowered.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    is_internal_path(path) || matches!(segments.first(), Some(&"internal") | Some(&"metrics"))
}

fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty())
}

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
