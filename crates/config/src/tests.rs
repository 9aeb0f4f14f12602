//! Settings tests: every precedence level, every bad value the issue names, redaction.
//! Each runs inside a figment `Jail` (its own working directory and environment).

#![allow(clippy::result_large_err, reason = "figment::Jail closures must return figment::Error, which is large")]

use figment::Jail;

use super::*;

/// Loads from the jail's `configs/` with an empty environment but for `env`.
fn load_in(jail: &mut Jail, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    try_load_in(jail, env)
}

fn try_load_in(jail: &mut Jail, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    jail.clear_env();
    // A home, as every login has: the embedded store's default data directory is under it.
    let home = jail.directory().display().to_string();
    jail.set_env("HOME", home);
    for (name, value) in env {
        jail.set_env(name, value);
    }
    Settings::load()
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    Jail::expect_with(|jail| {
        let settings = load_in(jail, &[]).expect("defaults load");
        assert_eq!(settings.app_env, AppEnv::Dev);
        assert_eq!(settings.listen, "127.0.0.1:8080".parse().expect("address"));
        assert_eq!(settings.store, StoreKind::Embedded, "dev without REDIS_URL or REDIS_HOST");
        assert_eq!(settings.key_prefix, "");
        assert_eq!(
            settings.redis.target,
            RedisTarget::Standalone { server: HostPort { host: "127.0.0.1".into(), port: 6379 }, db: 0 }
        );
        assert_eq!(settings.access_token_ttl, Duration::from_secs(30 * 60));
        assert!(settings.internal_keys.is_empty());
        assert!(settings.redis.pool_size >= 2);
        Ok(())
    });
}

#[test]
fn each_level_overrides_the_one_below() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file(
            "configs/dev.toml",
            "redis_host = \"toml-host\"\nredis_port = 7001\nredis_db = 1\naccess_token_expire_minutes = 11\nlisten = \"127.0.0.1:9001\"",
        )?;
        jail.create_file(
            "configs/.env.dev",
            "# seed-style file\nREDIS_PORT=7002\nREDIS_DB=\"2\"\nexport ACCESS_TOKEN_EXPIRE_MINUTES=12 # minutes\n",
        )?;
        let settings = load_in(jail, &[("REDIS_DB", "3")]).map_err(|error| error.to_string())?;
        let RedisTarget::Standalone { server, db } = settings.redis.target else { panic!("standalone expected") };
        assert_eq!(server.host, "toml-host", "toml beats the default");
        assert_eq!(server.port, 7002, ".env file beats toml");
        assert_eq!(db, 3, "environment beats the .env file");
        assert_eq!(
            settings.access_token_ttl,
            Duration::from_secs(12 * 60),
            "export and trailing comment are understood"
        );
        assert_eq!(settings.listen.port(), 9001, "toml value stays where nothing overrides it");
        Ok(())
    });
}

#[test]
fn app_env_picks_the_profile_files() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file("configs/dev.toml", "listen = \"127.0.0.1:1111\"")?;
        jail.create_file("configs/prod.toml", "listen = \"0.0.0.0:2222\"")?;
        let settings = load_in(jail, &[("APP_ENV", "prod"), ("REDIS_HOST", "h")]).map_err(|error| error.to_string())?;
        assert_eq!(settings.app_env, AppEnv::Prod);
        assert_eq!(settings.listen.port(), 2222);
        let error = load_in(jail, &[("APP_ENV", "staging")]).expect_err("unknown APP_ENV");
        assert_eq!(error.setting, "APP_ENV");
        Ok(())
    });
}

#[test]
fn redis_url_wins_over_the_parts() {
    Jail::expect_with(|jail| {
        let settings = load_in(
            jail,
            &[("REDIS_HOST", "ignored"), ("REDIS_PORT", "1"), ("REDIS_URL", "redis://:s3cret@10.0.0.5:7000/4")],
        )
        .map_err(|error| error.to_string())?;
        assert_eq!(
            settings.redis.target,
            RedisTarget::Standalone { server: HostPort { host: "10.0.0.5".into(), port: 7000 }, db: 4 }
        );
        assert_eq!(settings.redis.password.as_ref().map(Secret::expose), Some("s3cret"));
        Ok(())
    });
}

#[test]
fn redis_url_schemes() {
    Jail::expect_with(|jail| {
        let cases: &[(&str, RedisTarget, bool)] = &[
            ("redis://h", RedisTarget::Standalone { server: HostPort { host: "h".into(), port: 6379 }, db: 0 }, false),
            ("rediss://h:1/2", RedisTarget::Standalone { server: HostPort { host: "h".into(), port: 1 }, db: 2 }, true),
            (
                "redis-cluster://a:1?node=b:2&node=c",
                RedisTarget::Cluster {
                    seeds: vec![
                        HostPort { host: "a".into(), port: 1 },
                        HostPort { host: "b".into(), port: 2 },
                        HostPort { host: "c".into(), port: 6379 },
                    ],
                },
                false,
            ),
            (
                "redis-sentinel://s:26000/3?sentinelServiceName=main",
                RedisTarget::Sentinel {
                    sentinels: vec![HostPort { host: "s".into(), port: 26000 }],
                    service_name: "main".into(),
                    db: 3,
                },
                false,
            ),
        ];
        for (url, target, tls) in cases {
            let settings = load_in(jail, &[("REDIS_URL", url)]).unwrap_or_else(|error| panic!("{url}: {error}"));
            assert_eq!(&settings.redis.target, target, "{url}");
            assert_eq!(settings.redis.tls.is_some(), *tls, "{url}");
        }
        Ok(())
    });
}

#[test]
fn a_password_that_looks_like_a_number_or_array_stays_text() {
    Jail::expect_with(|jail| {
        for password in ["12345", "[a,b]", "{x}", "true"] {
            let settings = load_in(jail, &[("REDIS_PASSWORD", password)]).map_err(|error| error.to_string())?;
            assert_eq!(settings.redis.password.as_ref().map(Secret::expose), Some(password));
        }
        Ok(())
    });
}

#[test]
fn bad_values_name_the_setting_and_where_it_came_from() {
    Jail::expect_with(|jail| {
        let cases: &[(&str, &str, &str)] = &[
            ("REDIS_PORT", "abc", "u16"),
            ("REDIS_PORT", "0", "0 is not a valid port"),
            ("REDIS_PORT", "70000", "70000"),
            ("REDIS_DB", "-1", "-1"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "0", "at least 1 minute"),
            ("REDIS_URL", "not a url", "not a URL"),
            ("REDIS_URL", "http://h:1", "unsupported scheme"),
            ("REDIS_URL", "redis-sentinel://h:1", "sentinelServiceName"),
            ("TESSERA_STORE", "memcached", "unknown store `memcached`"),
            ("TESSERA_KEY_PREFIX", "has space", "whitespace"),
            ("TESSERA_SLIDING_EXPIRY", "maybe", "not a boolean"),
            ("TESSERA_PUBLIC_PATHS", "/healthz,api", "not a plain path"),
            ("TESSERA_NEAR_CACHE", "maybe", "expected `on` or `off`"),
            ("TESSERA_NEAR_CACHE_TTL_MS", "0", "at least 1 millisecond"),
            ("TESSERA_NEAR_CACHE_TTL_MS", "86400001", "at most 86400000 (a day)"),
            ("TESSERA_NEAR_CACHE_MAX_BYTES", "10", "at least 1024 bytes"),
            ("TESSERA_PUBLIC_PATHS", "/healthz,/internal/sessions", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/metrics", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/internal/users/42/sessions", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/internal", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "//internal/sessions", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/Metrics", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/metrics/", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/INTERNAL/introspect", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/a/../metrics", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/./internal/x", "internal path"),
            ("TESSERA_PUBLIC_PATHS", "/healthz,/readyz,/metrics", "internal path"),
            ("TESSERA_FORWARD_HEADERS", "username", "FIELD=Header-Name"),
            ("TESSERA_FORWARD_HEADERS", "username=X Bad", "FIELD=Header-Name"),
            ("TESSERA_MAX_HEADER_BYTES", "100", "out of range"),
            ("TESSERA_MAX_CONNECTIONS", "0", "out of range, expected 1-1000000"),
            ("TESSERA_MAX_CONNECTIONS", "many", "usize"),
            ("TESSERA_MAX_CONNECTIONS", "2000000", "out of range"),
            ("TESSERA_HEADER_READ_TIMEOUT_MS", "0", "at least 1 millisecond"),
            ("TESSERA_IDLE_TIMEOUT_MS", "0", "at least 1 millisecond"),
            ("TESSERA_IDLE_TIMEOUT_MS", "5000", "below TESSERA_HEADER_READ_TIMEOUT_MS (10000)"),
            ("TESSERA_IDLE_TIMEOUT_MS", "-1", "-1"),
            ("TESSERA_IDLE_TIMEOUT_MS", "86400001", "more than a day"),
            ("TESSERA_HEADER_READ_TIMEOUT_MS", "18446744073709551615", "more than a day"),
            ("TESSERA_MAX_SESSIONS_PER_USER", "-1", "-1"),
            ("TESSERA_SLOW_OPERATION_MS", "0", "at least 1 millisecond"),
            ("TESSERA_LISTEN", "nowhere", "not an address"),
            ("TESSERA_LOG_FORMAT", "xml", "unknown log format"),
            ("TESSERA_INTERNAL_KEY", "short", "shorter than 16"),
            ("TESSERA_REDIS_COMMAND_TIMEOUT_MS", "0", "at least 1 millisecond"),
            ("TESSERA_REVOCATION_WAIT_MS", "60001", "more than a minute"),
            ("TESSERA_ISSUE_WAIT_MS", "60001", "more than a minute"),
            ("TESSERA_REVOCATION_WAIT_MS", "soon", "u64"),
        ];
        for (name, value, problem) in cases {
            let error = load_in(jail, &[(name, value)]).expect_err(&format!("{name}={value} must be rejected"));
            assert_eq!(error.setting, *name, "{name}={value}: {error}");
            assert_eq!(error.origin, "environment", "{name}={value}: {error}");
            assert!(error.problem.contains(problem), "{name}={value}: `{error}` should mention `{problem}`");
            let text = error.to_string();
            assert_eq!(text.lines().count(), 1, "{name}={value}: one line, got {text:?}");
            assert!(text.starts_with(&format!("invalid setting {name} (from environment)")), "{text}");
        }
        Ok(())
    });
}

#[test]
fn a_bad_value_in_a_file_names_the_file() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file("configs/.env.dev", "REDIS_PORT=0\n")?;
        let error = load_in(jail, &[]).expect_err("port 0");
        assert_eq!(error.setting, "REDIS_PORT");
        assert_eq!(error.origin, format!("file {}", Path::new("configs").join(".env.dev").display()));

        jail.create_file("configs/.env.dev", "")?;
        jail.create_file("configs/dev.toml", "redis_port = \"abc\"")?;
        let error = load_in(jail, &[]).expect_err("toml abc");
        assert_eq!(error.setting, "REDIS_PORT");
        assert!(error.origin.ends_with("dev.toml"), "{error}");

        jail.create_file("configs/dev.toml", "redis_prot = 1")?;
        let error = load_in(jail, &[]).expect_err("misspelt key");
        assert_eq!(error.setting, "redis_prot");
        Ok(())
    });
}

#[test]
fn errors_never_show_the_password() {
    Jail::expect_with(|jail| {
        let cases: &[&[(&str, &str)]] = &[
            &[("REDIS_URL", "redis://:hunter2hunter2@h:99999")],
            &[("REDIS_URL", "redis://:hunter2hunter2@h/notanumber")],
            &[("REDIS_URL", "ftp://:hunter2hunter2@h")],
            &[("REDIS_PASSWORD", "hunter2hunter2"), ("REDIS_PORT", "abc")],
        ];
        for env in cases {
            let error = load_in(jail, env).expect_err("must fail");
            assert!(!error.to_string().contains("hunter2"), "password leaked: {error}");
        }
        Ok(())
    });
}

#[test]
fn debug_redacts_secrets() {
    Jail::expect_with(|jail| {
        let settings = load_in(
            jail,
            &[
                ("REDIS_URL", "redis://user:url-pass-123@h:1"),
                ("TESSERA_INTERNAL_KEY", "internal-key-abcdef,second-key-0123456"),
            ],
        )
        .map_err(|error| error.to_string())?;
        let debug = format!("{settings:?}");
        for secret in ["url-pass-123", "internal-key-abcdef", "second-key-0123456"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(debug.contains("[redacted]"), "{debug}");
        assert_eq!(settings.internal_keys.administration.len(), 2);
        assert_eq!(settings.redis.username.as_deref(), Some("user"));
        Ok(())
    });
}

#[test]
fn env_pairs_are_typed_like_the_environment_and_reject_unknown_names() {
    let settings = Settings::from_env_pairs(
        AppEnv::Test,
        &[("REDIS_URL", "redis://127.0.0.1:7000/2"), ("TESSERA_LISTEN", "127.0.0.1:0")],
    )
    .expect("valid pairs");
    assert_eq!(settings.redis.target.addresses(), "127.0.0.1:7000");
    assert_eq!(settings.listen.port(), 0);
    let error = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_PORTT", "1")]).expect_err("typo");
    assert!(error.problem.contains("REDIS_PORTT"), "{error}");
    let error = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_PORT", "abc")]).expect_err("abc");
    assert_eq!((error.setting.as_str(), error.origin.as_str()), ("REDIS_PORT", "given values"));
}

fn repository_file(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

#[test]
fn the_shipped_profiles_load() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        // prod must be told which store to use (the environment names it in a deployment).
        jail.set_env("REDIS_HOST", "cache.internal");
        for app_env in [AppEnv::Dev, AppEnv::Test, AppEnv::Prod] {
            let figment = Settings::figment(app_env, &repository_file("configs")).map_err(|error| error.to_string())?;
            let settings = Settings::from_figment(app_env, &figment).map_err(|error| error.to_string())?;
            assert_eq!(settings.app_env, app_env);
        }
        Ok(())
    });
}

#[test]
fn the_readme_documents_every_setting() {
    let readme = std::fs::read_to_string(repository_file("README.md")).expect("README.md");
    for setting in SETTINGS {
        assert!(readme.contains(&format!("`{}`", setting.env)), "README.md does not document {}", setting.env);
    }
}

#[test]
fn the_store_follows_the_profile_and_the_redis_settings() {
    Jail::expect_with(|jail| {
        type Case<'a> = (&'a [(&'a str, &'a str)], StoreKind, &'a str);
        let cases: &[Case<'_>] = &[
            (&[], StoreKind::Embedded, "dev, nothing names a Redis"),
            (&[("REDIS_HOST", "cache.internal")], StoreKind::Redis, "dev with REDIS_HOST"),
            (&[("REDIS_URL", "redis://h")], StoreKind::Redis, "dev with REDIS_URL"),
            (&[("REDIS_HOST", "h"), ("TESSERA_STORE", "embedded")], StoreKind::Embedded, "explicit embedded wins"),
            (&[("APP_ENV", "test")], StoreKind::Redis, "test profile"),
            (&[("APP_ENV", "prod"), ("REDIS_HOST", "h")], StoreKind::Redis, "prod profile"),
            (&[("APP_ENV", "prod"), ("TESSERA_STORE", "Embedded")], StoreKind::Embedded, "explicit, any case"),
        ];
        for (env, store, why) in cases {
            let settings = load_in(jail, env).map_err(|error| error.to_string())?;
            assert_eq!(settings.store, *store, "{why}");
        }
        jail.create_dir("configs")?;
        jail.create_file("configs/.env.dev", "REDIS_HOST=127.0.0.1\n")?;
        assert_eq!(
            load_in(jail, &[]).map_err(|error| error.to_string())?.store,
            StoreKind::Redis,
            "REDIS_HOST in .env.dev"
        );
        Ok(())
    });
}

#[test]
fn auth_and_http_settings() {
    Jail::expect_with(|jail| {
        let defaults = load_in(jail, &[]).map_err(|error| error.to_string())?;
        assert_eq!(defaults.auth.max_sessions_per_user, std::num::NonZeroU64::new(100));
        assert!(!defaults.auth.sliding_expiry);
        assert_eq!(defaults.auth.revocation_wait, Duration::from_millis(500));
        assert_eq!(defaults.auth.issue_wait, Duration::ZERO, "issuing does not wait unless asked");
        assert_eq!(defaults.http.public_paths, ["/healthz", "/readyz", "/openapi.json"]);
        assert_eq!(defaults.http.max_connections, 10_000);
        assert_eq!(defaults.http.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.http.idle_timeout, Duration::from_secs(95));
        assert_eq!(defaults.http.max_connections_per_ip, 1_000);
        assert_eq!(defaults.auth.max_session_lifetime, Duration::from_secs(30 * 24 * 60 * 60));
        assert!(defaults.http.forward_headers.is_empty());
        let settings = load_in(
            jail,
            &[
                ("TESSERA_MAX_SESSIONS_PER_USER", "0"),
                ("TESSERA_SLIDING_EXPIRY", "yes"),
                ("TESSERA_REVOCATION_WAIT_MS", "0"),
                ("TESSERA_ISSUE_WAIT_MS", "250"),
                ("TESSERA_PUBLIC_PATHS", "/healthz, /status"),
                ("TESSERA_FORWARD_HEADERS", "username=X-Auth-Username, role = X-Auth-Role"),
            ],
        )
        .map_err(|error| error.to_string())?;
        assert_eq!(settings.auth.max_sessions_per_user, None, "0 means no cap");
        assert!(settings.auth.sliding_expiry);
        assert_eq!(settings.auth.revocation_wait, Duration::ZERO, "0 means no wait");
        assert_eq!(settings.auth.issue_wait, Duration::from_millis(250));
        assert_eq!(settings.http.public_paths, ["/healthz", "/status"]);
        assert_eq!(
            settings.http.forward_headers,
            [("username".to_owned(), "X-Auth-Username".to_owned()), ("role".to_owned(), "X-Auth-Role".to_owned())]
        );
        Ok(())
    });
}

#[test]
fn token_format_and_storage_settings() {
    Jail::expect_with(|jail| {
        let defaults = load_in(jail, &[]).map_err(|error| error.to_string())?;
        assert_eq!(defaults.auth.token_format, TokenFormat::V1, "the Python system's format unless asked");
        assert_eq!(defaults.auth.token_storage, TokenStorage::Plain, "the Python system's storage unless asked");
        for (format, storage, expected_format, expected_storage) in [
            ("v2", "hashed", TokenFormat::V2, TokenStorage::Hashed),
            (" V1 ", "Migrate", TokenFormat::V1, TokenStorage::Migrate),
            ("v1", "plain", TokenFormat::V1, TokenStorage::Plain),
        ] {
            let settings = load_in(jail, &[("TESSERA_TOKEN_FORMAT", format), ("TESSERA_TOKEN_STORAGE", storage)])
                .map_err(|error| error.to_string())?;
            assert_eq!(settings.auth.token_format, expected_format, "{format}");
            assert_eq!(settings.auth.token_storage, expected_storage, "{storage}");
        }
        for (name, value, problem) in [
            ("TESSERA_TOKEN_FORMAT", "v3", "unknown token format `v3`"),
            ("TESSERA_TOKEN_STORAGE", "sha256", "unknown token storage `sha256`"),
        ] {
            let error = load_in(jail, &[(name, value)]).expect_err(&format!("{name}={value} must be rejected"));
            assert_eq!(error.setting, name, "{error}");
            assert_eq!(error.origin, "environment", "{error}");
            assert!(error.problem.contains(problem), "`{error}` should mention `{problem}`");
        }
        Ok(())
    });
}

/// The row of `name` in the effective settings.
fn effective_row(rows: &[EffectiveSetting], name: &str) -> (String, String) {
    let row = rows.iter().find(|row| row.name == name).unwrap_or_else(|| panic!("no row for {name}"));
    (row.value.clone(), row.origin.clone())
}

#[test]
fn effective_settings_name_each_value_s_origin_and_hide_secrets() {
    Jail::expect_with(|jail| {
        jail.create_dir("profiles")?;
        jail.create_file("profiles/dev.toml", "log_format = \"json\"\nredis_port = 7001")?;
        jail.create_file(
            "profiles/.env.dev",
            "REDIS_PORT=7002\nREDIS_PASSWORD=file-secret-77\nTESSERA_INTERNAL_KEY=\nOTHER_PROGRAM=1\n",
        )?;
        jail.clear_env();
        jail.set_env("TESSERA_CONFIG_DIR", "profiles");
        jail.set_env("TESSERA_LOG", "debug");
        jail.set_env("REDIS_URL", "redis://:url-secret-88@10.1.2.3:7000");
        let (settings, sources) = Settings::load_with_sources().map_err(|error| error.to_string())?;
        let rows = sources.effective(&settings);
        let toml = format!("file {}", Path::new("profiles").join("dev.toml").display());
        let dotenv = format!("file {}", Path::new("profiles").join(".env.dev").display());
        let expected = [
            ("APP_ENV", "dev", "default"),
            ("TESSERA_CONFIG_DIR", "profiles", "environment"),
            ("TESSERA_LOG_FORMAT", "json", toml.as_str()),
            ("REDIS_PORT", "7002", dotenv.as_str()),
            ("REDIS_PASSWORD", REDACTED, dotenv.as_str()),
            ("TESSERA_INTERNAL_KEY", "(empty)", dotenv.as_str()),
            ("TESSERA_LOG", "debug", "environment"),
            ("REDIS_URL", REDACTED, "environment"),
            ("REDIS_DB", "0", "default"),
            ("TESSERA_LISTEN", "127.0.0.1:8080", "default"),
            ("TESSERA_KEY_PREFIX", "(empty)", "default"),
            ("TESSERA_REDIS_CA_FILE", NOT_SET, "default"),
            ("TESSERA_STORE", "redis", "default"),
        ];
        for (name, value, origin) in expected {
            assert_eq!(effective_row(&rows, name), (value.to_owned(), origin.to_owned()), "{name}");
        }
        assert_eq!(rows.len(), SETTINGS.len() + 2, "every setting, plus APP_ENV and TESSERA_CONFIG_DIR");
        let everything = format!("{rows:?}");
        assert!(!everything.contains("secret-"), "a secret leaked: {everything}");
        Ok(())
    });
}

#[test]
fn defaults_worked_out_at_load_are_reported_as_loaded() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("XDG_DATA_HOME", "/var/lib/data-home");
        let (settings, sources) = Settings::load_with_sources().map_err(|error| error.to_string())?;
        let rows = sources.effective(&settings);
        assert_eq!(effective_row(&rows, "TESSERA_STORE"), ("embedded".to_owned(), "default".to_owned()));
        assert_eq!(
            effective_row(&rows, "TESSERA_DATA_DIR"),
            ("/var/lib/data-home/tessera".to_owned(), "default".to_owned())
        );
        assert_eq!(effective_row(&rows, "TESSERA_REDIS_POOL_SIZE").0, settings.redis.pool_size.to_string());
        assert!(effective_row(&rows, "TESSERA_NEAR_CACHE").0.starts_with("auto"));
        assert_eq!(effective_row(&rows, "REDIS_PASSWORD"), (NOT_SET.to_owned(), "default".to_owned()));
        Ok(())
    });
}

#[test]
fn unknown_tessera_names_get_the_closest_setting() {
    let names = [
        "TESSERA_LISTN",
        "TESSERA_SLIDNG_EXPIRY",
        "TESSERA_REDIS_HOST",
        "TESSERA_LISTEN",
        "TESSERA_CONFIG_DIR",
        "TESSERA_TEST_REDIS_URL",
        "TESSERA_BENCH_QUICK",
        "REDIS_PROT",
        "PATH",
    ]
    .map(str::to_owned);
    let unknown = unknown::unknown_among(names, "environment");
    let found: Vec<(&str, &str)> = unknown.iter().map(|variable| (variable.name.as_str(), variable.closest)).collect();
    assert_eq!(
        found,
        [
            ("TESSERA_LISTN", "TESSERA_LISTEN"),
            ("TESSERA_REDIS_HOST", "REDIS_HOST"),
            ("TESSERA_SLIDNG_EXPIRY", "TESSERA_SLIDING_EXPIRY"),
        ],
        "known names, the tooling's and non-TESSERA names are not reported"
    );
    assert_eq!(
        unknown[0].to_string(),
        "unknown setting TESSERA_LISTN (from environment) is ignored; did you mean TESSERA_LISTEN?"
    );
    assert_eq!(unknown::closest_setting("TESSERA_NEARCACHE_TTL"), "TESSERA_NEAR_CACHE_TTL_MS");
}

#[test]
fn unknown_names_are_found_in_the_environment_and_the_profile_dotenv_file() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file("configs/.env.test", "TESSERA_INTERNAL_KY=abc\nREDIS_PORT=1\n")?;
        jail.create_file("configs/.env.dev", "TESSERA_NOT_READ=1\n")?;
        jail.clear_env();
        jail.set_env("APP_ENV", "test");
        jail.set_env("TESSERA_LOGG", "debug");
        let unknown = unknown_variables();
        let found: Vec<(&str, &str, &str)> = unknown
            .iter()
            .map(|variable| (variable.name.as_str(), variable.origin.as_str(), variable.closest))
            .collect();
        let dotenv = format!("file {}", Path::new("configs").join(".env.test").display());
        assert_eq!(
            found,
            [
                ("TESSERA_LOGG", "environment", "TESSERA_LOG"),
                ("TESSERA_INTERNAL_KY", dotenv.as_str(), "TESSERA_INTERNAL_KEY")
            ]
        );
        Ok(())
    });
}

#[test]
fn prod_refuses_an_implicit_store() {
    Jail::expect_with(|jail| {
        let error = load_in(jail, &[("APP_ENV", "prod")]).expect_err("prod with no store named");
        assert_eq!(error.setting, "TESSERA_STORE", "{error}");
        assert!(error.problem.contains("no store is named"), "{error}");
        let settings =
            load_in(jail, &[("APP_ENV", "prod"), ("TESSERA_STORE", "embedded")]).map_err(|error| error.to_string())?;
        assert_eq!(settings.store, StoreKind::Embedded, "named explicitly");
        Ok(())
    });
}

#[test]
fn the_environment_wins_over_files_for_redis_url_against_redis_host() {
    Jail::expect_with(|jail| {
        jail.create_dir("configs")?;
        jail.create_file("configs/dev.toml", "redis_url = \"redis://from-file:7000\"\n")?;
        let settings = load_in(jail, &[("REDIS_HOST", "from-env")]).map_err(|error| error.to_string())?;
        assert_eq!(settings.redis.target.addresses(), "from-env:6379", "REDIS_HOST from the environment wins");
        jail.create_file("configs/.env.dev", "REDIS_HOST=from-dotenv\n")?;
        let settings = load_in(jail, &[]).map_err(|error| error.to_string())?;
        assert_eq!(settings.redis.target.addresses(), "from-dotenv:6379", ".env wins over TOML");
        let settings =
            load_in(jail, &[("REDIS_URL", "redis://from-env-url:7001")]).map_err(|error| error.to_string())?;
        assert_eq!(settings.redis.target.addresses(), "from-env-url:7001", "the URL from the environment wins");
        jail.create_file("configs/dev.toml", "redis_url = \"redis://file-user:file-pass@from-file:7000\"\n")?;
        jail.create_file("configs/.env.dev", "")?;
        let settings = load_in(jail, &[("REDIS_PASSWORD", "env-pass"), ("TESSERA_REDIS_USERNAME", "env-user")])
            .map_err(|error| error.to_string())?;
        assert_eq!(settings.redis.password.as_ref().map(Secret::expose), Some("env-pass"), "over the file URL's");
        assert_eq!(settings.redis.username.as_deref(), Some("env-user"), "over the file URL's");
        let settings = load_in(
            jail,
            &[
                ("REDIS_URL", "redis://url-user:url-pass@h:1"),
                ("REDIS_PASSWORD", "env-pass"),
                ("TESSERA_REDIS_USERNAME", "u"),
            ],
        )
        .map_err(|error| error.to_string())?;
        assert_eq!(settings.redis.password.as_ref().map(Secret::expose), Some("url-pass"), "same level: the URL's");
        assert_eq!(settings.redis.username.as_deref(), Some("url-user"), "same level: the URL's");
        Ok(())
    });
}

#[test]
fn unknown_redis_url_parameters_are_refused_without_echoing_the_url() {
    Jail::expect_with(|jail| {
        for (url, parameter) in [
            ("redis://:hunter2-pass@host:6380/0?ssl=true", "`ssl`"),
            ("redis-cluster://:hunter2-pass@h:7000?node=h:7001&tls=1", "`tls`"),
            ("redis-sentinel://:hunter2-pass@h:26379?sentinelServiceName=m&timeout=5", "`timeout`"),
        ] {
            let error = load_in(jail, &[("REDIS_URL", url)]).expect_err(url);
            assert_eq!(error.setting, "REDIS_URL", "{error}");
            assert!(error.problem.contains(parameter), "{url}: {error}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let error = load_in(jail, &[("REDIS_URL", "redis://h:6380/0?ssl=true")]).expect_err("ssl");
        assert!(error.problem.contains("rediss://"), "a hint at the TLS scheme: {error}");
        Ok(())
    });
}

#[test]
fn forward_headers_cannot_target_identity_framing_or_hop_by_hop_headers() {
    Jail::expect_with(|jail| {
        for target in [
            "X-Auth-User-Id",
            "x-auth-session-id",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Set-Cookie",
            "Authorization",
            "X-Request-Id",
        ] {
            let value = format!("username={target}");
            let error = load_in(jail, &[("TESSERA_FORWARD_HEADERS", &value)]).expect_err(&value);
            assert_eq!(error.setting, "TESSERA_FORWARD_HEADERS", "{error}");
            assert!(error.problem.contains("cannot carry metadata"), "{error}");
        }
        let error = load_in(jail, &[("TESSERA_FORWARD_HEADERS", "a=X-Auth-A,b=x-auth-a")]).expect_err("twice");
        assert!(error.problem.contains("named twice"), "{error}");
        Ok(())
    });
}

#[test]
fn each_job_has_its_own_key_and_prod_keys_are_long_and_not_samples() {
    Jail::expect_with(|jail| {
        let settings = load_in(
            jail,
            &[
                ("TESSERA_INTERNAL_KEY", "admin-key-abcdefghijkl"),
                ("TESSERA_INTROSPECTION_KEY", "introspection-key-abcdef"),
                ("TESSERA_METRICS_KEY", "metrics-key-abcdefghij,metrics-key-rotated-01"),
            ],
        )
        .map_err(|error| error.to_string())?;
        let keys = &settings.internal_keys;
        assert_eq!((keys.administration.len(), keys.introspection.len(), keys.metrics.len()), (1, 1, 2));
        let error = load_in(
            jail,
            &[("TESSERA_INTERNAL_KEY", "shared-key-abcdefghijk"), ("TESSERA_METRICS_KEY", "shared-key-abcdefghijk")],
        )
        .expect_err("one key for two jobs");
        assert_eq!(error.setting, "TESSERA_METRICS_KEY", "{error}");
        assert!(!error.to_string().contains("shared-key"), "{error}");
        let mut prod =
            |key: &str| load_in(jail, &[("APP_ENV", "prod"), ("REDIS_HOST", "h"), ("TESSERA_INTERNAL_KEY", key)]);
        let error = prod("sixteen-bytes-ok-dev-but-not-prod").map(drop).err();
        assert!(error.is_none(), "33 bytes are enough: {error:?}");
        let error = prod("only-thirty-one-bytes-long-key!").expect_err("short in prod");
        assert!(error.problem.contains("shorter than 32 bytes in prod"), "{error}");
        for sample in access::SAMPLE_KEYS.iter().filter(|key| key.len() >= 32) {
            let error = prod(sample).expect_err(sample);
            assert!(error.problem.contains("sample key"), "{error}");
        }
        let error = prod("dev-internal-key-0123456789").expect_err("the README's key");
        assert_eq!(error.setting, "TESSERA_INTERNAL_KEY", "{error}");
        Ok(())
    });
}

#[test]
fn session_lifetime_and_per_ip_cap() {
    Jail::expect_with(|jail| {
        let settings =
            load_in(jail, &[("TESSERA_MAX_SESSION_LIFETIME", "12h"), ("TESSERA_MAX_CONNECTIONS_PER_IP", "8")])
                .map_err(|error| error.to_string())?;
        assert_eq!(settings.auth.max_session_lifetime, Duration::from_secs(12 * 3600));
        assert_eq!(settings.http.max_connections_per_ip, 8);
        for (name, value, problem) in [
            ("TESSERA_MAX_SESSION_LIFETIME", "0s", "is zero"),
            ("TESSERA_MAX_SESSION_LIFETIME", "30", "has no unit"),
            ("TESSERA_MAX_CONNECTIONS_PER_IP", "0", "out of range"),
        ] {
            let error = load_in(jail, &[(name, value)]).expect_err(value);
            assert_eq!(error.setting, name, "{error}");
            assert!(error.problem.contains(problem), "{error}");
        }
        let error = load_in(jail, &[("TESSERA_MAX_CONNECTIONS", "10"), ("TESSERA_MAX_CONNECTIONS_PER_IP", "11")])
            .expect_err("above the global cap");
        assert_eq!(error.setting, "TESSERA_MAX_CONNECTIONS_PER_IP", "{error}");
        Ok(())
    });
}

#[test]
fn the_data_directory_and_the_fsync_policy() {
    Jail::expect_with(|jail| {
        let settings = load_in(jail, &[]).expect("dev defaults");
        let home = jail.directory().join(".local").join("share").join("tessera");
        assert_eq!(settings.data, DataSettings { dir: Some(home), fsync: FsyncPolicy::EverySecond });
        let settings = load_in(jail, &[("XDG_DATA_HOME", "/srv/data"), ("TESSERA_FSYNC", "always")]).expect("xdg");
        assert_eq!(settings.data.dir.as_deref(), Some(std::path::Path::new("/srv/data/tessera")));
        assert_eq!(settings.data.fsync, FsyncPolicy::Always);
        // A relative XDG_DATA_HOME is ignored, as the XDG rule says.
        let settings = load_in(jail, &[("XDG_DATA_HOME", "relative")]).expect("relative xdg");
        assert!(settings.data.dir.as_deref().is_some_and(|dir| dir.starts_with(jail.directory())));
        let settings = load_in(jail, &[("TESSERA_DATA_DIR", "none")]).expect("memory only");
        assert_eq!(settings.data.dir, None);
        let settings = load_in(jail, &[("TESSERA_DATA_DIR", "sessions")]).expect("relative dir");
        assert!(settings.data.dir.as_deref().is_some_and(|dir| dir.is_absolute() && dir.ends_with("sessions")));
        // The test profile keeps nothing unless told to; Redis needs no directory.
        let settings = load_in(jail, &[("APP_ENV", "test"), ("TESSERA_STORE", "embedded")]).expect("test profile");
        assert_eq!(settings.data.dir, None);
        let settings = load_in(jail, &[("REDIS_URL", "redis://127.0.0.1:7000")]).expect("redis");
        assert_eq!(settings.data.dir, None);
        for (name, value, problem) in
            [("TESSERA_FSYNC", "sometimes", "expected `always` or `everysec`"), ("TESSERA_DATA_DIR", " ", "is empty")]
        {
            let error = load_in(jail, &[(name, value)]).expect_err(value);
            assert_eq!(error.setting, name, "{error}");
            assert!(error.problem.contains(problem), "{error}");
        }
        jail.clear_env();
        let error = Settings::load().expect_err("no home");
        assert_eq!(error.setting, "TESSERA_DATA_DIR", "{error}");
        assert!(error.problem.contains("neither XDG_DATA_HOME nor HOME"), "{error}");
        Ok(())
    });
}
