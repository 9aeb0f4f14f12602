//! [`Validator`]: raw settings to typed [`Settings`], or one [`ConfigError`] naming the setting,
//! where its value came from and what is wrong — never a secret.

use std::{net::SocketAddr, num::NonZeroU64, path::PathBuf, time::Duration};

use figment::Figment;

use crate::{
    AppEnv, AuthSettings, ClientIdentity, ConfigError, DataSettings, FsyncPolicy, HostPort, HttpSettings, InternalKeys,
    LogFormat, NearCacheConfig, NearCacheMode, RedisSettings, RedisTarget, RedisTls, Secret, Settings, StoreKind,
    TokenFormat, TokenStorage, TrustedRoots, access, duration, environment, escape_control_characters,
    is_internal_path, origin, raw::RawSettings, redis_target, redis_tls,
};

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

pub(crate) struct Validator<'a> {
    pub(crate) figment: &'a Figment,
}

impl Validator<'_> {
    pub(crate) fn validate(&self, app_env: AppEnv, raw: RawSettings) -> Result<Settings, ConfigError> {
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
            data: self.data(app_env, store, &raw)?,
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

    /// `TESSERA_DATA_DIR` (a path, or `none`) and `TESSERA_FSYNC`.
    /// The default directory is only looked for when the store is the embedded one (outside
    /// the test profile, whose default is memory only).
    fn data(&self, app_env: AppEnv, store: StoreKind, raw: &RawSettings) -> Result<DataSettings, ConfigError> {
        let fsync = match raw.fsync.trim().to_ascii_lowercase().as_str() {
            "always" => FsyncPolicy::Always,
            "everysec" => FsyncPolicy::EverySecond,
            other => {
                return Err(self.error("fsync", format!("unknown policy `{other}`, expected `always` or `everysec`")));
            }
        };
        let dir = match raw.data_dir.as_deref().map(str::trim) {
            Some(text) if text.eq_ignore_ascii_case("none") => None,
            Some("") => {
                return Err(self.error("data_dir", "is empty: name a directory, or `none` for memory only".to_owned()));
            }
            Some(text) => Some(absolute(std::path::Path::new(text))),
            None if app_env == AppEnv::Test || store != StoreKind::Embedded => None,
            None => Some(default_data_dir().ok_or_else(|| {
                self.error(
                    "data_dir",
                    "has no default: neither XDG_DATA_HOME nor HOME is set; name a directory, or `none` for \
                     memory only"
                        .to_owned(),
                )
            })?),
        };
        Ok(DataSettings { dir, fsync })
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
            if field.is_empty() || header.is_empty() || !header.bytes().all(is_token_byte) {
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
            Some(name) if name.bytes().all(is_token_byte) => Some(name.to_owned()),
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

/// A byte of an RFC 7230 token: what a header name and an RFC 6265 cookie name are made of.
fn is_token_byte(byte: u8) -> bool {
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

/// `$XDG_DATA_HOME/tessera`, else `$HOME/.local/share/tessera` (the XDG base directory rule);
/// an empty or relative `XDG_DATA_HOME` is ignored, as the specification says.
fn default_data_dir() -> Option<std::path::PathBuf> {
    let from = |name: &str| std::env::var_os(name).map(std::path::PathBuf::from).filter(|path| path.is_absolute());
    from("XDG_DATA_HOME")
        .map(|data| data.join("tessera"))
        .or_else(|| from("HOME").map(|home| home.join(".local").join("share").join("tessera")))
}

/// `path` against the working directory when it is relative, so logs and lock errors name
/// the directory whatever the process's directory is later.
fn absolute(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir().map_or_else(|_| path.to_owned(), |current| current.join(path))
}
