//! Property tests of settings and `REDIS_URL`: any values for any settings give valid settings
//! or one error line naming a setting that was given, never a panic and never a secret; a
//! `REDIS_URL` built from any parts parses back to those parts.

use proptest::prelude::*;

use crate::{AppEnv, HostPort, RedisTarget, SETTINGS, Settings, redis_target::parse_redis_url};

/// Values that probe every kind of setting: numbers in and out of range, words the settings
/// know, paths, lists, addresses, URLs, and anything at all (control characters included).
fn setting_value() -> impl Strategy<Value = String> {
    let words = prop::sample::select(vec![
        "",
        " ",
        "0",
        "1",
        "-1",
        "65535",
        "65536",
        "255",
        "256",
        "1023",
        "1024",
        "8192",
        "1048577",
        "18446744073709551616",
        "1e3",
        "0x10",
        "true",
        "FALSE",
        "yes",
        "on",
        "off",
        "auto",
        "v1",
        "V2",
        "v3",
        "plain",
        "hashed",
        "migrate",
        "redis",
        "embedded",
        "json",
        "pretty",
        "info,fred=warn",
        "127.0.0.1:0",
        "[::1]:8080",
        "localhost:80",
        "/healthz",
        "/metrics",
        "//internal/sessions",
        "/a/../Metrics",
        "/x,/y",
        "username=X-User",
        "a=b c",
        "redis://127.0.0.1:7000/3",
        "rediss://h",
        "redis-cluster://h:1?node=h:2",
        "redis-sentinel://h?sentinelServiceName=m",
        "0123456789abcdef",
        "short",
        "line\nbreak",
        "tab\there\r\n",
    ]);
    prop_oneof![
        4 => words.prop_map(str::to_owned),
        2 => "[0-9]{1,25}",
        1 => "-[0-9]{1,6}",
        2 => "[ -~]{0,24}",
        2 => any::<String>(),
    ]
}

fn setting_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(SETTINGS.iter().map(|setting| setting.env).collect::<Vec<_>>())
}

/// Text that stands out: if an error message contains it, the message leaked it.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{6,12}".prop_map(|tail| format!("Secret-{tail}"))
}

/// Every byte outside RFC 3986's unreserved set as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Clone, Debug)]
struct UrlParts {
    scheme: &'static str,
    host: String,
    port: Option<u16>,
    username: Option<String>,
    password: Option<String>,
    db: Option<u8>,
    nodes: Vec<(String, Option<u16>)>,
    service_name: String,
}

impl UrlParts {
    fn text(&self) -> String {
        let mut text = format!("{}://", self.scheme);
        match (&self.username, &self.password) {
            (None, None) => {}
            (Some(user), None) => text.push_str(&format!("{}@", percent_encode(user))),
            (user, Some(password)) => text.push_str(&format!(
                "{}:{}@",
                percent_encode(user.as_deref().unwrap_or_default()),
                percent_encode(password)
            )),
        }
        text.push_str(&host_in_url(&self.host));
        if let Some(port) = self.port {
            text.push_str(&format!(":{port}"));
        }
        if let Some(db) = self.db {
            text.push_str(&format!("/{db}"));
        }
        let mut query: Vec<String> = self
            .nodes
            .iter()
            .map(|(host, port)| {
                let node = match port {
                    Some(port) => format!("{}:{port}", host_in_url(host)),
                    None => host_in_url(host),
                };
                format!("node={}", percent_encode(&node))
            })
            .collect();
        if self.scheme.ends_with("sentinel") {
            query.push(format!("sentinelServiceName={}", percent_encode(&self.service_name)));
        }
        if !query.is_empty() {
            text.push('?');
            text.push_str(&query.join("&"));
        }
        text
    }

    fn expected_target(&self) -> RedisTarget {
        let sentinel = self.scheme.ends_with("sentinel");
        let default_port = if sentinel { 26379 } else { 6379 };
        let first = HostPort { host: self.host.clone(), port: self.port.unwrap_or(default_port) };
        let nodes =
            self.nodes.iter().map(|(host, port)| HostPort { host: host.clone(), port: port.unwrap_or(default_port) });
        if self.scheme.ends_with("cluster") {
            RedisTarget::Cluster { seeds: std::iter::once(first).chain(nodes).collect() }
        } else if sentinel {
            RedisTarget::Sentinel {
                sentinels: std::iter::once(first).chain(nodes).collect(),
                service_name: self.service_name.clone(),
                db: self.db.unwrap_or(0),
            }
        } else {
            RedisTarget::Standalone { server: first, db: self.db.unwrap_or(0) }
        }
    }
}

/// An IPv6 address goes in brackets.
fn host_in_url(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,6}){0,2}",
        1 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        1 => prop::sample::select(vec!["::1", "2001:db8::7", "fe80::1"]).prop_map(str::to_owned),
    ]
}

fn url_parts() -> impl Strategy<Value = UrlParts> {
    let schemes = prop::sample::select(vec![
        "redis",
        "rediss",
        "redis-cluster",
        "rediss-cluster",
        "redis-sentinel",
        "rediss-sentinel",
    ]);
    (
        schemes,
        host(),
        prop::option::of(1_u16..),
        prop::option::of(any::<String>()),
        prop::option::of(
            secret().prop_flat_map(|secret| any::<String>().prop_map(move |tail| format!("{secret}{tail}"))),
        ),
        prop::option::of(any::<u8>()),
        prop::collection::vec((host(), prop::option::of(1_u16..)), 0..3),
        "[A-Za-z0-9 +/._-]{1,12}",
    )
        .prop_map(|(scheme, host, port, username, password, db, nodes, service_name)| {
            let clustered = scheme.ends_with("cluster");
            UrlParts {
                scheme,
                host,
                port,
                username: username.filter(|name| !name.is_empty()),
                password,
                db: db.filter(|_| !clustered),
                nodes: if clustered || scheme.ends_with("sentinel") { nodes } else { Vec::new() },
                service_name,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// One to three settings with any values: valid settings, or an error naming one of them
    /// (as the setting at fault, or in the reason when a default conflicts with it), on one line.
    #[test]
    fn any_values_give_settings_or_an_error_naming_a_given_setting(
        pairs in prop::collection::vec((setting_name(), setting_value()), 1..=3),
    ) {
        let given: Vec<(&str, &str)> = pairs.iter().map(|(name, value)| (*name, value.as_str())).collect();
        if let Err(error) = Settings::from_env_pairs(AppEnv::Test, &given) {
            let message = error.to_string();
            prop_assert!(
                given.iter().any(|(name, _)| error.setting == *name || error.problem.contains(name)),
                "{} names none of {:?}", message, given
            );
            prop_assert!(!message.contains(['\n', '\r']), "not one line: {:?}", message);
            prop_assert!(!error.problem.is_empty());
        }
    }

    /// Secrets never reach an error: internal keys of any shape, and a Redis password beside a
    /// broken setting.
    #[test]
    fn errors_never_show_a_secret(
        key in secret(),
        short_key in "[a-z]{1,3}",
        password in secret(),
        broken in (setting_name(), setting_value()),
    ) {
        let internal_key = format!("{key},{short_key}");
        let given = [
            ("TESSERA_INTERNAL_KEY", internal_key.as_str()),
            ("REDIS_PASSWORD", password.as_str()),
            (broken.0, broken.1.as_str()),
        ];
        if let Err(error) = Settings::from_env_pairs(AppEnv::Test, &given) {
            let message = error.to_string();
            prop_assert!(!message.contains(&key) && !message.contains(&password), "{}", message);
        }
    }

    /// `REDIS_URL` parsing never panics on any text, and never repeats a password in its reason.
    #[test]
    fn redis_url_parsing_never_panics_nor_shows_the_password(
        text in prop_oneof![
            any::<String>(),
            "(redis|rediss|redis-cluster|redis-sentinel|http)://[ -~]{0,40}",
        ],
        password in secret(),
    ) {
        let _ = parse_redis_url(&text);
        let with_password = text.replacen("://", &format!("://user:{password}@"), 1);
        if let Err(problem) = parse_redis_url(&with_password) {
            prop_assert!(!problem.contains(&password), "{}", problem);
        }
    }

    /// A URL built from any parts (user and password of any Unicode, percent-encoded) parses
    /// back to exactly those parts.
    #[test]
    fn redis_urls_round_trip(parts in url_parts()) {
        let text = parts.text();
        let parsed = parse_redis_url(&text).map_err(|problem| TestCaseError::fail(format!("{text}: {problem}")))?;
        prop_assert_eq!(&parsed.target, &parts.expected_target(), "{}", text);
        prop_assert_eq!(&parsed.username, &parts.username, "{}", text);
        prop_assert_eq!(&parsed.password, &parts.password, "{}", text);
        prop_assert_eq!(parsed.tls, parts.scheme.starts_with("rediss"), "{}", text);
        let settings = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &text)])
            .map_err(|error| TestCaseError::fail(format!("{text}: {error}")))?;
        prop_assert_eq!(settings.redis.target, parts.expected_target());
    }

    /// The broken variants of a good URL are refused with a reason that keeps the password out.
    #[test]
    fn broken_redis_urls_are_refused_without_the_password(
        parts in url_parts().prop_filter("with a password", |parts| parts.password.is_some()),
        breakage in prop::sample::select(vec!["port 0", "db", "scheme", "no host", "node port", "no service"]),
    ) {
        let text = parts.text();
        let broken = match breakage {
            "port 0" => {
                let at = text.find('@').unwrap();
                let rest = &text[at + 1..];
                let end = rest.find(['/', '?']).map_or(text.len(), |index| at + 1 + index);
                format!("{}{}:0{}", &text[..at + 1], host_in_url(&parts.host), &text[end..])
            }
            "db" if !parts.scheme.ends_with("cluster") => {
                format!("{}://user:{}@{}/x", parts.scheme, percent_encode(parts.password.as_deref().unwrap_or_default()), host_in_url(&parts.host))
            }
            "scheme" => text.replacen(parts.scheme, "http", 1),
            "no host" => format!("{}://user:{}@/0", parts.scheme, percent_encode(parts.password.as_deref().unwrap_or_default())),
            "node port" if parts.scheme.contains('-') => {
                format!("{text}{}node=h:99999", if text.contains('?') { "&" } else { "?" })
            }
            "no service" if parts.scheme.ends_with("sentinel") => {
                text.split_once("sentinelServiceName").map(|(head, _)| format!("{head}x=1")).unwrap()
            }
            _ => return Ok(()),
        };
        let problem = match parse_redis_url(&broken) {
            Ok(parsed) => return Err(TestCaseError::fail(format!("{broken} was accepted: {:?}", parsed.target))),
            Err(problem) => problem,
        };
        prop_assert!(!problem.contains(parts.password.as_deref().unwrap_or_default()), "{}", problem);
        let error = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_URL", &broken)]).unwrap_err();
        prop_assert_eq!(error.setting.as_str(), "REDIS_URL");
    }
}

/// Found by the properties above: figment's own value parser panics on some quoted text (an
/// escape before a multi-byte character), which for a number setting stopped start-up with a
/// panic instead of an error naming the setting.
#[test]
fn quoted_text_with_an_escape_in_a_number_setting_is_an_error_not_a_panic() {
    for value in ["\"🇦\\🟠\"", "\"é\\n\"", "'\\é'"] {
        let error = Settings::from_env_pairs(AppEnv::Test, &[("REDIS_PORT", value)]).unwrap_err();
        assert_eq!(error.setting, "REDIS_PORT", "{value}: {error}");
    }
}

/// Found by the properties above: a value quoted in a reason (`TESSERA_LISTEN`, here) could
/// carry a line break into what must be one line.
#[test]
fn a_quoted_value_with_control_characters_stays_on_one_line() {
    let error = Settings::from_env_pairs(AppEnv::Test, &[("TESSERA_LISTEN", "line\nbreak\r\t")]).unwrap_err();
    assert_eq!(error.to_string().lines().count(), 1, "{error}");
    assert!(error.problem.contains("`line\\nbreak\\r\\t`"), "the value is shown escaped: {error}");
}
