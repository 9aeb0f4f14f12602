//! The process environment as a figment provider, and the one table of setting names.
//!
//! figment's own `Env` guesses a type for every value (`[a]` becomes an array, `123` a number),
//! which would mangle passwords; this provider types a value by the setting it feeds instead
//! (a password such as `12345` or `[x]` stays text). A second provider takes `NAME=value` pairs
//! given in code (`Settings::from_env_pairs`), typed the same way. [`SETTINGS`] also marks which
//! settings are secrets (`REDIS_URL`, `REDIS_PASSWORD`, the internal keys): `effective.rs` reads
//! that to report them as `[redacted]`.

use figment::{
    Error, Metadata, Profile, Provider,
    value::{Dict, Map, Value},
};

/// How a setting's raw text is typed before serde sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueKind {
    /// Taken verbatim: names, addresses, secrets.
    Text,
    /// Taken verbatim like [`ValueKind::Text`], and never shown (`tessera check-config` prints
    /// `[redacted]`): passwords, keys, and the Redis URL, which may carry a password.
    Secret,
    /// An integer becomes a number, so `-1` reaches serde as a negative number and fails there
    /// with "expected u16"; anything else stays a string (`abc`: "found string"). Not figment's
    /// `Value` parser: it panics on some quoted text (an escape before a multi-byte character).
    Number,
}

/// One setting: its key in `configs/*.toml`, its environment variable, how it is typed.
#[derive(Debug)]
pub struct SettingName {
    pub key: &'static str,
    pub env: &'static str,
    pub(crate) kind: ValueKind,
}

impl SettingName {
    /// Whether the value must never be shown (it is, or may hold, a password or key).
    pub fn is_secret(&self) -> bool {
        self.kind == ValueKind::Secret
    }
}

const fn setting(key: &'static str, env: &'static str, kind: ValueKind) -> SettingName {
    SettingName { key, env, kind }
}

/// Every setting Tessera reads. The seed's names first, then the `TESSERA_` ones.
pub const SETTINGS: &[SettingName] = &[
    setting("redis_url", "REDIS_URL", ValueKind::Secret),
    setting("redis_host", "REDIS_HOST", ValueKind::Text),
    setting("redis_port", "REDIS_PORT", ValueKind::Number),
    setting("redis_password", "REDIS_PASSWORD", ValueKind::Secret),
    setting("redis_db", "REDIS_DB", ValueKind::Number),
    setting("access_token_expire_minutes", "ACCESS_TOKEN_EXPIRE_MINUTES", ValueKind::Number),
    setting("listen", "TESSERA_LISTEN", ValueKind::Text),
    setting("store", "TESSERA_STORE", ValueKind::Text),
    setting("data_dir", "TESSERA_DATA_DIR", ValueKind::Text),
    setting("fsync", "TESSERA_FSYNC", ValueKind::Text),
    setting("internal_key", "TESSERA_INTERNAL_KEY", ValueKind::Secret),
    setting("introspection_key", "TESSERA_INTROSPECTION_KEY", ValueKind::Secret),
    setting("metrics_key", "TESSERA_METRICS_KEY", ValueKind::Secret),
    setting("key_prefix", "TESSERA_KEY_PREFIX", ValueKind::Text),
    setting("slow_operation_ms", "TESSERA_SLOW_OPERATION_MS", ValueKind::Number),
    setting("max_sessions_per_user", "TESSERA_MAX_SESSIONS_PER_USER", ValueKind::Number),
    setting("sliding_expiry", "TESSERA_SLIDING_EXPIRY", ValueKind::Text),
    setting("max_session_lifetime", "TESSERA_MAX_SESSION_LIFETIME", ValueKind::Text),
    setting("revocation_wait_ms", "TESSERA_REVOCATION_WAIT_MS", ValueKind::Number),
    setting("issue_wait_ms", "TESSERA_ISSUE_WAIT_MS", ValueKind::Number),
    setting("public_paths", "TESSERA_PUBLIC_PATHS", ValueKind::Text),
    setting("forward_headers", "TESSERA_FORWARD_HEADERS", ValueKind::Text),
    setting("token_cookie", "TESSERA_TOKEN_COOKIE", ValueKind::Text),
    setting("max_header_bytes", "TESSERA_MAX_HEADER_BYTES", ValueKind::Number),
    setting("max_body_bytes", "TESSERA_MAX_BODY_BYTES", ValueKind::Number),
    setting("max_connections", "TESSERA_MAX_CONNECTIONS", ValueKind::Number),
    setting("max_connections_per_ip", "TESSERA_MAX_CONNECTIONS_PER_IP", ValueKind::Number),
    setting("header_read_timeout_ms", "TESSERA_HEADER_READ_TIMEOUT_MS", ValueKind::Number),
    setting("idle_timeout_ms", "TESSERA_IDLE_TIMEOUT_MS", ValueKind::Number),
    setting("redis_username", "TESSERA_REDIS_USERNAME", ValueKind::Text),
    setting("redis_pool_size", "TESSERA_REDIS_POOL_SIZE", ValueKind::Number),
    setting("redis_connect_timeout_ms", "TESSERA_REDIS_CONNECT_TIMEOUT_MS", ValueKind::Number),
    setting("redis_command_timeout_ms", "TESSERA_REDIS_COMMAND_TIMEOUT_MS", ValueKind::Number),
    setting("redis_reconnect_min_ms", "TESSERA_REDIS_RECONNECT_MIN_MS", ValueKind::Number),
    setting("redis_reconnect_max_ms", "TESSERA_REDIS_RECONNECT_MAX_MS", ValueKind::Number),
    setting("redis_ca_file", "TESSERA_REDIS_CA_FILE", ValueKind::Text),
    setting("redis_cert_file", "TESSERA_REDIS_CERT_FILE", ValueKind::Text),
    setting("redis_key_file", "TESSERA_REDIS_KEY_FILE", ValueKind::Text),
    setting("shutdown_timeout_ms", "TESSERA_SHUTDOWN_TIMEOUT_MS", ValueKind::Number),
    setting("log_format", "TESSERA_LOG_FORMAT", ValueKind::Text),
    setting("log", "TESSERA_LOG", ValueKind::Text),
    setting("token_format", "TESSERA_TOKEN_FORMAT", ValueKind::Text),
    setting("token_storage", "TESSERA_TOKEN_STORAGE", ValueKind::Text),
    setting("near_cache", "TESSERA_NEAR_CACHE", ValueKind::Text),
    setting("near_cache_ttl_ms", "TESSERA_NEAR_CACHE_TTL_MS", ValueKind::Number),
    setting("near_cache_max_bytes", "TESSERA_NEAR_CACHE_MAX_BYTES", ValueKind::Number),
];

/// The settings key an environment-style name feeds, if it is one of ours.
pub(crate) fn setting_key(env_name: &str) -> Option<&'static str> {
    SETTINGS.iter().find(|setting| setting.env == env_name).map(|setting| setting.key)
}

/// The environment variable name of a settings key: what messages call the setting.
pub(crate) fn env_name(key: &str) -> &str {
    SETTINGS.iter().find(|setting| setting.key == key).map_or(key, |setting| setting.env)
}

pub(crate) fn typed_value(key: &str, raw: &str) -> Value {
    let kind = SETTINGS.iter().find(|setting| setting.key == key).map(|setting| setting.kind);
    match kind {
        Some(ValueKind::Number) => {
            let text = raw.trim();
            match (text.parse::<u64>(), text.parse::<i64>()) {
                (Ok(number), _) => Value::from(number),
                (_, Ok(number)) => Value::from(number),
                _ => Value::from(raw.to_owned()),
            }
        }
        Some(ValueKind::Text | ValueKind::Secret) | None => Value::from(raw.to_owned()),
    }
}

pub(crate) const ENVIRONMENT_SOURCE: &str = "environment";

/// The variables of [`SETTINGS`] found in the process environment.
#[derive(Debug, Default)]
pub(crate) struct ProcessEnvironment;

impl Provider for ProcessEnvironment {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENVIRONMENT_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for setting in SETTINGS {
            match std::env::var(setting.env) {
                Ok(raw) => {
                    dict.insert(setting.key.to_owned(), typed_value(setting.key, &raw));
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::from(format!("{} is not valid UTF-8", setting.env)));
                }
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

pub(crate) const GIVEN_SOURCE: &str = "given values";

/// Environment-style `NAME=value` pairs handed over in code (embedding, tests); typed exactly
/// like the process environment. Unknown names are an error: a typo must not pass in silence.
#[derive(Debug)]
pub(crate) struct GivenValues<'a> {
    pub(crate) pairs: &'a [(&'a str, &'a str)],
}

impl Provider for GivenValues<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(GIVEN_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (name, raw) in self.pairs {
            let key = setting_key(name).ok_or_else(|| Error::from(format!("unknown setting {name}")))?;
            dict.insert(key.to_owned(), typed_value(key, raw));
        }
        Ok(Profile::Default.collect(dict))
    }
}
